//! Bad input to `slimnet inspect` and `slimnet run`: each case must give one line on
//! stderr naming the file, node or field and the reason, a non-zero exit, no panic,
//! no output file, and leave the input untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use slimnet::onnx::proto::{
    tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    DATA_LOCATION_EXTERNAL,
};
use slimnet::tensor::{npy, Tensor};

fn slimnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slimnet"))
}

fn own_model(stem: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../models/{stem}.onnx"))
}

/// Runs slimnet and checks the failure contract; returns the error line.
fn expect_failure(args: &[&str], watched: &[&Path], must_mention: &[&str]) -> String {
    let before: Vec<Vec<u8>> = watched
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    let out = slimnet().args(args).output().expect("run slimnet");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure for {args:?}, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code for {args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line expected for {args:?}, got: {stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for m in must_mention {
        assert!(
            lines[0].contains(m),
            "error for {args:?} should mention '{m}': {stderr}"
        );
    }
    for (p, b) in watched.iter().zip(before) {
        assert_eq!(
            std::fs::read(p).unwrap_or_default(),
            b,
            "{} was modified",
            p.display()
        );
    }
    lines[0].to_string()
}

fn write_npy(path: &Path, t: &Tensor) {
    npy::write_npy(t, std::fs::File::create(path).unwrap()).unwrap();
}

fn tensor_type(elem: i32, dims: &[i64]) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: elem,
            shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| tensor_shape_proto::Dimension {
                        value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                        denotation: String::new(),
                    })
                    .collect(),
            }),
        })),
        denotation: String::new(),
    })
}

/// A model `y = OP(x, w)` with one initializer `w`.
fn tiny_model(op_type: &str, w: TensorProto) -> Vec<u8> {
    let graph = GraphProto {
        name: "g".into(),
        node: vec![NodeProto {
            name: "the_node".into(),
            op_type: op_type.into(),
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            ..Default::default()
        }],
        initializer: vec![w],
        input: vec![ValueInfoProto {
            name: "x".into(),
            r#type: tensor_type(1, &[2]),
            doc_string: String::new(),
        }],
        output: vec![ValueInfoProto {
            name: "y".into(),
            r#type: tensor_type(1, &[2]),
            doc_string: String::new(),
        }],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn float_initializer(dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: "w".into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: raw,
        ..Default::default()
    }
}

/// Writes `bytes` as `file_name` in a fresh folder and checks that `inspect` fails
/// on it as the contract says.
fn inspect_fails_on(file_name: &str, bytes: &[u8], must_mention: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, bytes).unwrap();
    expect_failure(&["inspect", path.to_str().unwrap()], &[&path], must_mention);
}

#[test]
fn truncated_model() {
    let bytes = std::fs::read(own_model("mnist_cnn")).unwrap();
    inspect_fails_on(
        "truncated.onnx",
        &bytes[..bytes.len() / 2],
        &["truncated.onnx", "not an ONNX model"],
    );
}

#[test]
fn random_bytes() {
    // A fixed pseudo-random sequence (xorshift), so the test is repeatable.
    let mut s: u64 = 0x9E3779B97F4A7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    inspect_fails_on("random.onnx", &bytes, &["random.onnx", "not an ONNX model"]);
    inspect_fails_on("empty.onnx", b"", &["empty.onnx", "empty"]);
}

#[test]
fn protobuf_that_is_not_a_model() {
    let tensor = float_initializer(&[2], vec![0; 8]).encode_to_vec();
    inspect_fails_on("tensor.pb", &tensor, &["tensor.pb", "not an ONNX model"]);
}

#[test]
fn unsupported_operator() {
    let model = tiny_model("FrobnicateTensor", float_initializer(&[2], vec![0; 8]));
    inspect_fails_on(
        "custom.onnx",
        &model,
        &["custom.onnx", "the_node", "FrobnicateTensor"],
    );
}

#[test]
fn tensor_claiming_a_trillion_elements() {
    let w = float_initializer(&[1_000_000, 1_000_000], vec![0; 8]);
    inspect_fails_on(
        "huge.onnx",
        &tiny_model("Add", w),
        &["huge.onnx", "'w'", "1000000000000"],
    );
}

#[test]
fn external_data_outside_the_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("model_dir");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(dir.path().join("secret.bin"), [0u8; 8]).unwrap();
    std::fs::write(inner.join("weights.bin"), [0u8; 8]).unwrap();
    for location in ["../secret.bin", "/etc/hostname", "sub/../../secret.bin"] {
        let mut w = float_initializer(&[2], Vec::new());
        w.data_location = DATA_LOCATION_EXTERNAL;
        w.external_data = vec![StringStringEntryProto {
            key: "location".into(),
            value: location.into(),
        }];
        let path = inner.join("external.onnx");
        std::fs::write(&path, tiny_model("Add", w)).unwrap();
        expect_failure(
            &["inspect", path.to_str().unwrap()],
            &[&path],
            &["external.onnx", location, "model's folder"],
        );
    }
    // The same model with its data inside the folder loads.
    let mut w = float_initializer(&[2], Vec::new());
    w.data_location = DATA_LOCATION_EXTERNAL;
    w.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "weights.bin".into(),
    }];
    let path = inner.join("good.onnx");
    std::fs::write(&path, tiny_model("Add", w)).unwrap();
    let out = slimnet()
        .args(["inspect", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = own_model("mnist_cnn");
    let model_s = model.to_str().unwrap();
    let out_dir = dir.path().join("out");
    let out_s = out_dir.to_str().unwrap();
    // Missing input.
    expect_failure(
        &["run", model_s, "--output-dir", out_s],
        &[&model],
        &["input", "missing"],
    );
    // Wrong dtype.
    let ints = dir.path().join("ints.npy");
    write_npy(
        &ints,
        &Tensor::from_vec(vec![1, 1, 28, 28], vec![0i64; 784]).unwrap(),
    );
    let arg = format!("input={}", ints.display());
    expect_failure(
        &["run", model_s, "--input", &arg, "--output-dir", out_s],
        &[&model, &ints],
        &["'input'", "dtype"],
    );
    // Shape mismatch.
    let bad = dir.path().join("bad_shape.npy");
    write_npy(
        &bad,
        &Tensor::from_vec(vec![1, 1, 27, 28], vec![0f32; 756]).unwrap(),
    );
    let arg = format!("input={}", bad.display());
    expect_failure(
        &["run", model_s, "--input", &arg, "--output-dir", out_s],
        &[&model, &bad],
        &["'input'", "shape"],
    );
    // Unknown input name, and a file that is not .npy.
    let arg = format!("image={}", bad.display());
    expect_failure(
        &["run", model_s, "--input", &arg, "--output-dir", out_s],
        &[&model],
        &["image", "no such input"],
    );
    let arg = format!("input={}", model.display());
    expect_failure(
        &["run", model_s, "--input", &arg, "--output-dir", out_s],
        &[&model],
        &["mnist_cnn.onnx", ".npy"],
    );
    assert!(
        !out_dir.exists(),
        "a failed run must not create its output folder"
    );
}

#[test]
fn run_writes_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    write_npy(
        &x,
        &Tensor::from_vec(vec![2, 64], vec![0.5f32; 128]).unwrap(),
    );
    let out_dir = dir.path().join("out");
    let out = slimnet()
        .args(["run", own_model("digits_mlp").to_str().unwrap(), "--input"])
        .arg(format!("input={}", x.display()))
        .args(["--output-dir", out_dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["outputs"][0]["name"], "logits");
    assert_eq!(listing["outputs"][0]["shape"], serde_json::json!([2, 10]));
    let logits = npy::read_npy(std::fs::File::open(out_dir.join("logits.npy")).unwrap()).unwrap();
    assert_eq!(logits.shape(), &[2, 10]);
}

#[test]
fn bench_reports_latency_and_rejects_zero_runs() {
    let model = own_model("digits_mlp");
    let out = slimnet()
        .args([
            "bench",
            model.to_str().unwrap(),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs"], 3);
    let (p10, median, p90) = (
        report["p10_ms"].as_f64().unwrap(),
        report["median_ms"].as_f64().unwrap(),
        report["p90_ms"].as_f64().unwrap(),
    );
    assert!(p10 > 0.0 && p10 <= median && median <= p90);
    expect_failure(
        &["bench", model.to_str().unwrap(), "--runs", "0"],
        &[&model],
        &["--runs"],
    );
}

#[test]
fn quantize_rejects_bad_int4_options() {
    let dir = tempfile::tempdir().unwrap();
    let model = own_model("digits_mlp");
    let calib =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/digits_mlp/heldout_x.npy");
    let out = dir.path().join("q.onnx");
    let (m, c, o) = (
        model.to_str().unwrap(),
        calib.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = ["quantize", m, "--calib", c, "-o", o];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    expect_failure(
        &with(&["--weight-bits", "4", "--block-size", "48"]),
        &[&model],
        &["--block-size 48"],
    );
    expect_failure(
        &with(&["--weight-bits", "3"]),
        &[&model],
        &["--weight-bits 3"],
    );
    assert!(!out.exists());
}
