//! The `slimnet` command-line tool.

mod inputs;
mod inspect;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::inspect(args),
        Command::Run(args) => run::run(args),
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
