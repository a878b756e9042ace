//! Reading and writing NumPy `.npy` files.

use std::io::{Read, Write};

use crate::{f16, DType, Tensor, TensorData, TensorError};

fn npy_err(e: impl std::fmt::Display) -> TensorError {
    TensorError::Npy(e.to_string())
}

/// Reads a `.npy` file's contents (little- or big-endian numbers and bools, C or
/// Fortran order).
pub fn read_npy(reader: impl Read) -> Result<Tensor, TensorError> {
    let npy = npyz::NpyFile::new(reader).map_err(npy_err)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(TensorError::Npy("structured arrays are not supported".into()));
    };
    let data = match (ts.type_char(), ts.size_field()) {
        (npyz::TypeChar::Float, 4) => TensorData::F32(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Float, 8) => TensorData::F64(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Float, 2) => TensorData::F16(npy.into_vec::<f16>().map_err(npy_err)?),
        (npyz::TypeChar::Int, 1) => TensorData::I8(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Int, 2) => TensorData::I16(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Int, 4) => TensorData::I32(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Int, 8) => TensorData::I64(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Uint, 1) => TensorData::U8(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Uint, 2) => TensorData::U16(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Uint, 4) => TensorData::U32(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Uint, 8) => TensorData::U64(npy.into_vec().map_err(npy_err)?),
        (npyz::TypeChar::Bool, 1) => TensorData::Bool(npy.into_vec::<bool>().map_err(npy_err)?),
        (c, s) => return Err(TensorError::Npy(format!("unsupported npy dtype {c:?}{s}"))),
    };
    let tensor = Tensor::new(shape.clone(), data)?;
    if fortran && shape.len() > 1 {
        return Ok(from_fortran(tensor));
    }
    Ok(tensor)
}

fn from_fortran(t: Tensor) -> Tensor {
    let shape = t.shape().to_vec();
    let rank = shape.len();
    // Fortran order: the first axis varies fastest.
    let mut f_strides = vec![1usize; rank];
    for i in 1..rank {
        f_strides[i] = f_strides[i - 1] * shape[i - 1];
    }
    let total = t.len();
    let c_strides = crate::strides_of(&shape);
    let idx = (0..total).map(|flat| {
        let mut rem = flat;
        let mut off = 0;
        for d in 0..rank {
            let i = rem / c_strides[d];
            rem %= c_strides[d];
            off += i * f_strides[d];
        }
        off
    });
    let data = t.data().gather(idx);
    Tensor::new(shape, data).expect("same element count")
}

/// Writes a tensor as a little-endian, C-order `.npy` file.
pub fn write_npy(tensor: &Tensor, mut writer: impl Write) -> Result<(), TensorError> {
    let shape: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
    let (descr, bytes): (&str, Vec<u8>) = match tensor.data() {
        TensorData::F32(v) => ("<f4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::F64(v) => ("<f8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::F16(v) => ("<f2", v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()),
        TensorData::BF16(v) => {
            // numpy has no bfloat16: widen to float32.
            ("<f4", v.iter().flat_map(|x| x.to_f32().to_le_bytes()).collect())
        }
        TensorData::I8(v) => ("|i1", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I16(v) => ("<i2", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I32(v) => ("<i4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I64(v) => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::U8(v) => ("|u1", v.clone()),
        TensorData::U16(v) => ("<u2", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::U32(v) => ("<u4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::U64(v) => ("<u8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::Bool(v) => ("|b1", v.iter().map(|&b| b as u8).collect()),
        TensorData::String(_) => return Err(TensorError::Unsupported("string tensors cannot be written as .npy".into())),
    };
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let io = |e: std::io::Error| TensorError::Npy(e.to_string());
    writer.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    writer.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    writer.write_all(header.as_bytes()).map_err(io)?;
    writer.write_all(&bytes).map_err(io)?;
    Ok(())
}

/// Element type a `.npy` file of this tensor would hold after reading back.
pub fn npy_dtype(dtype: DType) -> DType {
    if dtype == DType::BF16 {
        DType::F32
    } else {
        dtype
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Tensor::from_vec(vec![2, 3], vec![1i64, -2, 3, 4, 5, 6]).unwrap();
        let mut buf = Vec::new();
        write_npy(&t, &mut buf).unwrap();
        assert_eq!(read_npy(&buf[..]).unwrap(), t);
        let b = Tensor::from_vec(vec![3], vec![true, false, true]).unwrap();
        let mut buf = Vec::new();
        write_npy(&b, &mut buf).unwrap();
        assert_eq!(read_npy(&buf[..]).unwrap(), b);
        let s = Tensor::scalar(2.5f32);
        let mut buf = Vec::new();
        write_npy(&s, &mut buf).unwrap();
        assert_eq!(read_npy(&buf[..]).unwrap(), s);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_npy(&b"not an npy file at all"[..]).is_err());
    }
}
