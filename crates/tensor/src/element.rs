use crate::{bf16, f16, DType, TensorData};

/// A numeric element type that a [`crate::Tensor`] can hold.
///
/// Conversions through `f64` are exact for every type except 64-bit integers
/// beyond 2^53; kernels that need exact 64-bit arithmetic use the typed slices.
pub trait Element: Copy + PartialOrd + Default + Send + Sync + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn wrap(values: Vec<Self>) -> TensorData;
    fn view(data: &TensorData) -> Option<&[Self]>;
    fn view_mut(data: &mut TensorData) -> Option<&mut [Self]>;
    fn to_f64(self) -> f64;
    /// Converts with Rust `as` semantics for integers (saturating, NaN to 0).
    fn from_f64(v: f64) -> Self;
    fn zero() -> Self {
        Self::default()
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! primitive_element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(values: Vec<Self>) -> TensorData {
                TensorData::$variant(values)
            }
            fn view(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn view_mut(data: &mut TensorData) -> Option<&mut [Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}

primitive_element!(f32, F32);
primitive_element!(f64, F64);
primitive_element!(i8, I8);
primitive_element!(i16, I16);
primitive_element!(i32, I32);
primitive_element!(i64, I64);
primitive_element!(u8, U8);
primitive_element!(u16, U16);
primitive_element!(u32, U32);
primitive_element!(u64, U64);

macro_rules! half_element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(values: Vec<Self>) -> TensorData {
                TensorData::$variant(values)
            }
            fn view(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn view_mut(data: &mut TensorData) -> Option<&mut [Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self.to_f64()
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
        }
    };
}

half_element!(f16, F16);
half_element!(bf16, BF16);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(values: Vec<Self>) -> TensorData {
        TensorData::Bool(values)
    }
    fn view(data: &TensorData) -> Option<&[Self]> {
        match data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn view_mut(data: &mut TensorData) -> Option<&mut [Self]> {
        match data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    #[inline]
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
}
