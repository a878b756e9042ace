//! Broadcasting binary kernels: arithmetic, `Pow`, comparisons, logic, bitwise ops.

use slimnet_ir::ops::elementwise::ShiftDirection;
use slimnet_tensor::{Tensor, TensorData};

use super::broadcast::binary;
use super::math::{max_nan, min_nan, py_mod};
use super::num::{int_pow, Float, Int};
use super::unary::tensor;

/// Binary arithmetic defined on every numeric dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    /// Python `%` when false, C `fmod` when true.
    Mod(bool),
    Max,
    Min,
    /// `a < 0 ? a * b : a`.
    PRelu,
}

/// Matches two tensors of the same dtype among `$variant`s, binding their slices.
macro_rules! same_dtype {
    ($a:expr, $b:expr, $x:ident, $y:ident, [$($variant:ident),*] => $body:expr, else $other:expr) => {
        match ($a.data(), $b.data()) {
            $((TensorData::$variant($x), TensorData::$variant($y)) => $body,)*
            _ => $other,
        }
    };
}

fn dtype_error(name: &str, a: &Tensor, b: &Tensor) -> String {
    if a.dtype() == b.dtype() {
        format!("{name} does not support dtype {}", a.dtype())
    } else {
        format!(
            "{name} expects inputs of one dtype, got {} and {}",
            a.dtype(),
            b.dtype()
        )
    }
}

fn float_binary<T: Float>(
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    g: impl Fn(f64, f64) -> f64,
) -> Result<Tensor, String> {
    let (shape, v) = binary(a.0, a.1, b.0, b.1, |&p, &q| {
        T::round_from(g(p.to_f64(), q.to_f64()))
    })?;
    tensor(&shape, v)
}

fn float_arith<T: Float>(
    op: Arith,
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
) -> Result<Tensor, String> {
    match op {
        Arith::Add => float_binary(a, b, |p, q| p + q),
        Arith::Sub => float_binary(a, b, |p, q| p - q),
        Arith::Mul => float_binary(a, b, |p, q| p * q),
        Arith::Div => float_binary(a, b, |p, q| p / q),
        Arith::Mod(false) => float_binary(a, b, py_mod),
        Arith::Mod(true) => float_binary(a, b, |p, q| p % q),
        Arith::Max => float_binary(a, b, max_nan),
        Arith::Min => float_binary(a, b, min_nan),
        Arith::PRelu => float_binary(a, b, |p, q| if p < 0.0 { p * q } else { p }),
    }
}

fn int_binary<T: Int>(
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    g: impl Fn(T, T) -> T,
) -> Result<Tensor, String> {
    let (shape, v) = binary(a.0, a.1, b.0, b.1, |&p, &q| g(p, q))?;
    tensor(&shape, v)
}

fn int_arith<T: Int>(
    op: Arith,
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
) -> Result<Tensor, String> {
    if matches!(op, Arith::Div | Arith::Mod(_)) && b.0.contains(&T::zero()) {
        return Err("integer division by zero".into());
    }
    match op {
        Arith::Add => int_binary(a, b, T::wadd),
        Arith::Sub => int_binary(a, b, T::wsub),
        Arith::Mul => int_binary(a, b, T::wmul),
        Arith::Div => int_binary(a, b, T::wdiv),
        Arith::Mod(true) => int_binary(a, b, T::wrem),
        Arith::Mod(false) => int_binary(a, b, |p, q| {
            let r = p.wrem(q);
            if r != T::zero() && r.is_negative() != q.is_negative() {
                r.wadd(q)
            } else {
                r
            }
        }),
        Arith::Max => int_binary(a, b, |p, q| p.max(q)),
        Arith::Min => int_binary(a, b, |p, q| p.min(q)),
        Arith::PRelu => int_binary(a, b, |p, q| if p.is_negative() { p.wmul(q) } else { p }),
    }
}

/// Broadcasting arithmetic on two tensors of one numeric dtype.
pub fn arith(name: &str, op: Arith, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let (sa, sb) = (a.shape(), b.shape());
    same_dtype!(a, b, x, y, [F32, F64, F16, BF16] => float_arith(op, (x, sa), (y, sb)),
        else same_dtype!(a, b, x, y, [I8, I16, I32, I64, U8, U16, U32, U64] => int_arith(op, (x, sa), (y, sb)),
        else Err(dtype_error(name, a, b))))
}

/// Exponents of `Pow`, converted once.
enum Exponents {
    Int(Vec<i128>),
    Float(Vec<f64>),
}

fn exponents(e: &Tensor) -> Result<Exponents, String> {
    fn ints<T: Int>(v: &[T]) -> Exponents {
        Exponents::Int(v.iter().map(|x| x.to_i128()).collect())
    }
    Ok(match e.data() {
        TensorData::I8(v) => ints(v),
        TensorData::I16(v) => ints(v),
        TensorData::I32(v) => ints(v),
        TensorData::I64(v) => ints(v),
        TensorData::U8(v) => ints(v),
        TensorData::U16(v) => ints(v),
        TensorData::U32(v) => ints(v),
        TensorData::U64(v) => ints(v),
        TensorData::F32(_) | TensorData::F64(_) | TensorData::F16(_) | TensorData::BF16(_) => {
            Exponents::Float(e.to_vec::<f64>().map_err(|e| e.to_string())?)
        }
        _ => {
            return Err(format!(
                "Pow does not support exponents of dtype {}",
                e.dtype()
            ))
        }
    })
}

/// `p^q`; squares exactly (`powf(p, 2)` is `p * p` correctly rounded).
#[inline]
fn powf(p: f64, q: f64) -> f64 {
    if q == 2.0 {
        p * p
    } else {
        p.powf(q)
    }
}

fn pow_float<T: Float>(
    x: &[T],
    sx: &[usize],
    e: &Exponents,
    se: &[usize],
) -> Result<Tensor, String> {
    let (shape, v) = match e {
        Exponents::Float(e) => binary(x, sx, e, se, |&p, &q| T::round_from(powf(p.to_f64(), q)))?,
        Exponents::Int(e) => binary(x, sx, e, se, |&p, &q| {
            T::round_from(p.to_f64().powf(q as f64))
        })?,
    };
    tensor(&shape, v)
}

fn pow_int<T: Int>(x: &[T], sx: &[usize], e: &Exponents, se: &[usize]) -> Result<Tensor, String> {
    let (shape, v) = match e {
        Exponents::Float(e) => binary(x, sx, e, se, |&p, &q| T::from_f64(p.to_f64().powf(q)))?,
        Exponents::Int(e) => binary(x, sx, e, se, |&p, &q| {
            if q >= 0 {
                int_pow(p, q as u128)
            } else {
                // 1 / p^|q| truncated: only +-1 survive (0 saturates like a cast of inf).
                T::from_f64(p.to_f64().powf(q as f64))
            }
        })?,
    };
    tensor(&shape, v)
}

/// `Pow`: the output has the base's dtype; the exponent may be any numeric dtype.
pub fn pow(x: &Tensor, e: &Tensor) -> Result<Tensor, String> {
    let ex = exponents(e)?;
    let (sx, se) = (x.shape(), e.shape());
    match x.data() {
        TensorData::F32(v) => pow_float(v, sx, &ex, se),
        TensorData::F64(v) => pow_float(v, sx, &ex, se),
        TensorData::F16(v) => pow_float(v, sx, &ex, se),
        TensorData::BF16(v) => pow_float(v, sx, &ex, se),
        TensorData::I8(v) => pow_int(v, sx, &ex, se),
        TensorData::I16(v) => pow_int(v, sx, &ex, se),
        TensorData::I32(v) => pow_int(v, sx, &ex, se),
        TensorData::I64(v) => pow_int(v, sx, &ex, se),
        TensorData::U8(v) => pow_int(v, sx, &ex, se),
        TensorData::U16(v) => pow_int(v, sx, &ex, se),
        TensorData::U32(v) => pow_int(v, sx, &ex, se),
        TensorData::U64(v) => pow_int(v, sx, &ex, se),
        _ => Err(format!(
            "Pow does not support a base of dtype {}",
            x.dtype()
        )),
    }
}

/// Comparisons; NaN compares false (and unequal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

fn compare_typed<T: PartialOrd>(
    op: Compare,
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
) -> Result<Tensor, String> {
    let (shape, v) = match op {
        Compare::Equal => binary(a.0, a.1, b.0, b.1, |p, q| p == q)?,
        Compare::Less => binary(a.0, a.1, b.0, b.1, |p, q| p < q)?,
        Compare::LessOrEqual => binary(a.0, a.1, b.0, b.1, |p, q| p <= q)?,
        Compare::Greater => binary(a.0, a.1, b.0, b.1, |p, q| p > q)?,
        Compare::GreaterOrEqual => binary(a.0, a.1, b.0, b.1, |p, q| p >= q)?,
    };
    tensor(&shape, v)
}

/// Broadcasting comparison of two tensors of one dtype (strings for `Equal` too).
pub fn compare(name: &str, op: Compare, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let (sa, sb) = (a.shape(), b.shape());
    if let (TensorData::String(x), TensorData::String(y)) = (a.data(), b.data()) {
        if op != Compare::Equal {
            return Err(format!("{name} does not support strings"));
        }
        return compare_typed(op, (x, sa), (y, sb));
    }
    same_dtype!(a, b, x, y, [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool] => compare_typed(op, (x, sa), (y, sb)),
        else Err(dtype_error(name, a, b)))
}

/// Logic and bitwise binary ops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bits {
    And,
    Or,
    Xor,
    Shift(ShiftDirection),
}

fn bool_logic(op: Bits, a: (&[bool], &[usize]), b: (&[bool], &[usize])) -> Result<Tensor, String> {
    let (shape, v) = match op {
        Bits::And => binary(a.0, a.1, b.0, b.1, |&p, &q| p & q)?,
        Bits::Or => binary(a.0, a.1, b.0, b.1, |&p, &q| p | q)?,
        Bits::Xor => binary(a.0, a.1, b.0, b.1, |&p, &q| p ^ q)?,
        Bits::Shift(_) => return Err("BitShift expects integer tensors, got bool".into()),
    };
    tensor(&shape, v)
}

/// `x` shifted by `n` bits; shifts that are negative or not below the bit width
/// leave only the sign extension (-1 for a right shift of a negative value, else 0).
fn shift<T: Int>(x: T, n: T, direction: ShiftDirection) -> T {
    let n = n.to_i128();
    if n < 0 || n >= T::BITS as i128 {
        return match direction {
            ShiftDirection::Right if x.is_negative() => T::zero().wsub(T::one()),
            _ => T::zero(),
        };
    }
    match direction {
        ShiftDirection::Left => x.shl(n as u32),
        ShiftDirection::Right => x.shr(n as u32),
    }
}

fn int_bits<T: Int>(op: Bits, a: (&[T], &[usize]), b: (&[T], &[usize])) -> Result<Tensor, String> {
    let (shape, v) = match op {
        Bits::And => binary(a.0, a.1, b.0, b.1, |&p, &q| p.and(q))?,
        Bits::Or => binary(a.0, a.1, b.0, b.1, |&p, &q| p.or(q))?,
        Bits::Xor => binary(a.0, a.1, b.0, b.1, |&p, &q| p.xor(q))?,
        Bits::Shift(d) => binary(a.0, a.1, b.0, b.1, |&p, &q| shift(p, q, d))?,
    };
    tensor(&shape, v)
}

/// `And`/`Or`/`Xor` on bools, bitwise ops and shifts on integers.
pub fn bits(name: &str, op: Bits, a: &Tensor, b: &Tensor, on_bool: bool) -> Result<Tensor, String> {
    let (sa, sb) = (a.shape(), b.shape());
    if on_bool {
        return match (a.data(), b.data()) {
            (TensorData::Bool(x), TensorData::Bool(y)) => bool_logic(op, (x, sa), (y, sb)),
            _ => Err(format!(
                "{name} expects bool tensors, got {} and {}",
                a.dtype(),
                b.dtype()
            )),
        };
    }
    same_dtype!(a, b, x, y, [I8, I16, I32, I64, U8, U16, U32, U64] => int_bits(op, (x, sa), (y, sb)),
        else Err(dtype_error(name, a, b)))
}

/// Folds `Max`, `Min`, `Sum` or `Mean` over one or more inputs (broadcast together).
pub fn variadic(name: &str, op: Arith, inputs: &[&Tensor], mean: bool) -> Result<Tensor, String> {
    let Some((first, rest)) = inputs.split_first() else {
        return Err(format!("{name} needs at least one input"));
    };
    if matches!(op, Arith::Add) && !first.dtype().is_float() {
        return Err(format!(
            "{name} expects float tensors, got {}",
            first.dtype()
        ));
    }
    if rest.is_empty() && !first.dtype().is_float() && !first.dtype().is_integer() {
        return Err(format!("{name} does not support dtype {}", first.dtype()));
    }
    let mut acc = (*first).clone();
    for t in rest {
        acc = arith(name, op, &acc, t)?;
    }
    if mean && !rest.is_empty() {
        let n = Tensor::scalar((inputs.len() as f64) as f32)
            .cast(acc.dtype())
            .map_err(|e| e.to_string())?;
        acc = arith(name, Arith::Div, &acc, &n)?;
    }
    Ok(acc)
}
