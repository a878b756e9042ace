//! Affine folding into the next convolution: `Conv(x * s + b)` with constant
//! per-input-channel `s` and `b` becomes one `Conv` of `x` with scaled weights and
//! a shifted bias.

use slimnet_ir::ops::nn::AutoPad;
use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Op, ValueId};
use slimnet_tensor::{DType, Tensor};

use super::util::{
    add_constant, constant, f32_constant, fold_nodes, per_axis, split_constant, Fold, Uses,
};
use crate::RuntimeError;

/// Folds `Mul(x, s)`, `Add(x, b)` or `Add(Mul(x, s), b)` (operands in either order)
/// into the `Conv` reading their result, and returns how many convolutions took one.
///
/// Conditions: `s` and `b` are float32 constants that vary along the channel axis
/// only (see the conv input `[N, C, ...]`), or hold one element; each folded node's
/// output has a known shape equal to `x`'s, is read only by the next node of the
/// chain and is not a graph output; `x` is float32 and not a constant; the `Conv`'s
/// weight and bias (if any) are float32 constants. When `b` is present the `Conv`
/// must not pad (`pads` all zero, or `auto_pad` `VALID`): padding would read zeros
/// where the original read `b`. A lone `Mul` folds with any padding.
///
/// With `c(m, k)` the input channel weight element `k` of output channel `m` reads,
/// the new weight is `W * s[c]` and the new bias `bias[m] + sum_k W[k] * b[c]`,
/// computed in f64 and rounded to f32 once. New constants are added (a shared
/// weight is not modified); the `Conv` then reads `x`.
pub fn fold_affine_into_conv(graph: &mut Graph) -> Result<usize, RuntimeError> {
    fold_nodes(
        graph,
        "fold_affine_into_conv",
        plan,
        |graph, names, i, _, plan| {
            let base = graph.nodes[i].display_name(graph);
            let w = add_constant(graph, names, &format!("{base}_affine_weight"), plan.weight);
            let b = add_constant(graph, names, &format!("{base}_affine_bias"), plan.bias);
            let conv = &mut graph.nodes[i];
            conv.inputs.resize(3, None);
            conv.inputs[0] = Some(plan.source);
            conv.inputs[1] = Some(w);
            conv.inputs[2] = Some(b);
        },
    )
}

struct Plan {
    /// The value the `Conv` reads afterwards.
    source: ValueId,
    weight: Tensor,
    bias: Tensor,
}

/// The producer of `v` when it is a `Mul` or `Add` (per `want`) of a constant, `v`
/// is read once, and the other operand has `v`'s shape: (node, operand, constant).
fn affine_step(
    graph: &Graph,
    uses: &Uses,
    v: ValueId,
    want: ElementwiseOp,
) -> Option<(usize, ValueId, ValueId)> {
    let n = uses.sole_producer(v)?;
    let node = &graph.nodes[n];
    let Op::Elementwise(op) = &node.op else {
        return None;
    };
    if *op != want || node.outputs.len() != 1 {
        return None;
    }
    let (x, c) = split_constant(graph, &node.inputs)?;
    let shape = graph.values[v].info.concrete_shape()?;
    let xi = &graph.values[x].info;
    if xi.concrete_shape()? != shape || xi.dtype != Some(DType::F32) {
        return None;
    }
    Some((n, x, c))
}

/// The fold at `Conv` node `i`: it is kept, the `Mul`/`Add` nodes are removed.
fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<Fold<Plan>> {
    let node = &graph.nodes[i];
    let Op::Nn(NnOp::Conv(conv)) = &node.op else {
        return None;
    };
    let input = (*node.inputs.first()?)?;
    let mut folded = Vec::new();
    let mut source = input;
    let mut shift = None;
    let mut scale = None;
    if let Some((n, x, c)) = affine_step(graph, uses, source, ElementwiseOp::Add) {
        folded.push(n);
        source = x;
        shift = Some(c);
    }
    if let Some((n, x, c)) = affine_step(graph, uses, source, ElementwiseOp::Mul) {
        folded.push(n);
        source = x;
        scale = Some(c);
    }
    if folded.is_empty() {
        return None;
    }
    let shape = graph.values[input].info.concrete_shape()?;
    let channels = *shape.get(1)?;
    let rank = shape.len();
    let s = match scale {
        Some(c) => per_axis(constant(graph, c)?, rank, 1, channels)?,
        None => vec![1.0; channels],
    };
    let b = match shift {
        Some(c) => {
            let unpadded = match conv.window.auto_pad {
                AutoPad::Valid => true,
                AutoPad::NotSet => conv.window.pads.iter().all(|&p| p == 0),
                AutoPad::SameUpper | AutoPad::SameLower => false,
            };
            if !unpadded {
                return None;
            }
            per_axis(constant(graph, c)?, rank, 1, channels)?
        }
        None => vec![0.0; channels],
    };
    let (wshape, w) = f32_constant(graph, (*node.inputs.get(1)?)?)?;
    let m = *wshape.first()?;
    let group = usize::try_from(conv.group).ok()?;
    let cg = *wshape.get(1)?;
    if group == 0 || cg * group != channels || !m.is_multiple_of(group) || m == 0 {
        return None;
    }
    let mut bias = match node.inputs.get(2).copied().flatten() {
        Some(v) => {
            let (_, old) = f32_constant(graph, v)?;
            (old.len() == m).then_some(old)?
        }
        None => vec![0.0; m],
    };
    let inner: usize = wshape[2..].iter().product();
    let m_g = m / group;
    let mut weight = Vec::with_capacity(w.len());
    for (k, &v) in w.iter().enumerate() {
        let out = k / (cg * inner);
        let c = (out / m_g) * cg + (k / inner) % cg;
        weight.push((v * s[c]) as f32);
        bias[out] += v * b[c];
    }
    let bias: Vec<f32> = bias.into_iter().map(|v| v as f32).collect();
    Some(Fold {
        kept: i,
        removed: folded,
        plan: Plan {
            source,
            weight: Tensor::from_vec(wshape, weight).ok()?,
            bias: Tensor::from_vec(vec![m], bias).ok()?,
        },
    })
}
