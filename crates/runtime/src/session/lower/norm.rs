//! Normalization and reductions over the last axis on f32: `LayerNormalization`, the
//! layer norm that older exporters spell out in nine nodes (ReduceMean, Sub, Pow,
//! ReduceMean, Add, Sqrt, Div, Mul, Add), and ReduceMean/ReduceSum/ReduceMax over
//! the last axis.

use slimnet_ir::ops::reduce::ReduceKind;
use slimnet_ir::ops::{ElementwiseOp, ReduceOp};
use slimnet_ir::{NodeId, Op, ValueId};
use slimnet_kernels::KernelTable;

use super::{constant_f32, is_f32, Context, Lowered, Lowering};

/// A reduction kind the fast step computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LastAxis {
    Mean,
    Sum,
    Max,
}

/// A step over the rows of a `[rows, cols]` view of its input (the last axis, or
/// for `LayerNormalization` the axes from `axis` on, being the columns).
///
/// Contract of [`NormStep::run`]: `x` holds `rows·cols` values; `out` holds
/// `rows·cols` values for a layer norm and `rows` for a reduction.
pub(crate) enum NormStep {
    /// `(x - mean)/sqrt(var + eps)·scale + bias` per row (population variance).
    LayerNorm {
        rows: usize,
        cols: usize,
        eps: f32,
        scale: Option<Vec<f32>>,
        bias: Option<Vec<f32>>,
    },
    /// One value per row.
    Reduce {
        kind: LastAxis,
        rows: usize,
        cols: usize,
    },
}

impl NormStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<(), String> {
        let e = |e: slimnet_kernels::KernelError| e.to_string();
        match self {
            NormStep::LayerNorm {
                rows,
                cols,
                eps,
                scale,
                bias,
            } => table
                .layer_norm(
                    x,
                    *rows,
                    *cols,
                    scale.as_deref(),
                    bias.as_deref(),
                    *eps,
                    out,
                )
                .map_err(e),
            NormStep::Reduce {
                kind: LastAxis::Mean,
                rows,
                cols,
            } => table.reduce_mean_last(x, *rows, *cols, out).map_err(e),
            NormStep::Reduce { kind, rows, cols } => {
                if x.len() != rows * cols || out.len() != *rows {
                    return Err(format!(
                        "reduction of {rows}x{cols} got {} inputs and {} outputs",
                        x.len(),
                        out.len()
                    ));
                }
                for (o, row) in out.iter_mut().zip(x.chunks_exact((*cols).max(1))) {
                    *o = match kind {
                        LastAxis::Max => row.iter().fold(f32::NEG_INFINITY, |m, &v| {
                            if v > m || v.is_nan() {
                                v
                            } else {
                                m
                            }
                        }),
                        _ => sum(row),
                    };
                }
                Ok(())
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            NormStep::LayerNorm { .. } => "layer_norm",
            NormStep::Reduce { .. } => "reduce_last",
        }
    }
}

/// A sum with eight partial sums (which the compiler keeps in vector lanes).
fn sum(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn step(kernel: NormStep, fused: Vec<NodeId>) -> Option<Lowering> {
    Some(Lowering {
        kernel: Lowered::Norm(kernel),
        fused,
        scratch_len: 0,
    })
}

fn layer_norm_step(
    rows: usize,
    cols: usize,
    eps: f32,
    scale: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
    fused: Vec<NodeId>,
) -> Option<Lowering> {
    step(
        NormStep::LayerNorm {
            rows,
            cols,
            eps,
            scale,
            bias,
        },
        fused,
    )
}

/// Lowers a reduction node: the layer-norm pattern starting at a ReduceMean, a
/// `LayerNormalization` whose only used output is `Y`, or a reduction over the last
/// axis alone.
pub(crate) fn lower_norm(ctx: &Context, n: NodeId) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let x = node.inputs.first().copied().flatten()?;
    let y = node.outputs.first().copied().flatten()?;
    if !is_f32(ctx, x) || !is_f32(ctx, y) {
        return None;
    }
    let shape = ctx.shapes[x].as_ref()?;
    match &node.op {
        Op::Reduce(ReduceOp::LayerNormalization { axis, epsilon, .. }) => {
            layer_normalization(ctx, n, *axis, *epsilon)
        }
        Op::Reduce(ReduceOp::Reduce { kind, .. }) => {
            if !reduces_last_axis(ctx, n) {
                return None;
            }
            let cols = *shape.last()?;
            let rows = shape.iter().product::<usize>() / cols.max(1);
            if *kind == ReduceKind::Mean {
                if let Some(l) = layer_norm_pattern(ctx, n, rows, cols) {
                    return Some(l);
                }
            }
            let kind = match kind {
                ReduceKind::Mean => LastAxis::Mean,
                ReduceKind::Sum => LastAxis::Sum,
                ReduceKind::Max => LastAxis::Max,
                _ => return None,
            };
            (cols > 0 && ctx.shapes[y].as_ref()?.iter().product::<usize>() == rows)
                .then(|| step(NormStep::Reduce { kind, rows, cols }, vec![]))?
        }
        _ => None,
    }
}

/// Whether reduction node `n` reduces exactly the last axis of its input (axes from
/// the attribute or a constant input), with any `keepdims`.
fn reduces_last_axis(ctx: &Context, n: NodeId) -> bool {
    let node = &ctx.graph.nodes[n];
    let Op::Reduce(ReduceOp::Reduce { axes, .. }) = &node.op else {
        return false;
    };
    let Some(rank) = node.inputs[0].and_then(|x| ctx.shapes[x].as_ref().map(Vec::len)) else {
        return false;
    };
    let axes: Vec<i64> = match (axes, node.inputs.get(1).copied().flatten()) {
        (Some(a), None) => a.clone(),
        (None, Some(v)) => match ctx.graph.values[v].constant.as_ref() {
            Some(t) => match t.to_i64_vec() {
                Ok(a) => a,
                Err(_) => return false,
            },
            None => return false,
        },
        _ => return false,
    };
    rank > 0 && matches!(axes[..], [a] if a == -1 || a == rank as i64 - 1)
}

/// The one node reading `v`, when nothing else (not even the graph's outputs) does.
fn sole_reader(ctx: &Context, v: ValueId) -> Option<NodeId> {
    match ctx.consumers[v][..] {
        [c] if c != usize::MAX => Some(c),
        _ => None,
    }
}

fn output0(ctx: &Context, n: NodeId) -> Option<ValueId> {
    let node = &ctx.graph.nodes[n];
    (node.outputs.len() == 1)
        .then_some(node.outputs[0])
        .flatten()
}

/// The inputs of binary elementwise node `n` if its op satisfies `is_op`.
fn binary_of(
    ctx: &Context,
    n: NodeId,
    is_op: fn(&ElementwiseOp) -> bool,
) -> Option<(ValueId, ValueId)> {
    let node = &ctx.graph.nodes[n];
    match &node.op {
        Op::Elementwise(e) if is_op(e) && node.inputs.len() == 2 => {
            Some((node.inputs[0]?, node.inputs[1]?))
        }
        _ => None,
    }
}

fn is_sub(e: &ElementwiseOp) -> bool {
    matches!(e, ElementwiseOp::Sub)
}
fn is_pow(e: &ElementwiseOp) -> bool {
    matches!(e, ElementwiseOp::Pow)
}
fn is_add(e: &ElementwiseOp) -> bool {
    matches!(e, ElementwiseOp::Add)
}
fn is_mul(e: &ElementwiseOp) -> bool {
    matches!(e, ElementwiseOp::Mul)
}
fn is_div(e: &ElementwiseOp) -> bool {
    matches!(e, ElementwiseOp::Div)
}

/// A constant that broadcasts along the last axis of a `[.., cols]` value without
/// widening it: a scalar (repeated) or `cols` values in a shape `[1, .., 1, cols]`.
fn per_column(ctx: &Context, v: ValueId, cols: usize, rank: usize) -> Option<Vec<f32>> {
    let data = constant_f32(ctx, v)?;
    let shape = ctx.shapes[v].as_ref()?;
    if shape.len() > rank {
        return None;
    }
    match data.len() {
        1 => Some(vec![data[0]; cols]),
        len if len == cols && shape.last() == Some(&cols) => Some(data.to_vec()),
        _ => None,
    }
}

/// The other operand of commutative node `n` when one of its inputs is `v`.
fn other_operand(
    ctx: &Context,
    n: NodeId,
    is_op: fn(&ElementwiseOp) -> bool,
    v: ValueId,
) -> Option<ValueId> {
    match binary_of(ctx, n, is_op)? {
        (a, b) if a == v => Some(b),
        (a, b) if b == v => Some(a),
        _ => None,
    }
}

/// Matches `mean = ReduceMean(x)` (node `n0`), `d = x - mean`, `Pow(d, 2)`,
/// `ReduceMean`, `+ eps`, `Sqrt`, `d / sqrt`, then optionally `· gamma` and
/// `+ beta` (constants along the last axis), every intermediate read only by the
/// next node of the pattern (and `d` by the Pow and the Div).
fn layer_norm_pattern(ctx: &Context, n0: NodeId, rows: usize, cols: usize) -> Option<Lowering> {
    let g = ctx.graph;
    let x = g.nodes[n0].inputs[0]?;
    let rank = ctx.shapes[x].as_ref()?.len();
    let keeps = |n: NodeId| {
        matches!(
            &g.nodes[n].op,
            Op::Reduce(ReduceOp::Reduce {
                kind: ReduceKind::Mean,
                keepdims: true,
                ..
            })
        ) && reduces_last_axis(ctx, n)
    };
    if !keeps(n0) {
        return None;
    }
    let mean = output0(ctx, n0)?;
    let sub = sole_reader(ctx, mean)?;
    if binary_of(ctx, sub, is_sub)? != (x, mean) {
        return None;
    }
    let d = output0(ctx, sub)?;
    let [r1, r2] = ctx.consumers[d][..] else {
        return None;
    };
    let (pow, div) = if binary_of(ctx, r1, is_pow).is_some() {
        (r1, r2)
    } else {
        (r2, r1)
    };
    if pow == usize::MAX || div == usize::MAX {
        return None;
    }
    let (pd, exponent) = binary_of(ctx, pow, is_pow)?;
    if pd != d || constant_f32(ctx, exponent)? != [2.0] {
        return None;
    }
    let sq = output0(ctx, pow)?;
    let mean2 = sole_reader(ctx, sq)?;
    if !keeps(mean2) || g.nodes[mean2].inputs[0]? != sq {
        return None;
    }
    let var = output0(ctx, mean2)?;
    let add_eps = sole_reader(ctx, var)?;
    let eps = match constant_f32(ctx, other_operand(ctx, add_eps, is_add, var)?)? {
        [e] => *e,
        _ => return None,
    };
    let ve = output0(ctx, add_eps)?;
    let sqrt = sole_reader(ctx, ve)?;
    if !matches!(g.nodes[sqrt].op, Op::Elementwise(ElementwiseOp::Sqrt))
        || g.nodes[sqrt].inputs.first().copied().flatten() != Some(ve)
    {
        return None;
    }
    let sd = output0(ctx, sqrt)?;
    if sole_reader(ctx, sd)? != div || binary_of(ctx, div, is_div)? != (d, sd) {
        return None;
    }
    let mut fused = vec![sub, pow, mean2, add_eps, sqrt, div];
    let mut last = output0(ctx, div)?;
    let mut scale = None;
    let mut bias = None;
    if let Some(mul) = sole_reader(ctx, last) {
        if let Some(s) =
            other_operand(ctx, mul, is_mul, last).and_then(|v| per_column(ctx, v, cols, rank))
        {
            scale = Some(s);
            fused.push(mul);
            last = output0(ctx, mul)?;
        }
    }
    if let Some(add) = sole_reader(ctx, last) {
        if let Some(b) =
            other_operand(ctx, add, is_add, last).and_then(|v| per_column(ctx, v, cols, rank))
        {
            bias = Some(b);
            fused.push(add);
            last = output0(ctx, add)?;
        }
    }
    if !is_f32(ctx, last) || ctx.shapes[last] != ctx.shapes[x] {
        return None;
    }
    layer_norm_step(rows, cols, eps, scale, bias, fused)
}

/// `LayerNormalization` over axes `axis..` with constant (or absent) scale and bias
/// of that many values, when its Mean and InvStdDev outputs are unused.
fn layer_normalization(ctx: &Context, n: NodeId, axis: i64, eps: f32) -> Option<Lowering> {
    let node = &ctx.graph.nodes[n];
    let shape = ctx.shapes[node.inputs[0]?].as_ref()?;
    let rank = shape.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return None;
    }
    if node.outputs[1..]
        .iter()
        .flatten()
        .any(|&v| !ctx.consumers[v].is_empty())
    {
        return None;
    }
    let cols: usize = shape[axis as usize..].iter().product();
    let rows = shape.iter().product::<usize>() / cols.max(1);
    let operand = |k: usize| -> Option<Option<Vec<f32>>> {
        match node.inputs.get(k).copied().flatten() {
            None => Some(None),
            Some(v) => {
                let data = constant_f32(ctx, v)?;
                (data.len() == cols).then(|| Some(data.to_vec()))
            }
        }
    };
    let (scale, bias) = (operand(1)?, operand(2)?);
    if cols == 0 || ctx.shapes[node.outputs[0]?].as_ref() != Some(shape) {
        return None;
    }
    layer_norm_step(rows, cols, eps, scale, bias, vec![])
}
