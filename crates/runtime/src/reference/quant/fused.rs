//! The slimnet-internal fused ops `QuantizedConv` and `QuantizedMatMul`, computed as
//! the QDQ graph they replace: quantize and dequantize the activation, dequantize
//! the weight, then the float product and the bias; and `WeightOnlyMatMul`, the
//! float product with a blocked-dequantized int4 weight.

use slimnet_ir::ops::nn::Conv;
use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::Op;
use slimnet_tensor::Tensor;

use super::super::util::{input, optional};
use super::linear::{dequantize, quantize};

/// `DequantizeLinear(QuantizeLinear(x))` with inputs 0 to 2, and the dequantized
/// weight (inputs 3 and 4; per-tensor, or per channel along `axis`).
fn operands(inputs: &[Option<&Tensor>], axis: i64) -> Result<(Tensor, Tensor), String> {
    let (x, xs, xz) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
    let q = quantize(x, xs, Some(xz), 1, 0, None, None)?;
    let x = dequantize(&q, xs, Some(xz), 1, 0, None)?;
    let (w, ws) = (input(inputs, 3)?, input(inputs, 4)?);
    let w = if ws.len() == 1 {
        let s = ws.clone().reshape(Vec::new()).map_err(|e| e.to_string())?;
        dequantize(w, &s, None, 1, 0, None)?
    } else {
        dequantize(w, ws, None, axis, 0, None)?
    };
    Ok((x, w))
}

pub(super) fn quantized_conv(c: &Conv, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    let (x, w) = operands(inputs, 0)?;
    let ins = [Some(&x), Some(&w), optional(inputs, 5)];
    Ok(crate::reference::nn::run(&NnOp::Conv(c.clone()), &ins, 1)?.remove(0))
}

pub(super) fn quantized_matmul(inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    let (x, w) = operands(inputs, 1)?;
    matmul_bias(&x, &w, optional(inputs, 5))
}

/// `MatMul(x, DequantizeLinear(w, w_scale, w_zero_point, axis 0, block_size)) + B`
/// (inputs `x, w, w_scale, [w_zero_point], [B]`).
pub(super) fn weight_only_matmul(
    block_size: i64,
    inputs: &[Option<&Tensor>],
) -> Result<Tensor, String> {
    let (x, w, ws) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
    if w.rank() != 2 {
        return Err(format!("w must be 2-D, got shape {:?}", w.shape()));
    }
    let w = dequantize(w, ws, optional(inputs, 3), 0, block_size, None)?;
    matmul_bias(x, &w, optional(inputs, 4))
}

fn matmul_bias(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor, String> {
    let y = crate::reference::nn::run(&NnOp::MatMul, &[Some(x), Some(w)], 1)?.remove(0);
    match bias {
        None => Ok(y),
        Some(b) => Ok(crate::reference::run_op(
            &Op::Elementwise(ElementwiseOp::Add),
            &[Some(&y), Some(b)],
            1,
        )?
        .remove(0)),
    }
}
