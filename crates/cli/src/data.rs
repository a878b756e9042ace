//! Options for reading data (shared by `eval` and `quantize`).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use slimnet::tensor::Tensor;
use slimnet_eval::{parse_set_value, read_npy_file, DataOptions, InputSpec, Preprocess};

/// How images and WAV files become model inputs, and fixed values for other inputs.
#[derive(Args)]
pub struct DataArgs {
    /// Image preprocessing, as `resize=224x224,crop=224,scale=1/255,mean=0.485:0.456:0.406,
    /// std=0.229:0.224:0.225,order=rgb,layout=nchw,grayscale=false` or a .toml file with
    /// those keys.
    #[arg(long, value_name = "SPEC|FILE.toml")]
    pub preprocess: Option<String>,
    /// WAV frame length in samples (default: the audio input's last dim, when fixed).
    #[arg(long, value_name = "N")]
    pub frame: Option<usize>,
    /// WAV hop in samples (default: the frame length).
    #[arg(long, value_name = "N")]
    pub hop: Option<usize>,
    /// A fixed value for an input the data does not give, as NAME=NUMBER (fills the
    /// input's shape), NAME=N1,N2,... or NAME=FILE.npy; `sr=RATE` also sets the WAV rate.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Use at most N samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl DataArgs {
    /// The reader options for a model with these inputs.
    pub fn options(&self, inputs: &[InputSpec]) -> Result<DataOptions> {
        Ok(DataOptions {
            preprocess: self
                .preprocess
                .as_deref()
                .map(Preprocess::from_arg)
                .transpose()?,
            frame: self.frame,
            hop: self.hop,
            set: self
                .set
                .iter()
                .map(|s| parse_set(s, inputs))
                .collect::<Result<_>>()?,
            limit: self.limit,
        })
    }
}

/// Parses `--set NAME=VALUE` against the model's inputs.
fn parse_set(arg: &str, inputs: &[InputSpec]) -> Result<(String, Tensor)> {
    let (name, value) = arg
        .split_once('=')
        .with_context(|| format!("--set {arg}: expected NAME=VALUE"))?;
    let spec = inputs.iter().find(|s| s.name == name).with_context(|| {
        let names: Vec<&str> = inputs.iter().map(|s| s.name.as_str()).collect();
        format!(
            "--set {arg}: the model has no input '{name}' (its inputs: {})",
            names.join(", ")
        )
    })?;
    let t = if value.ends_with(".npy") {
        read_npy_file(Path::new(value))?
    } else {
        parse_set_value(spec, value)?
    };
    Ok((name.to_string(), t))
}
