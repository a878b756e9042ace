//! No-op removal: nodes whose output always equals one of their inputs.

use slimnet_ir::ops::{ElementwiseOp, NnOp, ShapeOp};
use slimnet_ir::{Graph, Node, Op, ValueId};

use super::util::{constant, constant_all, finish, redirect, Uses};
use crate::RuntimeError;

/// Removes nodes of `graph` (not of its subgraphs) that pass an input through
/// unchanged, and returns how many it removed:
///
/// - `Identity`; `Dropout` (inference) whose mask output is unused; a one-input
///   `Concat`; `Cast`/`CastLike` to the input's own dtype;
/// - `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`, `Expand` whose (fully known)
///   output shape equals the input's;
/// - `Transpose` with the identity permutation; `Pad` with all pads zero;
/// - `x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x`, `x / 1` with a constant 0 or 1,
///   when the output's known shape and dtype equal `x`'s.
///
/// Readers of the output then read the input. When the output is a graph output,
/// the input's producer writes the output value instead (so the model's output
/// names stay); the node is kept when that is impossible (the input is a graph
/// input or output, or a constant). Shapes must have been inferred.
pub fn remove_noops(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut dirty = vec![false; graph.values.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let Some((x, out)) = passes_through(graph, &graph.nodes[i], &uses) else {
            continue;
        };
        if dirty[x] || dirty[out] {
            continue;
        }
        if uses.is_output[out] {
            let Some((p, k)) = uses.producer[x] else {
                continue;
            };
            if uses.is_output[x] || uses.is_input[x] || removed[p] || dirty[x] {
                continue;
            }
            graph.nodes[p].outputs[k] = Some(out);
            redirect(graph, x, out);
        } else {
            redirect(graph, out, x);
        }
        dirty[x] = true;
        dirty[out] = true;
        removed[i] = true;
        count += 1;
    }
    if count > 0 {
        finish(graph, "remove_noops", &removed, Vec::new())?;
    }
    Ok(count)
}

/// `(input, output)` when `node` copies `input` to `output` unchanged.
fn passes_through(graph: &Graph, node: &Node, uses: &Uses) -> Option<(ValueId, ValueId)> {
    let out = (*node.outputs.first()?)?;
    let extra_outputs_unused = node.outputs[1..]
        .iter()
        .flatten()
        .all(|&o| uses.count[o] == 0);
    if !extra_outputs_unused {
        return None;
    }
    let input = |k: usize| node.inputs.get(k).copied().flatten();
    let x = input(0)?;
    let info = |v: ValueId| &graph.values[v].info;
    let same_shape = |a: ValueId, b: ValueId| {
        let (sa, sb) = (info(a).concrete_shape(), info(b).concrete_shape());
        sa.is_some() && sa == sb && info(a).dtype.is_some() && info(a).dtype == info(b).dtype
    };
    let found = match &node.op {
        Op::Elementwise(e) => match e {
            ElementwiseOp::Identity => Some(x),
            ElementwiseOp::Dropout { .. } => {
                // Opset 12+ `training_mode` input: only an absent or false one is a no-op.
                match input(2) {
                    None => Some(x),
                    Some(t) if constant_all(graph, t, 0.0) => Some(x),
                    _ => None,
                }
            }
            ElementwiseOp::Cast { to, .. } => (info(x).dtype == Some(*to)).then_some(x),
            ElementwiseOp::CastLike { .. } => {
                let y = input(1)?;
                (info(x).dtype.is_some() && info(x).dtype == info(y).dtype).then_some(x)
            }
            ElementwiseOp::Add | ElementwiseOp::Sub | ElementwiseOp::Mul | ElementwiseOp::Div => {
                let b = input(1)?;
                let neutral = if matches!(e, ElementwiseOp::Add | ElementwiseOp::Sub) {
                    0.0
                } else {
                    1.0
                };
                let commutes = matches!(e, ElementwiseOp::Add | ElementwiseOp::Mul);
                let keep = if constant_all(graph, b, neutral) {
                    Some(x)
                } else if commutes && constant_all(graph, x, neutral) {
                    Some(b)
                } else {
                    None
                };
                keep.filter(|&k| same_shape(k, out))
            }
            _ => None,
        },
        Op::Shape(s) => match s {
            ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Unsqueeze { .. }
            | ShapeOp::Expand => same_shape(x, out).then_some(x),
            ShapeOp::Concat { .. } => (node.inputs.len() == 1).then_some(x),
            ShapeOp::Transpose { perm } => {
                let identity = match perm {
                    Some(p) => p.iter().enumerate().all(|(i, &a)| a == i as i64),
                    None => info(x).rank().is_some_and(|r| r <= 1),
                };
                identity.then_some(x)
            }
            _ => None,
        },
        Op::Nn(NnOp::Pad(pad)) => {
            let zero = match &pad.pads {
                Some(p) => p.iter().all(|&v| v == 0),
                None => input(1).is_some_and(|p| {
                    constant(graph, p)
                        .and_then(|t| t.to_i64_vec().ok())
                        .is_some_and(|v| v.iter().all(|&v| v == 0))
                }),
            };
            (zero && same_shape(x, out)).then_some(x)
        }
        _ => None,
    };
    found.map(|k| (k, out))
}
