//! `slimnet bench`: latency and peak memory of running a model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use slimnet::ir::Dim;
use slimnet::onnx::load_model;
use slimnet::runtime::run_model;
use slimnet::tensor::{DType, Tensor, TensorData};

use crate::inputs::{load_inputs, parse_shape_arg};

#[derive(Args)]
pub struct BenchArgs {
    /// The ONNX model to time.
    pub model: PathBuf,
    /// An input as NAME=FILE.npy; inputs not given are filled with deterministic
    /// pseudo-random values of the declared dtype and shape.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Shape of a generated input, as NAME=1x3x224x224 (symbolic dims not fixed are 1).
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Deterministic values in [-1, 1) (integers 0..8, bools alternating).
fn generated(dtype: DType, shape: Vec<usize>) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state: u32 = 0x1234_5678;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let floats: Vec<f64> = (0..n)
        .map(|_| (next() as f64 / u32::MAX as f64) * 2.0 - 1.0)
        .collect();
    let t = Tensor::from_vec(shape.clone(), floats)?;
    Ok(match dtype {
        d if d.is_float() => t.cast(d)?,
        DType::Bool => Tensor::new(
            shape,
            TensorData::Bool((0..n).map(|i| i % 2 == 0).collect()),
        )?,
        DType::String => bail!("cannot generate string inputs; give them with --input"),
        d => {
            Tensor::from_vec(shape, (0..n).map(|i| (i % 8) as i64).collect::<Vec<_>>())?.cast(d)?
        }
    })
}

/// Peak resident set size of this process, in bytes (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[pos]
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let model = load_model(&args.model)?;
    let g = &model.graph;
    let mut inputs = load_inputs(g, &args.inputs)?;
    let shapes: Vec<(String, Vec<usize>)> = args
        .shapes
        .iter()
        .map(|s| parse_shape_arg(s))
        .collect::<Result<_>>()?;
    for &v in &g.inputs {
        let value = &g.values[v];
        if inputs.iter().any(|(n, _)| *n == value.name) {
            continue;
        }
        let dtype = value.info.dtype.with_context(|| {
            format!(
                "input '{}' has no declared dtype; give it with --input",
                value.name
            )
        })?;
        let shape = match shapes.iter().find(|(n, _)| *n == value.name) {
            Some((_, s)) => s.clone(),
            None => value
                .info
                .shape
                .as_ref()
                .with_context(|| {
                    format!(
                        "input '{}' has no declared shape; give --shape or --input",
                        value.name
                    )
                })?
                .iter()
                .map(|d| if let Dim::Known(k) = d { *k } else { 1 })
                .collect(),
        };
        inputs.push((value.name.clone(), generated(dtype, shape)?));
    }
    let run_once =
        || run_model(&model, inputs.clone()).with_context(|| args.model.display().to_string());
    for _ in 0..args.warmup {
        run_once()?;
    }
    let mut times_ms = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let start = Instant::now();
        run_once()?;
        times_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times_ms.sort_by(f64::total_cmp);
    let (median, p10, p90) = (
        percentile(&times_ms, 0.5),
        percentile(&times_ms, 0.1),
        percentile(&times_ms, 0.9),
    );
    let rss = peak_rss_bytes();
    if args.json {
        let out = serde_json::json!({
            "model": args.model.display().to_string(),
            "runtime": "reference",
            "threads": 1,
            "warmup": args.warmup,
            "runs": args.runs,
            "median_ms": median,
            "p10_ms": p10,
            "p90_ms": p90,
            "peak_rss_bytes": rss,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "model: {} (reference runtime, 1 thread)",
            args.model.display()
        );
        println!(
            "{} runs after {} warm-up: median {median:.3} ms, p10 {p10:.3} ms, p90 {p90:.3} ms",
            args.runs, args.warmup
        );
        if let Some(r) = rss {
            println!("peak RSS: {:.1} MiB", r as f64 / (1024.0 * 1024.0));
        }
    }
    Ok(())
}
