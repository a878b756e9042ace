//! `slimnet inspect`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use comfy_table::Table;
use slimnet::analysis::{analyse, Analysis};
use slimnet::ir::{infer_shapes, Dim, Model, ValueInfo};
use slimnet::onnx::load_model;
use slimnet::runtime::{PlanSummary, ReferenceFolder, Session, SessionOptions};
use slimnet::tensor::Tensor;

use crate::inputs::{load_inputs, parse_shape_arg};

#[derive(Args)]
pub struct InspectArgs {
    /// The ONNX model to describe.
    pub model: PathBuf,
    /// Fix an input's shape, as NAME=1x3x224x224 (NAME=scalar for rank 0). Symbolic and
    /// unknown input dimensions not fixed here are taken as 1 (batch size 1).
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Give an input's value, as NAME=FILE.npy: its shape, and its contents for shape
    /// computations that depend on it (e.g. a sample rate that selects an If branch).
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// List every node of the main graph (default: the 10 with the most MACs).
    #[arg(long)]
    pub nodes: bool,
    /// Print machine-readable JSON (always includes every node).
    #[arg(long)]
    pub json: bool,
}

struct InputRow {
    name: String,
    dtype: String,
    declared: String,
    used: String,
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let mut model = load_model(&args.model)?;
    let original = model.clone();
    let rows = bind_inputs(&mut model, &args)?;
    let plan = planned(original, &model);
    // A model whose shapes cannot be inferred for the shapes chosen is still described;
    // the reason is reported and the shapes stay as far as inference got.
    let inference_error = infer_shapes(&mut model.graph, &ReferenceFolder)
        .err()
        .map(|e| e.to_string());
    let analysis = analyse(&model);
    if args.json {
        print_json(
            &args,
            &model,
            &rows,
            &analysis,
            inference_error.as_deref(),
            &plan,
        )
    } else {
        print_text(&args, &model, &rows, &analysis);
        match &plan {
            Ok(p) => println!(
                "planned arena (fast runtime, 1 thread, activations reused by liveness): {} for {} steps ({} on reference kernels)",
                human_bytes(p.arena_bytes as u64),
                p.steps,
                p.reference_steps
            ),
            Err(e) => println!("planned arena: unavailable ({e})"),
        }
        if let Some(e) = inference_error {
            println!("shape inference stopped for the input shapes used: {e} (fix them with --shape or --input)");
        }
        Ok(())
    }
}

/// The fast runtime's plan for the bound input shapes: inputs given with `--input`
/// keep their values, the others are zeros of the bound shape.
fn planned(original: Model, bound: &Model) -> Result<PlanSummary, String> {
    let g = &bound.graph;
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|&v| {
            let value = &g.values[v];
            if let Some(c) = &value.constant {
                return Ok(c.as_ref().clone());
            }
            let dtype = value
                .info
                .dtype
                .ok_or_else(|| format!("input '{}' has no declared dtype", value.name))?;
            let shape = value
                .info
                .concrete_shape()
                .ok_or_else(|| format!("input '{}' has no concrete shape", value.name))?;
            Tensor::zeros(dtype, shape).map_err(|e| e.to_string())
        })
        .collect::<Result<_, String>>()?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    let mut session = Session::new(original, options).map_err(|e| e.to_string())?;
    session.plan_summary(&refs).map_err(|e| e.to_string())
}

/// Fixes every input's shape (declared, `--shape`, `--input`, or 1 for symbols).
fn bind_inputs(model: &mut Model, args: &InspectArgs) -> Result<Vec<InputRow>> {
    let g = &mut model.graph;
    let names: Vec<String> = g.inputs.iter().map(|&v| g.values[v].name.clone()).collect();
    let mut shapes = Vec::new();
    for s in &args.shapes {
        let (name, shape) = parse_shape_arg(s)?;
        if !names.contains(&name) {
            bail!(
                "--shape {s}: the model has no input '{name}' (its inputs: {})",
                names.join(", ")
            );
        }
        shapes.push((name, shape));
    }
    let values = load_inputs(g, &args.inputs)?;
    let mut rows = Vec::new();
    for &v in &g.inputs.clone() {
        let value = &mut g.values[v];
        let declared = value.info.shape_text();
        let given = values
            .iter()
            .find(|(n, _)| *n == value.name)
            .map(|(_, t)| t.clone());
        if let Some(t) = &given {
            value.info = ValueInfo::of_tensor(t);
        } else if let Some((_, s)) = shapes.iter().find(|(n, _)| *n == value.name) {
            if let Some(decl) = &value.info.shape {
                if decl.len() != s.len() {
                    bail!(
                        "--shape {}: the model declares rank {} ({declared})",
                        value.name,
                        decl.len()
                    );
                }
            }
            value.info.shape = Some(s.iter().map(|&d| Dim::Known(d)).collect());
        } else if let Some(decl) = &mut value.info.shape {
            for d in decl.iter_mut() {
                if !matches!(d, Dim::Known(_)) {
                    *d = Dim::Known(1);
                }
            }
        }
        rows.push(InputRow {
            name: value.name.clone(),
            dtype: value
                .info
                .dtype
                .map(|d| d.name().to_string())
                .unwrap_or_else(|| "?".into()),
            declared,
            used: value.info.shape_text(),
        });
        if let Some(t) = given {
            value.constant = Some(Arc::new(t));
        }
    }
    Ok(rows)
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.3} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.3} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.3} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn print_text(args: &InspectArgs, model: &Model, rows: &[InputRow], a: &Analysis) {
    let g = &model.graph;
    println!("model: {}", args.model.display());
    println!(
        "ir_version {}, opsets {}, producer {} {}",
        model.ir_version,
        model
            .opsets
            .iter()
            .map(|(d, v)| format!("{}:{v}", if d.is_empty() { "ai.onnx" } else { d }))
            .collect::<Vec<_>>()
            .join(" "),
        model.producer_name,
        model.producer_version
    );
    let mut t = Table::new();
    t.set_header(vec!["input", "dtype", "declared shape", "shape used"]);
    for r in rows {
        t.add_row(vec![&r.name, &r.dtype, &r.declared, &r.used]);
    }
    println!("{t}");
    let mut t = Table::new();
    t.set_header(vec!["output", "dtype", "shape"]);
    for &o in &g.outputs {
        let v = &g.values[o];
        t.add_row(vec![
            v.name.clone(),
            v.info
                .dtype
                .map(|d| d.name().to_string())
                .unwrap_or("?".into()),
            v.info.shape_text(),
        ]);
    }
    println!("{t}");
    let mut t = Table::new();
    t.set_header(vec!["op", "count"]);
    for (op, n) in &a.op_census {
        t.add_row(vec![op.clone(), n.to_string()]);
    }
    println!("{t}");
    let mut t = Table::new();
    t.set_header(vec!["parameters", "count", "bytes"]);
    for (d, b) in &a.params_by_dtype {
        t.add_row(vec![
            d.name().to_string(),
            b.count.to_string(),
            human_bytes(b.bytes as u64),
        ]);
    }
    t.add_row(vec![
        "total".to_string(),
        a.param_count().to_string(),
        human_bytes(a.param_bytes() as u64),
    ]);
    println!("{t}");
    let mut nodes: Vec<&slimnet::analysis::NodeCost> = a.nodes.iter().collect();
    if !args.nodes {
        nodes.sort_by_key(|n| std::cmp::Reverse(n.macs.unwrap_or(0)));
        nodes.truncate(10);
    }
    let mut t = Table::new();
    t.set_header(vec!["node", "op", "output shapes", "MACs"]);
    for n in nodes {
        t.add_row(vec![
            n.name.clone(),
            n.op_type.clone(),
            n.outputs.join(", "),
            n.macs.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
        ]);
    }
    println!(
        "{}",
        if args.nodes {
            "nodes:"
        } else {
            "nodes with the most MACs (--nodes lists all):"
        }
    );
    println!("{t}");
    println!(
        "total MACs: {} ({})",
        a.total_macs,
        human_count(a.total_macs)
    );
    match a.peak_activation_bytes {
        Some(p) => println!(
            "peak activation memory (graph order, freed after last use): {}",
            human_bytes(p)
        ),
        None => println!("peak activation memory: unknown (some shapes are unknown)"),
    }
    if !a.unknown_shapes.is_empty() {
        println!("values with unknown shapes: {}", a.unknown_shapes.len());
    }
}

fn print_json(
    args: &InspectArgs,
    model: &Model,
    rows: &[InputRow],
    a: &Analysis,
    inference_error: Option<&str>,
    plan: &Result<PlanSummary, String>,
) -> Result<()> {
    use serde_json::json;
    let g = &model.graph;
    let info = |i: &ValueInfo| json!({"dtype": i.dtype.map(|d| d.name()), "shape": i.shape.as_ref().map(|s| s.iter().map(|d| match d { Dim::Known(v) => json!(v), Dim::Symbol(s) => json!(s), Dim::Unknown => json!(null) }).collect::<Vec<_>>())});
    let out = json!({
        "model": args.model.display().to_string(),
        "ir_version": model.ir_version,
        "opsets": model.opsets.iter().map(|(d, v)| json!({"domain": d, "version": v})).collect::<Vec<_>>(),
        "producer": {"name": model.producer_name, "version": model.producer_version},
        "inputs": rows.iter().map(|r| json!({"name": r.name, "dtype": r.dtype, "declared_shape": r.declared, "shape": r.used})).collect::<Vec<_>>(),
        "outputs": g.outputs.iter().map(|&o| { let mut j = info(&g.values[o].info); j["name"] = json!(g.values[o].name); j }).collect::<Vec<_>>(),
        "op_census": a.op_census,
        "parameters": {
            "count": a.param_count(),
            "bytes": a.param_bytes(),
            "by_dtype": a.params_by_dtype.iter().map(|(d, b)| (d.name().to_string(), json!({"count": b.count, "bytes": b.bytes}))).collect::<serde_json::Map<_, _>>(),
        },
        "nodes": a.nodes.iter().map(|n| json!({"name": n.name, "op": n.op_type, "outputs": n.outputs, "macs": n.macs})).collect::<Vec<_>>(),
        "total_macs": a.total_macs,
        "peak_activation_bytes": a.peak_activation_bytes,
        "planned_arena_bytes": plan.as_ref().ok().map(|p| p.arena_bytes),
        "plan_steps": plan.as_ref().ok().map(|p| p.steps),
        "plan_reference_steps": plan.as_ref().ok().map(|p| p.reference_steps),
        "plan_error": plan.as_ref().err(),
        "unknown_shapes": a.unknown_shapes,
        "shape_inference_error": inference_error,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
