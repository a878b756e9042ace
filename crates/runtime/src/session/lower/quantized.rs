//! The fused quantized ops (made by the QDQ fusion pass) on integer kernels: the f32
//! activation is quantized to uint8 into scratch, multiplied by the packed int8
//! weights with exact i32 accumulation, and written back as f32 through an epilogue
//! that applies both scales, the bias and a following activation.

use slimnet_ir::ops::nn::Conv;
use slimnet_ir::{NodeId, ValueId};
use slimnet_kernels::conv::Conv2dParams;
use slimnet_kernels::qgemm::{pack_qweights_rhs, PackedQConvWeights, PackedQWeightsRhs, QEpilogue};
use slimnet_kernels::{Activation, KernelTable, Threads};
use slimnet_tensor::DType;

use super::conv::conv_params;
use super::{constant_f32, fusable_activation, is_f32, Context, Lowered, Lowering};

/// The activation's quantization, as uint8 (an int8 zero point `z` is uint8 `z + 128`
/// on values shifted by 128, which gives the same products).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActQuant {
    scale: f32,
    zero: u8,
}

/// A quantized convolution ready to run.
pub(crate) struct QConvStep {
    params: Conv2dParams,
    weights: PackedQConvWeights,
    act: ActQuant,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

/// A quantized `[..., K] × [K, N]` product ready to run.
pub(crate) struct QMatMulStep {
    m: usize,
    weights: PackedQWeightsRhs,
    act: ActQuant,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

/// `len` bytes at the start of the f32 scratch.
fn bytes(scratch: &mut [f32], len: usize) -> Result<&mut [u8], String> {
    if scratch.len() * 4 < len {
        return Err("scratch too small".into());
    }
    // SAFETY: the scratch holds at least `len` bytes, u8 has no alignment or validity
    // requirement, and the f32 borrow is held for the byte slice's lifetime.
    Ok(unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr() as *mut u8, len) })
}

fn scratch_for(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

impl ActQuant {
    /// Quantizes `input` into the start of `scratch` and returns those bytes with the
    /// epilogue that undoes this quantization, adds `bias` and applies `activation`.
    fn quantize<'s, 'b>(
        &self,
        table: &KernelTable,
        input: &[f32],
        scratch: &'s mut [f32],
        bias: Option<&'b [f32]>,
        activation: Activation,
    ) -> Result<(&'s mut [u8], QEpilogue<'b>), String> {
        let x = bytes(scratch, input.len())?;
        table
            .quantize_u8(input, self.scale, self.zero, x)
            .map_err(|e| e.to_string())?;
        let epi = QEpilogue {
            x_scale: self.scale,
            x_zero: self.zero,
            bias,
            activation,
        };
        Ok((x, epi))
    }
}

impl QConvStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), String> {
        let (x, epi) =
            self.act
                .quantize(table, input, scratch, self.bias.as_deref(), self.activation)?;
        table
            .qconv2d(&self.params, x, &self.weights, &epi, output, threads)
            .map_err(|e| e.to_string())
    }
}

impl QMatMulStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), String> {
        let (x, epi) =
            self.act
                .quantize(table, input, scratch, self.bias.as_deref(), self.activation)?;
        let (k, n) = (self.weights.k(), self.weights.n());
        table
            .qgemm_rhs(x, k, self.m, &self.weights, output, n, &epi, threads)
            .map_err(|e| e.to_string())
    }
}

/// Inputs 1 and 2: the activation's scale and zero point.
fn act_quant(ctx: &Context, scale: ValueId, zero: ValueId) -> Option<ActQuant> {
    let scale = *constant_f32(ctx, scale)?.first()?;
    let z = ctx.graph.values[zero].constant.as_deref()?;
    let zero = match z.dtype() {
        DType::U8 => *z.as_slice::<u8>().ok()?.first()?,
        DType::I8 => (*z.as_slice::<i8>().ok()?.first()? as i16 + 128) as u8,
        _ => return None,
    };
    (scale > 0.0 && scale.is_finite()).then_some(ActQuant { scale, zero })
}

/// The operands every fused quantized op shares: `(x, y, act, w, scales, bias)`.
#[allow(clippy::type_complexity)]
fn operands<'a>(
    ctx: &Context<'a>,
    n: NodeId,
) -> Option<(
    ValueId,
    ValueId,
    ActQuant,
    &'a [i8],
    &'a [f32],
    Option<Vec<f32>>,
)> {
    let node = &ctx.graph.nodes[n];
    let at = |k: usize| node.inputs.get(k).copied().flatten();
    let (x, y) = (at(0)?, (*node.outputs.first()?)?);
    if !is_f32(ctx, x) || !is_f32(ctx, y) {
        return None;
    }
    let act = act_quant(ctx, at(1)?, at(2)?)?;
    let w = ctx.graph.values[at(3)?].constant.as_deref()?;
    if w.dtype() != DType::I8 {
        return None;
    }
    let scales = constant_f32(ctx, at(4)?)?;
    let bias = match at(5) {
        None => None,
        Some(b) => Some(constant_f32(ctx, b)?.to_vec()),
    };
    Some((x, y, act, w.as_slice::<i8>().ok()?, scales, bias))
}

fn activation_after(ctx: &Context, y: ValueId) -> (Vec<NodeId>, Activation) {
    fusable_activation(ctx, y).unwrap_or((Vec::new(), Activation::Identity))
}

/// Lowers a `QuantizedConv` whose shapes are known.
pub(crate) fn lower_qconv(
    ctx: &Context,
    n: NodeId,
    conv: &Conv,
) -> Result<Option<Lowering>, String> {
    let Some((x, y, act, w, scales, bias)) = operands(ctx, n) else {
        return Ok(None);
    };
    let w_value = ctx.graph.nodes[n].inputs[3].expect("checked");
    let (Some(xs), Some(ws)) = (ctx.shapes[x].as_ref(), ctx.shapes[w_value].as_ref()) else {
        return Ok(None);
    };
    let Some(params) = conv_params(conv, xs, ws)? else {
        return Ok(None);
    };
    let out_len: usize = ctx.shapes[y].as_ref().map_or(0, |s| s.iter().product());
    if params.check().is_err()
        || params.output_len() != out_len
        || bias
            .as_ref()
            .is_some_and(|b| b.len() != params.out_channels)
    {
        return Ok(None);
    }
    let weights = ctx
        .table
        .pack_qconv_weights(&params, w, scales)
        .map_err(|e| e.to_string())?;
    let (fused, activation) = activation_after(ctx, y);
    Ok(Some(Lowering {
        kernel: Lowered::QConv(Box::new(QConvStep {
            params,
            weights,
            act,
            bias,
            activation,
        })),
        fused,
        scratch_len: scratch_for(params.input_len()),
    }))
}

/// Lowers a `QuantizedMatMul` with a 2-D weight and known shapes.
pub(crate) fn lower_qmatmul(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let Some((x, y, act, w, scales, bias)) = operands(ctx, n) else {
        return Ok(None);
    };
    let w_value = ctx.graph.nodes[n].inputs[3].expect("checked");
    let (Some(xs), Some(ws)) = (ctx.shapes[x].as_ref(), ctx.shapes[w_value].as_ref()) else {
        return Ok(None);
    };
    if ws.len() != 2 || xs.is_empty() || xs[xs.len() - 1] != ws[0] {
        return Ok(None);
    }
    let (k, cols) = (ws[0], ws[1]);
    let m: usize = xs[..xs.len() - 1].iter().product();
    let out_len: usize = ctx.shapes[y].as_ref().map_or(0, |s| s.iter().product());
    if out_len != m * cols || bias.as_ref().is_some_and(|b| b.len() != cols) {
        return Ok(None);
    }
    let weights = pack_qweights_rhs(k, cols, w, scales).map_err(|e| e.to_string())?;
    let (fused, activation) = activation_after(ctx, y);
    Ok(Some(Lowering {
        kernel: Lowered::QMatMul(Box::new(QMatMulStep {
            m,
            weights,
            act,
            bias,
            activation,
        })),
        fused,
        scratch_len: scratch_for(m * k),
    }))
}
