//! Lowering: choosing the kernel for each node, fusing what follows it where that
//! saves a pass over memory.

mod control;
mod conv;
mod deconv;
mod eltwise;
mod gemm;
mod movement;
mod norm;
mod pool;
mod q4;
mod quantized;
mod resize;
mod rnn;
#[cfg(test)]
mod tests;

use slimnet_ir::ops::{ControlOp, ElementwiseOp, NnOp, QuantOp, ReduceOp, ShapeOp};
use slimnet_ir::{Graph, NodeId, Op, ValueId};
use slimnet_kernels::{Activation, KernelTable, Threads};
use slimnet_tensor::DType;

pub(crate) use control::IfStep;
pub(crate) use conv::ConvStep;
pub(crate) use deconv::DeconvStep;
pub(crate) use eltwise::EltwiseStep;
pub(crate) use gemm::GemmStep;
pub(crate) use movement::MoveStep;
pub(crate) use norm::NormStep;
pub(crate) use pool::PoolStep;
pub(crate) use q4::Q4MatMulStep;
pub(crate) use quantized::{QConvStep, QMatMulStep};
pub(crate) use resize::ResizeStep;
pub(crate) use rnn::RnnStep;

/// What lowering needs to know about the graph.
pub(crate) struct Context<'a> {
    pub graph: &'a Graph,
    /// Concrete shape of every value, where inference found one.
    pub shapes: &'a [Option<Vec<usize>>],
    /// The nodes reading each value (`usize::MAX` stands for a graph output).
    pub consumers: &'a [Vec<NodeId>],
    pub table: &'a KernelTable,
    pub threads: &'a Threads,
}

/// The kernel a step runs.
pub(crate) enum Lowered {
    /// The reference kernel of the node's op (or the interpreter, for control flow).
    Reference,
    /// Nothing: the output is the input's buffer seen with another shape. Falls back
    /// to the reference kernel when the input is not an arena buffer.
    Alias,
    /// Matrix multiply with fused bias and activation.
    Gemm(Box<GemmStep>),
    /// Convolution with fused bias and activation.
    Conv(Box<ConvStep>),
    /// Elementwise ops and softmax.
    Eltwise(EltwiseStep),
    /// Pooling.
    Pool(PoolStep),
    /// Resize and Upsample of the last two axes.
    Resize(Box<ResizeStep>),
    /// 2-D ConvTranspose.
    Deconv(Box<DeconvStep>),
    /// Data movement: Concat, Transpose, Slice, Split, Pad, Gather.
    Move(MoveStep),
    /// LSTM or GRU with constant weights.
    Rnn(Box<RnnStep>),
    /// Layer norm and reductions over the last axis.
    Norm(NormStep),
    /// `If` with both branches planned.
    If(Box<IfStep>),
    /// Quantized convolution on int8 kernels.
    QConv(Box<QConvStep>),
    /// Quantized matrix product on int8 kernels.
    QMatMul(Box<QMatMulStep>),
    /// Weight-only int4 matrix product on the int4 kernel.
    Q4MatMul(Box<Q4MatMulStep>),
}

impl Lowered {
    /// A short name for profiles.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Lowered::Reference => "reference",
            Lowered::Alias => "alias",
            Lowered::Gemm(_) => "sgemm",
            Lowered::Conv(c) => c.path,
            Lowered::Eltwise(e) => e.name(),
            Lowered::Pool(p) => p.name(),
            Lowered::Resize(_) => "resize",
            Lowered::Deconv(_) => "deconv_gemm",
            Lowered::Move(m) => m.name(),
            Lowered::Rnn(r) => r.name(),
            Lowered::Norm(s) => s.name(),
            Lowered::If(_) => "branch_plan",
            Lowered::QConv(_) => "qconv_int8",
            Lowered::QMatMul(_) => "qgemm_int8",
            Lowered::Q4MatMul(_) => "gemm_q4",
        }
    }
}

/// A node lowered: its kernel, the following nodes fused into it, and the scratch
/// (f32 elements) it needs.
pub(crate) struct Lowering {
    pub kernel: Lowered,
    pub fused: Vec<NodeId>,
    pub scratch_len: usize,
}

impl Lowering {
    fn reference() -> Self {
        Lowering {
            kernel: Lowered::Reference,
            fused: Vec::new(),
            scratch_len: 0,
        }
    }
}

/// Chooses the kernel for node `n`. Errors are reasons about the node (bad constant
/// operands), reported with its name by the caller.
pub(crate) fn lower(ctx: &Context, n: NodeId) -> Result<Lowering, String> {
    let node = &ctx.graph.nodes[n];
    let lowered = match &node.op {
        Op::Nn(NnOp::Gemm(g)) => gemm::lower_gemm(ctx, n, g)?,
        Op::Nn(NnOp::MatMul) => gemm::lower_matmul(ctx, n)?,
        Op::Nn(NnOp::Conv(c)) => conv::lower_conv(ctx, n, c)?,
        Op::Quant(QuantOp::QuantizedConv(c)) => quantized::lower_qconv(ctx, n, c)?,
        Op::Quant(QuantOp::QuantizedMatMul) => quantized::lower_qmatmul(ctx, n)?,
        Op::Quant(QuantOp::WeightOnlyMatMul { block_size }) => {
            q4::lower_q4_matmul(ctx, n, *block_size)?
        }
        Op::Nn(NnOp::BatchNormalization(b)) if !b.training_mode && b.spatial => {
            eltwise::lower_batchnorm(ctx, n, b.epsilon)
        }
        Op::Nn(NnOp::MaxPool(_) | NnOp::AveragePool(_) | NnOp::GlobalAveragePool) => {
            pool::lower_pool(ctx, n)?
        }
        Op::Nn(NnOp::Resize(_) | NnOp::Upsample(_)) => resize::lower_resize(ctx, n)?,
        Op::Nn(NnOp::ConvTranspose(c)) => deconv::lower_deconv(ctx, n, c)?,
        Op::Nn(NnOp::Pad(_))
        | Op::Shape(
            ShapeOp::Concat { .. }
            | ShapeOp::Transpose { .. }
            | ShapeOp::Slice { .. }
            | ShapeOp::Split { .. }
            | ShapeOp::Gather { .. },
        ) => movement::lower_movement(ctx, n)?,
        Op::Rnn(r) => rnn::lower_rnn(ctx, n, r)?,
        Op::Control(ControlOp::If { .. }) => control::lower_if(ctx, n)?,
        Op::Reduce(ReduceOp::Reduce { .. } | ReduceOp::LayerNormalization { .. }) => {
            norm::lower_norm(ctx, n)
        }
        Op::Elementwise(ElementwiseOp::Identity) => alias(ctx, n),
        Op::Elementwise(_) | Op::Reduce(_) => eltwise::lower_eltwise(ctx, n),
        Op::Shape(
            ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Unsqueeze { .. },
        ) => alias(ctx, n),
        _ => None,
    };
    Ok(lowered.unwrap_or_else(Lowering::reference))
}

/// An alias step when the node's data input and output are f32 with the same number
/// of elements.
fn alias(ctx: &Context, n: NodeId) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let input = (*node.inputs.first()?)?;
    let output = (*node.outputs.first()?)?;
    let len = |v: ValueId| ctx.shapes[v].as_ref().map(|s| s.iter().product::<usize>());
    (is_f32(ctx, input) && is_f32(ctx, output) && len(input)? == len(output)?).then(|| Lowering {
        kernel: Lowered::Alias,
        fused: Vec::new(),
        scratch_len: 0,
    })
}

/// Whether a value is f32 with a concrete shape.
pub(crate) fn is_f32(ctx: &Context, v: ValueId) -> bool {
    ctx.graph.values[v].info.dtype == Some(DType::F32) && ctx.shapes[v].is_some()
}

/// The f32 data of a constant value.
pub(crate) fn constant_f32<'a>(ctx: &Context<'a>, v: ValueId) -> Option<&'a [f32]> {
    let c = ctx.graph.values[v].constant.as_ref()?;
    c.as_slice::<f32>().ok()
}

/// The activation node(s) that alone read `value` and can be fused into its
/// producer, with the activation they apply: a single activation node, or the
/// `x * HardSigmoid(x)` pair (alpha 1/6, beta 1/2) that is a HardSwish.
pub(crate) fn fusable_activation(
    ctx: &Context,
    value: ValueId,
) -> Option<(Vec<NodeId>, Activation)> {
    match ctx.consumers[value][..] {
        [c] if c != usize::MAX => {
            let act = activation_of(ctx, c, value)?;
            Some((vec![c], act))
        }
        [c1, c2] if c1 != usize::MAX && c2 != usize::MAX => {
            hard_swish_pair(ctx, value, c1, c2).or_else(|| hard_swish_pair(ctx, value, c2, c1))
        }
        _ => None,
    }
}

/// `sig = HardSigmoid(value)` (alpha 1/6, beta 1/2) read only by `mul = value * sig`.
fn hard_swish_pair(
    ctx: &Context,
    value: ValueId,
    sig: NodeId,
    mul: NodeId,
) -> Option<(Vec<NodeId>, Activation)> {
    let g = ctx.graph;
    let Op::Elementwise(ElementwiseOp::HardSigmoid { alpha, beta }) = &g.nodes[sig].op else {
        return None;
    };
    if (alpha - 1.0 / 6.0).abs() > 1e-7 || (beta - 0.5).abs() > 1e-7 {
        return None;
    }
    let sig_out = g.nodes[sig].outputs.first().copied().flatten()?;
    if g.nodes[sig].inputs.first().copied().flatten() != Some(value)
        || ctx.consumers[sig_out][..] != [mul]
        || !matches!(g.nodes[mul].op, Op::Elementwise(ElementwiseOp::Mul))
    {
        return None;
    }
    let ins: Vec<Option<ValueId>> = g.nodes[mul].inputs.clone();
    let pair_ok = ins == [Some(value), Some(sig_out)] || ins == [Some(sig_out), Some(value)];
    let out = g.nodes[mul].outputs.first().copied().flatten()?;
    (pair_ok && is_f32(ctx, out) && ctx.shapes[out] == ctx.shapes[value])
        .then(|| (vec![sig, mul], Activation::HardSwish))
}

/// The activation node `c` applies to its first input `value`, if it is one that
/// kernels can fuse.
pub(crate) fn activation_of(ctx: &Context, c: NodeId, value: ValueId) -> Option<Activation> {
    let node = &ctx.graph.nodes[c];
    if node.inputs.first().copied().flatten() != Some(value) {
        return None;
    }
    let out = node.outputs.first().copied().flatten()?;
    if !is_f32(ctx, out) {
        return None;
    }
    let scalar = |i: usize| -> Option<Option<f32>> {
        match node.inputs.get(i).copied().flatten() {
            None => Some(None),
            Some(v) => match constant_f32(ctx, v) {
                Some([x]) => Some(Some(*x)),
                _ => None,
            },
        }
    };
    let Op::Elementwise(e) = &node.op else {
        return None;
    };
    Some(match e {
        ElementwiseOp::Relu => Activation::Relu,
        ElementwiseOp::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: *alpha },
        ElementwiseOp::Sigmoid => Activation::Sigmoid,
        ElementwiseOp::Tanh => Activation::Tanh,
        ElementwiseOp::HardSigmoid { alpha, beta } => Activation::HardSigmoid {
            alpha: *alpha,
            beta: *beta,
        },
        ElementwiseOp::HardSwish => Activation::HardSwish,
        ElementwiseOp::Clip { min, max } => {
            let lo = min.or(scalar(1)?).unwrap_or(f32::NEG_INFINITY);
            let hi = max.or(scalar(2)?).unwrap_or(f32::INFINITY);
            Activation::Clip { min: lo, max: hi }
        }
        _ => return None,
    })
}
