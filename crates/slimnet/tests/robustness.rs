//! Corrupted models never panic: thousands of deterministic byte mutations and
//! truncations of the own models go through import, shape inference and a run, and
//! each step must return `Ok` or an error, never unwind.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use slimnet::ir::infer_shapes;
use slimnet::onnx::decode_model;
use slimnet::runtime::{run_model, ReferenceFolder, Session, SessionOptions};
use slimnet::tensor::Tensor;

/// How many corrupted models still imported (so the test exercises more than the decoder).
static DECODED: AtomicUsize = AtomicUsize::new(0);

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Import, infer and run a (possibly corrupted) model, on the reference interpreter
/// and a fast session; errors are fine.
fn exercise(bytes: &[u8]) {
    let Ok(mut model) = decode_model(bytes, None) else {
        return;
    };
    DECODED.fetch_add(1, Ordering::Relaxed);
    let mut inputs = Vec::new();
    for &v in &model.graph.inputs {
        let value = &model.graph.values[v];
        let (Some(dtype), Some(shape)) = (value.info.dtype, value.info.shape.as_ref()) else {
            return;
        };
        let dims: Vec<usize> = shape.iter().map(|d| d.known().unwrap_or(1)).collect();
        if dims.iter().product::<usize>() > 1 << 20 {
            return;
        }
        let Ok(t) = Tensor::zeros(dtype, dims) else {
            return;
        };
        inputs.push((value.name.clone(), t));
    }
    let runnable = model.clone();
    let _ = infer_shapes(&mut model.graph, &ReferenceFolder);
    let _ = run_model(&runnable, inputs.clone());
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    if let Ok(mut session) = Session::new(runnable, options) {
        let _ = session.run(inputs);
    }
}

#[test]
fn mutated_models_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mut rng = XorShift(0x2545F4914F6CDD1D);
    let mut panics = Vec::new();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for stem in ["mnist_cnn", "digits_mlp"] {
        let original = std::fs::read(dir.join(format!("{stem}.onnx"))).unwrap();
        for round in 0..1500 {
            let mut bytes = original.clone();
            if round % 10 == 0 {
                bytes.truncate((rng.next() as usize) % original.len());
            } else {
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % bytes.len();
                    bytes[i] = rng.next() as u8;
                }
            }
            if catch_unwind(AssertUnwindSafe(|| exercise(&bytes))).is_err() {
                panics.push(format!("{stem} round {round}"));
            }
        }
    }
    std::panic::set_hook(default_hook);
    let decoded = DECODED.load(Ordering::Relaxed);
    assert!(decoded > 300, "only {decoded} mutated models imported");
    assert!(
        panics.is_empty(),
        "{} mutated models panicked: {:?}",
        panics.len(),
        &panics[..panics.len().min(10)]
    );
}
