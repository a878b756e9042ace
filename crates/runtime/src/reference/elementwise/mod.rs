//! Reference kernels of the elementwise family.
//!
//! Float kernels compute in `f64` and round once to the tensor's dtype; integer
//! kernels use typed arithmetic with numpy's semantics (wrapping overflow, division
//! truncating toward zero, Python's sign rule for `Mod` with `fmod = 0`). Binary
//! and variadic ops broadcast the numpy way.

mod binary;
pub mod broadcast;
mod cast;
pub(crate) mod math;
pub(crate) mod num;
mod unary;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::ElementwiseOp;
use slimnet_tensor::{Element, Tensor, TensorData};

use super::util::{input, optional, reason};
use binary::{arith, bits, compare, pow, variadic, Arith, Bits, Compare};
use unary::tensor;

pub use math::erf;

/// Runs an elementwise op on its inputs (`None` for omitted optional ones).
pub fn run(op: &ElementwiseOp, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    use ElementwiseOp as E;
    let x = input(inputs, 0)?;
    if let Some(r) = unary::run(op, x) {
        return r.map(|t| vec![t]);
    }
    let name = op.op_type();
    let second = || input(inputs, 1);
    let out = match op {
        E::Add => arith(name, Arith::Add, x, second()?)?,
        E::Sub => arith(name, Arith::Sub, x, second()?)?,
        E::Mul => arith(name, Arith::Mul, x, second()?)?,
        E::Div => arith(name, Arith::Div, x, second()?)?,
        E::Mod { fmod } => arith(name, Arith::Mod(*fmod), x, second()?)?,
        E::PRelu => prelu(x, second()?)?,
        E::Pow => pow(x, second()?)?,
        E::Max | E::Min | E::Sum | E::Mean => {
            let all: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
            let fold = match op {
                E::Max => Arith::Max,
                E::Min => Arith::Min,
                _ => Arith::Add,
            };
            variadic(name, fold, &all, matches!(op, E::Mean))?
        }
        E::Equal => compare(name, Compare::Equal, x, second()?)?,
        E::Less => compare(name, Compare::Less, x, second()?)?,
        E::LessOrEqual => compare(name, Compare::LessOrEqual, x, second()?)?,
        E::Greater => compare(name, Compare::Greater, x, second()?)?,
        E::GreaterOrEqual => compare(name, Compare::GreaterOrEqual, x, second()?)?,
        E::And => bits(name, Bits::And, x, second()?, true)?,
        E::Or => bits(name, Bits::Or, x, second()?, true)?,
        E::Xor => bits(name, Bits::Xor, x, second()?, true)?,
        E::BitwiseAnd => bits(name, Bits::And, x, second()?, false)?,
        E::BitwiseOr => bits(name, Bits::Or, x, second()?, false)?,
        E::BitwiseXor => bits(name, Bits::Xor, x, second()?, false)?,
        E::BitShift { direction } => bits(name, Bits::Shift(*direction), x, second()?, false)?,
        E::Where => where_(x, second()?, input(inputs, 2)?)?,
        E::Clip { min, max } => clip(x, (*min, optional(inputs, 1)), (*max, optional(inputs, 2)))?,
        E::Cast { to, .. } => cast::cast(x, *to)?,
        E::CastLike { .. } => cast::cast(x, second()?.dtype())?,
        E::Identity => x.clone(),
        E::Dropout {
            ratio, bool_mask, ..
        } => return dropout(x, *ratio, inputs, *bool_mask),
        _ => return Err(format!("{name} is not an elementwise kernel")),
    };
    Ok(vec![out])
}

/// `PRelu`: the slope must broadcast to `x`'s shape (unidirectional broadcasting).
fn prelu(x: &Tensor, slope: &Tensor) -> Result<Tensor, String> {
    let out = arith("PRelu", Arith::PRelu, x, slope)?;
    if out.shape() != x.shape() {
        return Err(format!(
            "PRelu slope of shape {:?} does not broadcast to input shape {:?}",
            slope.shape(),
            x.shape()
        ));
    }
    Ok(out)
}

/// The single value of a scalar (or one-element) tensor, converted to `f64`.
fn scalar_f64(t: &Tensor, what: &str) -> Result<f64, String> {
    if t.len() != 1 {
        return Err(format!(
            "{what} must hold one element, got shape {:?}",
            t.shape()
        ));
    }
    let v = t.to_vec::<f64>().map_err(|e| format!("{what}: {e}"))?;
    v.first().copied().ok_or_else(|| format!("{what} is empty"))
}

/// Inference-mode dropout: the output is the input, the mask all ones. Training
/// mode with a positive ratio is random, so it is refused.
fn dropout(
    x: &Tensor,
    ratio_attr: Option<f32>,
    inputs: &[Option<&Tensor>],
    bool_mask: bool,
) -> Result<Vec<Tensor>, String> {
    let ratio = match (ratio_attr, optional(inputs, 1)) {
        (Some(r), _) => r as f64,
        (None, Some(t)) => scalar_f64(t, "ratio")?,
        (None, None) => 0.5,
    };
    let training = match optional(inputs, 2) {
        Some(t) => scalar_f64(t, "training_mode")? != 0.0,
        None => false,
    };
    if training && ratio > 0.0 {
        return Err(format!(
            "Dropout in training mode (ratio {ratio}) is random; only inference is supported"
        ));
    }
    let mask = if bool_mask {
        tensor(x.shape(), vec![true; x.len()])?
    } else {
        Tensor::from_vec(x.shape().to_vec(), vec![1.0f64; x.len()])
            .and_then(|t| t.cast(x.dtype()))
            .map_err(reason)?
    };
    Ok(vec![x.clone(), mask])
}

/// A bound of `Clip`: the attribute (opsets before 11) or the optional input.
fn bound<T: Element>(
    attr: Option<f32>,
    t: Option<&Tensor>,
    what: &str,
) -> Result<Option<T>, String> {
    if let Some(a) = attr {
        return Ok(Some(T::from_f64(a as f64)));
    }
    let Some(t) = t else { return Ok(None) };
    let v = t.as_slice::<T>().map_err(|_| {
        format!(
            "Clip {what} has dtype {}, the input {}",
            t.dtype(),
            T::DTYPE
        )
    })?;
    match v {
        [] => Ok(None),
        [b] => Ok(Some(*b)),
        _ => Err(format!(
            "Clip {what} must be a scalar, got shape {:?}",
            t.shape()
        )),
    }
}

fn clip_typed<T: Element>(
    x: &Tensor,
    v: &[T],
    lo: (Option<f32>, Option<&Tensor>),
    hi: (Option<f32>, Option<&Tensor>),
) -> Result<Tensor, String> {
    let lo = bound::<T>(lo.0, lo.1, "min")?;
    let hi = bound::<T>(hi.0, hi.1, "max")?;
    let out = v
        .iter()
        .map(|&a| {
            let a = match lo {
                Some(l) if a < l => l,
                _ => a,
            };
            match hi {
                Some(h) if a > h => h,
                _ => a,
            }
        })
        .collect();
    tensor(x.shape(), out)
}

/// `Clip`: `min(max(x, lo), hi)` (so `hi` wins when `lo > hi`); NaN stays NaN.
fn clip(
    x: &Tensor,
    lo: (Option<f32>, Option<&Tensor>),
    hi: (Option<f32>, Option<&Tensor>),
) -> Result<Tensor, String> {
    match x.data() {
        TensorData::F32(v) => clip_typed(x, v, lo, hi),
        TensorData::F64(v) => clip_typed(x, v, lo, hi),
        TensorData::F16(v) => clip_typed(x, v, lo, hi),
        TensorData::BF16(v) => clip_typed(x, v, lo, hi),
        TensorData::I8(v) => clip_typed(x, v, lo, hi),
        TensorData::I16(v) => clip_typed(x, v, lo, hi),
        TensorData::I32(v) => clip_typed(x, v, lo, hi),
        TensorData::I64(v) => clip_typed(x, v, lo, hi),
        TensorData::U8(v) => clip_typed(x, v, lo, hi),
        TensorData::U16(v) => clip_typed(x, v, lo, hi),
        TensorData::U32(v) => clip_typed(x, v, lo, hi),
        TensorData::U64(v) => clip_typed(x, v, lo, hi),
        _ => Err(format!("Clip does not support dtype {}", x.dtype())),
    }
}

fn where_typed<T: Clone>(
    c: (&[bool], &[usize]),
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
) -> Result<(Vec<usize>, Vec<T>), String> {
    broadcast::ternary(c, a, b, |&c, x, y| if c { x.clone() } else { y.clone() })
}

/// `Where(condition, x, y)` for any dtype of `x` and `y` (strings included).
fn where_(c: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let cond = c
        .as_slice::<bool>()
        .map_err(|_| format!("Where expects a bool condition, got {}", c.dtype()))?;
    let cs = (cond, c.shape());
    let (sa, sb) = (a.shape(), b.shape());
    macro_rules! each {
        ($($variant:ident),*) => {
            match (a.data(), b.data()) {
                $((TensorData::$variant(x), TensorData::$variant(y)) => {
                    let (shape, v) = where_typed(cs, (x, sa), (y, sb))?;
                    Tensor::new(shape, TensorData::$variant(v)).map_err(reason)
                })*
                _ => Err(format!("Where expects X and Y of one dtype, got {} and {}", a.dtype(), b.dtype())),
            }
        };
    }
    each!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, String)
}
