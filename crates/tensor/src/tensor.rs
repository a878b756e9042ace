use crate::{bf16, element_count, f16, DType, Element, TensorError};

/// Typed element storage of a tensor, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    String(Vec<String>),
    Bool(Vec<bool>),
    F16(Vec<f16>),
    F64(Vec<f64>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    BF16(Vec<bf16>),
    /// uint4 values, one per byte, each in `[0, 15]` (see [`TensorData::u4`]).
    U4(Vec<u8>),
    /// int4 values, one per byte, each in `[-8, 7]` (see [`TensorData::i4`]).
    I4(Vec<i8>),
}

/// Applies `$body` to the typed vector inside a [`TensorData`] of a numeric or bool
/// type, binding it as `$v`; strings go to `$strings`.
#[macro_export]
macro_rules! match_data {
    ($data:expr, $v:ident => $body:expr, $s:ident => $strings:expr) => {
        match $data {
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::BF16($v) => $body,
            $crate::TensorData::U4($v) => $body,
            $crate::TensorData::I4($v) => $body,
            $crate::TensorData::String($s) => $strings,
        }
    };
}

impl TensorData {
    /// int4 data from values that must lie in `[-8, 7]`.
    pub fn i4(values: Vec<i8>) -> Result<TensorData, TensorError> {
        match values.iter().find(|v| !(-8..=7).contains(*v)) {
            Some(v) => Err(TensorError::Unsupported(format!(
                "int4 value {v} outside [-8, 7]"
            ))),
            None => Ok(TensorData::I4(values)),
        }
    }

    /// uint4 data from values that must lie in `[0, 15]`.
    pub fn u4(values: Vec<u8>) -> Result<TensorData, TensorError> {
        match values.iter().find(|v| **v > 15) {
            Some(v) => Err(TensorError::Unsupported(format!(
                "uint4 value {v} outside [0, 15]"
            ))),
            None => Ok(TensorData::U4(values)),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
            TensorData::U16(_) => DType::U16,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::String(_) => DType::String,
            TensorData::Bool(_) => DType::Bool,
            TensorData::F16(_) => DType::F16,
            TensorData::F64(_) => DType::F64,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::BF16(_) => DType::BF16,
            TensorData::U4(_) => DType::U4,
            TensorData::I4(_) => DType::I4,
        }
    }

    pub fn len(&self) -> usize {
        match_data!(self, v => v.len(), s => s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` default elements (zero, false or empty string) of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; len]),
            DType::U8 => TensorData::U8(vec![0; len]),
            DType::I8 => TensorData::I8(vec![0; len]),
            DType::U16 => TensorData::U16(vec![0; len]),
            DType::I16 => TensorData::I16(vec![0; len]),
            DType::I32 => TensorData::I32(vec![0; len]),
            DType::I64 => TensorData::I64(vec![0; len]),
            DType::String => TensorData::String(vec![String::new(); len]),
            DType::Bool => TensorData::Bool(vec![false; len]),
            DType::F16 => TensorData::F16(vec![f16::ZERO; len]),
            DType::F64 => TensorData::F64(vec![0.0; len]),
            DType::U32 => TensorData::U32(vec![0; len]),
            DType::U64 => TensorData::U64(vec![0; len]),
            DType::BF16 => TensorData::BF16(vec![bf16::ZERO; len]),
            DType::U4 => TensorData::U4(vec![0; len]),
            DType::I4 => TensorData::I4(vec![0; len]),
        }
    }

    /// Elements at the given flat indices, in order (any dtype).
    pub fn gather(&self, indices: impl Iterator<Item = usize>) -> TensorData {
        fn pick<T: Clone>(v: &[T], idx: impl Iterator<Item = usize>) -> Vec<T> {
            idx.map(|i| v[i].clone()).collect()
        }
        match self {
            TensorData::F32(v) => TensorData::F32(pick(v, indices)),
            TensorData::U8(v) => TensorData::U8(pick(v, indices)),
            TensorData::I8(v) => TensorData::I8(pick(v, indices)),
            TensorData::U16(v) => TensorData::U16(pick(v, indices)),
            TensorData::I16(v) => TensorData::I16(pick(v, indices)),
            TensorData::I32(v) => TensorData::I32(pick(v, indices)),
            TensorData::I64(v) => TensorData::I64(pick(v, indices)),
            TensorData::String(v) => TensorData::String(pick(v, indices)),
            TensorData::Bool(v) => TensorData::Bool(pick(v, indices)),
            TensorData::F16(v) => TensorData::F16(pick(v, indices)),
            TensorData::F64(v) => TensorData::F64(pick(v, indices)),
            TensorData::U32(v) => TensorData::U32(pick(v, indices)),
            TensorData::U64(v) => TensorData::U64(pick(v, indices)),
            TensorData::BF16(v) => TensorData::BF16(pick(v, indices)),
            TensorData::U4(v) => TensorData::U4(pick(v, indices)),
            TensorData::I4(v) => TensorData::I4(pick(v, indices)),
        }
    }

    /// Concatenates pieces of the same dtype; `None` if the dtypes differ.
    pub fn concat(pieces: &[&TensorData]) -> Option<TensorData> {
        let first = pieces.first()?;
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let mut out = TensorData::zeros(first.dtype(), 0);
        macro_rules! extend {
            ($variant:ident) => {{
                let TensorData::$variant(o) = &mut out else {
                    unreachable!()
                };
                o.reserve(total);
                for p in pieces {
                    let TensorData::$variant(v) = p else {
                        return None;
                    };
                    o.extend_from_slice(v);
                }
            }};
        }
        match first.dtype() {
            DType::F32 => extend!(F32),
            DType::U8 => extend!(U8),
            DType::I8 => extend!(I8),
            DType::U16 => extend!(U16),
            DType::I16 => extend!(I16),
            DType::I32 => extend!(I32),
            DType::I64 => extend!(I64),
            DType::String => extend!(String),
            DType::Bool => extend!(Bool),
            DType::F16 => extend!(F16),
            DType::F64 => extend!(F64),
            DType::U32 => extend!(U32),
            DType::U64 => extend!(U64),
            DType::BF16 => extend!(BF16),
            DType::U4 => extend!(U4),
            DType::I4 => extend!(I4),
        }
        Some(out)
    }
}

/// A dense, row-major n-dimensional array with an owned, typed buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly the elements of `shape`.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorError> {
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(TensorError::LengthMismatch {
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// Builds a tensor from a typed vector, checking its length.
    pub fn from_vec<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, T::wrap(values))
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor {
            shape: vec![],
            data: T::wrap(vec![value]),
        }
    }

    /// A tensor of zeros (false, empty strings) of the given type and shape.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        let n = element_count(&shape)?;
        Ok(Tensor {
            shape,
            data: TensorData::zeros(dtype, n),
        })
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut TensorData {
        &mut self.data
    }

    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// Bytes the elements occupy when stored densely (strings: their UTF-8 length).
    pub fn byte_size(&self) -> usize {
        match &self.data {
            TensorData::String(s) => s.iter().map(|x| x.len()).sum(),
            d => d.len() * d.dtype().size_of(),
        }
    }

    /// The elements as a typed slice, or an error naming both dtypes.
    pub fn as_slice<T: Element>(&self) -> Result<&[T], TensorError> {
        T::view(&self.data).ok_or(TensorError::WrongDType {
            expected: T::DTYPE,
            actual: self.dtype(),
        })
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T], TensorError> {
        let actual = self.dtype();
        T::view_mut(&mut self.data).ok_or(TensorError::WrongDType {
            expected: T::DTYPE,
            actual,
        })
    }

    /// The elements converted to `T` through `f64` (bool as 0/1); strings are an error.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, TensorError> {
        if let Some(v) = T::view(&self.data) {
            return Ok(v.to_vec());
        }
        match_data!(&self.data,
            v => Ok(v.iter().map(|x| T::from_f64(x.to_f64())).collect()),
            _s => Err(TensorError::WrongDType { expected: T::DTYPE, actual: DType::String }))
    }

    /// The elements as `i64`, converting exactly from any integer type.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, TensorError> {
        match &self.data {
            TensorData::I64(v) => Ok(v.clone()),
            TensorData::U64(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            _ => self.to_vec::<i64>(),
        }
    }

    /// The same elements viewed with another shape of equal element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        if element_count(&shape)? != self.len() {
            return Err(TensorError::Reshape {
                from: self.shape,
                to: shape,
            });
        }
        Ok(Tensor {
            shape,
            data: self.data,
        })
    }

    /// Converts every element to `dtype` (ONNX `Cast` semantics for numbers and bools;
    /// strings parse as numbers and numbers print as strings).
    pub fn cast(&self, dtype: DType) -> Result<Tensor, TensorError> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let data = match (&self.data, dtype) {
            (TensorData::String(s), _) => {
                let parsed: Vec<f64> = s
                    .iter()
                    .map(|x| parse_number(x))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| {
                        TensorError::Unsupported("string that is not a number".into())
                    })?;
                return Tensor::from_vec(self.shape.clone(), parsed)?.cast(dtype);
            }
            (d, DType::String) => TensorData::String(match_data!(d,
                v => v.iter().map(|x| format_number(x.to_f64(), d.dtype())).collect(),
                _s => unreachable!())),
            (d, _) => cast_numeric(d, dtype),
        };
        Ok(Tensor {
            shape: self.shape.clone(),
            data,
        })
    }
}

fn cast_numeric(data: &TensorData, dtype: DType) -> TensorData {
    // 64-bit integer sources and targets convert exactly (f64 would lose bits).
    // Integer to integer wraps (C semantics), from any integer width.
    let ints: Option<Vec<i128>> = match data {
        TensorData::I64(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::U64(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::I32(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::U32(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::I16(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::U16(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::I8(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::U8(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::I4(v) => Some(v.iter().map(|&x| x as i128).collect()),
        TensorData::U4(v) => Some(v.iter().map(|&x| x as i128).collect()),
        _ => None,
    };
    if let Some(ints) = ints {
        match dtype {
            DType::I64 => return TensorData::I64(ints.iter().map(|&x| x as i64).collect()),
            DType::U64 => return TensorData::U64(ints.iter().map(|&x| x as u64).collect()),
            d if d.is_integer() => {
                return cast_with(dtype, &mut ints.iter().map(|&x| wrap_to_bits(x, d) as f64));
            }
            _ => {}
        }
    }
    let mut values = match_data!(data, v => v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>(), _s => unreachable!())
        .into_iter();
    cast_with(dtype, &mut values)
}

fn cast_with(dtype: DType, values: &mut dyn Iterator<Item = f64>) -> TensorData {
    fn collect<T: Element>(values: &mut dyn Iterator<Item = f64>) -> TensorData {
        T::wrap(values.map(T::from_f64).collect())
    }
    match dtype {
        DType::F32 => collect::<f32>(values),
        DType::U8 => collect::<u8>(values),
        DType::I8 => collect::<i8>(values),
        DType::U16 => collect::<u16>(values),
        DType::I16 => collect::<i16>(values),
        DType::I32 => collect::<i32>(values),
        DType::I64 => collect::<i64>(values),
        DType::Bool => collect::<bool>(values),
        DType::F16 => collect::<f16>(values),
        DType::F64 => collect::<f64>(values),
        DType::U32 => collect::<u32>(values),
        DType::U64 => collect::<u64>(values),
        DType::BF16 => collect::<bf16>(values),
        // Like ONNX's reference: truncate to an integer, then keep the low 4 bits.
        DType::U4 => TensorData::U4(values.map(|v| wrap_4bit(v, DType::U4) as u8).collect()),
        DType::I4 => TensorData::I4(values.map(|v| wrap_4bit(v, DType::I4) as i8).collect()),
        DType::String => unreachable!("handled by Tensor::cast"),
    }
}

/// `v` truncated toward zero (saturating at the i64 range, NaN to 0), then wrapped to
/// the 4-bit type's range.
fn wrap_4bit(v: f64, dtype: DType) -> i128 {
    wrap_to_bits(v as i64 as i128, dtype)
}

/// Keeps the low bits of `x` for a narrower integer type (C-style wrapping).
fn wrap_to_bits(x: i128, dtype: DType) -> i128 {
    let bits = dtype.bits() as u32;
    let masked = x & ((1i128 << bits) - 1);
    if dtype.is_signed_integer() && masked >= (1i128 << (bits - 1)) {
        masked - (1i128 << bits)
    } else {
        masked
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok(),
    }
}

fn format_number(x: f64, from: DType) -> String {
    if from.is_float() {
        if x.is_nan() {
            "NaN".into()
        } else if x.is_infinite() {
            if x > 0.0 {
                "INF".into()
            } else {
                "-INF".into()
            }
        } else {
            let f = x as f32;
            format!("{f}")
        }
    } else if from == DType::Bool {
        if x != 0.0 {
            "1".into()
        } else {
            "0".into()
        }
    } else {
        format!("{}", x as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        assert!(Tensor::from_vec(vec![2, 3], vec![0f32; 5]).is_err());
        let t = Tensor::from_vec(vec![2, 3], vec![1f32; 6]).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t.byte_size(), 24);
    }

    #[test]
    fn cast_float_to_int_truncates_and_i64_is_exact() {
        let t = Tensor::from_vec(vec![3], vec![1.7f32, -2.5, 300.0]).unwrap();
        assert_eq!(
            t.cast(DType::I32).unwrap().as_slice::<i32>().unwrap(),
            &[1, -2, 300]
        );
        let big = Tensor::from_vec(vec![1], vec![i64::MAX - 1]).unwrap();
        let same = big.cast(DType::I64).unwrap();
        assert_eq!(same.as_slice::<i64>().unwrap(), &[i64::MAX - 1]);
        let w = Tensor::from_vec(vec![1], vec![300i64])
            .unwrap()
            .cast(DType::U8)
            .unwrap();
        assert_eq!(w.as_slice::<u8>().unwrap(), &[44]);
        let n = Tensor::from_vec(vec![2], vec![200i16, -1])
            .unwrap()
            .cast(DType::I8)
            .unwrap();
        assert_eq!(n.as_slice::<i8>().unwrap(), &[-56, -1]);
        let u = Tensor::from_vec(vec![1], vec![-1i8])
            .unwrap()
            .cast(DType::U32)
            .unwrap();
        assert_eq!(u.as_slice::<u32>().unwrap(), &[u32::MAX]);
    }

    #[test]
    fn too_many_elements_is_an_error() {
        assert!(Tensor::zeros(DType::F32, vec![usize::MAX, 2]).is_err());
    }
}
