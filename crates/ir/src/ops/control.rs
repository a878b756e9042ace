//! Control flow: `If` and `Loop`, which own subgraphs.

use crate::ops::util::{input, optional};
use crate::{Attr, AttrError, Attributes, Dim, Graph, InferInput, NodeContext, ValueInfo};

/// Operators that own subgraphs.
#[derive(Clone, Debug)]
pub enum ControlOp {
    /// Runs `then_branch` or `else_branch` depending on a boolean scalar.
    If { then_branch: Box<Graph>, else_branch: Box<Graph> },
    /// Runs `body` up to `M` times while `cond` holds, carrying values.
    Loop { body: Box<Graph> },
}

impl ControlOp {
    pub fn parse(ctx: &NodeContext, attrs: &mut Attributes) -> Option<Result<Self, AttrError>> {
        Some(match ctx.op_type {
            "If" => (|| {
                let then_branch = Box::new(attrs.take_graph("then_branch")?);
                let else_branch = Box::new(attrs.take_graph("else_branch")?);
                if then_branch.outputs.len() != else_branch.outputs.len() {
                    return Err(AttrError::new("else_branch", "branches have different numbers of outputs"));
                }
                if then_branch.outputs.len() != ctx.num_outputs {
                    return Err(AttrError::new("then_branch", "branch outputs do not match the node's outputs"));
                }
                Ok(ControlOp::If { then_branch, else_branch })
            })(),
            "Loop" => (|| {
                let body = Box::new(attrs.take_graph("body")?);
                let carried = ctx.num_inputs.saturating_sub(2);
                if body.inputs.len() != carried + 2 {
                    return Err(AttrError::new("body", "body inputs must be iteration, condition and carried values"));
                }
                if body.outputs.len() < carried + 1 {
                    return Err(AttrError::new("body", "body must output the condition and carried values"));
                }
                Ok(ControlOp::Loop { body })
            })(),
            _ => return None,
        })
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            ControlOp::If { .. } => "If",
            ControlOp::Loop { .. } => "Loop",
        }
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match self {
            ControlOp::If { then_branch, else_branch } => vec![
                ("then_branch".into(), Attr::Graph(then_branch.clone())),
                ("else_branch".into(), Attr::Graph(else_branch.clone())),
            ],
            ControlOp::Loop { body } => vec![("body".into(), Attr::Graph(body.clone()))],
        }
    }

    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            ControlOp::If { then_branch, else_branch } => vec![then_branch, else_branch],
            ControlOp::Loop { body } => vec![body],
        }
    }

    pub fn subgraphs_mut(&mut self) -> Vec<&mut Graph> {
        match self {
            ControlOp::If { then_branch, else_branch } => vec![then_branch, else_branch],
            ControlOp::Loop { body } => vec![body],
        }
    }

    /// Expects the subgraphs to have been inferred already.
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            ControlOp::If { then_branch, else_branch } => {
                let cond = input(inputs, 0)?;
                if let Some(v) = cond.value {
                    let taken = if v.to_vec::<f64>().ok().and_then(|x| x.first().copied()).unwrap_or(0.0) != 0.0 {
                        then_branch
                    } else {
                        else_branch
                    };
                    return Ok(taken.outputs.iter().map(|&o| taken.values[o].info.clone()).collect());
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
                        let start = optional(inputs, k + 2).map(|i| i.info.clone()).unwrap_or_default();
                        outs.push(join(&start, body_info));
                    } else {
                        // Scan outputs gain a leading iteration axis.
                        let shape = body_info.shape.as_ref().map(|s| {
                            let mut v = vec![Dim::Unknown];
                            v.extend(s.iter().cloned());
                            v
                        });
                        outs.push(ValueInfo { dtype: body_info.dtype, shape });
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
        (Some(x), Some(y)) if x.len() == y.len() => {
            Some(x.iter().zip(y).map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown }).collect())
        }
        _ => None,
    };
    ValueInfo { dtype, shape }
}
