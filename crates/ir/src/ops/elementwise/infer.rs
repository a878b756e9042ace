//! Shape and dtype inference of the elementwise operators.

use slimnet_tensor::DType;

use super::ElementwiseOp;
use crate::ops::util::{broadcast_all, input, optional, with_dtype};
use crate::{InferInput, ValueInfo};

/// An error when two known dtypes that must agree differ.
fn same_dtype(what: &str, a: &InferInput, b: &InferInput) -> Result<(), String> {
    match (a.info.dtype, b.info.dtype) {
        (Some(x), Some(y)) if x != y => {
            Err(format!("{what} must have the same dtype, got {x} and {y}"))
        }
        _ => Ok(()),
    }
}

/// An error when a known dtype is not accepted.
fn require(x: &InferInput, what: &str, ok: impl Fn(DType) -> bool) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !ok(d) => Err(format!("expected {what}, got {d}")),
        _ => Ok(()),
    }
}

fn present<'a>(inputs: &'a [Option<InferInput<'a>>]) -> Vec<&'a InferInput<'a>> {
    inputs.iter().flatten().collect()
}

/// Output dtypes and shapes of an elementwise op: the broadcast of the inputs'
/// shapes, with the dtype each op defines.
pub fn infer(op: &ElementwiseOp, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
    use ElementwiseOp as E;
    let x = input(inputs, 0)?;
    let out = match op {
        E::Add
        | E::Sub
        | E::Mul
        | E::Div
        | E::Mod { .. }
        | E::BitwiseAnd
        | E::BitwiseOr
        | E::BitwiseXor
        | E::BitShift { .. }
        | E::PRelu => {
            let b = input(inputs, 1)?;
            same_dtype("both inputs", x, b)?;
            if matches!(
                op,
                E::BitwiseAnd | E::BitwiseOr | E::BitwiseXor | E::BitShift { .. }
            ) {
                require(x, "an integer tensor", DType::is_integer)?;
            }
            ValueInfo {
                dtype: x.info.dtype.or(b.info.dtype),
                shape: broadcast_all(&[x.info, b.info])?,
            }
        }
        E::Pow => {
            let b = input(inputs, 1)?;
            ValueInfo {
                dtype: x.info.dtype,
                shape: broadcast_all(&[x.info, b.info])?,
            }
        }
        E::And | E::Or | E::Xor => {
            let b = input(inputs, 1)?;
            require(x, "a bool tensor", |d| d == DType::Bool)?;
            require(b, "a bool tensor", |d| d == DType::Bool)?;
            with_dtype(DType::Bool, broadcast_all(&[x.info, b.info])?)
        }
        E::Equal | E::Less | E::LessOrEqual | E::Greater | E::GreaterOrEqual => {
            let b = input(inputs, 1)?;
            same_dtype("both inputs", x, b)?;
            with_dtype(DType::Bool, broadcast_all(&[x.info, b.info])?)
        }
        E::Max | E::Min | E::Sum | E::Mean => {
            let all = present(inputs);
            for other in &all[1..] {
                same_dtype("all inputs", x, other)?;
            }
            let infos: Vec<&ValueInfo> = all.iter().map(|i| i.info).collect();
            ValueInfo {
                dtype: all.iter().find_map(|i| i.info.dtype),
                shape: broadcast_all(&infos)?,
            }
        }
        E::Where => {
            let a = input(inputs, 1)?;
            let b = input(inputs, 2)?;
            require(x, "a bool condition", |d| d == DType::Bool)?;
            same_dtype("X and Y", a, b)?;
            ValueInfo {
                dtype: a.info.dtype.or(b.info.dtype),
                shape: broadcast_all(&[x.info, a.info, b.info])?,
            }
        }
        E::Not => {
            require(x, "a bool tensor", |d| d == DType::Bool)?;
            x.info.clone()
        }
        E::BitwiseNot => {
            require(x, "an integer tensor", DType::is_integer)?;
            x.info.clone()
        }
        E::IsNaN | E::IsInf { .. } => {
            require(x, "a float tensor", DType::is_float)?;
            with_dtype(DType::Bool, x.info.shape.clone())
        }
        E::Cast { to, .. } => with_dtype(*to, x.info.shape.clone()),
        E::CastLike { .. } => {
            let target = input(inputs, 1)?;
            ValueInfo {
                dtype: target.info.dtype,
                shape: x.info.shape.clone(),
            }
        }
        E::Clip { .. } => {
            for i in [1, 2] {
                if let Some(bound) = optional(inputs, i) {
                    same_dtype("the input and its bounds", x, bound)?;
                }
            }
            x.info.clone()
        }
        E::Dropout { bool_mask, .. } => {
            let mask_dtype = if *bool_mask {
                Some(DType::Bool)
            } else {
                x.info.dtype
            };
            return Ok(vec![
                x.info.clone(),
                ValueInfo {
                    dtype: mask_dtype,
                    shape: x.info.shape.clone(),
                },
            ]);
        }
        E::Exp
        | E::Log
        | E::Sqrt
        | E::Reciprocal
        | E::Floor
        | E::Ceil
        | E::Round
        | E::Sin
        | E::Cos
        | E::Tan
        | E::Asin
        | E::Acos
        | E::Atan
        | E::Sinh
        | E::Cosh
        | E::Asinh
        | E::Acosh
        | E::Atanh
        | E::Tanh
        | E::Sigmoid
        | E::LeakyRelu { .. }
        | E::Elu { .. }
        | E::Selu { .. }
        | E::Celu { .. }
        | E::HardSigmoid { .. }
        | E::HardSwish
        | E::Softplus
        | E::Softsign
        | E::Mish
        | E::Gelu { .. }
        | E::ThresholdedRelu { .. }
        | E::Swish { .. } => {
            require(x, "a float tensor", DType::is_float)?;
            x.info.clone()
        }
        E::Abs | E::Neg | E::Sign | E::Relu | E::Erf | E::Shrink { .. } => {
            require(x, "a numeric tensor", |d| d.is_float() || d.is_integer())?;
            x.info.clone()
        }
        E::Identity => x.info.clone(),
    };
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dim;

    fn info(dtype: DType, shape: Vec<Dim>) -> ValueInfo {
        ValueInfo::new(dtype, shape)
    }

    #[test]
    fn broadcast_keeps_symbols() {
        let a = info(
            DType::F32,
            vec![Dim::Symbol("n".into()), Dim::Known(1), Dim::Known(4)],
        );
        let b = info(DType::F32, vec![Dim::Known(3), Dim::Known(1)]);
        let ins = [
            Some(InferInput {
                info: &a,
                value: None,
            }),
            Some(InferInput {
                info: &b,
                value: None,
            }),
        ];
        let out = ElementwiseOp::Add.infer(&ins).unwrap();
        assert_eq!(
            out[0],
            info(
                DType::F32,
                vec![Dim::Symbol("n".into()), Dim::Known(3), Dim::Known(4)]
            )
        );
        let cmp = ElementwiseOp::Less.infer(&ins).unwrap();
        assert_eq!(cmp[0].dtype, Some(DType::Bool));
    }

    #[test]
    fn mismatched_dtypes_are_errors() {
        let a = info(DType::F32, vec![Dim::Known(2)]);
        let b = info(DType::I64, vec![Dim::Known(2)]);
        let ins = [
            Some(InferInput {
                info: &a,
                value: None,
            }),
            Some(InferInput {
                info: &b,
                value: None,
            }),
        ];
        assert!(ElementwiseOp::Add.infer(&ins).is_err());
        // Pow mixes dtypes: the base's wins.
        assert_eq!(
            ElementwiseOp::Pow.infer(&ins).unwrap()[0].dtype,
            Some(DType::F32)
        );
        let c = info(DType::F32, vec![Dim::Known(3)]);
        let ins = [
            Some(InferInput {
                info: &a,
                value: None,
            }),
            Some(InferInput {
                info: &c,
                value: None,
            }),
        ];
        assert!(ElementwiseOp::Mul.infer(&ins).is_err());
    }

    #[test]
    fn cast_and_dropout() {
        let a = info(DType::F32, vec![Dim::Unknown, Dim::Known(2)]);
        let ins = [Some(InferInput {
            info: &a,
            value: None,
        })];
        let out = ElementwiseOp::Cast {
            to: DType::F16,
            saturate: None,
        }
        .infer(&ins)
        .unwrap();
        assert_eq!(out[0], info(DType::F16, vec![Dim::Unknown, Dim::Known(2)]));
        let d = ElementwiseOp::Dropout {
            ratio: None,
            seed: None,
            bool_mask: true,
        }
        .infer(&ins)
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].dtype, Some(DType::Bool));
    }
}
