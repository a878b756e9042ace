//! Reference kernels of the quantization family, following the ONNX reference
//! implementation: integers are combined exactly (in `i64`), products are scaled
//! in `f64` by multipliers computed in the scales' own float type, then rounded
//! half to even and saturated to the output type's range.

mod fused;
mod integer;
mod linear;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::QuantOp;
use slimnet_tensor::{bf16, f16, DType, Tensor};

use super::util::{input, optional, reason};

pub use linear::{quantize_value, saturate};

/// Runs a quantization-family op.
pub fn run(
    op: &QuantOp,
    inputs: &[Option<&Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    match op {
        QuantOp::Quantize {
            axis,
            block_size,
            output_dtype,
            precision,
            ..
        } => linear::quantize(
            input(inputs, 0)?,
            input(inputs, 1)?,
            optional(inputs, 2),
            *axis,
            *block_size,
            *output_dtype,
            *precision,
        )
        .map(|t| vec![t]),
        QuantOp::Dequantize {
            axis,
            block_size,
            output_dtype,
        } => linear::dequantize(
            input(inputs, 0)?,
            input(inputs, 1)?,
            optional(inputs, 2),
            *axis,
            *block_size,
            *output_dtype,
        )
        .map(|t| vec![t]),
        QuantOp::DynamicQuantize => linear::dynamic_quantize(input(inputs, 0)?),
        QuantOp::MatMulInteger => integer::matmul_integer(
            input(inputs, 0)?,
            input(inputs, 1)?,
            optional(inputs, 2),
            optional(inputs, 3),
        )
        .map(|t| vec![t]),
        QuantOp::ConvInteger(c) => integer::conv_integer(
            c,
            input(inputs, 0)?,
            input(inputs, 1)?,
            optional(inputs, 2),
            optional(inputs, 3),
        )
        .map(|t| vec![t]),
        QuantOp::QLinearMatMul => integer::qlinear_matmul(
            [input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?],
            [input(inputs, 3)?, input(inputs, 4)?, input(inputs, 5)?],
            input(inputs, 6)?,
            input(inputs, 7)?,
        )
        .map(|t| vec![t]),
        QuantOp::QLinearConv(c) => integer::qlinear_conv(
            c,
            [input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?],
            [input(inputs, 3)?, input(inputs, 4)?, input(inputs, 5)?],
            input(inputs, 6)?,
            input(inputs, 7)?,
            optional(inputs, 8),
        )
        .map(|t| vec![t]),
        QuantOp::QuantizedConv(c) => fused::quantized_conv(c, inputs).map(|t| vec![t]),
        QuantOp::QuantizedMatMul => fused::quantized_matmul(inputs).map(|t| vec![t]),
        QuantOp::WeightOnlyMatMul { block_size } => {
            fused::weight_only_matmul(*block_size, inputs).map(|t| vec![t])
        }
    }
}

/// The range of a quantized integer type.
pub fn dtype_range(d: DType) -> Result<(i64, i64), String> {
    Ok(match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I4 => (-8, 7),
        DType::U4 => (0, 15),
        d => {
            return Err(format!(
                "quantized type {d} is not supported (int4, uint4, int8, uint8, int16, uint16, int32 are)"
            ))
        }
    })
}

/// `v` rounded to the nearest value of float type `d` (as arithmetic in `d` would
/// leave it).
fn in_dtype(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// The elements of an integer tensor of a quantized type, as `i64`.
fn ints(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    dtype_range(t.dtype()).map_err(|e| format!("{what}: {e}"))?;
    t.to_i64_vec().map_err(reason)
}

/// The elements of a float tensor as `f64`.
fn floats(t: &Tensor, what: &str) -> Result<Vec<f64>, String> {
    if !t.dtype().is_float() {
        return Err(format!("{what} must be a float tensor, got {}", t.dtype()));
    }
    t.to_vec::<f64>().map_err(reason)
}

/// A tensor of `dtype` from integers already inside its range.
fn int_tensor(shape: Vec<usize>, v: Vec<i64>, dtype: DType) -> Result<Tensor, String> {
    Tensor::from_vec(shape, v)
        .and_then(|t| t.cast(dtype))
        .map_err(reason)
}
