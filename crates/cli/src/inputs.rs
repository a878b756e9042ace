//! Parsing `--input NAME=FILE.npy` and `--shape NAME=1x3x224x224` arguments.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use slimnet::ir::Graph;
use slimnet::tensor::{npy, Tensor};

/// `NAME=FILE` or just `FILE` (for a model with one input).
pub fn parse_input_arg(arg: &str) -> (Option<String>, PathBuf) {
    match arg.split_once('=') {
        Some((name, file)) if !name.is_empty() => (Some(name.to_string()), PathBuf::from(file)),
        _ => (None, PathBuf::from(arg)),
    }
}

/// Reads a .npy file, naming the file in errors.
pub fn read_npy_file(path: &Path) -> Result<Tensor> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    npy::read_npy(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a readable .npy file", path.display()))
}

/// Loads every `--input` argument and names it after the model's inputs.
pub fn load_inputs(graph: &Graph, args: &[String]) -> Result<Vec<(String, Tensor)>> {
    let names: Vec<&str> = graph
        .inputs
        .iter()
        .map(|&v| graph.values[v].name.as_str())
        .collect();
    let mut out = Vec::new();
    for arg in args {
        let (name, path) = parse_input_arg(arg);
        let name = match name {
            Some(n) => n,
            None if names.len() == 1 => names[0].to_string(),
            None => bail!(
                "--input {arg}: the model has {} inputs ({}), so write NAME=FILE.npy",
                names.len(),
                names.join(", ")
            ),
        };
        if out.iter().any(|(n, _): &(String, Tensor)| *n == name) {
            bail!("--input {name} is given twice");
        }
        out.push((name, read_npy_file(&path)?));
    }
    Ok(out)
}

/// Parses `NAME=1x3x224x224` (or `NAME=scalar`).
pub fn parse_shape_arg(arg: &str) -> Result<(String, Vec<usize>)> {
    let (name, dims) = arg
        .split_once('=')
        .with_context(|| format!("--shape {arg}: expected NAME=DxDxD"))?;
    if dims == "scalar" || dims.is_empty() {
        return Ok((name.to_string(), Vec::new()));
    }
    let shape = dims
        .split(['x', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("--shape {arg}: '{d}' is not a dimension"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((name.to_string(), shape))
}
