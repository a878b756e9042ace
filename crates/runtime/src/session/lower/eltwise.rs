//! Elementwise f32 nodes: activations, unary math, binary arithmetic with the
//! broadcasts the kernels stream (same shape, a scalar, one operand varying along a
//! middle block of axes), and softmax along the last axis.

use slimnet_ir::ops::{ElementwiseOp, ReduceOp};
use slimnet_ir::{NodeId, Op};
use slimnet_kernels::eltwise::{BinaryLayout, BinaryOp, UnaryOp};
use slimnet_kernels::{Activation, KernelTable, Threads};

use super::{activation_of, constant_f32, fusable_activation, is_f32, Context, Lowered, Lowering};

/// An elementwise step.
pub(crate) enum EltwiseStep {
    Activation(Activation),
    Unary(UnaryOp),
    /// A binary op, then an activation fused from the node that follows.
    Binary {
        op: BinaryOp,
        layout: BinaryLayout,
        activation: Activation,
    },
    /// Softmax (or log-softmax) over rows of `cols` elements.
    Softmax {
        rows: usize,
        cols: usize,
        log: bool,
    },
    /// `x * scale[c] + shift[c]` along a channel axis (inference BatchNormalization
    /// with its statistics folded at plan time).
    ChannelAffine {
        scale: Vec<f32>,
        shift: Vec<f32>,
        layout: BinaryLayout,
    },
}

impl EltwiseStep {
    /// Runs the step; `b` is the second operand of binary ops.
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        a: &[f32],
        b: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<(), String> {
        let e = |e: slimnet_kernels::KernelError| e.to_string();
        match self {
            EltwiseStep::Activation(act) => {
                table.activate_into_par(*act, a, out, threads).map_err(e)
            }
            EltwiseStep::Unary(op) => table.unary_par(*op, a, out, threads).map_err(e),
            EltwiseStep::Binary {
                op,
                layout,
                activation,
            } => {
                let b = b.ok_or("second operand missing")?;
                table
                    .binary_par(*op, a, b, out, *layout, threads)
                    .map_err(e)?;
                if *activation != Activation::Identity {
                    table.activate_par(*activation, out, threads);
                }
                Ok(())
            }
            EltwiseStep::ChannelAffine {
                scale,
                shift,
                layout,
            } => {
                table
                    .binary_par(BinaryOp::Mul, a, scale, out, *layout, threads)
                    .map_err(e)?;
                table
                    .binary_inplace_par(BinaryOp::Add, out, shift, *layout, true, threads)
                    .map_err(e)
            }
            EltwiseStep::Softmax { rows, cols, log } => {
                out.copy_from_slice(a);
                if *log {
                    table.log_softmax(out, *rows, *cols).map_err(e)
                } else {
                    table.softmax(out, *rows, *cols).map_err(e)
                }
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            EltwiseStep::Activation(_) => "activation",
            EltwiseStep::Unary(_) => "unary",
            EltwiseStep::Binary { .. } => "binary",
            EltwiseStep::Softmax { .. } => "softmax",
            EltwiseStep::ChannelAffine { .. } => "channel_affine",
        }
    }
}

fn step(kernel: EltwiseStep, fused: Vec<NodeId>) -> Option<Lowering> {
    Some(Lowering {
        kernel: Lowered::Eltwise(kernel),
        fused,
        scratch_len: 0,
    })
}

/// Lowers an elementwise or softmax node on f32 values of known shapes.
pub(crate) fn lower_eltwise(ctx: &Context, n: NodeId) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let x = node.inputs.first().copied().flatten()?;
    let y = node.outputs.first().copied().flatten()?;
    if !is_f32(ctx, x) || !is_f32(ctx, y) || node.outputs.len() != 1 {
        return None;
    }
    if let Some(act) = activation_of(ctx, n, x) {
        return (ctx.shapes[x] == ctx.shapes[y])
            .then(|| step(EltwiseStep::Activation(act), vec![]))?;
    }
    let unary = |op| (node.inputs.len() == 1).then(|| step(EltwiseStep::Unary(op), vec![]))?;
    match &node.op {
        Op::Elementwise(e) => match e {
            ElementwiseOp::Exp => unary(UnaryOp::Exp),
            ElementwiseOp::Log => unary(UnaryOp::Log),
            ElementwiseOp::Sqrt => unary(UnaryOp::Sqrt),
            ElementwiseOp::Neg => unary(UnaryOp::Neg),
            ElementwiseOp::Abs => unary(UnaryOp::Abs),
            ElementwiseOp::Reciprocal => unary(UnaryOp::Reciprocal),
            ElementwiseOp::Erf => unary(UnaryOp::Erf),
            ElementwiseOp::Floor => unary(UnaryOp::Floor),
            ElementwiseOp::Ceil => unary(UnaryOp::Ceil),
            ElementwiseOp::Round => unary(UnaryOp::Round),
            ElementwiseOp::Add => binary(ctx, n, BinaryOp::Add),
            ElementwiseOp::Sub => binary(ctx, n, BinaryOp::Sub),
            ElementwiseOp::Mul => binary(ctx, n, BinaryOp::Mul),
            ElementwiseOp::Div => binary(ctx, n, BinaryOp::Div),
            ElementwiseOp::Pow => binary(ctx, n, BinaryOp::Pow),
            ElementwiseOp::Max if node.inputs.len() == 2 => binary(ctx, n, BinaryOp::Max),
            ElementwiseOp::Min if node.inputs.len() == 2 => binary(ctx, n, BinaryOp::Min),
            _ => None,
        },
        Op::Reduce(ReduceOp::Softmax { axis, coerce_2d }) => {
            softmax(ctx, n, *axis, *coerce_2d, false)
        }
        Op::Reduce(ReduceOp::LogSoftmax { axis, coerce_2d }) => {
            softmax(ctx, n, *axis, *coerce_2d, true)
        }
        _ => None,
    }
}

fn softmax(ctx: &Context, n: NodeId, axis: i64, coerce_2d: bool, log: bool) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let shape = ctx.shapes[node.inputs[0]?].as_ref()?;
    let rank = shape.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) || (!coerce_2d && axis != rank - 1) {
        return None;
    }
    let cols: usize = shape[axis as usize..].iter().product();
    let total: usize = shape.iter().product();
    if cols == 0 {
        return None;
    }
    step(
        EltwiseStep::Softmax {
            rows: total / cols,
            cols,
            log,
        },
        vec![],
    )
}

/// The layout of `small` broadcast against `out` when `small` varies only along one
/// contiguous block of `out`'s axes (all of them: same shape; none: a scalar).
fn mid_block(small: &[usize], out: &[usize]) -> Option<(usize, usize, usize)> {
    if small.len() > out.len() {
        return None;
    }
    let padded: Vec<usize> = std::iter::repeat_n(1, out.len() - small.len())
        .chain(small.iter().copied())
        .collect();
    let varying: Vec<usize> = (0..out.len()).filter(|&i| padded[i] != 1).collect();
    let (Some(&first), Some(&last)) = (varying.first(), varying.last()) else {
        return Some((out.iter().product(), 1, 1));
    };
    if (first..=last).any(|i| padded[i] != out[i]) {
        return None;
    }
    Some((
        out[..first].iter().product(),
        out[first..=last].iter().product(),
        out[last + 1..].iter().product(),
    ))
}

fn binary(ctx: &Context, n: NodeId, op: BinaryOp) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let (a, b) = (
        node.inputs.first().copied()??,
        node.inputs.get(1).copied()??,
    );
    let y = node.outputs[0]?;
    if !is_f32(ctx, b) {
        return None;
    }
    let (sa, sb, so) = (
        ctx.shapes[a].as_ref()?,
        ctx.shapes[b].as_ref()?,
        ctx.shapes[y].as_ref()?,
    );
    let total: usize = so.iter().product();
    let (la, lb): (usize, usize) = (sa.iter().product(), sb.iter().product());
    let layout = if la == total && lb == total && sa == sb {
        BinaryLayout::Same
    } else if la == total && lb == 1 {
        BinaryLayout::ScalarB
    } else if lb == total && la == 1 {
        BinaryLayout::ScalarA
    } else if la == total && sa.len() <= so.len() && sa[..] == so[so.len() - sa.len()..] {
        let (outer, mid, inner) = mid_block(sb, so)?;
        BinaryLayout::MidB { outer, mid, inner }
    } else if lb == total && sb.len() <= so.len() && sb[..] == so[so.len() - sb.len()..] {
        let (outer, mid, inner) = mid_block(sa, so)?;
        BinaryLayout::MidA { outer, mid, inner }
    } else {
        return None;
    };
    let (fused, activation) = match fusable_activation(ctx, y) {
        Some((nodes, act)) => (nodes, act),
        None => (Vec::new(), Activation::Identity),
    };
    step(
        EltwiseStep::Binary {
            op,
            layout,
            activation,
        },
        fused,
    )
}

/// Lowers an inference BatchNormalization with constant statistics on an f32 input
/// to one per-channel affine step: `scale = gamma / sqrt(var + eps)` and
/// `shift = beta - mean * scale`, computed in f64 and rounded once.
pub(crate) fn lower_batchnorm(ctx: &Context, n: NodeId, epsilon: f32) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let x = node.inputs.first().copied().flatten()?;
    let y = node.outputs.first().copied().flatten()?;
    if node.outputs.iter().skip(1).any(Option::is_some) || !is_f32(ctx, x) || !is_f32(ctx, y) {
        return None;
    }
    let shape = ctx.shapes[x].as_ref()?;
    if shape.len() < 2 {
        return None;
    }
    let c = shape[1];
    let param = |i: usize| -> Option<&[f32]> {
        let v = constant_f32(ctx, node.inputs.get(i).copied().flatten()?)?;
        (v.len() == c).then_some(v)
    };
    let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for i in 0..c {
        let s = f64::from(gamma[i]) / (f64::from(var[i]) + f64::from(epsilon)).sqrt();
        scale.push(s as f32);
        shift.push((f64::from(beta[i]) - f64::from(mean[i]) * s) as f32);
    }
    let layout = BinaryLayout::MidB {
        outer: shape[0],
        mid: c,
        inner: shape[2..].iter().product(),
    };
    step(
        EltwiseStep::ChannelAffine {
            scale,
            shift,
            layout,
        },
        Vec::new(),
    )
}
