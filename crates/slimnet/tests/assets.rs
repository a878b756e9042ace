//! The real asset models (see `scripts/fetch-assets`) against ONNX Runtime:
//! the reference interpreter's outputs, shape inference, and export round trips.
//!
//! Tolerance: for every output, the largest absolute difference divided by the
//! largest magnitude of ONNX Runtime's output (at least 0.01) must stay below 1e-4.
//! The floor matters only for outputs that are near zero everywhere: ONNX Runtime's
//! approximate sigmoid returns exactly 0 far below zero, where the exact value is
//! about 1e-8.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use slimnet::ir::{infer_shapes, Model, ValueInfo};
use slimnet::onnx::{load_model, save_model};
use slimnet::runtime::{run_model, ReferenceFolder, Session, SessionOptions};
use slimnet::tensor::Tensor;

const MAX_RELATIVE_ERROR: f64 = 1e-4;
/// The smallest output scale errors are measured against.
const SCALE_FLOOR: f64 = 0.01;

/// How a check runs the model.
#[derive(Clone, Copy, Debug)]
enum Engine {
    /// The reference interpreter.
    Reference,
    /// A fast session with this many threads.
    Session(usize),
}

fn check_against_reference(stem: &str) {
    for engine in [Engine::Reference, Engine::Session(1), Engine::Session(2)] {
        check_engine_against_reference(stem, engine);
    }
}

fn check_engine_against_reference(stem: &str, engine: Engine) {
    let (path, cases) = common::reference(stem);
    let model = load_model(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut session = match engine {
        Engine::Reference => None,
        Engine::Session(threads) => Some(
            Session::new(
                model.clone(),
                SessionOptions {
                    threads,
                    ..SessionOptions::default()
                },
            )
            .unwrap(),
        ),
    };
    for case in cases {
        let outputs = match &mut session {
            None => run_model(&model, case.inputs.clone()),
            Some(s) => s.run(case.inputs.clone()),
        }
        .unwrap_or_else(|e| panic!("{stem}/{} ({engine:?}): {e}", case.name));
        let got: HashMap<String, Tensor> = outputs.into_iter().collect();
        for (name, want) in &case.outputs {
            let actual = got
                .get(name)
                .unwrap_or_else(|| panic!("{stem}/{}: no output '{name}'", case.name));
            assert_eq!(
                actual.dtype(),
                want.dtype(),
                "{stem}/{} output '{name}' dtype",
                case.name
            );
            assert_eq!(
                actual.shape(),
                want.shape(),
                "{stem}/{} output '{name}' shape",
                case.name
            );
            let err = common::relative_max_error(actual, want, SCALE_FLOOR);
            println!(
                "{stem}/{} ({engine:?}) output '{name}': max relative error {err:.3e}",
                case.name
            );
            assert!(
                err <= MAX_RELATIVE_ERROR,
                "{stem}/{} ({engine:?}) output '{name}': max relative error {err:e}",
                case.name
            );
        }
    }
}

/// Binds the first case's inputs (their shapes, and the values of small inputs such
/// as a sample rate) and checks that inference gives every value a concrete shape
/// equal to what running the model gives for its outputs.
fn check_shapes_inferred(stem: &str) {
    let (path, cases) = common::reference(stem);
    let mut model: Model = load_model(&path).unwrap();
    let case = &cases[0];
    for &v in &model.graph.inputs {
        let value = &mut model.graph.values[v];
        let (_, t) = case
            .inputs
            .iter()
            .find(|(n, _)| *n == value.name)
            .expect("input in case");
        value.info = ValueInfo::of_tensor(t);
        if t.len() <= 16 {
            value.constant = Some(Arc::new(t.clone()));
        }
    }
    infer_shapes(&mut model.graph, &ReferenceFolder).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let analysis = slimnet::analysis::analyse(&model);
    assert!(
        analysis.unknown_shapes.is_empty(),
        "{stem}: values without a concrete shape: {:?}",
        analysis.unknown_shapes
    );
    for &o in &model.graph.outputs {
        let v = &model.graph.values[o];
        let (_, want) = case
            .outputs
            .iter()
            .find(|(n, _)| *n == v.name)
            .expect("output in case");
        assert_eq!(
            v.info.concrete_shape().as_deref(),
            Some(want.shape()),
            "{stem}: inferred shape of '{}'",
            v.name
        );
    }
    assert!(analysis.peak_activation_bytes.is_some());
}

/// Exports the imported model, then has ONNX Runtime run the exported file on the
/// reference inputs: its outputs must match ONNX Runtime's on the original.
fn check_round_trip(stem: &str) {
    let (path, cases) = common::reference(stem);
    let model = load_model(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join(format!("{stem}.onnx"));
    save_model(&model, &exported).unwrap();
    let reimported = load_model(&exported).unwrap_or_else(|e| panic!("re-import: {e}"));
    assert_eq!(
        reimported.graph.node_count_deep(),
        model.graph.node_count_deep()
    );
    let case = &cases[0];
    let what = format!("exported {stem}");
    let outputs = common::ort_run(
        &exported,
        &case.inputs,
        dir.path(),
        &what,
        case.outputs.iter().map(|(n, _)| n.as_str()),
    );
    for ((name, want), got) in case.outputs.iter().zip(&outputs) {
        assert_eq!(got.shape(), want.shape());
        let err = common::relative_max_error(got, want, SCALE_FLOOR);
        assert!(
            err <= 1e-6,
            "exported {stem} output '{name}' differs under ONNX Runtime: {err:e}"
        );
    }
}

macro_rules! asset_tests {
    ($($module:ident => $stem:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn matches_onnx_runtime() {
                super::check_against_reference($stem);
            }
            #[test]
            fn every_shape_is_inferred() {
                super::check_shapes_inferred($stem);
            }
            #[test]
            fn export_round_trips_through_onnx_runtime() {
                super::check_round_trip($stem);
            }
        }
    )*};
}

asset_tests! {
    silero_vad_16k_op15 => "silero_vad_16k_op15",
    silero_vad => "silero_vad",
    melspectrogram => "melspectrogram",
    embedding_model => "embedding_model",
    hey_jarvis => "hey_jarvis_v0.1",
    ppocr_det => "ppocr_det",
    ppocr_cls => "ppocr_cls",
    ppocr_rec => "ppocr_rec",
    mnist_cnn => "mnist_cnn",
    digits_mlp => "digits_mlp",
}
