//! Control flow: `If`, `Loop` and `Scan`, which own subgraphs.

use crate::ops::util::{input, optional};
use crate::{Attr, AttrError, Attributes, Dim, Graph, InferInput, NodeContext, ValueInfo};

/// Operators that own subgraphs.
#[derive(Clone, Debug)]
pub enum ControlOp {
    /// Runs `then_branch` or `else_branch` depending on a boolean scalar.
    If {
        then_branch: Box<Graph>,
        else_branch: Box<Graph>,
    },
    /// Runs `body` up to `M` times while `cond` holds, carrying values.
    Loop { body: Box<Graph> },
    /// Runs `body` once per slice of the scan inputs, carrying state (opset 9+).
    Scan(Scan),
}

/// `Scan` with its attributes (axes normalized later, against actual ranks).
#[derive(Clone, Debug)]
pub struct Scan {
    pub body: Box<Graph>,
    pub num_scan_inputs: usize,
    pub scan_input_axes: Vec<i64>,
    /// 0 forward, 1 reverse, one per scan input.
    pub scan_input_directions: Vec<i64>,
    pub scan_output_axes: Vec<i64>,
    pub scan_output_directions: Vec<i64>,
}

impl ControlOp {
    pub fn parse(ctx: &NodeContext, attrs: &mut Attributes) -> Option<Result<Self, AttrError>> {
        Some(match ctx.op_type {
            "If" => (|| {
                let then_branch = Box::new(attrs.take_graph("then_branch")?);
                let else_branch = Box::new(attrs.take_graph("else_branch")?);
                if then_branch.outputs.len() != else_branch.outputs.len() {
                    return Err(AttrError::new(
                        "else_branch",
                        "branches have different numbers of outputs",
                    ));
                }
                if then_branch.outputs.len() != ctx.num_outputs {
                    return Err(AttrError::new(
                        "then_branch",
                        "branch outputs do not match the node's outputs",
                    ));
                }
                Ok(ControlOp::If {
                    then_branch,
                    else_branch,
                })
            })(),
            "Loop" => (|| {
                let body = Box::new(attrs.take_graph("body")?);
                let carried = ctx.num_inputs.saturating_sub(2);
                if body.inputs.len() != carried + 2 {
                    return Err(AttrError::new(
                        "body",
                        "body inputs must be iteration, condition and carried values",
                    ));
                }
                if body.outputs.len() < carried + 1 {
                    return Err(AttrError::new(
                        "body",
                        "body must output the condition and carried values",
                    ));
                }
                Ok(ControlOp::Loop { body })
            })(),
            "Scan" => (|| {
                if ctx.opset < 9 {
                    return Err(AttrError::new(
                        "body",
                        "Scan before opset 9 (with sequence_lens) is not supported",
                    ));
                }
                let body = Box::new(attrs.take_graph("body")?);
                let m = attrs.int_required("num_scan_inputs")?;
                if m < 0 || m as usize > ctx.num_inputs {
                    return Err(AttrError::new(
                        "num_scan_inputs",
                        format!("{m} is out of range"),
                    ));
                }
                let m = m as usize;
                let states = ctx.num_inputs - m;
                let k = ctx
                    .num_outputs
                    .checked_sub(states)
                    .ok_or_else(|| AttrError::new("body", "fewer outputs than state variables"))?;
                if body.inputs.len() != ctx.num_inputs || body.outputs.len() != ctx.num_outputs {
                    return Err(AttrError::new(
                        "body",
                        "body inputs/outputs do not match the node's",
                    ));
                }
                let list = |name: &str, n: usize| -> Result<Vec<i64>, AttrError> {
                    let v = attrs.ints(name, &vec![0; n])?;
                    if v.len() != n {
                        return Err(AttrError::new(
                            name,
                            format!("expected {n} values, got {}", v.len()),
                        ));
                    }
                    Ok(v)
                };
                Ok(ControlOp::Scan(Scan {
                    scan_input_axes: list("scan_input_axes", m)?,
                    scan_input_directions: list("scan_input_directions", m)?,
                    scan_output_axes: list("scan_output_axes", k)?,
                    scan_output_directions: list("scan_output_directions", k)?,
                    num_scan_inputs: m,
                    body,
                }))
            })(),
            _ => return None,
        })
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            ControlOp::If { .. } => "If",
            ControlOp::Loop { .. } => "Loop",
            ControlOp::Scan(_) => "Scan",
        }
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match self {
            ControlOp::If {
                then_branch,
                else_branch,
            } => vec![
                ("then_branch".into(), Attr::Graph(then_branch.clone())),
                ("else_branch".into(), Attr::Graph(else_branch.clone())),
            ],
            ControlOp::Loop { body } => vec![("body".into(), Attr::Graph(body.clone()))],
            ControlOp::Scan(s) => vec![
                ("body".into(), Attr::Graph(s.body.clone())),
                (
                    "num_scan_inputs".into(),
                    Attr::Int(s.num_scan_inputs as i64),
                ),
                (
                    "scan_input_axes".into(),
                    Attr::Ints(s.scan_input_axes.clone()),
                ),
                (
                    "scan_input_directions".into(),
                    Attr::Ints(s.scan_input_directions.clone()),
                ),
                (
                    "scan_output_axes".into(),
                    Attr::Ints(s.scan_output_axes.clone()),
                ),
                (
                    "scan_output_directions".into(),
                    Attr::Ints(s.scan_output_directions.clone()),
                ),
            ],
        }
    }

    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            ControlOp::If {
                then_branch,
                else_branch,
            } => vec![then_branch, else_branch],
            ControlOp::Loop { body } => vec![body],
            ControlOp::Scan(s) => vec![&s.body],
        }
    }

    pub fn subgraphs_mut(&mut self) -> Vec<&mut Graph> {
        match self {
            ControlOp::If {
                then_branch,
                else_branch,
            } => vec![then_branch, else_branch],
            ControlOp::Loop { body } => vec![body],
            ControlOp::Scan(s) => vec![&mut s.body],
        }
    }

    /// Expects the subgraphs to have been inferred already.
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            ControlOp::If {
                then_branch,
                else_branch,
            } => {
                let cond = input(inputs, 0)?;
                if let Some(v) = cond.value {
                    let taken = if v
                        .to_vec::<f64>()
                        .ok()
                        .and_then(|x| x.first().copied())
                        .unwrap_or(0.0)
                        != 0.0
                    {
                        then_branch
                    } else {
                        else_branch
                    };
                    return Ok(taken
                        .outputs
                        .iter()
                        .map(|&o| taken.values[o].info.clone())
                        .collect());
                }
                for (branch, other) in [(then_branch, else_branch), (else_branch, then_branch)] {
                    if other.unreachable {
                        return Ok(branch
                            .outputs
                            .iter()
                            .map(|&o| branch.values[o].info.clone())
                            .collect());
                    }
                }
                Ok(then_branch
                    .outputs
                    .iter()
                    .zip(&else_branch.outputs)
                    .map(|(&t, &e)| join(&then_branch.values[t].info, &else_branch.values[e].info))
                    .collect())
            }
            ControlOp::Loop { body } => {
                let carried = inputs.len().saturating_sub(2);
                let mut outs = Vec::new();
                for k in 0..body.outputs.len() - 1 {
                    let body_info = &body.values[body.outputs[k + 1]].info;
                    if k < carried {
                        let start = optional(inputs, k + 2)
                            .map(|i| i.info.clone())
                            .unwrap_or_default();
                        outs.push(join(&start, body_info));
                    } else {
                        // Scan outputs gain a leading iteration axis.
                        let shape = body_info.shape.as_ref().map(|s| {
                            let mut v = vec![Dim::Unknown];
                            v.extend(s.iter().cloned());
                            v
                        });
                        outs.push(ValueInfo {
                            dtype: body_info.dtype,
                            shape,
                        });
                    }
                }
                Ok(outs)
            }
            ControlOp::Scan(s) => {
                let states = inputs.len() - s.num_scan_inputs;
                let mut outs = Vec::new();
                for k in 0..s.body.outputs.len() {
                    let info = &s.body.values[s.body.outputs[k]].info;
                    if k < states {
                        outs.push(info.clone());
                    } else {
                        // Scan outputs gain an iteration axis (at scan_output_axes).
                        outs.push(ValueInfo {
                            dtype: info.dtype,
                            shape: None,
                        });
                    }
                }
                Ok(outs)
            }
        }
    }
}

/// What two alternatives have in common.
fn join(a: &ValueInfo, b: &ValueInfo) -> ValueInfo {
    let dtype = a.dtype.or(b.dtype);
    let shape = match (&a.shape, &b.shape) {
        (Some(x), Some(y)) if x.len() == y.len() => Some(
            x.iter()
                .zip(y)
                .map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown })
                .collect(),
        ),
        _ => None,
    };
    ValueInfo { dtype, shape }
}
