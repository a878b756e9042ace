//! Conv on f32 NCHW (1-D convolutions as 2-D with a height of one) with constant
//! weights: weights packed once, bias and a following activation fused.

use slimnet_ir::ops::nn::Conv;
use slimnet_ir::NodeId;
use slimnet_kernels::conv::{Conv2dParams, PackedConvWeights};
use slimnet_kernels::{Activation, KernelTable, Threads};

use super::{constant_f32, fusable_activation, is_f32, Context, Lowered, Lowering};

/// A convolution ready to run.
pub(crate) struct ConvStep {
    pub params: Conv2dParams,
    pub weights: PackedConvWeights,
    pub bias: Option<Vec<f32>>,
    pub activation: Activation,
    /// The kernel path the table takes for these parameters.
    pub path: &'static str,
}

impl ConvStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), String> {
        table
            .conv2d(
                &self.params,
                input,
                &self.weights,
                self.bias.as_deref(),
                self.activation,
                output,
                scratch,
                threads,
            )
            .map_err(|e| e.to_string())
    }
}

/// Lowers a 1-D or 2-D Conv whose input is f32 with a known shape and whose weights
/// (and bias, if any) are constants.
pub(crate) fn lower_conv(
    ctx: &Context,
    n: NodeId,
    conv: &Conv,
) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let (Some(Some(x)), Some(Some(w)), Some(Some(y))) = (
        node.inputs.first(),
        node.inputs.get(1),
        node.outputs.first(),
    ) else {
        return Ok(None);
    };
    if !is_f32(ctx, *x) || !is_f32(ctx, *y) {
        return Ok(None);
    }
    let (Some(xs), Some(ws), Some(weights)) = (
        ctx.shapes[*x].as_ref(),
        ctx.shapes[*w].as_ref(),
        constant_f32(ctx, *w),
    ) else {
        return Ok(None);
    };
    if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
        return Ok(None);
    }
    let bias = match node.inputs.get(2).copied().flatten() {
        None => None,
        Some(b) => match constant_f32(ctx, b) {
            Some(data) => Some(data.to_vec()),
            None => return Ok(None),
        },
    };
    let Some(params) = conv_params(conv, xs, ws)? else {
        return Ok(None);
    };
    let out_len: usize = ctx.shapes[*y].as_ref().map_or(0, |s| s.iter().product());
    if params.check().is_err() || params.output_len() != out_len {
        return Ok(None);
    }
    let packed = ctx
        .table
        .pack_conv_weights(&params, weights)
        .map_err(|e| e.to_string())?;
    let scratch_len = ctx.table.conv2d_scratch_len(&params, ctx.threads);
    let mut fused = Vec::new();
    let mut activation = Activation::Identity;
    if let Some((nodes, act)) = fusable_activation(ctx, *y) {
        activation = act;
        fused = nodes;
    }
    Ok(Some(Lowering {
        kernel: Lowered::Conv(Box::new(ConvStep {
            params,
            weights: packed,
            bias,
            activation,
            path: ctx.table.conv2d_path(&params),
        })),
        fused,
        scratch_len,
    }))
}

/// The 2-D parameters of a 1-D or 2-D convolution with input shape `xs` and weight
/// shape `ws` (`None` when the ranks do not fit).
pub(crate) fn conv_params(
    conv: &Conv,
    xs: &[usize],
    ws: &[usize],
) -> Result<Option<Conv2dParams>, String> {
    if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
        return Ok(None);
    }
    let window = conv.window.resolve(&xs[2..], &ws[2..])?;
    let two_d = xs.len() == 4;
    let at = |v: &[usize], i: usize| if two_d { v[i] } else { 1 };
    let last = |v: &[usize]| v[v.len() - 1];
    let pad = |v: &[i64], i: usize| -> Result<usize, String> {
        usize::try_from(v[i]).map_err(|_| "negative padding".to_string())
    };
    let (pads_top, pads_bottom) = if two_d {
        (pad(&window.pads_begin, 0)?, pad(&window.pads_end, 0)?)
    } else {
        (0, 0)
    };
    let (pad_left, pad_right) = (
        pad(&window.pads_begin, window.pads_begin.len() - 1)?,
        pad(&window.pads_end, window.pads_end.len() - 1)?,
    );
    let params = Conv2dParams {
        batch: xs[0],
        in_channels: xs[1],
        in_h: at(xs, 2),
        in_w: last(xs),
        out_channels: ws[0],
        kernel_h: at(ws, 2),
        kernel_w: last(ws),
        stride_h: at(&window.strides, 0),
        stride_w: last(&window.strides),
        dilation_h: at(&window.dilations, 0),
        dilation_w: last(&window.dilations),
        pad_top: pads_top,
        pad_left,
        pad_bottom: pads_bottom,
        pad_right,
        groups: usize::try_from(conv.group).map_err(|_| "negative group".to_string())?,
    };
    Ok(Some(params))
}
