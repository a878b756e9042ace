//! `Cast` with ONNX's conversion rules between numeric types.

use slimnet_tensor::{DType, Element, Tensor, TensorData};

use super::num::Int;
use crate::reference::util::reason;

fn widen<T: Int>(v: &[T]) -> Vec<i128> {
    v.iter().map(|x| x.to_i128()).collect()
}

fn narrow<T: Int>(shape: &[usize], v: &[i128]) -> Result<Tensor, String> {
    Tensor::from_vec(shape.to_vec(), v.iter().map(|&x| T::from_i128(x)).collect()).map_err(reason)
}

/// The elements of an integer or bool tensor, exactly.
fn exact_ints(x: &Tensor) -> Option<Vec<i128>> {
    Some(match x.data() {
        TensorData::I8(v) => widen(v),
        TensorData::I16(v) => widen(v),
        TensorData::I32(v) => widen(v),
        TensorData::I64(v) => widen(v),
        TensorData::U8(v) => widen(v),
        TensorData::U16(v) => widen(v),
        TensorData::U32(v) => widen(v),
        TensorData::U64(v) => widen(v),
        TensorData::Bool(v) => v.iter().map(|&b| b as i128).collect(),
        _ => return None,
    })
}

fn direct<S: Element, T: Element>(
    shape: &[usize],
    v: &[S],
    f: impl Fn(S) -> T,
) -> Result<Tensor, String> {
    Tensor::from_vec(shape.to_vec(), v.iter().map(|&a| f(a)).collect()).map_err(reason)
}

/// Converts `x` to `to`. Integers (and bools) convert to integers by keeping the
/// low bits (two's complement), to bools by `!= 0`; floats to bools by `!= 0`
/// (NaN is true); everything to floats by rounding to nearest. Out-of-range floats
/// converted to integers, which ONNX leaves undefined, saturate (NaN gives 0).
/// Strings parse as numbers and numbers print as strings.
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor, String> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    let shape = x.shape();
    // To 4-bit types: truncate, then wrap (Tensor::cast).
    if (to.is_integer() || to == DType::Bool) && !matches!(to, DType::I4 | DType::U4) {
        if let Some(ints) = exact_ints(x) {
            return match to {
                DType::I8 => narrow::<i8>(shape, &ints),
                DType::I16 => narrow::<i16>(shape, &ints),
                DType::I32 => narrow::<i32>(shape, &ints),
                DType::I64 => narrow::<i64>(shape, &ints),
                DType::U8 => narrow::<u8>(shape, &ints),
                DType::U16 => narrow::<u16>(shape, &ints),
                DType::U32 => narrow::<u32>(shape, &ints),
                DType::U64 => narrow::<u64>(shape, &ints),
                _ => Tensor::from_vec(shape.to_vec(), ints.iter().map(|&v| v != 0).collect())
                    .map_err(reason),
            };
        }
    }
    // 64-bit integers convert to float32 in one rounding (not through f64).
    match (x.data(), to) {
        (TensorData::I64(v), DType::F32) => return direct(shape, v, |a| a as f32),
        (TensorData::U64(v), DType::F32) => return direct(shape, v, |a| a as f32),
        _ => {}
    }
    x.cast(to).map_err(reason)
}
