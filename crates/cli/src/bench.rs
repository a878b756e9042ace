//! `slimnet bench`: latency and peak memory of running a model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::Table;
use slimnet::ir::Dim;
use slimnet::onnx::load_model;
use slimnet::runtime::{check_inputs, run_model, Session, SessionOptions, StepProfile};
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
    /// Threads for intra-op parallelism (0: one per available CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Time every step of the plan and print where the time goes.
    #[arg(long)]
    pub profile: bool,
    /// Run the reference interpreter (the exact oracle, not the fast runtime).
    #[arg(long)]
    pub reference: bool,
    /// Skip graph optimizations (folding, fusion) before planning.
    #[arg(long)]
    pub no_optimize: bool,
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
    if args.reference && (args.profile || args.threads > 1) {
        bail!("--reference runs the single-threaded interpreter; --profile and --threads need the fast runtime");
    }
    let name = args.model.display().to_string();
    let mut times_ms = Vec::with_capacity(args.runs);
    let (runtime, threads, profile, planned_arena) = if args.reference {
        let run_once = || run_model(&model, inputs.clone()).with_context(|| name.clone());
        for _ in 0..args.warmup {
            run_once()?;
        }
        for _ in 0..args.runs {
            let start = Instant::now();
            run_once()?;
            times_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        ("reference", 1, Vec::new(), None)
    } else {
        let ordered: Vec<Tensor> = g
            .inputs
            .iter()
            .map(|&v| {
                let pos = inputs
                    .iter()
                    .position(|(n, _)| *n == g.values[v].name)
                    .expect("every input was loaded or generated");
                inputs[pos].1.clone()
            })
            .collect();
        let refs: Vec<&Tensor> = ordered.iter().collect();
        let mut session = Session::new(model.clone(), session_options(&args))?;
        check_inputs(&model.graph, &inputs).with_context(|| name.clone())?;
        let summary = session.plan_summary(&refs).with_context(|| name.clone())?;
        let mut outputs = Vec::new();
        for _ in 0..args.warmup {
            session
                .run_into(&refs, &mut outputs)
                .with_context(|| name.clone())?;
        }
        for _ in 0..args.runs {
            let start = Instant::now();
            session
                .run_into(&refs, &mut outputs)
                .with_context(|| name.clone())?;
            times_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let profile = if args.profile {
            // Profiled runs are separate, so timing every step does not skew the figures above.
            let mut profiled = Session::new(
                model.clone(),
                SessionOptions {
                    profile: true,
                    ..session_options(&args)
                },
            )?;
            for _ in 0..args.warmup.max(1) {
                profiled.run_into(&refs, &mut outputs)?;
            }
            profiled.reset_profile();
            for _ in 0..args.runs {
                profiled.run_into(&refs, &mut outputs)?;
            }
            profiled.profile()
        } else {
            Vec::new()
        };
        ("fast", session.threads(), profile, Some(summary))
    };
    times_ms.sort_by(f64::total_cmp);
    let (median, p10, p90) = (
        percentile(&times_ms, 0.5),
        percentile(&times_ms, 0.1),
        percentile(&times_ms, 0.9),
    );
    let rss = peak_rss_bytes();
    if args.json {
        let steps: Vec<serde_json::Value> = profile
            .iter()
            .map(|p| {
                serde_json::json!({
                    "node": p.node,
                    "op_types": p.op_types,
                    "kernel": p.kernel,
                    "mean_ms": mean_ms(p),
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": args.model.display().to_string(),
            "runtime": runtime,
            "threads": threads,
            "planned_arena_bytes": planned_arena.as_ref().map(|s| s.arena_bytes),
            "reference_steps": planned_arena.as_ref().map(|s| s.reference_steps),
            "profile": steps,
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
            "model: {} ({runtime} runtime, {threads} thread{})",
            args.model.display(),
            if threads == 1 { "" } else { "s" }
        );
        if let Some(s) = &planned_arena {
            println!(
                "plan: {} steps ({} on reference kernels) for {} nodes, arena {:.2} MiB",
                s.steps,
                s.reference_steps,
                s.nodes,
                s.arena_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        println!(
            "{} runs after {} warm-up: median {median:.3} ms, p10 {p10:.3} ms, p90 {p90:.3} ms",
            args.runs, args.warmup
        );
        if let Some(r) = rss {
            println!("peak RSS: {:.1} MiB", r as f64 / (1024.0 * 1024.0));
        }
        if !profile.is_empty() {
            print_profile(&profile);
        }
    }
    Ok(())
}

/// The session the flags ask for (profiling off; the profiled session sets it).
fn session_options(args: &BenchArgs) -> SessionOptions {
    SessionOptions {
        threads: args.threads,
        optimize: !args.no_optimize,
        profile: false,
    }
}

fn mean_ms(p: &StepProfile) -> f64 {
    if p.calls == 0 {
        0.0
    } else {
        p.total.as_secs_f64() * 1e3 / p.calls as f64
    }
}

/// Time by op type, then the slowest steps.
fn print_profile(profile: &[StepProfile]) {
    let total: f64 = profile.iter().map(mean_ms).sum();
    let mut by_kind: Vec<(String, f64, usize)> = Vec::new();
    for p in profile {
        let key = format!("{} [{}]", p.op_types, p.kernel);
        match by_kind.iter_mut().find(|(k, _, _)| *k == key) {
            Some(e) => {
                e.1 += mean_ms(p);
                e.2 += 1;
            }
            None => by_kind.push((key, mean_ms(p), 1)),
        }
    }
    by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut t = Table::new();
    t.set_header(vec!["op types [kernel]", "steps", "ms per run", "share"]);
    for (k, ms, count) in &by_kind {
        t.add_row(vec![
            k.clone(),
            count.to_string(),
            format!("{ms:.3}"),
            format!("{:.1}%", 100.0 * ms / total.max(1e-12)),
        ]);
    }
    println!("profile by op type ({total:.3} ms per run over all steps):\n{t}");
    let mut slowest: Vec<&StepProfile> = profile.iter().collect();
    slowest.sort_by(|a, b| mean_ms(b).total_cmp(&mean_ms(a)));
    let mut t = Table::new();
    t.set_header(vec!["node", "op types", "kernel", "ms per run"]);
    for p in slowest.iter().take(15) {
        t.add_row(vec![
            p.node.clone(),
            p.op_types.clone(),
            p.kernel.to_string(),
            format!("{:.3}", mean_ms(p)),
        ]);
    }
    println!("slowest steps:\n{t}");
}
