//! Accuracy of the project's own models on their committed held-out splits, run by
//! the reference interpreter and by a fast session at 1 and 2 threads (no assets
//! needed). The fast runtime must give the same predictions.

use std::path::{Path, PathBuf};

use slimnet::onnx::load_model;
use slimnet::runtime::{run_model, Session, SessionOptions};
use slimnet::tensor::{npy, Tensor};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn read(path: &Path) -> Tensor {
    npy::read_npy(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap()
}

/// Held-out top-1 accuracy, by the reference interpreter (`threads == None`) or a
/// session with that many threads.
fn accuracy(stem: &str, threads: Option<usize>) -> f64 {
    let dir = models_dir();
    let model = load_model(dir.join(format!("{stem}.onnx"))).unwrap();
    let x = read(&dir.join(stem).join("heldout_x.npy"));
    let y = read(&dir.join(stem).join("heldout_y.npy"))
        .to_i64_vec()
        .unwrap();
    let input = model.graph.values[model.graph.inputs[0]].name.clone();
    let out = match threads {
        None => run_model(&model, vec![(input, x)]).unwrap(),
        Some(threads) => {
            let options = SessionOptions {
                threads,
                ..SessionOptions::default()
            };
            let mut session = Session::new(model, options).unwrap();
            session.run(vec![(input, x)]).unwrap()
        }
    };
    let logits = out[0].1.as_slice::<f32>().unwrap();
    let classes = out[0].1.shape()[1];
    let correct = logits
        .chunks(classes)
        .zip(&y)
        .filter(|(row, &label)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            best as i64 == label
        })
        .count();
    correct as f64 / y.len() as f64
}

#[test]
fn mnist_cnn_heldout_accuracy() {
    let acc = accuracy("mnist_cnn", None);
    println!("mnist_cnn held-out top-1: {acc:.4}");
    assert!(acc >= 0.96, "mnist_cnn held-out accuracy {acc}");
    for threads in [1, 2] {
        let fast = accuracy("mnist_cnn", Some(threads));
        assert_eq!(fast, acc, "mnist_cnn: fast runtime at {threads} threads");
    }
}

#[test]
fn digits_mlp_heldout_accuracy() {
    let acc = accuracy("digits_mlp", None);
    println!("digits_mlp held-out top-1: {acc:.4}");
    assert!(acc >= 0.95, "digits_mlp held-out accuracy {acc}");
    for threads in [1, 2] {
        let fast = accuracy("digits_mlp", Some(threads));
        assert_eq!(fast, acc, "digits_mlp: fast runtime at {threads} threads");
    }
}
