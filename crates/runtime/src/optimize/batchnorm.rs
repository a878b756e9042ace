//! BatchNormalization folding into the preceding Conv, ConvTranspose or Gemm.

use slimnet_ir::ops::NnOp;
use slimnet_ir::{Graph, Op, ValueId};
use slimnet_tensor::Tensor;

use super::util::{
    add_constant, constant, f32_constant, fold_into_producer, out_channel, scaled,
    sole_output_producer, Uses,
};
use crate::RuntimeError;

/// Folds each inference-mode `BatchNormalization` whose input comes from a `Conv`,
/// `ConvTranspose` or `Gemm` into that node's weights and bias, and returns how many
/// it folded.
///
/// Conditions: float32 tensors; the BN's scale, bias, mean and variance are
/// constants with one element per output channel; the producer's weight (and bias,
/// if any) are constants; the producer's output is read only by the BN and is not
/// a graph output; the BN's extra outputs (opsets before 14) are unused. With
/// `s = scale / sqrt(var + eps)`, the weights of output channel `c` are scaled by
/// `s[c]` and the bias becomes `(b - mean) * s + beta`, computed in f64 and rounded
/// to f32 once. New weight tensors are added (a weight shared with another node is
/// not modified); the producer then writes the BN's output value.
pub fn fold_batchnorm(graph: &mut Graph) -> Result<usize, RuntimeError> {
    fold_into_producer(
        graph,
        "fold_batchnorm",
        |graph, uses, i| plan(graph, uses, i).map(|p| (p.producer, p)),
        |graph, names, producer, plan| {
            let base = graph.nodes[producer].display_name(graph);
            let w = add_constant(graph, names, &format!("{base}_bn_weight"), plan.weight);
            let b = add_constant(graph, names, &format!("{base}_bn_bias"), plan.bias);
            let p = &mut graph.nodes[producer];
            p.inputs.resize(3, None);
            p.inputs[1] = Some(w);
            p.inputs[2] = Some(b);
            if let Op::Nn(NnOp::Gemm(g)) = &mut p.op {
                g.beta = 1.0;
            }
        },
    )
}

struct Plan {
    producer: usize,
    weight: Tensor,
    bias: Tensor,
}

fn f32_values(graph: &Graph, v: Option<ValueId>) -> Option<Vec<f64>> {
    Some(f32_constant(graph, v?)?.1)
}

fn plan(graph: &Graph, uses: &Uses, i: usize) -> Option<Plan> {
    let node = &graph.nodes[i];
    let Op::Nn(NnOp::BatchNormalization(bn)) = &node.op else {
        return None;
    };
    if bn.training_mode || !bn.spatial || node.outputs.first()?.is_none() {
        return None;
    }
    if node.outputs[1..]
        .iter()
        .flatten()
        .any(|&o| uses.count[o] > 0)
    {
        return None;
    }
    let x = (*node.inputs.first()?)?;
    let producer = sole_output_producer(graph, uses, x)?;
    let input = |k: usize| node.inputs.get(k).copied().flatten();
    let scale = f32_values(graph, input(1))?;
    let beta = f32_values(graph, input(2))?;
    let mean = f32_values(graph, input(3))?;
    let var = f32_values(graph, input(4))?;
    let c = scale.len();
    if [beta.len(), mean.len(), var.len()].iter().any(|&l| l != c) {
        return None;
    }
    let eps = bn.epsilon as f64;
    let s: Vec<f64> = scale
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let p = &graph.nodes[producer];
    let wid = p.inputs.get(1).copied().flatten();
    let (shape, w) = f32_constant(graph, wid?)?;
    let bias_in = p.inputs.get(2).copied().flatten();
    let old_bias = match bias_in {
        Some(_) => Some(f32_values(graph, bias_in)?),
        None => None,
    };
    let channel_of = match &p.op {
        Op::Nn(NnOp::Conv(conv)) if conv.group <= 0 => return None,
        Op::Nn(NnOp::Gemm(_)) if graph.values[x].info.rank() != Some(2) => return None,
        _ => out_channel(&p.op, &shape, c)?,
    };
    // The bias of each output channel before the BN.
    let prior: Vec<f64> = match (&p.op, old_bias) {
        (_, None) => vec![0.0; c],
        (Op::Nn(NnOp::Gemm(gemm)), Some(b)) => {
            let ct = constant(graph, bias_in?)?;
            let per_column = match ct.shape() {
                [] | [1] | [1, 1] => vec![b[0]; c],
                [m] | [1, m] if *m == c => b.clone(),
                _ => return None,
            };
            per_column.iter().map(|v| v * gemm.beta as f64).collect()
        }
        (_, Some(b)) if b.len() == c => b,
        _ => return None,
    };
    let weight = scaled(&w, &s, channel_of);
    let bias: Vec<f32> = (0..c)
        .map(|m| ((prior[m] - mean[m]) * s[m] + beta[m]) as f32)
        .collect();
    Some(Plan {
        producer,
        weight: Tensor::from_vec(shape, weight).ok()?,
        bias: Tensor::from_vec(vec![c], bias).ok()?,
    })
}
