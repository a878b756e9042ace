//! Which nodes can be quantized: Conv, MatMul and Gemm whose weights are constants.

use slimnet_ir::ops::NnOp;
use slimnet_ir::{Graph, NodeId, Op, ValueId};
use slimnet_tensor::DType;

/// What kind of product a target is, which fixes the weight's output-channel axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// 1-D or 2-D convolution, weight `[M, C/group, kh, kw]` (or `[M, C/group, k]`);
    /// output channels on axis 0.
    Conv { depthwise: bool },
    /// `x · W` with `W` `[K, N]`: output channels on axis 1.
    MatMul,
    /// Gemm with `B` `[K, N]` (axis 1) or, transposed, `[N, K]` (axis 0).
    Gemm { trans_b: bool },
}

/// A node that can be quantized.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub node: NodeId,
    pub name: String,
    pub op_type: &'static str,
    pub kind: TargetKind,
    /// The activation input (input 0).
    pub act: ValueId,
    /// The constant f32 weight (input 1).
    pub weight: ValueId,
    /// The output value (output 0).
    pub output: ValueId,
}

impl Target {
    /// The axis of the weight that indexes output channels.
    pub fn weight_axis(&self) -> usize {
        match self.kind {
            TargetKind::Conv { .. } | TargetKind::Gemm { trans_b: true } => 0,
            TargetKind::MatMul | TargetKind::Gemm { trans_b: false } => 1,
        }
    }
}

/// The quantizable nodes of `graph`'s main graph, in graph order. A node qualifies
/// when its input 0 is a computed f32 value and its input 1 a constant f32 weight of
/// the right rank: 3 or 4 for Conv, 2 for MatMul and Gemm (Gemm also needs `transA = 0`
/// and `alpha = 1`).
pub(crate) fn find_targets(graph: &Graph) -> Vec<Target> {
    let mut out = Vec::new();
    for (n, node) in graph.nodes.iter().enumerate() {
        let (Some(Some(act)), Some(Some(weight)), Some(Some(output))) = (
            node.inputs.first(),
            node.inputs.get(1),
            node.outputs.first(),
        ) else {
            continue;
        };
        let (act, weight, output) = (*act, *weight, *output);
        let a = &graph.values[act];
        let Some(w) = graph.values[weight].constant.as_deref() else {
            continue;
        };
        if a.constant.is_some() || a.info.dtype != Some(DType::F32) || w.dtype() != DType::F32 {
            continue;
        }
        let kind = match &node.op {
            Op::Nn(NnOp::Conv(c)) if w.rank() == 4 || w.rank() == 3 => {
                let depthwise =
                    c.group > 1 && w.shape()[1] == 1 && c.group as usize == w.shape()[0];
                TargetKind::Conv { depthwise }
            }
            Op::Nn(NnOp::MatMul) if w.rank() == 2 => TargetKind::MatMul,
            Op::Nn(NnOp::Gemm(g)) if w.rank() == 2 && !g.trans_a && g.alpha == 1.0 => {
                TargetKind::Gemm { trans_b: g.trans_b }
            }
            _ => continue,
        };
        out.push(Target {
            node: n,
            name: node.display_name(graph),
            op_type: node.op.op_type(),
            kind,
            act,
            weight,
            output,
        });
    }
    out
}
