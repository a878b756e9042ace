//! Post-training quantization of the project's own models, end to end: calibrate,
//! quantize, export, and check accuracy and fidelity with slimnet and ONNX Runtime.

mod common;

use std::path::{Path, PathBuf};

use slimnet::compress::quantize::Stage;
use slimnet::compress::{quantize, QuantizeOptions};
use slimnet::onnx::{load_model, save_model};
use slimnet::runtime::{Session, SessionOptions};
use slimnet::tensor::{npy, Tensor};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn read(path: &Path) -> Tensor {
    npy::read_npy(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap()
}

/// Rows `range` of a `[n, ...]` f32 tensor, one sample each (batch of 1).
fn rows(x: &Tensor, range: std::ops::Range<usize>) -> Vec<Tensor> {
    let inner: usize = x.shape()[1..].iter().product();
    let data = x.as_slice::<f32>().unwrap();
    range
        .map(|i| {
            let mut shape = x.shape().to_vec();
            shape[0] = 1;
            Tensor::from_vec(shape, data[i * inner..(i + 1) * inner].to_vec()).unwrap()
        })
        .collect()
}

fn top1(model: slimnet::ir::Model, x: &Tensor, y: &[i64]) -> f64 {
    let input = model.graph.values[model.graph.inputs[0]].name.clone();
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let out = s.run(vec![(input, x.clone())]).unwrap();
    common::top1(&out[0].1, y)
}

#[test]
fn mnist_cnn_int8_keeps_accuracy() {
    let dir = models_dir();
    let model = load_model(dir.join("mnist_cnn.onnx")).unwrap();
    let x = read(&dir.join("mnist_cnn/heldout_x.npy"));
    let y = read(&dir.join("mnist_cnn/heldout_y.npy"))
        .to_i64_vec()
        .unwrap();
    let samples: Vec<Vec<(String, Tensor)>> = rows(&x, 0..64)
        .into_iter()
        .map(|t| vec![("input".to_string(), t)])
        .collect();
    let mut stages = Vec::new();
    let q = quantize(
        &model,
        samples,
        &QuantizeOptions::default(),
        &mut |s, _, _| {
            if stages.last() != Some(&s) {
                stages.push(s)
            }
        },
    )
    .unwrap();
    let r = &q.report;
    for l in &r.layers {
        println!(
            "{} {} {:?} {:?} {:?}",
            l.node, l.op_type, l.status, l.local_sqnr_db, l.activation_range
        );
    }
    println!(
        "fidelity {:?} met {} evaluations {}",
        r.fidelity, r.met, r.evaluations
    );
    assert_eq!(stages.first(), Some(&Stage::Calibrating));
    assert!(r.met);
    assert_eq!(r.layers.len(), 3);
    let float_acc = top1(model, &x, &y);
    let int8_acc = top1(q.model.clone(), &x, &y);
    println!("top-1 float {float_acc} int8 {int8_acc}");
    assert!(
        int8_acc >= float_acc - 0.003,
        "int8 {int8_acc} vs float {float_acc}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("mnist_cnn.int8.onnx");
    save_model(&q.model, &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len() as f64;
    let float_size = std::fs::metadata(dir.join("mnist_cnn.onnx")).unwrap().len() as f64;
    println!("size {size} vs {float_size}");
}

/// Cosine similarity of two f32 tensors.
fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
}

/// The QDQ files slimnet writes load and run in ONNX Runtime, with outputs close to
/// slimnet's own run of the same file: an opset-17 model (per-channel weights with
/// DequantizeLinear's axis) and opset-11/12 models (per-channel scales as a Mul).
#[test]
fn exported_qdq_runs_in_onnx_runtime() {
    for stem in ["mnist_cnn", "ppocr_cls", "ppocr_det"] {
        let (path, cases) = common::reference(stem);
        let model = load_model(&path).unwrap();
        let samples: Vec<Vec<(String, Tensor)>> = cases.iter().map(|c| c.inputs.clone()).collect();
        let q = quantize(
            &model,
            samples,
            &QuantizeOptions::default(),
            &mut |_, _, _| {},
        )
        .unwrap();
        assert!(q.report.int8_count() > 0, "{stem}: nothing quantized");
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(format!("{stem}.int8.onnx"));
        save_model(&q.model, &file).unwrap();
        let reloaded = load_model(&file).unwrap();
        let output = reloaded.graph.values[reloaded.graph.outputs[0]]
            .name
            .clone();
        let mut session = Session::new(reloaded, SessionOptions::default()).unwrap();
        for c in &cases {
            let ours = session.run(c.inputs.clone()).unwrap().remove(0).1;
            let theirs =
                common::ort_run(&file, &c.inputs, tmp.path(), stem, [output.as_str()]).remove(0);
            let cos = cosine(&ours, &theirs);
            let (a, b) = (
                ours.as_slice::<f32>().unwrap(),
                theirs.as_slice::<f32>().unwrap(),
            );
            let mean_abs = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() as f64)
                .sum::<f64>()
                / a.len() as f64;
            println!(
                "{stem} {}: slimnet vs ONNX Runtime on the int8 file: cosine {cos:.6}, mean abs difference {mean_abs:.2e}",
                c.name
            );
            assert_eq!(ours.shape(), theirs.shape());
            // An output near zero everywhere (the text map of a photo without text) has
            // a cosine dominated by rounding; its mean difference is what matters.
            assert!(
                cos > 0.999 || mean_abs < 1e-3,
                "{stem} {}: cosine {cos}, mean abs {mean_abs}",
                c.name
            );
        }
    }
}

/// Cross-layer equalization keeps the float function and, with per-tensor weights,
/// does not lose fidelity (it evens out the per-channel ranges a single scale covers).
#[test]
fn equalization_helps_per_tensor_weights() {
    for stem in ["mnist_cnn", "ppocr_det"] {
        let (path, cases) = common::reference(stem);
        let model = load_model(&path).unwrap();
        let samples: Vec<Vec<(String, Tensor)>> = cases.iter().map(|c| c.inputs.clone()).collect();
        let mut sqnr = Vec::new();
        for equalize in [false, true] {
            let options = QuantizeOptions {
                per_channel: false,
                equalize,
                min_cosine: None,
                ..QuantizeOptions::default()
            };
            let q = quantize(&model, samples.clone(), &options, &mut |_, _, _| {}).unwrap();
            let f = q.report.fidelity_all_int8.clone().unwrap();
            println!(
                "{stem}: per-tensor weights, equalize {equalize} ({} pairs): cosine {:.5}, SQNR {:.1} dB",
                q.report.equalized_pairs, f.mean_cosine[0], f.sqnr_db[0]
            );
            if equalize {
                assert!(q.report.equalized_pairs > 0, "{stem}: no pair equalized");
            }
            sqnr.push(f.sqnr_db[0]);
        }
        assert!(
            sqnr[1] >= sqnr[0] - 0.5,
            "{stem}: equalization lost fidelity: {sqnr:?}"
        );
    }
}
