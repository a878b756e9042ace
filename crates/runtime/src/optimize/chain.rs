//! Affine chain composition: a run of `Mul`s and `Add`s by constants becomes at
//! most one `Mul` followed by one `Add`.

use slimnet_ir::ops::ElementwiseOp;
use slimnet_ir::{Graph, Node, Op, ValueId, ValueInfo};
use slimnet_tensor::{DType, Tensor};

use super::util::{add_constant, add_value, f32_constant, finish, split_constant, Names, Uses};
use crate::RuntimeError;

/// Rewrites each chain `x -> op1(c1) -> ... -> opn(cn)` of float32 `Mul`/`Add` by
/// constants (operands in either order), where every intermediate value is read
/// only by the next node and is not a graph output, as `Add(Mul(x, S), B)` — or
/// only the `Mul` (chains without `Add`) or only the `Add` (chains without `Mul`)
/// — when that has fewer nodes than the chain. Returns how many chains it rewrote.
///
/// `S` is the product of the `Mul` constants and `B` the constants' composition
/// (`(x * S + B) * c = x * (S * c) + B * c`, `(x * S + B) + c = x * S + (B + c)`),
/// broadcast numpy-style, computed in f64 and rounded to f32 once; the result has
/// the chain's output shape because broadcasting is associative. The last node's
/// output value is kept.
pub fn compose_affine(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut added = Vec::new();
    let mut count = 0;
    // From the end, so each chain is found from its last node, whole.
    for tail in (0..graph.nodes.len()).rev() {
        if removed[tail] {
            continue;
        }
        let Some((mut x, _, _)) = step(graph, tail) else {
            continue;
        };
        let mut chain = vec![tail];
        while let Some(p) = uses.sole_producer(x) {
            match step(graph, p) {
                Some((px, _, _)) if !removed[p] => {
                    chain.push(p);
                    x = px;
                }
                _ => break,
            }
        }
        chain.reverse();
        let muls = chain.iter().filter(|&&n| step(graph, n).unwrap().2).count();
        let adds = chain.len() - muls;
        if usize::from(muls > 0) + usize::from(adds > 0) >= chain.len() {
            continue;
        }
        let Some((s, b)) = compose(graph, &chain) else {
            continue;
        };
        let out = graph.nodes[tail].outputs[0];
        let base = graph.nodes[tail].display_name(graph);
        let mut operand = x;
        if muls > 0 {
            let s = add_constant(graph, &mut names, &format!("{base}_scale"), s);
            let target = if adds > 0 {
                let info = ValueInfo {
                    dtype: Some(DType::F32),
                    shape: None,
                };
                Some(add_value(
                    graph,
                    &mut names,
                    &format!("{base}_scaled"),
                    info,
                ))
            } else {
                out
            };
            added.push(node(
                format!("{base}_mul"),
                ElementwiseOp::Mul,
                x,
                s,
                target,
            ));
            operand = target.expect("a scaled value");
        }
        if adds > 0 {
            let b = add_constant(graph, &mut names, &format!("{base}_shift"), b);
            added.push(node(
                format!("{base}_add"),
                ElementwiseOp::Add,
                operand,
                b,
                out,
            ));
        }
        for &n in &chain {
            removed[n] = true;
        }
        count += 1;
    }
    if count > 0 {
        finish(graph, "compose_affine", &removed, added)?;
    }
    Ok(count)
}

fn node(name: String, op: ElementwiseOp, a: ValueId, b: ValueId, out: Option<ValueId>) -> Node {
    Node {
        name,
        op: Op::Elementwise(op),
        inputs: vec![Some(a), Some(b)],
        outputs: vec![out],
    }
}

/// For a float32 `Mul`/`Add` of a constant with one output: its other operand, the
/// constant, and whether it is a `Mul`.
fn step(graph: &Graph, n: usize) -> Option<(ValueId, ValueId, bool)> {
    let node = &graph.nodes[n];
    let is_mul = match &node.op {
        Op::Elementwise(ElementwiseOp::Mul) => true,
        Op::Elementwise(ElementwiseOp::Add) => false,
        _ => return None,
    };
    if node.outputs.len() != 1 || node.outputs[0].is_none() {
        return None;
    }
    let (x, c) = split_constant(graph, &node.inputs)?;
    (graph.values[x].info.dtype == Some(DType::F32)).then_some((x, c, is_mul))
}

/// The composed `(S, B)` of a chain, in order from its first node.
fn compose(graph: &Graph, chain: &[usize]) -> Option<(Tensor, Tensor)> {
    let mut s = (Vec::new(), vec![1.0]);
    let mut b = (Vec::new(), vec![0.0]);
    for &n in chain {
        let (_, c, is_mul) = step(graph, n)?;
        let c = f32_constant(graph, c)?;
        if is_mul {
            s = broadcast(&s, &c, |a, b| a * b)?;
            b = broadcast(&b, &c, |a, b| a * b)?;
        } else {
            b = broadcast(&b, &c, |a, b| a + b)?;
        }
    }
    let round = |(shape, v): (Vec<usize>, Vec<f64>)| {
        Tensor::from_vec(shape, v.into_iter().map(|x| x as f32).collect::<Vec<f32>>()).ok()
    };
    Some((round(s)?, round(b)?))
}

type Dense = (Vec<usize>, Vec<f64>);

/// `f` over two arrays broadcast numpy-style; `None` when the shapes do not.
fn broadcast(a: &Dense, b: &Dense, f: impl Fn(f64, f64) -> f64) -> Option<Dense> {
    let rank = a.0.len().max(b.0.len());
    let pad = |s: &[usize]| {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (sa, sb) = (pad(&a.0), pad(&b.0));
    let mut shape = Vec::with_capacity(rank);
    for (&x, &y) in sa.iter().zip(&sb) {
        shape.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => return None,
        });
    }
    let strides = |s: &[usize]| {
        let mut st = vec![0; rank];
        let mut acc = 1;
        for d in (0..rank).rev() {
            st[d] = if s[d] == 1 { 0 } else { acc };
            acc *= s[d];
        }
        st
    };
    let (ta, tb) = (strides(&sa), strides(&sb));
    let len: usize = shape.iter().product();
    let mut out = Vec::with_capacity(len);
    let mut index = vec![0; rank];
    for _ in 0..len {
        let (mut ia, mut ib) = (0, 0);
        for d in 0..rank {
            ia += index[d] * ta[d];
            ib += index[d] * tb[d];
        }
        out.push(f(a.1[ia], b.1[ib]));
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some((shape, out))
}
