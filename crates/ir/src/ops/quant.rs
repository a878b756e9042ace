//! Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the
//! integer products MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.
//!
//! Quantized tensors are int4, uint4, int8, uint8, int16, uint16 or int32; the
//! float8, float4 and 2-bit types are not held by slimnet, so an `output_dtype`
//! naming one is refused as not supported.

use slimnet_tensor::DType;

use crate::ops::nn::Conv;
use crate::ops::util::{broadcast_dims, input, optional, with_dtype};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// The integer types a quantized tensor may have here.
pub const QUANTIZED_DTYPES: [DType; 7] = [
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I32,
    DType::I4,
    DType::U4,
];

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantOp {
    /// Inputs `x` (float), `y_scale`, optional `y_zero_point`. Per tensor (scalar
    /// scale), per axis (1-D scale along `axis`) or blocked (`block_size` > 0, the
    /// scale has x's shape with `ceil(dim / block_size)` along `axis`).
    /// `y = saturate(round_half_even(x / y_scale) + y_zero_point)`; the output type
    /// is the zero point's, else `output_dtype`, else uint8.
    Quantize {
        axis: i64,
        block_size: i64,
        /// Only meaningful for float8 outputs, which are not supported.
        saturate: bool,
        output_dtype: Option<DType>,
        /// Float type `x / y_scale` is computed in (opset 23+); `None`: x's.
        precision: Option<DType>,
    },
    /// Inputs `x` (integer), `x_scale`, optional `x_zero_point`, with the same
    /// layouts as [`QuantOp::Quantize`]. `y = (x - x_zero_point) * x_scale`, of the
    /// scale's type unless `output_dtype` says otherwise.
    Dequantize {
        axis: i64,
        block_size: i64,
        output_dtype: Option<DType>,
    },
    /// Input float `x`; outputs uint8 `y`, scalar float `y_scale` and scalar uint8
    /// `y_zero_point` from x's range extended to hold 0.
    DynamicQuantize,
    /// Inputs `A`, `B`, optional `a_zero_point` (scalar or per row of A) and
    /// `b_zero_point` (scalar or per column of B); int32 output.
    MatMulInteger,
    /// Inputs `x`, `w`, optional `x_zero_point` (scalar) and `w_zero_point` (scalar
    /// or per output channel); int32 output.
    ConvInteger(Conv),
    /// Inputs `a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
    /// y_zero_point`; output of y_zero_point's type.
    QLinearMatMul,
    /// Inputs `x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
    /// y_zero_point`, optional int32 bias `B`; output of y_zero_point's type.
    QLinearConv(Conv),
    /// slimnet-internal (made by the runtime's QDQ fusion; never imported, and not
    /// standard ONNX): inputs `x` (f32), `x_scale`, `x_zero_point` (scalars, uint8 or
    /// int8), `w` (int8 constant), `w_scale` (scalar or one per output channel),
    /// optional f32 bias `B`. Computes
    /// `Conv(DequantizeLinear(QuantizeLinear(x)), w · w_scale) + B`.
    QuantizedConv(Conv),
    /// slimnet-internal, like [`QuantOp::QuantizedConv`]: inputs `x` (f32, `[..., K]`),
    /// `x_scale`, `x_zero_point`, `w` (int8 `[K, N]`), `w_scale` (scalar or `[N]`),
    /// optional bias `B` (`[N]`). Computes
    /// `MatMul(DequantizeLinear(QuantizeLinear(x)), w · w_scale) + B`.
    QuantizedMatMul,
    /// slimnet-internal (made by the runtime's int4 fusion; never imported, and not
    /// standard ONNX): inputs `x` (f32, `[..., K]`), `w` (int4 constant `[K, N]`),
    /// `w_scale` (f32 `[ceil(K / block_size), N]`), optional `w_zero_point` (int4,
    /// the scale's shape), optional f32 bias `B` (`[N]`). Computes
    /// `MatMul(x, DequantizeLinear(w, w_scale, w_zero_point, axis 0, block_size)) + B`:
    /// weight-only quantization, the activation stays float.
    WeightOnlyMatMul { block_size: i64 },
}

/// An optional element-type attribute (`0` or absent: not given). Codes slimnet
/// does not hold are refused as not supported.
fn dtype_attr(attrs: &Attributes, name: &str) -> Result<Option<DType>, AttrError> {
    let code = attrs.int(name, 0)?;
    if code == 0 {
        return Ok(None);
    }
    i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .map(Some)
        .ok_or_else(|| AttrError::new(name, format!("element type code {code} is not supported")))
}

fn flag(attrs: &Attributes, name: &str, default: bool) -> Result<bool, AttrError> {
    match attrs.int(name, default as i64)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(AttrError::new(name, format!("must be 0 or 1, got {v}"))),
    }
}

fn block_size(attrs: &Attributes) -> Result<i64, AttrError> {
    let b = attrs.int("block_size", 0)?;
    if b < 0 {
        return Err(AttrError::new(
            "block_size",
            format!("must not be negative, got {b}"),
        ));
    }
    Ok(b)
}

fn quantized_dtype(d: DType, what: &str) -> Result<(), String> {
    if QUANTIZED_DTYPES.contains(&d) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be int4, uint4, int8, uint8, int16, uint16 or int32, got {d}"
        ))
    }
}

fn float_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_float() => Err(format!("{what} must be a float tensor, got {d}")),
        _ => Ok(()),
    }
}

fn int_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) => quantized_dtype(d, what),
        None => Ok(()),
    }
}

impl QuantOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in for `ctx.opset`;
    /// `None` when the op type is not in this family.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let op = (|| {
            Ok(Some(match ctx.op_type {
                "QuantizeLinear" => {
                    let output_dtype = dtype_attr(attrs, "output_dtype")?;
                    if let Some(d) = output_dtype {
                        if !QUANTIZED_DTYPES.contains(&d) {
                            return Err(AttrError::new(
                                "output_dtype",
                                format!("quantized type {d} is not supported"),
                            ));
                        }
                    }
                    let precision = dtype_attr(attrs, "precision")?;
                    if let Some(p) = precision {
                        if !p.is_float() {
                            return Err(AttrError::new(
                                "precision",
                                format!("must be a float type, got {p}"),
                            ));
                        }
                    }
                    QuantOp::Quantize {
                        axis: attrs.int("axis", 1)?,
                        block_size: block_size(attrs)?,
                        saturate: flag(attrs, "saturate", true)?,
                        output_dtype,
                        precision,
                    }
                }
                "DequantizeLinear" => {
                    let output_dtype = dtype_attr(attrs, "output_dtype")?;
                    if let Some(d) = output_dtype {
                        if !d.is_float() {
                            return Err(AttrError::new(
                                "output_dtype",
                                format!("must be a float type, got {d}"),
                            ));
                        }
                    }
                    QuantOp::Dequantize {
                        axis: attrs.int("axis", 1)?,
                        block_size: block_size(attrs)?,
                        output_dtype,
                    }
                }
                "DynamicQuantizeLinear" => QuantOp::DynamicQuantize,
                "MatMulInteger" => QuantOp::MatMulInteger,
                "ConvInteger" => QuantOp::ConvInteger(Conv::parse(attrs)?),
                "QLinearMatMul" => QuantOp::QLinearMatMul,
                "QLinearConv" => QuantOp::QLinearConv(Conv::parse(attrs)?),
                _ => return Ok(None),
            }))
        })();
        op.transpose()
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            QuantOp::Quantize { .. } => "QuantizeLinear",
            QuantOp::Dequantize { .. } => "DequantizeLinear",
            QuantOp::DynamicQuantize => "DynamicQuantizeLinear",
            QuantOp::MatMulInteger => "MatMulInteger",
            QuantOp::ConvInteger(_) => "ConvInteger",
            QuantOp::QLinearMatMul => "QLinearMatMul",
            QuantOp::QLinearConv(_) => "QLinearConv",
            QuantOp::QuantizedConv(_) => "SlimnetQuantizedConv",
            QuantOp::QuantizedMatMul => "SlimnetQuantizedMatMul",
            QuantOp::WeightOnlyMatMul { .. } => "SlimnetWeightOnlyMatMul",
        }
    }

    /// The attributes to write back on export (opset-dependent ones only when set).
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let i = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        match self {
            QuantOp::Quantize {
                axis,
                block_size,
                saturate,
                output_dtype,
                precision,
            } => {
                // `axis` only when it differs from the default 1: opsets before 13
                // have no such attribute, and ONNX Runtime refuses it there.
                let mut v: Vec<(String, Attr)> =
                    (*axis != 1).then(|| i("axis", *axis)).into_iter().collect();
                if *block_size != 0 {
                    v.push(i("block_size", *block_size));
                }
                if !saturate {
                    v.push(i("saturate", 0));
                }
                if let Some(d) = output_dtype {
                    v.push(i("output_dtype", d.onnx_code() as i64));
                }
                if let Some(p) = precision {
                    v.push(i("precision", p.onnx_code() as i64));
                }
                v
            }
            QuantOp::Dequantize {
                axis,
                block_size,
                output_dtype,
            } => {
                let mut v: Vec<(String, Attr)> =
                    (*axis != 1).then(|| i("axis", *axis)).into_iter().collect();
                if *block_size != 0 {
                    v.push(i("block_size", *block_size));
                }
                if let Some(d) = output_dtype {
                    v.push(i("output_dtype", d.onnx_code() as i64));
                }
                v
            }
            QuantOp::ConvInteger(c) | QuantOp::QLinearConv(c) | QuantOp::QuantizedConv(c) => {
                c.attributes()
            }
            QuantOp::WeightOnlyMatMul { block_size } => vec![i("block_size", *block_size)],
            QuantOp::DynamicQuantize
            | QuantOp::MatMulInteger
            | QuantOp::QLinearMatMul
            | QuantOp::QuantizedMatMul => Vec::new(),
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            QuantOp::Quantize { output_dtype, .. } => {
                let x = input(inputs, 0)?;
                float_input(x, "x")?;
                float_input(input(inputs, 1)?, "y_scale")?;
                let dtype = match optional(inputs, 2).and_then(|z| z.info.dtype) {
                    Some(z) => {
                        quantized_dtype(z, "y_zero_point")?;
                        if output_dtype.is_some_and(|d| d != z) {
                            return Err(format!(
                                "output_dtype differs from y_zero_point's type {z}"
                            ));
                        }
                        Some(z)
                    }
                    None if optional(inputs, 2).is_some() => *output_dtype,
                    None => Some(output_dtype.unwrap_or(DType::U8)),
                };
                Ok(vec![ValueInfo {
                    dtype,
                    shape: x.info.shape.clone(),
                }])
            }
            QuantOp::Dequantize { output_dtype, .. } => {
                let x = input(inputs, 0)?;
                int_input(x, "x")?;
                let scale = input(inputs, 1)?;
                float_input(scale, "x_scale")?;
                Ok(vec![ValueInfo {
                    dtype: output_dtype.or(scale.info.dtype),
                    shape: x.info.shape.clone(),
                }])
            }
            QuantOp::DynamicQuantize => {
                let x = input(inputs, 0)?;
                float_input(x, "x")?;
                Ok(vec![
                    with_dtype(DType::U8, x.info.shape.clone()),
                    with_dtype(DType::F32, Some(vec![])),
                    with_dtype(DType::U8, Some(vec![])),
                ])
            }
            QuantOp::MatMulInteger => {
                let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
                int_input(a, "A")?;
                int_input(b, "B")?;
                Ok(vec![with_dtype(DType::I32, matmul_dims(a, b)?)])
            }
            QuantOp::QLinearMatMul => {
                let (a, b) = (input(inputs, 0)?, input(inputs, 3)?);
                int_input(a, "a")?;
                int_input(b, "b")?;
                let y_zp = input(inputs, 7)?;
                Ok(vec![ValueInfo {
                    dtype: y_zp.info.dtype.or(a.info.dtype),
                    shape: matmul_dims(a, b)?,
                }])
            }
            QuantOp::ConvInteger(c) => {
                let (x, w) = (input(inputs, 0)?, input(inputs, 1)?);
                int_input(x, "x")?;
                int_input(w, "w")?;
                let shape = conv_dims(c, x, w)?;
                Ok(vec![with_dtype(DType::I32, shape)])
            }
            QuantOp::QLinearConv(c) => {
                let (x, w) = (input(inputs, 0)?, input(inputs, 3)?);
                int_input(x, "x")?;
                int_input(w, "w")?;
                let shape = conv_dims(c, x, w)?;
                let y_zp = input(inputs, 7)?;
                Ok(vec![ValueInfo {
                    dtype: y_zp.info.dtype.or(x.info.dtype),
                    shape,
                }])
            }
            QuantOp::QuantizedConv(c) => {
                let (x, w) = (input(inputs, 0)?, input(inputs, 3)?);
                float_input(x, "x")?;
                int_input(w, "w")?;
                Ok(vec![with_dtype(DType::F32, conv_dims(c, x, w)?)])
            }
            QuantOp::QuantizedMatMul => {
                let (x, w) = (input(inputs, 0)?, input(inputs, 3)?);
                float_input(x, "x")?;
                int_input(w, "w")?;
                Ok(vec![with_dtype(DType::F32, matmul_dims(x, w)?)])
            }
            QuantOp::WeightOnlyMatMul { block_size } => {
                let (x, w) = (input(inputs, 0)?, input(inputs, 1)?);
                float_input(x, "x")?;
                if let Some(d) = w.info.dtype {
                    if !matches!(d, DType::I4 | DType::U4) {
                        return Err(format!("w must be int4 or uint4, got {d}"));
                    }
                }
                if *block_size <= 0 {
                    return Err(format!("block_size must be positive, got {block_size}"));
                }
                float_input(input(inputs, 2)?, "w_scale")?;
                if let Some(sw) = &w.info.shape {
                    if sw.len() != 2 {
                        return Err(format!("w must be 2-D, got rank {}", sw.len()));
                    }
                }
                Ok(vec![with_dtype(DType::F32, matmul_dims(x, w)?)])
            }
        }
    }
}

/// The output shape of a convolution of integer operands (Conv's inference run on
/// operands of unknown type).
fn conv_dims(c: &Conv, x: &InferInput, w: &InferInput) -> Result<Option<Vec<Dim>>, String> {
    let xi = ValueInfo {
        dtype: None,
        shape: x.info.shape.clone(),
    };
    let wi = ValueInfo {
        dtype: None,
        shape: w.info.shape.clone(),
    };
    let ins = [
        Some(InferInput {
            info: &xi,
            value: None,
        }),
        Some(InferInput {
            info: &wi,
            value: None,
        }),
    ];
    Ok(c.infer(&ins)?.remove(0).shape)
}

/// The output shape of a numpy-style matmul (unknown when a rank is unknown).
fn matmul_dims(a: &InferInput, b: &InferInput) -> Result<Option<Vec<Dim>>, String> {
    let (Some(sa), Some(sb)) = (&a.info.shape, &b.info.shape) else {
        return Ok(None);
    };
    if sa.is_empty() || sb.is_empty() {
        return Err("matmul operands must have rank 1 or more".into());
    }
    let kb = if sb.len() == 1 {
        &sb[0]
    } else {
        &sb[sb.len() - 2]
    };
    if let (Some(k), Some(kb)) = (sa[sa.len() - 1].known(), kb.known()) {
        if k != kb {
            return Err(format!("inner dimensions differ: {k} vs {kb}"));
        }
    }
    let ba = &sa[..sa.len().saturating_sub(2)];
    let bb = &sb[..sb.len().saturating_sub(2)];
    let mut out = broadcast_dims(ba, bb)?;
    if sa.len() > 1 {
        out.push(sa[sa.len() - 2].clone());
    }
    if sb.len() > 1 {
        out.push(sb[sb.len() - 1].clone());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> Result<QuantOp, AttrError> {
        let ctx = NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 3,
            num_outputs: 1,
        };
        let attrs = Attributes::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        QuantOp::parse(&ctx, &attrs).unwrap()
    }

    #[test]
    fn defaults_and_round_trip() {
        let q = parse("QuantizeLinear", 21, vec![]).unwrap();
        assert_eq!(
            q,
            QuantOp::Quantize {
                axis: 1,
                block_size: 0,
                saturate: true,
                output_dtype: None,
                precision: None
            }
        );
        let attrs = q.attributes();
        let back = parse(
            "QuantizeLinear",
            21,
            attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(),
        )
        .unwrap();
        assert_eq!(q, back);
    }

    #[test]
    fn float8_output_is_not_supported() {
        // 17 is FLOAT8E4M3FN.
        let e = parse("QuantizeLinear", 21, vec![("output_dtype", Attr::Int(17))]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(parse("QuantizeLinear", 21, vec![("block_size", Attr::Int(-1))]).is_err());
        assert!(parse("DequantizeLinear", 21, vec![("output_dtype", Attr::Int(3))]).is_err());
    }
}
