//! Unary kernels: math, activations, tests and bitwise/logical negation.

use slimnet_ir::ops::elementwise::GeluApproximation;
use slimnet_ir::ops::ElementwiseOp;
use slimnet_tensor::{Element, Tensor, TensorData};

use super::math::{erf, gelu, gelu_tanh, max_nan, min_nan, sigmoid, sign, softplus, unit_clamp};
use super::num::{Float, Int};
use crate::reference::util::reason;

/// A tensor of `shape` holding `values`.
pub(super) fn tensor<T: Element>(shape: &[usize], values: Vec<T>) -> Result<Tensor, String> {
    Tensor::from_vec(shape.to_vec(), values).map_err(reason)
}

fn map_float<T: Float>(x: &Tensor, v: &[T], f: impl Fn(f64) -> f64) -> Result<Tensor, String> {
    tensor(
        x.shape(),
        v.iter().map(|&a| T::round_from(f(a.to_f64()))).collect(),
    )
}

fn map_int_via_f64<T: Int>(x: &Tensor, v: &[T], f: impl Fn(f64) -> f64) -> Result<Tensor, String> {
    tensor(
        x.shape(),
        v.iter().map(|&a| T::from_f64(f(a.to_f64()))).collect(),
    )
}

/// Applies `f` to every element of a float tensor, computing in `f64` and rounding
/// once to the tensor's dtype.
pub(super) fn float_unary(
    name: &str,
    x: &Tensor,
    f: impl Fn(f64) -> f64,
) -> Result<Tensor, String> {
    match x.data() {
        TensorData::F32(v) => map_float(x, v, f),
        TensorData::F64(v) => map_float(x, v, f),
        TensorData::F16(v) => map_float(x, v, f),
        TensorData::BF16(v) => map_float(x, v, f),
        _ => Err(format!("{name} expects a float tensor, got {}", x.dtype())),
    }
}

/// Applies `f` through `f64` to any numeric tensor; integer results are truncated
/// toward zero and saturate.
pub(super) fn numeric_via_f64(
    name: &str,
    x: &Tensor,
    f: impl Fn(f64) -> f64,
) -> Result<Tensor, String> {
    match x.data() {
        TensorData::I8(v) => map_int_via_f64(x, v, f),
        TensorData::I16(v) => map_int_via_f64(x, v, f),
        TensorData::I32(v) => map_int_via_f64(x, v, f),
        TensorData::I64(v) => map_int_via_f64(x, v, f),
        TensorData::U8(v) => map_int_via_f64(x, v, f),
        TensorData::U16(v) => map_int_via_f64(x, v, f),
        TensorData::U32(v) => map_int_via_f64(x, v, f),
        TensorData::U64(v) => map_int_via_f64(x, v, f),
        _ if x.dtype().is_float() => float_unary(name, x, f),
        _ => Err(format!(
            "{name} expects a numeric tensor, got {}",
            x.dtype()
        )),
    }
}

fn map_int<T: Int>(x: &Tensor, v: &[T], f: impl Fn(T) -> T) -> Result<Tensor, String> {
    tensor(x.shape(), v.iter().map(|&a| f(a)).collect())
}

/// Integer counterpart of a float kernel, for the ops defined on integers.
#[derive(Clone, Copy)]
enum IntUnary {
    Abs,
    Neg,
    Sign,
    Relu,
    Not,
}

fn int_unary<T: Int>(op: IntUnary, x: &Tensor, v: &[T]) -> Result<Tensor, String> {
    match op {
        IntUnary::Abs => map_int(x, v, T::wabs),
        IntUnary::Neg => map_int(x, v, T::wneg),
        IntUnary::Sign => map_int(x, v, T::signum),
        IntUnary::Relu => map_int(x, v, |a| if a.is_negative() { T::zero() } else { a }),
        IntUnary::Not => map_int(x, v, T::not),
    }
}

/// Dispatches an op defined on both floats (through `f`) and integers (`op`).
fn numeric(
    name: &str,
    x: &Tensor,
    op: IntUnary,
    f: impl Fn(f64) -> f64,
    signed_only: bool,
) -> Result<Tensor, String> {
    let unsigned_err = || Err(format!("{name} expects a signed tensor, got {}", x.dtype()));
    match x.data() {
        TensorData::I8(v) => int_unary(op, x, v),
        TensorData::I16(v) => int_unary(op, x, v),
        TensorData::I32(v) => int_unary(op, x, v),
        TensorData::I64(v) => int_unary(op, x, v),
        TensorData::U8(_) | TensorData::U16(_) | TensorData::U32(_) | TensorData::U64(_)
            if signed_only =>
        {
            unsigned_err()
        }
        TensorData::U8(v) => int_unary(op, x, v),
        TensorData::U16(v) => int_unary(op, x, v),
        TensorData::U32(v) => int_unary(op, x, v),
        TensorData::U64(v) => int_unary(op, x, v),
        _ => float_unary(name, x, f),
    }
}

fn bool_map(x: &Tensor, name: &str, f: impl Fn(bool) -> bool) -> Result<Tensor, String> {
    let v = x
        .as_slice::<bool>()
        .map_err(|_| format!("{name} expects a bool tensor, got {}", x.dtype()))?;
    tensor(x.shape(), v.iter().map(|&a| f(a)).collect())
}

fn float_test<T: Float>(x: &Tensor, v: &[T], f: impl Fn(f64) -> bool) -> Result<Tensor, String> {
    tensor(x.shape(), v.iter().map(|&a| f(a.to_f64())).collect())
}

/// A bool tensor of `f` applied to each element of a float tensor.
fn float_predicate(name: &str, x: &Tensor, f: impl Fn(f64) -> bool) -> Result<Tensor, String> {
    match x.data() {
        TensorData::F32(v) => float_test(x, v, f),
        TensorData::F64(v) => float_test(x, v, f),
        TensorData::F16(v) => float_test(x, v, f),
        TensorData::BF16(v) => float_test(x, v, f),
        _ => Err(format!("{name} expects a float tensor, got {}", x.dtype())),
    }
}

/// Runs a unary op; `None` when `op` is not unary.
pub(super) fn run(op: &ElementwiseOp, x: &Tensor) -> Option<Result<Tensor, String>> {
    use ElementwiseOp as E;
    let name = op.op_type();
    let out = match *op {
        E::Abs => numeric(name, x, IntUnary::Abs, f64::abs, false),
        E::Neg => numeric(name, x, IntUnary::Neg, |a| -a, true),
        E::Sign => numeric(name, x, IntUnary::Sign, sign, false),
        E::Relu => numeric(
            name,
            x,
            IntUnary::Relu,
            |a| if a < 0.0 { 0.0 } else { a },
            false,
        ),
        E::BitwiseNot if !x.dtype().is_integer() => Err(format!(
            "{name} expects an integer tensor, got {}",
            x.dtype()
        )),
        E::BitwiseNot => numeric(name, x, IntUnary::Not, |a| a, false),
        E::Not => bool_map(x, name, |a| !a),
        E::Exp => float_unary(name, x, f64::exp),
        E::Log => float_unary(name, x, f64::ln),
        E::Sqrt => float_unary(name, x, f64::sqrt),
        E::Reciprocal => float_unary(name, x, f64::recip),
        E::Floor => float_unary(name, x, f64::floor),
        E::Ceil => float_unary(name, x, f64::ceil),
        E::Round => float_unary(name, x, f64::round_ties_even),
        E::Sin => float_unary(name, x, f64::sin),
        E::Cos => float_unary(name, x, f64::cos),
        E::Tan => float_unary(name, x, f64::tan),
        E::Asin => float_unary(name, x, f64::asin),
        E::Acos => float_unary(name, x, f64::acos),
        E::Atan => float_unary(name, x, f64::atan),
        E::Sinh => float_unary(name, x, f64::sinh),
        E::Cosh => float_unary(name, x, f64::cosh),
        E::Asinh => float_unary(name, x, f64::asinh),
        E::Acosh => float_unary(name, x, f64::acosh),
        E::Atanh => float_unary(name, x, f64::atanh),
        E::Tanh => float_unary(name, x, f64::tanh),
        E::Erf => numeric_via_f64(name, x, erf),
        E::Sigmoid => float_unary(name, x, sigmoid),
        E::Softplus => float_unary(name, x, softplus),
        E::Softsign => float_unary(name, x, |a| a / (1.0 + a.abs())),
        E::Mish => float_unary(name, x, |a| a * softplus(a).tanh()),
        E::HardSwish => float_unary(name, x, |a| a * unit_clamp(a / 6.0 + 0.5)),
        E::Gelu {
            approximate: GeluApproximation::None,
        } => float_unary(name, x, gelu),
        E::Gelu {
            approximate: GeluApproximation::Tanh,
        } => float_unary(name, x, gelu_tanh),
        E::LeakyRelu { alpha } => {
            let alpha = alpha as f64;
            float_unary(name, x, |a| if a < 0.0 { alpha * a } else { a })
        }
        E::Elu { alpha } => {
            let alpha = alpha as f64;
            float_unary(name, x, |a| if a < 0.0 { alpha * a.exp_m1() } else { a })
        }
        E::Selu { alpha, gamma } => {
            let (alpha, gamma) = (alpha as f64, gamma as f64);
            float_unary(name, x, |a| {
                if a <= 0.0 {
                    gamma * alpha * a.exp_m1()
                } else {
                    gamma * a
                }
            })
        }
        E::Celu { alpha } => {
            let alpha = alpha as f64;
            float_unary(name, x, |a| {
                max_nan(0.0, a) + min_nan(0.0, alpha * (a / alpha).exp_m1())
            })
        }
        E::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (alpha as f64, beta as f64);
            float_unary(name, x, |a| unit_clamp(alpha * a + beta))
        }
        E::ThresholdedRelu { alpha } => {
            let alpha = alpha as f64;
            float_unary(name, x, |a| if a > alpha || a.is_nan() { a } else { 0.0 })
        }
        E::Swish { alpha } => {
            let alpha = alpha as f64;
            float_unary(name, x, |a| a * sigmoid(alpha * a))
        }
        E::Shrink { bias, lambd } => {
            let (bias, lambd) = (bias as f64, lambd as f64);
            numeric_via_f64(name, x, |a| {
                if a < -lambd {
                    a + bias
                } else if a > lambd {
                    a - bias
                } else {
                    0.0
                }
            })
        }
        E::IsNaN => float_predicate(name, x, f64::is_nan),
        E::IsInf {
            detect_negative,
            detect_positive,
        } => float_predicate(name, x, |a| {
            (a == f64::INFINITY && detect_positive) || (a == f64::NEG_INFINITY && detect_negative)
        }),
        _ => return None,
    };
    Some(out)
}
