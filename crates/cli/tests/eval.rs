//! `slimnet eval` on the project's own model and its held-out data (committed), on
//! MNIST digits from the assets written out as class folders of PNG files, on the
//! silero VAD model with the speech assets, and on bad data.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use slimnet::tensor::{npy, Tensor};
use slimnet_eval::write_npz_file;

fn slimnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slimnet"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assets_dir() -> PathBuf {
    let dir = root().join("assets");
    if !dir.join(".stamps").is_dir() {
        panic!("the test assets are missing: run `scripts/fetch-assets` from the repository root first");
    }
    dir
}

fn mnist_cnn() -> PathBuf {
    root().join("models/mnist_cnn.onnx")
}

fn read_npy(path: &Path) -> Tensor {
    npy::read_npy(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap()
}

/// Runs `slimnet eval ARGS --json` and returns the parsed report.
fn eval_json(args: &[&str]) -> serde_json::Value {
    let out = slimnet()
        .arg("eval")
        .args(args)
        .arg("--json")
        .output()
        .expect("run slimnet");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Runs `slimnet eval ARGS`, which must fail with one line naming each of `mention`.
fn eval_fails(args: &[&str], mention: &[&str]) {
    let out = slimnet()
        .arg("eval")
        .args(args)
        .output()
        .expect("run slimnet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for m in mention {
        assert!(
            lines[0].contains(m),
            "{args:?} should mention '{m}': {stderr}"
        );
    }
}

/// The first `n` held-out digits and labels as an npz in `dir`.
fn heldout_npz(dir: &Path, n: usize) -> PathBuf {
    let held = root().join("models/mnist_cnn");
    let x = read_npy(&held.join("heldout_x.npy"));
    let y = read_npy(&held.join("heldout_y.npy"));
    let x = Tensor::from_vec(
        vec![n, 1, 28, 28],
        x.as_slice::<f32>().unwrap()[..n * 784].to_vec(),
    )
    .unwrap();
    let y = Tensor::from_vec(vec![n], y.to_i64_vec().unwrap()[..n].to_vec()).unwrap();
    let path = dir.join("heldout.npz");
    write_npz_file(&path, &[("input".into(), x), ("labels".into(), y)]).unwrap();
    path
}

#[test]
fn mnist_cnn_against_itself_on_an_npz() {
    let dir = tempfile::tempdir().unwrap();
    let data = heldout_npz(dir.path(), 300);
    let model = mnist_cnn();
    let m = model.to_str().unwrap();
    let report = eval_json(&[
        m,
        "--data",
        data.to_str().unwrap(),
        "--reference",
        m,
        "--threads",
        "1",
    ]);
    assert_eq!(report["samples"], 300);
    let top1 = report["model"]["top1"].as_f64().unwrap();
    assert!(top1 >= 0.95, "top-1 {top1}");
    assert_eq!(report["reference"]["top1"].as_f64().unwrap(), top1);
    assert_eq!(
        report["model"]["bytes"],
        std::fs::metadata(&model).unwrap().len()
    );
    assert!(report["model"]["median_latency_ms"].as_f64().unwrap() > 0.0);
    let out = &report["outputs"][0];
    assert_eq!(out["name"], "logits");
    assert_eq!(out["cosine_mean"].as_f64().unwrap(), 1.0);
    assert_eq!(out["cosine_min"].as_f64().unwrap(), 1.0);
    assert_eq!(out["argmax_agreement"].as_f64().unwrap(), 1.0);
    assert_eq!(out["max_abs_error"].as_f64().unwrap(), 0.0);
    assert!(out["sqnr_db"].is_null(), "identical outputs: infinite SQNR");

    // The committed .npy files directly, with --labels and --limit, as a table.
    let held = root().join("models/mnist_cnn");
    let out = slimnet()
        .args(["eval", m, "--data"])
        .arg(held.join("heldout_x.npy"))
        .arg("--labels")
        .arg(held.join("heldout_y.npy"))
        .args(["--limit", "100"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("top-1") && stdout.contains("/100)"),
        "{stdout}"
    );
}

#[test]
fn mnist_cnn_on_class_folders_of_pngs() {
    let csv = assets_dir().join("data/mnist_5k.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&csv).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut written = 0;
    // Every row: 784 pixels, then the label; a header row, if any, does not parse.
    for line in text.lines().rev() {
        let v: Vec<u8> = match line.split(',').map(|s| s.trim().parse::<u8>()).collect() {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v.len() != 785 {
            continue;
        }
        let class = dir.path().join(v[784].to_string());
        std::fs::create_dir_all(&class).unwrap();
        image::GrayImage::from_raw(28, 28, v[..784].to_vec())
            .unwrap()
            .save(class.join(format!("{written:04}.png")))
            .unwrap();
        written += 1;
        if written == 200 {
            break;
        }
    }
    assert_eq!(written, 200);
    let model = mnist_cnn();
    let report = eval_json(&[
        model.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
        "--preprocess",
        "scale=1/255",
    ]);
    assert_eq!(report["samples"], 200);
    let top1 = report["model"]["top1"].as_f64().unwrap();
    assert!(top1 >= 0.9, "top-1 on PNG digits {top1}");
}

#[test]
fn silero_on_speech() {
    let assets = assets_dir();
    let model = assets.join("models/silero_vad.onnx");
    let speech = assets.join("data/speech");
    let (m, d) = (model.to_str().unwrap(), speech.to_str().unwrap());
    eval_fails(&[m, "--data", d, "--frame", "512"], &["'sr'", "--set sr="]);
    let report = eval_json(&[
        m,
        "--data",
        d,
        "--frame",
        "512",
        "--set",
        "sr=16000",
        "--limit",
        "20",
        "--reference",
        m,
    ]);
    assert_eq!(report["samples"], 20);
    assert_eq!(report["outputs"][0]["cosine_min"].as_f64().unwrap(), 1.0);
}

#[test]
fn bad_data_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = mnist_cnn();
    let m = model.to_str().unwrap();
    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"not an array").unwrap();
    eval_fails(&[m, "--data", garbage.to_str().unwrap()], &["garbage.npy"]);

    let wrong_shape = dir.path().join("wrong.npy");
    npy::write_npy(
        &Tensor::from_vec(vec![2, 1, 27, 28], vec![0f32; 2 * 27 * 28]).unwrap(),
        std::fs::File::create(&wrong_shape).unwrap(),
    )
    .unwrap();
    eval_fails(
        &[m, "--data", wrong_shape.to_str().unwrap()],
        &["wrong.npy", "'input'", "27"],
    );

    let npz = dir.path().join("keys.npz");
    write_npz_file(
        &npz,
        &[(
            "pixels".into(),
            Tensor::from_vec(vec![1, 784], vec![0f32; 784]).unwrap(),
        )],
    )
    .unwrap();
    eval_fails(
        &[m, "--data", npz.to_str().unwrap()],
        &["keys.npz", "'pixels'"],
    );

    let data = heldout_npz(dir.path(), 5);
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "1\n2\n").unwrap();
    eval_fails(
        &[
            m,
            "--data",
            data.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ],
        &["labels.txt", "2 labels for 5 samples"],
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    eval_fails(&[m, "--data", empty.to_str().unwrap()], &["empty"]);
    eval_fails(
        &[m, "--data", "/nonexistent/data.npy"],
        &["/nonexistent/data.npy"],
    );
    eval_fails(
        &[m, "--data", data.to_str().unwrap(), "--set", "nope=1"],
        &["'nope'"],
    );
    eval_fails(
        &[
            m,
            "--data",
            data.to_str().unwrap(),
            "--preprocess",
            "size=3",
        ],
        &["preprocess", "size"],
    );
}
