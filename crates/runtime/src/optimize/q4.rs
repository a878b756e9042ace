//! Int4 weight-only fusion: a MatMul or Gemm whose weight is a constant int4 (or
//! uint4) tensor read through a blocked `DequantizeLinear` (axis 0, so blocks run
//! along K) becomes one slimnet-internal `WeightOnlyMatMul`, which the session runs
//! on the int4 kernel. The activation stays float.
//!
//! Recognized: `MatMul(x, DQ(w, s[, z]))` and `Gemm(x, DQ(w, s[, z])[, C])` with
//! transA 0, transB 0 and alpha 1, where `w` is `[K, N]`, the scale f32
//! `[ceil(K / block_size), N]`, the zero point (when present) of w's type and the
//! scale's shape, `block_size` one the kernel takes (16, 32, 64 or 128), and `C` a
//! constant f32 bias of N values (scaled by beta). An all-zero zero point is
//! dropped (an absent zero point is 0 for both types). The fused node is not standard ONNX: this pass is for execution only
//! (see `OptimizeOptions::fuse_quantized`).

use slimnet_ir::ops::{NnOp, QuantOp};
use slimnet_ir::{Graph, Node, Op, ValueId};
use slimnet_tensor::{DType, Tensor};

use super::util::{add_constant, constant, Names, Uses};
use crate::RuntimeError;

/// Block sizes the int4 kernel takes.
pub const Q4_BLOCK_SIZES: [usize; 4] = [16, 32, 64, 128];

/// Fuses every matching node of `graph` and returns how many it fused. The
/// DequantizeLinear nodes left without readers are removed by dead-node elimination.
pub fn fuse_weight_only_int4(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut count = 0;
    for n in 0..graph.nodes.len() {
        let node = &graph.nodes[n];
        let beta = match &node.op {
            Op::Nn(NnOp::MatMul) => None,
            Op::Nn(NnOp::Gemm(g)) if !g.trans_a && !g.trans_b && g.alpha == 1.0 => Some(g.beta),
            _ => continue,
        };
        let (Some(Some(x)), Some(Some(w_dq))) = (node.inputs.first(), node.inputs.get(1)) else {
            continue;
        };
        let x = *x;
        if graph.values[x].info.dtype != Some(DType::F32) {
            continue;
        }
        let Some(wt) = weight(graph, &uses, *w_dq) else {
            continue;
        };
        let cols = constant(graph, wt.w).map_or(0, |t| t.shape()[1]);
        let bias = match (beta, node.inputs.get(2).copied().flatten()) {
            (_, None) => None,
            (None, Some(_)) => continue,
            (Some(beta), Some(c)) => match bias(graph, c, cols, beta) {
                Some(b) => Some(b),
                None => continue,
            },
        };
        let base = node.display_name(graph);
        let outputs = node.outputs.clone();
        let name = node.name.clone();
        let b = bias.map(|t| add_constant(graph, &mut names, &format!("{base}_bias"), t));
        graph.nodes[n] = Node {
            name,
            op: Op::Quant(QuantOp::WeightOnlyMatMul {
                block_size: wt.block_size as i64,
            }),
            inputs: vec![Some(x), Some(wt.w), Some(wt.scale), wt.zero, b],
            outputs,
        };
        count += 1;
    }
    Ok(count)
}

/// The operands of a blocked int4 weight.
struct Q4Weight {
    w: ValueId,
    scale: ValueId,
    zero: Option<ValueId>,
    block_size: usize,
}

/// The int4 weight when `v = DequantizeLinear(w, s[, z])` with constant operands in
/// the layout the module documentation describes.
fn weight(graph: &Graph, uses: &Uses, v: ValueId) -> Option<Q4Weight> {
    let (p, _) = uses.producer[v]?;
    let node = &graph.nodes[p];
    let Op::Quant(QuantOp::Dequantize {
        axis,
        block_size,
        output_dtype,
    }) = node.op
    else {
        return None;
    };
    if !(axis == 0 || axis == -2) || output_dtype.is_some_and(|d| d != DType::F32) {
        return None;
    }
    let block = usize::try_from(block_size).ok()?;
    if !Q4_BLOCK_SIZES.contains(&block) {
        return None;
    }
    let at = |k: usize| node.inputs.get(k).copied().flatten();
    let (w_v, s_v) = (at(0)?, at(1)?);
    let (w, s) = (constant(graph, w_v)?, constant(graph, s_v)?);
    if !matches!(w.dtype(), DType::I4 | DType::U4) || w.rank() != 2 || s.dtype() != DType::F32 {
        return None;
    }
    let (k, n) = (w.shape()[0], w.shape()[1]);
    if s.shape() != [k.div_ceil(block), n] {
        return None;
    }
    let zero = match at(2) {
        None => None,
        Some(z_v) => {
            let z = constant(graph, z_v)?;
            if z.dtype() != w.dtype() || z.shape() != s.shape() {
                return None;
            }
            let all_zero = z.to_vec::<f64>().ok()?.iter().all(|&x| x == 0.0);
            (!all_zero).then_some(z_v)
        }
    };
    Some(Q4Weight {
        w: w_v,
        scale: s_v,
        zero,
        block_size: block,
    })
}

/// Gemm's constant bias `C` of `cols` values (shape `[N]` or `[1, N]`), times beta.
fn bias(graph: &Graph, c: ValueId, cols: usize, beta: f32) -> Option<Tensor> {
    let t = constant(graph, c)?;
    if t.dtype() != DType::F32 || t.len() != cols || t.shape().last() != Some(&cols) {
        return None;
    }
    let v: Vec<f32> = t
        .as_slice::<f32>()
        .ok()?
        .iter()
        .map(|&x| x * beta)
        .collect();
    Tensor::from_vec(vec![cols], v).ok()
}
