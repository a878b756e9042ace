//! `slimnet quantize`: post-training int8 quantization on calibration data, written
//! as a standard ONNX QDQ model; or, with `--weight-bits 4`, int4 weight-only
//! quantization of MatMul/Gemm (blocked opset-21 DequantizeLinear).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use slimnet::compress::calibrate::{CalibrationMethod, QuantScheme};
use slimnet::compress::quantize::{Fidelity, LayerStatus, QuantizeReport, Stage};
use slimnet::compress::{quantize, QuantizeOptions};
use slimnet::onnx::{load_model, save_model};
use slimnet_eval::{Dataset, InputSpec};

use crate::data::DataArgs;

#[derive(Args)]
pub struct QuantizeArgs {
    /// The float ONNX model (never modified).
    pub model: PathBuf,
    /// Calibration data: a .npy or .npz file, or a folder of .npy/.npz files, images or
    /// 16 kHz mono WAV files (see `slimnet eval --help` for how each is read).
    #[arg(long, value_name = "PATH")]
    pub calib: PathBuf,
    /// Where to write the quantized model (written whole or not at all).
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,
    /// How activation ranges are chosen: mse, minmax, percentile (99.99),
    /// percentile:P, or entropy (KL).
    #[arg(long, default_value = "mse", value_parser = parse_method)]
    pub method: CalibrationMethod,
    /// One weight scale per tensor instead of one per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Symmetric int8 activations (zero point 0) instead of asymmetric uint8.
    #[arg(long)]
    pub symmetric: bool,
    /// Quantize activations at run time from each tensor's own range (no calibration
    /// of activations; the data is still used to measure fidelity).
    #[arg(long)]
    pub dynamic: bool,
    /// Leave a node (by name) or every node of an op type (e.g. Gemm) in float;
    /// repeatable.
    #[arg(long, value_name = "NAME|OP")]
    pub exclude: Vec<String>,
    /// Keep the layers that hurt most in float until every output's mean cosine
    /// similarity to the float model reaches this.
    #[arg(long, default_value_t = 0.99, value_name = "C")]
    pub min_cosine: f64,
    /// Also keep the argmax decision of outputs that hold probability distributions
    /// (Softmax outputs) on at least this fraction of rows.
    #[arg(long, default_value_t = 0.99, value_name = "A")]
    pub min_agreement: f64,
    /// Quantize every candidate layer, whatever the fidelity.
    #[arg(long)]
    pub no_search: bool,
    /// Do not correct biases for the mean error of quantized weights.
    #[arg(long)]
    pub no_bias_correction: bool,
    /// Cross-layer equalization of convolution pairs joined by Relu, LeakyRelu or
    /// MaxPool (on by default with --per-tensor, where it helps most).
    #[arg(long)]
    pub equalize: bool,
    /// Also quantize depthwise convolutions.
    #[arg(long)]
    pub quantize_depthwise: bool,
    /// Samples used to measure fidelity (all are used to calibrate).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub search_samples: usize,
    /// Weight bits: 8 (int8 weights and activations) or 4 (int4 weight-only
    /// MatMul/Gemm, activations and convolutions stay float; writes opset 21).
    #[arg(long, default_value_t = 8, value_name = "BITS")]
    pub weight_bits: u32,
    /// With --weight-bits 4: rows of K sharing one scale (16, 32, 64 or 128).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub block_size: usize,
    /// Threads for running the model during calibration (0: one per physical core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data_options: DataArgs,
}

fn parse_method(s: &str) -> Result<CalibrationMethod, String> {
    s.parse()
}

pub fn quantize_command(args: QuantizeArgs) -> Result<()> {
    let started = Instant::now();
    if args.weight_bits != 8 && args.weight_bits != 4 {
        bail!("--weight-bits {}: must be 8 or 4", args.weight_bits);
    }
    if ![16, 32, 64, 128].contains(&args.block_size) {
        bail!(
            "--block-size {}: must be 16, 32, 64 or 128",
            args.block_size
        );
    }
    let same_file = std::fs::canonicalize(&args.model)
        .ok()
        .is_some_and(|m| std::fs::canonicalize(&args.output).is_ok_and(|o| o == m));
    if same_file {
        bail!(
            "{}: the output would overwrite the input model",
            args.output.display()
        );
    }
    let model = load_model(&args.model).with_context(|| args.model.display().to_string())?;
    let inputs = InputSpec::of_model(&model);
    let options = args.data_options.options(&inputs)?;
    let data = Dataset::open(&args.calib, &inputs, &options)?;
    if data.is_empty() {
        bail!("{}: no samples", args.calib.display());
    }
    let samples = (0..data.len())
        .map(|i| data.named_sample(i))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = QuantizeOptions {
        method: args.method,
        per_channel: !args.per_tensor,
        activations: if args.symmetric {
            QuantScheme::Symmetric
        } else {
            QuantScheme::Asymmetric
        },
        dynamic: args.dynamic,
        exclude: args.exclude.clone(),
        min_cosine: (!args.no_search).then_some(args.min_cosine),
        min_agreement: Some(args.min_agreement),
        bias_correction: !args.no_bias_correction,
        equalize: args.equalize || args.per_tensor,
        quantize_depthwise: args.quantize_depthwise,
        search_samples: args.search_samples,
        threads: args.threads,
        weight_bits: args.weight_bits,
        block_size: args.block_size,
    };
    let bar = ProgressBar::new(data.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut stage = None;
    let result = quantize(&model, samples, &opts, &mut |s, done, total| {
        if stage != Some(s) {
            stage = Some(s);
            bar.reset();
            bar.set_message(match s {
                Stage::Calibrating => "calibrating",
                Stage::Measuring => "per layer",
                Stage::Searching => "searching",
            });
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let q = result?;
    save_model(&q.model, &args.output)?;
    let size_in = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let size_out = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let out = report_json(&q.report, data.describe(), size_in, size_out, seconds);
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&q.report, &data.describe(), size_in, size_out, seconds);
        println!("wrote {}", args.output.display());
    }
    Ok(())
}

fn status_text(s: &LayerStatus) -> (&'static str, String) {
    match s {
        LayerStatus::Int8 => ("int8", String::new()),
        LayerStatus::Int4 => ("int4", String::new()),
        LayerStatus::Float(reason) => ("float", reason.clone()),
    }
}

fn fidelity_text(outputs: &[String], f: &Option<Fidelity>) -> String {
    match f {
        None => "not measured".into(),
        Some(f) => outputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let agreement =
                    f.agreement[i].map_or(String::new(), |a| format!(", argmax agreement {a:.4}"));
                format!(
                    "{name}: cosine {:.5} (min {:.5}), SQNR {:.1} dB{agreement}",
                    f.mean_cosine[i], f.min_cosine[i], f.sqnr_db[i]
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn print_report(r: &QuantizeReport, data: &str, size_in: u64, size_out: u64, seconds: f64) {
    let mut table = Table::new();
    table.set_header(vec![
        "node",
        "op",
        "precision",
        "own SQNR dB",
        "activation range",
        "why",
    ]);
    for l in &r.layers {
        let (precision, why) = status_text(&l.status);
        table.add_row(vec![
            l.node.clone(),
            l.op_type.clone(),
            precision.to_string(),
            l.local_sqnr_db.map_or(String::new(), |s| format!("{s:.1}")),
            l.activation_range
                .map_or(String::new(), |(a, b)| format!("[{a:.4}, {b:.4}]")),
            why,
        ]);
    }
    println!("{table}");
    println!(
        "calibration: {data}, method {}; {} convolution pairs equalized",
        r.method, r.equalized_pairs
    );
    let quantized = r.int8_count() + r.int4_count();
    if r.int4_count() > 0 {
        println!(
            "layers: {} int4 (weight-only), {} float",
            r.int4_count(),
            r.layers.len() - quantized
        );
    } else {
        println!(
            "layers: {} int8, {} float",
            r.int8_count(),
            r.layers.len() - quantized
        );
    }
    if r.fidelity_all_int8.is_some() {
        println!(
            "all candidates int8: {}",
            fidelity_text(&r.outputs, &r.fidelity_all_int8)
        );
    }
    println!("written model: {}", fidelity_text(&r.outputs, &r.fidelity));
    if let Some(t) = r.target {
        let agreement = r
            .target_agreement
            .map_or(String::new(), |a| format!(", decision agreement >= {a}"));
        println!(
            "target mean cosine >= {t}{agreement}: {} ({} models measured on {} samples)",
            if r.met { "met" } else { "NOT met" },
            r.evaluations,
            r.search_samples
        );
    }
    println!(
        "size: {size_in} -> {size_out} bytes ({:.3}x); time {seconds:.2} s (calibration {:.2} s, search {:.2} s)",
        size_out as f64 / size_in.max(1) as f64,
        r.calibration_time.as_secs_f64(),
        r.search_time.as_secs_f64()
    );
}

fn fidelity_json(outputs: &[String], f: &Option<Fidelity>) -> serde_json::Value {
    let finite = |x: f64| if x.is_finite() { Some(x) } else { None };
    match f {
        None => serde_json::Value::Null,
        Some(f) => outputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                serde_json::json!({
                    "output": name,
                    "mean_cosine": f.mean_cosine[i],
                    "min_cosine": f.min_cosine[i],
                    "sqnr_db": finite(f.sqnr_db[i]),
                    "argmax_agreement": f.agreement[i],
                })
            })
            .collect(),
    }
}

fn report_json(
    r: &QuantizeReport,
    data: String,
    size_in: u64,
    size_out: u64,
    seconds: f64,
) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = r
        .layers
        .iter()
        .map(|l| {
            let (precision, why) = status_text(&l.status);
            serde_json::json!({
                "node": l.node,
                "op_type": l.op_type,
                "precision": precision,
                "reason": (!why.is_empty()).then_some(why),
                "own_sqnr_db": l.local_sqnr_db.filter(|s| s.is_finite()),
                "activation_range": l.activation_range.map(|(a, b)| [a, b]),
            })
        })
        .collect();
    serde_json::json!({
        "calibration": data,
        "method": r.method.to_string(),
        "samples": r.samples,
        "search_samples": r.search_samples,
        "layers": layers,
        "int8_layers": r.int8_count(),
        "int4_layers": r.int4_count(),
        "float_layers": r.layers.len() - r.int8_count() - r.int4_count(),
        "fidelity_all_int8": fidelity_json(&r.outputs, &r.fidelity_all_int8),
        "fidelity": fidelity_json(&r.outputs, &r.fidelity),
        "target_min_cosine": r.target,
        "target_min_agreement": r.target_agreement,
        "met": r.met,
        "evaluations": r.evaluations,
        "equalized_pairs": r.equalized_pairs,
        "size_in": size_in,
        "size_out": size_out,
        "seconds": seconds,
        "calibration_seconds": r.calibration_time.as_secs_f64(),
        "search_seconds": r.search_time.as_secs_f64(),
    })
}
