//! The `slimnet` command-line tool.

mod bench;
mod data;
mod eval;
mod inputs;
mod inspect;
mod kernels;
mod quantize;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// slimnet makes trained neural networks light enough for edge devices and runs them there.
#[derive(Parser)]
#[command(name = "slimnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model: inputs and outputs, opset, op census, parameters and bytes by
    /// dtype, MACs per node and in total, peak activation memory.
    Inspect(inspect::InspectArgs),
    /// Run a model on .npy inputs with the reference runtime and write each output as .npy.
    Run(run::RunArgs),
    /// Time a model: warm-up, then the median, p10 and p90 latency of N runs, and peak RSS.
    Bench(bench::BenchArgs),
    /// Evaluate a model on data: top-1 accuracy with labels; cosine, SQNR, max abs
    /// error and argmax agreement against a reference model; size and median latency.
    Eval(eval::EvalArgs),
    /// Quantize a model to int8 on calibration data (QDQ ONNX), keeping the layers that
    /// hurt its outputs most in float until it meets a fidelity target.
    Quantize(quantize::QuantizeArgs),
    /// Print the CPU features found and the compute kernel picked for each slot
    /// (`SLIMNET_KERNEL_TIER=portable|avx2|avx512` forces a tier).
    Kernels(kernels::KernelsArgs),
    /// List the ONNX operators slimnet supports (default domain).
    Ops {
        /// Print JSON: supported and unsupported operator lists.
        #[arg(long)]
        json: bool,
    },
}

fn list_ops(json: bool) -> anyhow::Result<()> {
    use slimnet::ir::ops::{supported_operators, ONNX_OPERATORS};
    let opset = slimnet::onnx::MAX_OPSET;
    let supported = supported_operators(opset);
    let unsupported: Vec<&str> = ONNX_OPERATORS
        .iter()
        .copied()
        .filter(|o| !supported.contains(o))
        .collect();
    if json {
        let out = serde_json::json!({ "opset": opset, "supported": supported, "unsupported": unsupported });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "supported ({} of {} default-domain operators):",
            supported.len(),
            ONNX_OPERATORS.len()
        );
        println!("{}", supported.join(" "));
        println!("not supported:");
        println!("{}", unsupported.join(" "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::inspect(args),
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::bench(args),
        Command::Eval(args) => eval::eval(args),
        Command::Quantize(args) => quantize::quantize_command(args),
        Command::Kernels(args) => kernels::kernels(args),
        Command::Ops { json } => list_ops(json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
