//! The ONNX backend node conformance cases (generated from onnx 1.23.2 by
//! `scripts/fetch-assets`), run through the importer and the reference interpreter.
//!
//! Each case is classified as passed, failed, or unsupported (the importer rejects
//! one of its operators, dtypes or types). The test fails when a case listed in
//! `conformance/expected_passes.txt` does not pass, or when a case fails without
//! being listed, with a reason, in `conformance/known_failures.txt`: a supported
//! operator is never silently wrong.
//!
//! Environment: `SLIMNET_CONFORMANCE_FILTER=substring` runs only matching cases;
//! `SLIMNET_CONFORMANCE_VERBOSE=1` prints every failure; `SLIMNET_CONFORMANCE_WRITE=1`
//! rewrites the expected-pass list from this run.
//! Tolerance: numpy's assert_allclose with rtol 1e-3, atol 1e-7 (as ONNX's own runner).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use slimnet::ir::IrError;
use slimnet::onnx::{load_model, read_tensor_file, OnnxError};
use slimnet::runtime::run_model;

enum Outcome {
    Passed,
    Failed(String),
    Unsupported(String),
}

fn numbered_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .strip_prefix(prefix)?
                        .strip_suffix(".pb")?
                        .parse::<usize>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

fn run_case(dir: &Path) -> Outcome {
    let model = match load_model(dir.join("model.onnx")) {
        Ok(m) => m,
        Err(OnnxError::Graph {
            error: IrError::UnsupportedOp {
                op_type, domain, ..
            },
            ..
        }) => return Outcome::Unsupported(format!("operator {domain}{op_type}")),
        Err(e @ (OnnxError::Unsupported { .. } | OnnxError::Tensor { .. })) => {
            return Outcome::Unsupported(e.to_string())
        }
        // An attribute naming something slimnet does not hold (a float8 `to`, say).
        Err(OnnxError::Graph {
            error: e @ IrError::Attribute { .. },
            ..
        }) if e.to_string().contains("not supported") => {
            return Outcome::Unsupported(e.to_string())
        }
        Err(e) => return Outcome::Failed(format!("import: {e}")),
    };
    let data_sets: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for ds in data_sets {
        let mut inputs = Vec::new();
        for (k, f) in numbered_files(&ds, "input_").iter().enumerate() {
            let t = match read_tensor_file(f) {
                Ok(t) => t,
                Err(e) => return Outcome::Unsupported(format!("input data: {e}")),
            };
            let Some(&v) = model.graph.inputs.get(k) else {
                return Outcome::Failed(format!("data set has more inputs than the model ({k})"));
            };
            inputs.push((model.graph.values[v].name.clone(), t));
        }
        let mut expected = Vec::new();
        for f in numbered_files(&ds, "output_") {
            match read_tensor_file(&f) {
                Ok(t) => expected.push(t),
                Err(e) => return Outcome::Unsupported(format!("output data: {e}")),
            }
        }
        let outputs = match catch_unwind(AssertUnwindSafe(|| run_model(&model, inputs))) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Outcome::Failed(format!("run: {e}")),
            Err(_) => return Outcome::Failed("panicked".into()),
        };
        if outputs.len() != expected.len() {
            return Outcome::Failed(format!(
                "{} outputs, expected {}",
                outputs.len(),
                expected.len()
            ));
        }
        for (k, ((name, got), want)) in outputs.iter().zip(&expected).enumerate() {
            if let Err(reason) = common::compare_allclose(got, want, 1e-3, 1e-7) {
                return Outcome::Failed(format!("output {k} '{name}': {reason}"));
            }
        }
    }
    Outcome::Passed
}

fn read_list(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn onnx_node_conformance() {
    let root = common::assets_dir().join("conformance/node");
    let lists = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let expected_passes = read_list(&lists.join("expected_passes.txt"));
    let known_failures = read_list(&lists.join("known_failures.txt"));
    let filter = std::env::var("SLIMNET_CONFORMANCE_FILTER").unwrap_or_default();
    let verbose = std::env::var("SLIMNET_CONFORMANCE_VERBOSE").is_ok_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("conformance cases folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut passed, mut failed, mut unsupported) =
        (BTreeSet::new(), BTreeMap::new(), BTreeMap::new());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains(&filter) {
            continue;
        }
        match run_case(case) {
            Outcome::Passed => {
                passed.insert(name);
            }
            Outcome::Failed(r) => {
                failed.insert(name, r);
            }
            Outcome::Unsupported(r) => {
                unsupported.insert(name, r);
            }
        }
    }
    std::panic::set_hook(default_hook);
    let mut problems = Vec::new();
    for (name, reason) in &failed {
        let listed = known_failures.contains_key(name);
        if verbose || !listed {
            println!(
                "FAILED {name}: {reason}{}",
                if listed { " (known)" } else { "" }
            );
        }
        if !listed {
            problems.push(format!(
                "{name} fails and is not in known_failures.txt: {reason}"
            ));
        }
    }
    if verbose {
        for (name, reason) in &unsupported {
            println!("UNSUPPORTED {name}: {reason}");
        }
    }
    for name in expected_passes.keys() {
        if name.contains(&filter) && !passed.contains(name) {
            let why = failed
                .get(name)
                .or(unsupported.get(name))
                .cloned()
                .unwrap_or_else(|| "case missing".into());
            problems.push(format!("{name} is expected to pass but did not: {why}"));
        }
    }
    let newly: Vec<&String> = passed
        .iter()
        .filter(|n| !expected_passes.contains_key(*n))
        .collect();
    if !newly.is_empty() {
        println!("{} cases pass that are not in expected_passes.txt (SLIMNET_CONFORMANCE_WRITE=1 adds them)", newly.len());
    }
    if std::env::var("SLIMNET_CONFORMANCE_WRITE").is_ok_and(|v| v == "1") && filter.is_empty() {
        let text: String = passed.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(
            lists.join("expected_passes.txt"),
            format!("# ONNX node conformance cases that must pass\n{text}"),
        )
        .expect("write expected_passes.txt");
    }
    // Written to stderr directly so the totals show even when the test passes.
    let totals = format!(
        "conformance: {} passed, {} failed, {} unsupported (of {} cases{})\n",
        passed.len(),
        failed.len(),
        unsupported.len(),
        passed.len() + failed.len() + unsupported.len(),
        if filter.is_empty() {
            String::new()
        } else {
            format!(", filter '{filter}'")
        }
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), totals.as_bytes());
    assert!(
        problems.is_empty(),
        "{} conformance problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
