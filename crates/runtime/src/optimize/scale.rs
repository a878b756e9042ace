//! Scale folding: `Conv`/`ConvTranspose`/`Gemm`/`MatMul` followed by a `Mul` by a
//! constant per-output-channel (or single) factor take the factor into their
//! weights and bias.

use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Op, ValueId};
use slimnet_tensor::Tensor;

use super::util::{
    add_constant, constant, f32_constant, fold_into_producer, follower, out_channel, per_axis,
    scaled, Follower, Uses,
};
use crate::RuntimeError;

/// Folds `Mul(y, c)` (either operand order) into the node producing `y`, and returns
/// how many it folded.
///
/// Conditions: `c` is a float32 constant; `y` is float32 with a known shape, read
/// only by the `Mul` and not a graph output; the `Mul`'s output has `y`'s shape;
/// `c` has rank at most `y`'s and all its dimensions are 1 except possibly the
/// output-channel axis, where it equals the channel count; and
/// - for `Conv`/`ConvTranspose` (output `[N, M, ...]`, channel axis 1): the weight
///   and any bias are constants;
/// - for `Gemm` (output `[N, M]`, channel axis 1): the weight `B` and any `C` are
///   constants and `C` broadcasts to the output;
/// - for `MatMul` (channel axis last): `B` is a 2-D constant.
///
/// The weights of output channel `m` (and its bias) are multiplied by `c[m]` in f64
/// and rounded to f32 once. New constants are added (a weight shared with another
/// node is not modified); the producer then writes the `Mul`'s output value.
pub fn fold_scale(graph: &mut Graph) -> Result<usize, RuntimeError> {
    fold_into_producer(
        graph,
        "fold_scale",
        |graph, uses, i| plan(graph, uses, i).map(|p| (p.producer, p)),
        |graph, names, producer, plan| {
            let base = graph.nodes[producer].display_name(graph);
            let w = add_constant(graph, names, &format!("{base}_scaled"), plan.weight);
            let b = plan
                .bias
                .map(|t| add_constant(graph, names, &format!("{base}_scaled_bias"), t));
            let p = &mut graph.nodes[producer];
            p.inputs[1] = Some(w);
            if let Some(b) = b {
                p.inputs[2] = Some(b);
            }
        },
    )
}

struct Plan {
    producer: usize,
    weight: Tensor,
    bias: Option<Tensor>,
}

fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<Plan> {
    let Follower {
        producer,
        constant: c,
        shape: out_shape,
    } = follower(graph, uses, i, ElementwiseOp::Mul)?;
    let p = &graph.nodes[producer];
    let rank = out_shape.len();
    let ct = constant(graph, c)?;
    let wid = (*p.inputs.get(1)?)?;
    let (wshape, w) = f32_constant(graph, wid)?;
    let bias_in = p.inputs.get(2).copied().flatten();
    match &p.op {
        Op::Nn(NnOp::Conv(_)) | Op::Nn(NnOp::ConvTranspose(_)) => {
            let m = *out_shape.get(1)?;
            let s = per_axis(ct, rank, 1, m)?;
            let channel_of = out_channel(&p.op, &wshape, m)?;
            let weight = scaled(&w, &s, channel_of);
            let bias = match bias_in {
                None => None,
                Some(b) => {
                    let (_, old) = f32_constant(graph, b)?;
                    if old.len() != m {
                        return None;
                    }
                    Some(scaled(&old, &s, |k| k))
                }
            };
            Some(Plan {
                producer,
                weight: Tensor::from_vec(wshape, weight).ok()?,
                bias: bias.and_then(|b| Tensor::from_vec(vec![m], b).ok()),
            })
        }
        Op::Nn(NnOp::Gemm(_)) => {
            if rank != 2 || wshape.len() != 2 {
                return None;
            }
            let m = out_shape[1];
            let s = per_axis(ct, rank, 1, m)?;
            let weight = scaled(&w, &s, out_channel(&p.op, &wshape, m)?);
            let bias = match bias_in {
                None => None,
                Some(b) => Some(scaled_gemm_bias(graph, b, &s, &out_shape)?),
            };
            Some(Plan {
                producer,
                weight: Tensor::from_vec(wshape, weight).ok()?,
                bias,
            })
        }
        Op::Nn(NnOp::MatMul) => {
            let m = *out_shape.last()?;
            if p.inputs.len() != 2 || wshape.len() != 2 || wshape[1] != m {
                return None;
            }
            let s = per_axis(ct, rank, rank - 1, m)?;
            let weight = scaled(&w, &s, |k| k % m);
            Some(Plan {
                producer,
                weight: Tensor::from_vec(wshape, weight).ok()?,
                bias: None,
            })
        }
        _ => None,
    }
}

/// A `Gemm`'s constant `C` times the per-column factors `s`: the result has `C`'s
/// rows and `M` columns (rank kept, at least 1), and must broadcast to the output.
fn scaled_gemm_bias(graph: &Graph, c: ValueId, s: &[f64], out: &[usize]) -> Option<Tensor> {
    let (shape, v) = f32_constant(graph, c)?;
    let m = s.len();
    let (rows, cols) = match shape.as_slice() {
        [] => (1, 1),
        [k] => (1, *k),
        [r, k] => (*r, *k),
        _ => return None,
    };
    if (rows != 1 && rows != out[0]) || (cols != 1 && cols != m) {
        return None;
    }
    let mut data = Vec::with_capacity(rows * m);
    for r in 0..rows {
        for (j, &f) in s.iter().enumerate() {
            let k = if cols == 1 { 0 } else { j };
            data.push((v[r * cols + k] * f) as f32);
        }
    }
    let new_shape = if shape.len() == 2 {
        vec![rows, m]
    } else {
        vec![m]
    };
    Tensor::from_vec(new_shape, data).ok()
}
