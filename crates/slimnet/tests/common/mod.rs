//! Shared helpers of the integration tests: where the fetched assets are, how to
//! run a model under ONNX Runtime, and how to compare tensors.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use slimnet::tensor::{npy, Tensor, TensorData};

/// The fetched assets folder; panics with the command to run when it is missing.
pub fn assets_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    if !dir.join(".stamps").is_dir() {
        panic!("the test assets are missing: run `scripts/fetch-assets` from the repository root first");
    }
    dir
}

pub struct Case {
    pub name: String,
    pub inputs: Vec<(String, Tensor)>,
    pub outputs: Vec<(String, Tensor)>,
}

/// Runs the model file `model` under ONNX Runtime (`scripts/ort_run.py` in the
/// assets' Python environment) on `inputs`, with `work` as scratch space, and
/// returns the outputs named in `outputs`, in that order. Panics when ONNX Runtime
/// rejects the model or an output is missing; `what` names the model in messages.
pub fn ort_run<'a>(
    model: &Path,
    inputs: &[(String, Tensor)],
    work: &Path,
    what: &str,
    outputs: impl IntoIterator<Item = &'a str>,
) -> Vec<Tensor> {
    let python = assets_dir().join("venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ort_run.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg(model);
    for (k, (name, t)) in inputs.iter().enumerate() {
        let f = work.join(format!("in_{k}.npy"));
        npy::write_npy(t, std::fs::File::create(&f).unwrap()).unwrap();
        cmd.arg("--input").arg(format!("{name}={}", f.display()));
    }
    cmd.arg("--output-dir").arg(work.join("out"));
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-assets)", python.display()));
    assert!(
        result.status.success(),
        "ONNX Runtime rejected the {what}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&result.stdout).expect("ort_run JSON");
    outputs
        .into_iter()
        .map(|name| {
            let file = listing["outputs"][name]
                .as_str()
                .unwrap_or_else(|| panic!("{what} lacks output '{name}'"));
            read_npy(Path::new(file))
        })
        .collect()
}

pub fn read_npy(path: &Path) -> Tensor {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npy::read_npy(std::io::BufReader::new(f)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The model file and its reference cases, from `assets/reference/<stem>.json`.
pub fn reference(stem: &str) -> (PathBuf, Vec<Case>) {
    let assets = assets_dir();
    let manifest_path = assets.join(format!("reference/{stem}.json"));
    let text = std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/fetch-assets)",
            manifest_path.display()
        )
    });
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    let tensors = |obj: &serde_json::Value| -> Vec<(String, Tensor)> {
        obj.as_object()
            .expect("object")
            .iter()
            .map(|(name, file)| {
                (
                    name.clone(),
                    read_npy(&assets.join(file.as_str().expect("path"))),
                )
            })
            .collect()
    };
    let cases = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            inputs: tensors(&c["inputs"]),
            outputs: tensors(&c["outputs"]),
        })
        .collect();
    (
        assets.join(manifest["model"].as_str().expect("model path")),
        cases,
    )
}

/// Largest absolute difference divided by the scale of the output: the largest
/// magnitude of `expected`, but at least `floor` (so an output that is near zero
/// everywhere, such as the text map of a photo without text, is compared at the
/// scale its values are read at rather than at the scale of rounding noise).
pub fn relative_max_error(actual: &Tensor, expected: &Tensor, floor: f64) -> f64 {
    let a = actual.to_vec::<f64>().expect("numeric");
    let e = expected.to_vec::<f64>().expect("numeric");
    let scale = e
        .iter()
        .fold(0f64, |m, x| m.max(x.abs()))
        .max(floor)
        .max(f64::MIN_POSITIVE);
    let diff = a.iter().zip(&e).fold(0f64, |m, (x, y)| {
        if x.is_nan() && y.is_nan() {
            m
        } else {
            m.max((x - y).abs())
        }
    });
    diff / scale
}

/// Compares like numpy's `assert_allclose(actual, expected, rtol, atol)`, with NaNs
/// equal; integers, bools and strings must match exactly. Returns a reason on failure.
pub fn compare_allclose(
    actual: &Tensor,
    expected: &Tensor,
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    if actual.dtype() != expected.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            actual.dtype(),
            expected.dtype()
        ));
    }
    if actual.shape() != expected.shape() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    if let (TensorData::String(a), TensorData::String(e)) = (actual.data(), expected.data()) {
        return if a == e {
            Ok(())
        } else {
            Err("strings differ".into())
        };
    }
    if !expected.dtype().is_float() {
        let a = actual.to_i64_vec().map_err(|e| e.to_string())?;
        let e = expected.to_i64_vec().map_err(|e| e.to_string())?;
        if let Some(i) = (0..a.len()).find(|&i| a[i] != e[i]) {
            return Err(format!("element {i}: {} but expected {}", a[i], e[i]));
        }
        return Ok(());
    }
    let a = actual.to_vec::<f64>().map_err(|e| e.to_string())?;
    let e = expected.to_vec::<f64>().map_err(|e| e.to_string())?;
    for i in 0..a.len() {
        let (x, y) = (a[i], e[i]);
        if x.is_nan() && y.is_nan() || x == y {
            continue;
        }
        // Written so that a NaN on one side only fails.
        let close = (x - y).abs() <= atol + rtol * y.abs();
        if !close {
            return Err(format!("element {i}: {x} but expected {y}"));
        }
    }
    Ok(())
}

/// Top-1 accuracy of `[n, classes]` logits against `labels`.
pub fn top1(logits: &Tensor, labels: &[i64]) -> f64 {
    let classes = logits.shape()[1];
    let correct = logits
        .as_slice::<f32>()
        .unwrap()
        .chunks(classes)
        .zip(labels)
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
    correct as f64 / labels.len() as f64
}
