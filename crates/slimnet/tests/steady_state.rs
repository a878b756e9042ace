//! A session's steady-state run allocates nothing on the heap: once the plan for an
//! input binding exists and the output tensors are in place, every activation lives
//! in the arena, kernels use their preallocated scratch and pack buffers, and no
//! step runs on the (allocating) reference kernels.
//!
//! The global allocator of this test binary counts each thread's allocations (the
//! sessions here run on one thread); each check runs the
//! model a few times to warm up and then counts the allocations of further runs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use slimnet::onnx::load_model;
use slimnet::runtime::{Session, SessionOptions};
use slimnet::tensor::Tensor;

struct Counting;

thread_local! {
    /// Allocations made by this thread (tests run on threads of their own).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: during thread teardown the counter may be gone.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `runs` runs of `stem`'s first reference case after warm-up.
fn allocations_in_steady_state(stem: &str, threads: usize, runs: usize) -> (usize, usize) {
    let (path, cases) = common::reference(stem);
    let model = load_model(&path).unwrap();
    let graph = model.graph.clone();
    let options = SessionOptions {
        threads,
        ..SessionOptions::default()
    };
    let mut session = Session::new(model, options).unwrap();
    let case = &cases[0];
    let ordered: Vec<Tensor> = graph
        .inputs
        .iter()
        .map(|&v| {
            let name = &graph.values[v].name;
            case.inputs
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .clone()
        })
        .collect();
    let refs: Vec<&Tensor> = ordered.iter().collect();
    let summary = session.plan_summary(&refs).unwrap();
    let mut outputs = Vec::new();
    for _ in 0..3 {
        session.run_into(&refs, &mut outputs).unwrap();
    }
    let before = allocations();
    for _ in 0..runs {
        session.run_into(&refs, &mut outputs).unwrap();
    }
    let after = allocations();
    (after - before, summary.reference_steps)
}

fn check(stem: &str) {
    let (allocations, reference_steps) = allocations_in_steady_state(stem, 1, 10);
    assert_eq!(reference_steps, 0, "{stem}: steps on reference kernels");
    assert_eq!(
        allocations, 0,
        "{stem}: heap allocations in 10 steady-state runs"
    );
}

#[test]
fn mnist_cnn_allocates_nothing() {
    check("mnist_cnn");
}

#[test]
fn digits_mlp_allocates_nothing() {
    check("digits_mlp");
}

#[test]
fn ppocr_cls_allocates_nothing() {
    check("ppocr_cls");
}

/// The counter itself works: a run that builds a plan allocates.
#[test]
fn building_a_plan_is_counted() {
    let before = allocations();
    let _ = allocations_in_steady_state("digits_mlp", 1, 1);
    assert!(allocations() > before);
}
