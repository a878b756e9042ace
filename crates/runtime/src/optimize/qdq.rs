//! QDQ fusion: a Conv, MatMul or Gemm whose activation comes through
//! `QuantizeLinear → DequantizeLinear` and whose weight is an int8 constant read
//! through `DequantizeLinear` becomes one slimnet-internal `QuantizedConv` or
//! `QuantizedMatMul`, which the session runs on integer kernels.
//!
//! Recognized (from slimnet's quantizer or other tools): per-tensor activation
//! quantization to uint8 or int8 with the same constant scale and zero point on both
//! nodes; int8 weights with zero point 0, per tensor or per output channel (the
//! `axis` form, or a per-tensor DequantizeLinear followed by a `Mul` by a
//! per-channel constant); a constant bias. The fused nodes are not standard ONNX:
//! this pass is for execution only (see `OptimizeOptions::fuse_quantized`).

use slimnet_ir::ops::{ElementwiseOp, NnOp, QuantOp};
use slimnet_ir::{Graph, Node, Op, ValueId};
use slimnet_tensor::{DType, Tensor};

use super::util::{add_constant, constant, Names, Uses};
use crate::RuntimeError;

/// The product a node computes, with its weight's output-channel axis.
enum Product {
    Conv(slimnet_ir::ops::nn::Conv),
    MatMul,
    /// Gemm with `transB` and `beta` (alpha is 1, transA 0).
    Gemm {
        trans_b: bool,
        beta: f32,
    },
}

/// Fuses every matching node of `graph` and returns how many it fused. The QDQ
/// nodes left without readers are removed by dead-node elimination.
pub fn fuse_qdq(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut count = 0;
    for n in 0..graph.nodes.len() {
        let node = &graph.nodes[n];
        let product = match &node.op {
            Op::Nn(NnOp::Conv(c)) => Product::Conv(c.clone()),
            Op::Nn(NnOp::MatMul) => Product::MatMul,
            Op::Nn(NnOp::Gemm(g)) if !g.trans_a && g.alpha == 1.0 => Product::Gemm {
                trans_b: g.trans_b,
                beta: g.beta,
            },
            _ => continue,
        };
        let (Some(Some(x_dq)), Some(Some(w_dq))) = (node.inputs.first(), node.inputs.get(1)) else {
            continue;
        };
        let Some((x, x_scale, x_zero)) = activation(graph, &uses, *x_dq) else {
            continue;
        };
        let Some((wq, scales)) = weight(graph, &uses, *w_dq) else {
            continue;
        };
        let shape = wq.shape().to_vec();
        let rank_ok = match product {
            Product::Conv(_) => shape.len() == 4 || shape.len() == 3,
            _ => shape.len() == 2,
        };
        let axis = match product {
            Product::Conv(_) | Product::Gemm { trans_b: true, .. } => 0,
            _ => 1,
        };
        if !rank_ok
            || !(scales.len() == 1 || (scales.axis == Some(axis) && scales.len() == shape[axis]))
        {
            continue;
        }
        let bias = match node.inputs.get(2).copied().flatten() {
            None => None,
            Some(b) => match bias(graph, b, &product, shape[axis]) {
                Some(b) => Some(b),
                None => continue,
            },
        };
        // Gemm with transB: the weight becomes [K, N].
        let wq = match product {
            Product::Gemm { trans_b: true, .. } => transpose(&wq),
            _ => wq,
        };
        let base = node.display_name(graph);
        let outputs = node.outputs.clone();
        let name = node.name.clone();
        let op = match &product {
            Product::Conv(c) => QuantOp::QuantizedConv(c.clone()),
            _ => QuantOp::QuantizedMatMul,
        };
        let w = add_constant(graph, &mut names, &format!("{base}_weight_int8"), wq);
        let s = Tensor::from_vec(vec![scales.values.len()], scales.values)
            .map_err(|e| RuntimeError::Graph(e.to_string()))?;
        let s = add_constant(graph, &mut names, &format!("{base}_weight_scale"), s);
        let b = bias.map(|t| add_constant(graph, &mut names, &format!("{base}_bias"), t));
        graph.nodes[n] = Node {
            name,
            op: Op::Quant(op),
            inputs: vec![Some(x), Some(x_scale), Some(x_zero), Some(w), Some(s), b],
            outputs,
        };
        count += 1;
    }
    Ok(count)
}

/// `(x, scale, zero_point)` when `v = DequantizeLinear(QuantizeLinear(x, s, z), s, z)`
/// per tensor with constant `s` (f32) and `z` (uint8 or int8).
fn activation(graph: &Graph, uses: &Uses, v: ValueId) -> Option<(ValueId, ValueId, ValueId)> {
    let (dq, _) = uses.producer[v]?;
    let dq = &graph.nodes[dq];
    let Op::Quant(QuantOp::Dequantize {
        block_size: 0,
        output_dtype: None,
        ..
    }) = dq.op
    else {
        return None;
    };
    let (q_v, s, z) = (
        dq.inputs.first()?.as_ref()?,
        dq.inputs.get(1)?.as_ref()?,
        dq.inputs.get(2)?.as_ref()?,
    );
    let (q, _) = uses.producer[*q_v]?;
    let q = &graph.nodes[q];
    let Op::Quant(QuantOp::Quantize {
        block_size: 0,
        output_dtype: None,
        precision: None,
        ..
    }) = q.op
    else {
        return None;
    };
    let (x, s2, z2) = (
        q.inputs.first()?.as_ref()?,
        q.inputs.get(1)?.as_ref()?,
        q.inputs.get(2)?.as_ref()?,
    );
    let same = |a: ValueId, b: ValueId| {
        let (ta, tb) = (constant(graph, a)?, constant(graph, b)?);
        Some(ta.len() == 1 && ta.dtype() == tb.dtype() && ta.data() == tb.data())
    };
    let zd = constant(graph, *z)?.dtype();
    let ok = same(*s, *s2)?
        && same(*z, *z2)?
        && constant(graph, *s)?.dtype() == DType::F32
        && matches!(zd, DType::U8 | DType::I8)
        && graph.values[*x].info.dtype == Some(DType::F32);
    ok.then_some((*x, *s, *z))
}

/// Weight scales: one value, or one per channel along `axis`.
struct Scales {
    values: Vec<f32>,
    axis: Option<usize>,
}

impl Scales {
    fn len(&self) -> usize {
        self.values.len()
    }
}

/// The int8 weight and its scales when `v` is a dequantized int8 constant with zero
/// point 0: `DequantizeLinear(w, s[, 0])`, or that (per tensor) times a constant
/// varying along one axis only.
fn weight(graph: &Graph, uses: &Uses, v: ValueId) -> Option<(Tensor, Scales)> {
    let (p, _) = uses.producer[v]?;
    let node = &graph.nodes[p];
    match &node.op {
        Op::Quant(QuantOp::Dequantize {
            axis,
            block_size: 0,
            output_dtype: None,
        }) => {
            let w = constant(graph, node.inputs.first()?.as_ref().copied()?)?;
            let s = constant(graph, node.inputs.get(1)?.as_ref().copied()?)?;
            if let Some(Some(z)) = node.inputs.get(2) {
                let z = constant(graph, *z)?;
                if z.to_vec::<f64>().ok()?.iter().any(|&x| x != 0.0) {
                    return None;
                }
            }
            if w.dtype() != DType::I8 || s.dtype() != DType::F32 {
                return None;
            }
            let values = s.as_slice::<f32>().ok()?.to_vec();
            let axis = if values.len() == 1 && s.rank() == 0 {
                None
            } else {
                let a = if *axis < 0 {
                    *axis + w.rank() as i64
                } else {
                    *axis
                };
                Some(usize::try_from(a).ok()?)
            };
            Some((w.clone(), Scales { values, axis }))
        }
        Op::Elementwise(ElementwiseOp::Mul) => {
            let (a, b) = (
                node.inputs.first()?.as_ref()?,
                node.inputs.get(1)?.as_ref()?,
            );
            let (inner, c) = if constant(graph, *b).is_some() {
                (*a, *b)
            } else {
                (*b, *a)
            };
            if uses.count[inner] != 1 {
                return None;
            }
            let (w, unit) = weight(graph, uses, inner)?;
            if unit.len() != 1 {
                return None;
            }
            let c = constant(graph, c)?;
            if c.dtype() != DType::F32 || c.rank() != w.rank() {
                return None;
            }
            let varying: Vec<usize> = (0..c.rank()).filter(|&d| c.shape()[d] != 1).collect();
            let values: Vec<f32> = c
                .as_slice::<f32>()
                .ok()?
                .iter()
                .map(|&x| x * unit.values[0])
                .collect();
            match varying[..] {
                [] => Some((w, Scales { values, axis: None })),
                [d] if c.shape()[d] == w.shape()[d] => Some((
                    w,
                    Scales {
                        values,
                        axis: Some(d),
                    },
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A constant bias with one value per output channel, scaled by Gemm's beta.
fn bias(graph: &Graph, b: ValueId, product: &Product, channels: usize) -> Option<Tensor> {
    let t = constant(graph, b)?;
    if t.dtype() != DType::F32 || t.len() != channels {
        return None;
    }
    let rank_ok = match product {
        Product::Conv(_) => t.rank() == 1,
        _ => t.shape().iter().rev().skip(1).all(|&d| d == 1),
    };
    if !rank_ok {
        return None;
    }
    let beta = match product {
        Product::Gemm { beta, .. } => *beta,
        _ => 1.0,
    };
    let v: Vec<f32> = t
        .as_slice::<f32>()
        .ok()?
        .iter()
        .map(|&x| x * beta)
        .collect();
    Tensor::from_vec(vec![channels], v).ok()
}

fn transpose(w: &Tensor) -> Tensor {
    let (r, c) = (w.shape()[0], w.shape()[1]);
    let d = w.as_slice::<i8>().expect("int8 weight");
    let mut out = vec![0i8; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = d[i * c + j];
        }
    }
    Tensor::from_vec(vec![c, r], out).expect("same element count")
}

/// Folds a `Mul` or `Add` by a per-output-channel constant that alone reads the
/// output of a fused quantized op into that op: a factor multiplies the weight
/// scales and the bias, a term adds to the bias (both exact rewrites of the float
/// epilogue). Returns how many nodes it folded.
pub fn fold_into_quantized(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut touched = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        let is_mul = match node.op {
            Op::Elementwise(ElementwiseOp::Mul) => true,
            Op::Elementwise(ElementwiseOp::Add) => false,
            _ => continue,
        };
        let (Some(Some(a)), Some(Some(b)), Some(Some(out))) = (
            node.inputs.first(),
            node.inputs.get(1),
            node.outputs.first(),
        ) else {
            continue;
        };
        let (a, b, out) = (*a, *b, *out);
        let (y, c) = if constant(graph, b).is_some() {
            (a, b)
        } else {
            (b, a)
        };
        let Some((p, _)) = uses.producer[y] else {
            continue;
        };
        if uses.count[y] != 1 || uses.is_output[y] || touched[p] || removed[p] {
            continue;
        }
        let conv = match graph.nodes[p].op {
            Op::Quant(QuantOp::QuantizedConv(_)) => true,
            Op::Quant(QuantOp::QuantizedMatMul) => false,
            _ => continue,
        };
        let pn = &graph.nodes[p];
        let (Some(Some(w)), Some(Some(s))) = (pn.inputs.get(3), pn.inputs.get(4)) else {
            continue;
        };
        let (Some(wt), Some(st), Some(ct)) =
            (constant(graph, *w), constant(graph, *s), constant(graph, c))
        else {
            continue;
        };
        let channels = if conv { wt.shape()[0] } else { wt.shape()[1] };
        let Some(rank) = graph.values[y].info.rank() else {
            continue;
        };
        let Some(factors) = per_channel(ct, rank, if conv { 1 } else { rank - 1 }, channels) else {
            continue;
        };
        if graph.values[out].info != graph.values[y].info {
            continue;
        }
        let scales: Vec<f32> = match st.as_slice::<f32>() {
            Ok(v) if v.len() == channels => v.to_vec(),
            Ok(v) if v.len() == 1 => vec![v[0]; channels],
            _ => continue,
        };
        let bias: Option<Vec<f32>> = match pn.inputs.get(5).copied().flatten() {
            Some(bv) => match constant(graph, bv).and_then(|t| t.as_slice::<f32>().ok()) {
                Some(v) if v.len() == channels => Some(v.to_vec()),
                _ => continue,
            },
            None => None,
        };
        let (scales, bias) = if is_mul {
            let s: Vec<f32> = scales.iter().zip(&factors).map(|(a, f)| a * f).collect();
            let b = bias.map(|b| b.iter().zip(&factors).map(|(a, f)| a * f).collect());
            (s, b)
        } else {
            let b = match bias {
                Some(b) => b.iter().zip(&factors).map(|(a, f)| a + f).collect(),
                None => factors.clone(),
            };
            (scales, Some(b))
        };
        let base = graph.nodes[p].display_name(graph);
        let s = Tensor::from_vec(vec![channels], scales)
            .map_err(|e| RuntimeError::Graph(e.to_string()))?;
        let s = add_constant(graph, &mut names, &format!("{base}_weight_scale"), s);
        let b = match bias {
            Some(b) => {
                let t = Tensor::from_vec(vec![channels], b)
                    .map_err(|e| RuntimeError::Graph(e.to_string()))?;
                Some(add_constant(graph, &mut names, &format!("{base}_bias"), t))
            }
            None => None,
        };
        let pn = &mut graph.nodes[p];
        pn.inputs[4] = Some(s);
        pn.inputs.resize(6, None);
        pn.inputs[5] = b;
        pn.outputs[0] = Some(out);
        removed[i] = true;
        touched[p] = true;
        count += 1;
    }
    if count > 0 {
        super::util::finish(graph, "fold_into_quantized", &removed, Vec::new())?;
    }
    Ok(count)
}

/// The values of constant `c` per channel along `axis` of a rank-`rank` tensor with
/// `channels` channels, when `c` broadcasts along that axis only.
fn per_channel(c: &Tensor, rank: usize, axis: usize, channels: usize) -> Option<Vec<f32>> {
    if c.dtype() != DType::F32 || c.rank() > rank {
        return None;
    }
    let v = c.as_slice::<f32>().ok()?;
    let offset = rank - c.rank();
    for (d, &size) in c.shape().iter().enumerate() {
        if d + offset != axis && size != 1 {
            return None;
        }
    }
    match v.len() {
        1 => Some(vec![v[0]; channels]),
        n if n == channels && (axis >= offset) => Some(v.to_vec()),
        _ => None,
    }
}
