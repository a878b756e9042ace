//! `slimnet run`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::Table;
use slimnet::onnx::load_model;
use slimnet::runtime::{run_model, Session, SessionOptions};
use slimnet::tensor::{npy, Tensor};

use crate::inputs::load_inputs;

#[derive(Args)]
pub struct RunArgs {
    /// The ONNX model to run.
    pub model: PathBuf,
    /// An input as NAME=FILE.npy (repeat for each input; FILE.npy alone for a model
    /// with one input). Dtypes and shapes must match the model's declared inputs.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Folder for the outputs, one NAME.npy per output (characters other than
    /// letters, digits, '-', '_' and '.' become '_'). Created if missing.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "outputs")]
    pub output_dir: PathBuf,
    /// Print a JSON description of the outputs (name, file, dtype, shape) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Threads for intra-op parallelism (0: one per available CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run the reference interpreter (the exact oracle) instead of the fast runtime.
    #[arg(long)]
    pub reference: bool,
}

/// File name for an output: its name with unsafe characters replaced.
pub fn output_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!("{}.npy", if safe.is_empty() { "output" } else { safe })
}

pub fn run(args: RunArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let inputs = load_inputs(&model.graph, &args.inputs)?;
    let outputs = if args.reference {
        run_model(&model, inputs)
    } else {
        let options = SessionOptions {
            threads: args.threads,
            ..SessionOptions::default()
        };
        Session::new(model, options).and_then(|mut s| s.run(inputs))
    }
    .with_context(|| args.model.display().to_string())?;
    // Serialize everything before touching the output folder, so a failure leaves nothing behind.
    let mut files: Vec<(String, String, Vec<u8>, &Tensor)> = Vec::new();
    for (name, t) in &outputs {
        let mut bytes = Vec::new();
        npy::write_npy(t, &mut bytes).with_context(|| format!("output '{name}'"))?;
        let mut file = output_file_name(name);
        let mut k = 1;
        while files.iter().any(|(_, f, _, _)| *f == file) {
            file = format!(
                "{}_{k}.npy",
                output_file_name(name).trim_end_matches(".npy")
            );
            k += 1;
        }
        files.push((name.clone(), file, bytes, t));
    }
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("{}", args.output_dir.display()))?;
    let mut written = Vec::new();
    for (name, file, bytes, t) in &files {
        let path = args.output_dir.join(file);
        write_atomically(&path, bytes).with_context(|| format!("{}", path.display()))?;
        written.push((name, path, *t));
    }
    if args.json {
        let list: Vec<serde_json::Value> = written
            .iter()
            .map(|(name, path, t)| {
                serde_json::json!({
                    "name": name,
                    "file": path.display().to_string(),
                    "dtype": t.dtype().name(),
                    "shape": t.shape(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "outputs": list }))?
        );
    } else {
        let mut table = Table::new();
        table.set_header(vec!["output", "dtype", "shape", "min", "max", "file"]);
        for (name, path, t) in &written {
            let (lo, hi) = t
                .to_vec::<f64>()
                .ok()
                .map(|v| {
                    v.iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        })
                })
                .map(|(a, b)| (format!("{a:.6}"), format!("{b:.6}")))
                .unwrap_or_default();
            table.add_row(vec![
                name.to_string(),
                t.dtype().name().to_string(),
                format!("{:?}", t.shape()),
                lo,
                hi,
                path.display().to_string(),
            ]);
        }
        println!("{table}");
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("npy.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
