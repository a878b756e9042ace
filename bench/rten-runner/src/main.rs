//! Times one ONNX model on rten, the way `slimnet bench --json` does, so that
//! bench/compare can put the two side by side.
//!
//! Usage: rten-runner MODEL.onnx --input NAME=FILE.npy ... [--runs N] [--warmup W]
//!        [--threads T] [--json]
//!
//! Prints one JSON object: the timings (median_ms, p10_ms, p90_ms) and the peak
//! resident set size, or `{"error": "..."}` with exit status 2 when rten cannot
//! load or run the model.

mod npy;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rten::{ModelOptions, RunOptions, ThreadPool, Value, ValueOrView};

struct Args {
    model: String,
    inputs: Vec<(String, String)>,
    runs: usize,
    warmup: usize,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args { model: String::new(), inputs: vec![], runs: 20, warmup: 3, threads: 1 };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--input" | "-i" => {
                let v = value("--input")?;
                let (n, p) = v.split_once('=').ok_or(format!("--input {v}: expected NAME=FILE"))?;
                args.inputs.push((n.to_string(), p.to_string()));
            }
            "--runs" => args.runs = value("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--warmup" => args.warmup = value("--warmup")?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--threads" => {
                args.threads = value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--json" => {}
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => args.model = s.to_string(),
        }
    }
    if args.model.is_empty() || args.runs == 0 || args.threads == 0 {
        return Err("usage: rten-runner MODEL --input NAME=FILE.npy [--runs N>0] [--warmup W] [--threads T>0]".into());
    }
    Ok(args)
}

/// Peak resident set size of this process, in bytes (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn fail(msg: String) -> ExitCode {
    println!("{{\"error\": {}}}", json_str(&msg));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut opts = ModelOptions::with_all_ops();
    opts.prepack_weights(true);
    let model = match opts.load_file(&args.model) {
        Ok(m) => m,
        Err(e) => return fail(format!("fails to load: {e}")),
    };
    let mut feeds = Vec::new();
    for (name, path) in &args.inputs {
        let Some(id) = model.find_node(name) else {
            return fail(format!("model has no input '{name}'"));
        };
        let value: Value = match npy::read(path) {
            Ok(v) => v,
            Err(e) => return fail(format!("{path}: {e}")),
        };
        feeds.push((id, value));
    }
    let outputs = model.output_ids().to_vec();
    let pool = Arc::new(ThreadPool::with_num_threads(args.threads));
    let mut run_opts = RunOptions::default();
    run_opts.thread_pool = Some(pool);
    let run_once = || {
        let inputs: Vec<(_, ValueOrView)> =
            feeds.iter().map(|(id, v)| (*id, ValueOrView::from(v))).collect();
        model.run(inputs, &outputs, Some(run_opts.clone()))
    };
    for _ in 0..args.warmup {
        if let Err(e) = run_once() {
            return fail(format!("fails to run: {e}"));
        }
    }
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t = Instant::now();
        if let Err(e) = run_once() {
            return fail(format!("fails to run: {e}"));
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let rss = peak_rss_bytes().map_or("null".to_string(), |r| r.to_string());
    println!(
        "{{\"model\": {}, \"runtime\": \"rten 0.27.0\", \"threads\": {}, \"warmup\": {}, \"runs\": {}, \
         \"median_ms\": {}, \"p10_ms\": {}, \"p90_ms\": {}, \"peak_rss_bytes\": {}}}",
        json_str(&args.model),
        args.threads,
        args.warmup,
        args.runs,
        percentile(&times, 0.5),
        percentile(&times, 0.1),
        percentile(&times, 0.9),
        rss
    );
    ExitCode::SUCCESS
}
