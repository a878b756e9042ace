//! Bias folding: `Conv`/`ConvTranspose`/`Gemm` followed by an `Add` of a constant
//! per-channel bias take the bias in; `MatMul` of 2-D operands followed by such an
//! `Add` becomes a `Gemm`.

use slimnet_ir::ops::nn::Gemm;
use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Op};
use slimnet_tensor::Tensor;

use super::util::{add_constant, constant, fold_into_producer, follower, per_axis, Follower, Uses};
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
    fold_into_producer(graph, "fold_bias", plan, |graph, names, producer, bias| {
        let base = graph.nodes[producer].display_name(graph);
        let b = add_constant(graph, names, &format!("{base}_bias"), bias);
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
    })
}

fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<(usize, Tensor)> {
    let Follower {
        producer,
        constant: c,
        shape: out_shape,
    } = follower(graph, uses, i, ElementwiseOp::Add)?;
    let ct = constant(graph, c)?;
    if ct.rank() > out_shape.len() {
        return None;
    }
    let p = &graph.nodes[producer];
    let existing = p.inputs.get(2).copied().flatten();
    match &p.op {
        Op::Nn(NnOp::Conv(_)) | Op::Nn(NnOp::ConvTranspose(_)) => {
            let m = *out_shape.get(1)?;
            // f32 values widen to f64 exactly, so this narrowing is exact too.
            let mut bias: Vec<f32> = per_axis(ct, out_shape.len(), 1, m)?
                .into_iter()
                .map(|v| v as f32)
                .collect();
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
