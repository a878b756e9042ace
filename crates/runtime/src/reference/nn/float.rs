//! Float element access shared by the nn and rnn kernels: computation runs in `f32`
//! (for f32, f16 and bf16 tensors) or `f64` (for f64 tensors).

use std::borrow::Cow;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

use slimnet_tensor::{bf16, f16, DType, Element, Tensor, TensorData};

/// A type kernels compute in: `f32` or `f64`.
pub trait Float:
    Element
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn powf(self, p: Self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

impl_float!(f32);
impl_float!(f64);

/// The elements of a float tensor as `T`: borrowed when the tensor holds `T`,
/// converted otherwise. Non-float tensors are an error naming `what`.
pub fn floats<'a, T: Float>(t: &'a Tensor, what: &str) -> Result<Cow<'a, [T]>, String> {
    if let Ok(v) = t.as_slice::<T>() {
        return Ok(Cow::Borrowed(v));
    }
    let conv = |x: f64| T::from_f64(x);
    Ok(Cow::Owned(match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| conv(x as f64)).collect(),
        TensorData::F64(v) => v.iter().map(|&x| conv(x)).collect(),
        TensorData::F16(v) => v.iter().map(|&x| T::from_f32(x.to_f32())).collect(),
        TensorData::BF16(v) => v.iter().map(|&x| T::from_f32(x.to_f32())).collect(),
        _ => return Err(format!("{what} must be a float tensor, got {}", t.dtype())),
    }))
}

/// Builds a tensor of `dtype` (a float type) from values computed in `T`.
pub fn to_tensor<T: Float>(
    shape: Vec<usize>,
    values: Vec<T>,
    dtype: DType,
) -> Result<Tensor, String> {
    let data = if dtype == T::DTYPE {
        T::wrap(values)
    } else {
        match dtype {
            DType::F32 => TensorData::F32(values.iter().map(|x| x.to_f32()).collect()),
            DType::F64 => TensorData::F64(values.iter().map(|x| x.to_f64()).collect()),
            DType::F16 => {
                TensorData::F16(values.iter().map(|x| f16::from_f32(x.to_f32())).collect())
            }
            DType::BF16 => {
                TensorData::BF16(values.iter().map(|x| bf16::from_f32(x.to_f32())).collect())
            }
            d => return Err(format!("cannot produce a {d} tensor from float results")),
        }
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Checks that `t` is a float tensor and returns its dtype.
pub fn float_dtype(t: &Tensor, what: &str) -> Result<DType, String> {
    let d = t.dtype();
    if d.is_float() {
        Ok(d)
    } else {
        Err(format!("{what} must be a float tensor, got {d}"))
    }
}

/// Calls `$f::<T>(args)` with `T = f64` for f64 tensors and `T = f32` for the other
/// float types; other dtypes are an error.
macro_rules! with_float {
    ($dtype:expr, $what:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $dtype {
            slimnet_tensor::DType::F64 => $f::<f64>($($arg),*),
            slimnet_tensor::DType::F32 | slimnet_tensor::DType::F16 | slimnet_tensor::DType::BF16 => {
                $f::<f32>($($arg),*)
            }
            d => Err(format!("{} must be a float tensor, got {d}", $what)),
        }
    };
}
pub(crate) use with_float;

/// Most elements a kernel allocates for one tensor.
const MAX_ELEMENTS: usize = 1 << 34;

/// The product of a shape's dims; an error above [`MAX_ELEMENTS`] or on overflow.
pub fn count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("shape {shape:?} is too large"))
}
