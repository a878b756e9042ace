//! Pooling on f32 NCHW: 2-D max and average pooling, and global average pooling.

use slimnet_ir::ops::nn::Window;
use slimnet_ir::ops::NnOp;
use slimnet_ir::{NodeId, Op};
use slimnet_kernels::eltwise::Pool2dParams;
use slimnet_kernels::{KernelTable, Threads};

use super::{is_f32, Context, Lowered, Lowering};

/// A pooling step.
pub(crate) enum PoolStep {
    Max(Pool2dParams),
    Average(Pool2dParams),
    /// One mean per `spatial`-element plane, `planes` of them.
    GlobalAverage {
        planes: usize,
        spatial: usize,
    },
}

impl PoolStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<(), String> {
        match self {
            PoolStep::Max(p) => table.max_pool2d(p, x, out, threads),
            PoolStep::Average(p) => table.avg_pool2d(p, x, out, threads),
            PoolStep::GlobalAverage { planes, spatial } => {
                table.global_avg_pool(x, *planes, *spatial, out, threads)
            }
        }
        .map_err(|e| e.to_string())
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            PoolStep::Max(_) => "max_pool2d",
            PoolStep::Average(_) => "avg_pool2d",
            PoolStep::GlobalAverage { .. } => "global_avg_pool",
        }
    }
}

/// Lowers a pooling node on a 4-D f32 input (global average pooling: any rank ≥ 3).
pub(crate) fn lower_pool(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let (Some(Some(x)), Some(Some(y))) = (node.inputs.first(), node.outputs.first()) else {
        return Ok(None);
    };
    if node.outputs.iter().skip(1).any(Option::is_some) || !is_f32(ctx, *x) || !is_f32(ctx, *y) {
        return Ok(None);
    }
    let (Some(xs), Some(ys)) = (ctx.shapes[*x].as_ref(), ctx.shapes[*y].as_ref()) else {
        return Ok(None);
    };
    let step = match &node.op {
        Op::Nn(NnOp::GlobalAveragePool) if xs.len() >= 3 => PoolStep::GlobalAverage {
            planes: xs[0] * xs[1],
            spatial: xs[2..].iter().product(),
        },
        Op::Nn(NnOp::MaxPool(p)) if xs.len() == 4 => match params(&p.window, xs, ys, false)? {
            Some(params) => PoolStep::Max(params),
            None => return Ok(None),
        },
        Op::Nn(NnOp::AveragePool(p)) if xs.len() == 4 => {
            match params(&p.window, xs, ys, p.count_include_pad)? {
                Some(params) => PoolStep::Average(params),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Lowering {
        kernel: Lowered::Pool(step),
        fused: Vec::new(),
        scratch_len: 0,
    }))
}

fn params(
    window: &Window,
    xs: &[usize],
    ys: &[usize],
    count_include_pad: bool,
) -> Result<Option<Pool2dParams>, String> {
    let kernel: Vec<usize> = window
        .kernel_shape
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| "negative kernel extent".to_string()))
        .collect::<Result<_, _>>()?;
    let r = window.resolve(&xs[2..], &kernel)?;
    let pad = |v: i64| usize::try_from(v).ok();
    let (Some(pad_top), Some(pad_left), Some(pad_bottom), Some(pad_right)) = (
        pad(r.pads_begin[0]),
        pad(r.pads_begin[1]),
        pad(r.pads_end[0]),
        pad(r.pads_end[1]),
    ) else {
        return Ok(None);
    };
    Ok(Some(Pool2dParams {
        batch: xs[0],
        channels: xs[1],
        in_h: xs[2],
        in_w: xs[3],
        kernel_h: kernel[0],
        kernel_w: kernel[1],
        stride_h: r.strides[0],
        stride_w: r.strides[1],
        dilation_h: r.dilations[0],
        dilation_w: r.dilations[1],
        pad_top,
        pad_left,
        pad_bottom,
        pad_right,
        out_h: ys[2],
        out_w: ys[3],
        count_include_pad,
    }))
}
