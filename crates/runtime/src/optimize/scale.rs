//! Scale folding: `Conv`/`ConvTranspose`/`Gemm`/`MatMul` followed by a `Mul` by a
//! constant per-output-channel (or single) factor take the factor into their
//! weights and bias.

use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Op, ValueId};
use slimnet_tensor::{DType, Tensor};

use super::util::{add_constant, constant, f32_constant, finish, per_axis, Names, Uses};
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
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut touched = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let Some(plan) = plan(graph, &uses, i) else {
            continue;
        };
        if touched[plan.producer] || touched[i] {
            continue;
        }
        let base = graph.nodes[plan.producer].display_name(graph);
        let w = add_constant(graph, &mut names, &format!("{base}_scaled"), plan.weight);
        let b = plan
            .bias
            .map(|t| add_constant(graph, &mut names, &format!("{base}_scaled_bias"), t));
        let mul_out = graph.nodes[i].outputs[0];
        let p = &mut graph.nodes[plan.producer];
        p.inputs[1] = Some(w);
        if let Some(b) = b {
            p.inputs[2] = Some(b);
        }
        p.outputs[0] = mul_out;
        removed[i] = true;
        touched[i] = true;
        touched[plan.producer] = true;
        count += 1;
    }
    if count > 0 {
        finish(graph, "fold_scale", &removed, Vec::new())?;
    }
    Ok(count)
}

struct Plan {
    producer: usize,
    weight: Tensor,
    bias: Option<Tensor>,
}

/// The non-constant operand and the float32 constant operand of a binary node.
pub(crate) fn split_constant(
    graph: &Graph,
    inputs: &[Option<ValueId>],
) -> Option<(ValueId, ValueId)> {
    if inputs.len() != 2 {
        return None;
    }
    let (a, b) = (inputs[0]?, inputs[1]?);
    let (y, c) = if constant(graph, b).is_some() {
        (a, b)
    } else {
        (b, a)
    };
    if constant(graph, y).is_some() || constant(graph, c)?.dtype() != DType::F32 {
        return None;
    }
    Some((y, c))
}

fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<Plan> {
    let node = &graph.nodes[i];
    if !matches!(node.op, Op::Elementwise(ElementwiseOp::Mul)) {
        return None;
    }
    let (y, c) = split_constant(graph, &node.inputs)?;
    let producer = uses.sole_producer(y)?;
    let p = &graph.nodes[producer];
    if p.outputs.len() != 1 || p.outputs[0] != Some(y) {
        return None;
    }
    let info = &graph.values[y].info;
    let out_shape = info.concrete_shape()?;
    let mul_shape = graph.values[(*node.outputs.first()?)?]
        .info
        .concrete_shape()?;
    if info.dtype != Some(DType::F32) || mul_shape != out_shape {
        return None;
    }
    let rank = out_shape.len();
    let ct = constant(graph, c)?;
    let wid = (*p.inputs.get(1)?)?;
    let (wshape, w) = f32_constant(graph, wid)?;
    let bias_in = p.inputs.get(2).copied().flatten();
    match &p.op {
        Op::Nn(NnOp::Conv(_)) | Op::Nn(NnOp::ConvTranspose(_)) => {
            let m = *out_shape.get(1)?;
            let s = per_axis(ct, rank, 1, m)?;
            let channel_of = conv_channel(&p.op, &wshape, m)?;
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
        Op::Nn(NnOp::Gemm(gemm)) => {
            if rank != 2 || wshape.len() != 2 {
                return None;
            }
            let m = out_shape[1];
            let s = per_axis(ct, rank, 1, m)?;
            let weight = if gemm.trans_b {
                (wshape[0] == m).then(|| scaled(&w, &s, |k| k / wshape[1]))?
            } else {
                (wshape[1] == m).then(|| scaled(&w, &s, |k| k % m))?
            };
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

/// `w[k] * s[channel_of(k)]`, rounded to f32 once.
fn scaled(w: &[f64], s: &[f64], channel_of: impl Fn(usize) -> usize) -> Vec<f32> {
    w.iter()
        .enumerate()
        .map(|(k, &v)| (v * s[channel_of(k)]) as f32)
        .collect()
}

/// The output channel of each element of a `Conv` weight `[M, C/group, ...]` or a
/// `ConvTranspose` weight `[C, M/group, ...]`, when the shape fits `m` channels.
fn conv_channel(op: &Op, shape: &[usize], m: usize) -> Option<Box<dyn Fn(usize) -> usize>> {
    if shape.len() < 2 || m == 0 {
        return None;
    }
    let inner: usize = shape[2..].iter().product();
    match op {
        Op::Nn(NnOp::Conv(_)) => {
            if shape[0] != m {
                return None;
            }
            let per = shape[1] * inner;
            Some(Box::new(move |k| k / per))
        }
        Op::Nn(NnOp::ConvTranspose(ct)) => {
            let g = usize::try_from(ct.group).ok()?;
            if g == 0 || !shape[0].is_multiple_of(g) || shape[1] * g != m {
                return None;
            }
            let (cin_g, m_g) = (shape[0] / g, shape[1]);
            Some(Box::new(move |k| {
                let ci = k / (m_g * inner);
                let j = (k / inner) % m_g;
                (ci / cin_g) * m_g + j
            }))
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
