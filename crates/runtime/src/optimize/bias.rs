//! Bias folding: `Conv`/`ConvTranspose`/`Gemm` followed by an `Add` of a constant
//! per-channel bias take the bias in; `MatMul` of 2-D operands followed by such an
//! `Add` becomes a `Gemm`.

use slimnet_ir::ops::nn::Gemm;
use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Op};
use slimnet_tensor::{DType, Tensor};

use super::util::{add_constant, constant, finish, Names, Uses};
use crate::reference::run_op;
use crate::RuntimeError;

/// Folds `Add(y, c)` (either operand order) into the node producing `y`, and returns
/// how many it folded.
///
/// Conditions: `c` is a float32 constant; `y` is read only by the `Add` and is not a
/// graph output; and
/// - for `Conv`/`ConvTranspose` (output `[N, M, ...]`): `c` has rank at most the
///   output's and broadcasts along axis 1 only (`[M]` at rank 2, `[M, 1, 1]`,
///   `[1, M, 1, 1]`, or a single element); an existing constant bias is summed with it;
/// - for `Gemm` (output `[N, M]`): `c` has rank at most 2 and broadcasts to the
///   output; an existing constant `C` becomes `beta * C + c` with `beta = 1`;
/// - for `MatMul` whose operands have known rank 2: it becomes `Gemm(A, B, c)`.
///
/// The producer then writes the `Add`'s output value.
pub fn fold_bias(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut touched = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let Some((producer, bias)) = plan(graph, &uses, i) else {
            continue;
        };
        if touched[producer] || touched[i] {
            continue;
        }
        let base = graph.nodes[producer].display_name(graph);
        let b = add_constant(graph, &mut names, &format!("{base}_bias"), bias);
        let add_out = graph.nodes[i].outputs[0];
        let p = &mut graph.nodes[producer];
        match &mut p.op {
            Op::Nn(NnOp::Gemm(g)) => g.beta = 1.0,
            op @ Op::Nn(NnOp::MatMul) => {
                *op = Op::Nn(NnOp::Gemm(Gemm {
                    alpha: 1.0,
                    beta: 1.0,
                    trans_a: false,
                    trans_b: false,
                }))
            }
            _ => {}
        }
        p.inputs.resize(3, None);
        p.inputs[2] = Some(b);
        p.outputs[0] = add_out;
        removed[i] = true;
        touched[i] = true;
        touched[producer] = true;
        count += 1;
    }
    if count > 0 {
        finish(graph, "fold_bias", &removed, Vec::new())?;
    }
    Ok(count)
}

fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<(usize, Tensor)> {
    let node = &graph.nodes[i];
    if !matches!(node.op, Op::Elementwise(ElementwiseOp::Add)) || node.inputs.len() != 2 {
        return None;
    }
    let (a, b) = ((node.inputs[0])?, (node.inputs[1])?);
    let (y, c) = if constant(graph, b).is_some() {
        (a, b)
    } else {
        (b, a)
    };
    let ct = constant(graph, c)?;
    if ct.dtype() != DType::F32 || constant(graph, y).is_some() {
        return None;
    }
    let producer = uses.sole_producer(y)?;
    let p = &graph.nodes[producer];
    if p.outputs.len() != 1 || p.outputs[0] != Some(y) {
        return None;
    }
    let out_shape = graph.values[y].info.concrete_shape()?;
    if graph.values[y].info.dtype != Some(DType::F32) {
        return None;
    }
    let add_shape = graph.values[(*node.outputs.first()?)?]
        .info
        .concrete_shape()?;
    if add_shape != out_shape || ct.rank() > out_shape.len() {
        return None;
    }
    let existing = p.inputs.get(2).copied().flatten();
    match &p.op {
        Op::Nn(NnOp::Conv(_)) | Op::Nn(NnOp::ConvTranspose(_)) => {
            let m = *out_shape.get(1)?;
            let r = out_shape.len();
            let offset = r - ct.rank();
            let per_channel = ct
                .shape()
                .iter()
                .enumerate()
                .all(|(j, &d)| d == 1 || (offset + j == 1 && d == m));
            if !per_channel {
                return None;
            }
            let v = ct.to_vec::<f32>().ok()?;
            let mut bias: Vec<f32> = if v.len() == 1 { vec![v[0]; m] } else { v };
            if let Some(e) = existing {
                let old = constant(graph, e)?.to_vec::<f32>().ok()?;
                if old.len() != m {
                    return None;
                }
                for (x, o) in bias.iter_mut().zip(old) {
                    *x += o;
                }
            }
            Some((producer, Tensor::from_vec(vec![m], bias).ok()?))
        }
        Op::Nn(NnOp::Gemm(g)) => {
            if ct.rank() > 2 || out_shape.len() != 2 {
                return None;
            }
            let bias = match existing {
                None => ct.clone(),
                Some(e) => {
                    let old = constant(graph, e)?;
                    let beta = Tensor::scalar(g.beta);
                    let scaled = run_op(
                        &Op::Elementwise(ElementwiseOp::Mul),
                        &[Some(old), Some(&beta)],
                        1,
                    )
                    .ok()?;
                    run_op(
                        &Op::Elementwise(ElementwiseOp::Add),
                        &[Some(&scaled[0]), Some(ct)],
                        1,
                    )
                    .ok()?
                    .remove(0)
                }
            };
            broadcasts_to(bias.shape(), &out_shape).then_some((producer, bias))
        }
        Op::Nn(NnOp::MatMul) => {
            let ranks_two = p
                .inputs
                .iter()
                .all(|v| v.is_some_and(|v| graph.values[v].info.rank() == Some(2)));
            if !ranks_two || p.inputs.len() != 2 || ct.rank() > 2 {
                return None;
            }
            broadcasts_to(ct.shape(), &out_shape).then(|| (producer, ct.clone()))
        }
        _ => None,
    }
}

/// Whether `from` broadcasts to `to` without changing `to` (numpy rules).
fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == 1 || f == t)
}
