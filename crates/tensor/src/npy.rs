//! Reading and writing NumPy `.npy` files.

use std::io::{Read, Write};

use crate::{f16, DType, Tensor, TensorData, TensorError};

fn npy_err(e: impl std::fmt::Display) -> TensorError {
    TensorError::Npy(e.to_string())
}

/// Reads a `.npy` file's contents (format versions 1-3; little- or big-endian
/// numbers and bools; C or Fortran order).
///
/// The header's declared shape is checked against the bytes present before any
/// element buffer is allocated.
pub fn read_npy(mut reader: impl Read) -> Result<Tensor, TensorError> {
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| npy_err("too short for a .npy header"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(npy_err("missing the .npy magic bytes"));
    }
    let header_len = if magic[6] == 1 {
        let mut l = [0u8; 2];
        reader.read_exact(&mut l).map_err(npy_err)?;
        u16::from_le_bytes(l) as usize
    } else {
        let mut l = [0u8; 4];
        reader.read_exact(&mut l).map_err(npy_err)?;
        u32::from_le_bytes(l) as usize
    };
    if header_len > 1 << 20 {
        return Err(npy_err("header is implausibly long"));
    }
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header)
        .map_err(|_| npy_err("truncated header"))?;
    let header = String::from_utf8_lossy(&header).into_owned();
    let descr = dict_value(&header, "descr").ok_or_else(|| npy_err("header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(&header, "fortran_order")
        .ok_or_else(|| npy_err("header has no 'fortran_order'"))?
        == "True";
    let shape_text =
        dict_value(&header, "shape").ok_or_else(|| npy_err("header has no 'shape'"))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| npy_err(format!("bad dimension '{d}' in shape")))
        })
        .collect::<Result<_, _>>()?;
    let (endian, kind, size) = parse_descr(descr)?;
    let count = crate::element_count(&shape)?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(npy_err)?;
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(npy_err(format!(
            "shape {shape:?} needs {count} elements of {size} bytes, file holds {} bytes",
            bytes.len()
        )));
    }
    if endian == '>' && size > 1 {
        for chunk in bytes.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
    macro_rules! le {
        ($t:ty) => {
            bytes
                .chunks_exact(size)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                .collect()
        };
    }
    let data = match (kind, size) {
        ('f', 4) => TensorData::F32(le!(f32)),
        ('f', 8) => TensorData::F64(le!(f64)),
        ('f', 2) => TensorData::F16(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        ('i', 1) => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        ('i', 2) => TensorData::I16(le!(i16)),
        ('i', 4) => TensorData::I32(le!(i32)),
        ('i', 8) => TensorData::I64(le!(i64)),
        ('u', 1) => TensorData::U8(bytes),
        ('u', 2) => TensorData::U16(le!(u16)),
        ('u', 4) => TensorData::U32(le!(u32)),
        ('u', 8) => TensorData::U64(le!(u64)),
        ('b', 1) => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        _ => return Err(npy_err(format!("unsupported dtype '{descr}'"))),
    };
    let tensor = Tensor::new(shape.clone(), data)?;
    if fortran && shape.len() > 1 {
        return Ok(from_fortran(tensor));
    }
    Ok(tensor)
}

/// `(byte order, kind, size)` of a numpy type string such as `<f4` or `|b1`.
fn parse_descr(descr: &str) -> Result<(char, char, usize), TensorError> {
    let mut chars = descr.chars();
    let endian = chars.next().ok_or_else(|| npy_err("empty dtype"))?;
    let (endian, rest) = if "<>|=".contains(endian) {
        (endian, chars.as_str())
    } else {
        ('<', descr)
    };
    let mut rest_chars = rest.chars();
    let kind = rest_chars
        .next()
        .ok_or_else(|| npy_err(format!("bad dtype '{descr}'")))?;
    let size = rest_chars
        .as_str()
        .parse::<usize>()
        .map_err(|_| npy_err(format!("unsupported dtype '{descr}'")))?;
    Ok((if endian == '=' { '<' } else { endian }, kind, size))
}

/// The text of one entry of the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?
        + key.len()
        + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
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
        TensorData::F16(v) => (
            "<f2",
            v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        ),
        TensorData::BF16(v) => {
            // numpy has no bfloat16: widen to float32.
            (
                "<f4",
                v.iter().flat_map(|x| x.to_f32().to_le_bytes()).collect(),
            )
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
        // numpy has no 4-bit types: written one value per byte.
        TensorData::I4(v) => ("|i1", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::U4(v) => ("|u1", v.clone()),
        TensorData::String(_) => {
            return Err(TensorError::Unsupported(
                "string tensors cannot be written as .npy".into(),
            ))
        }
    };
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let io = |e: std::io::Error| TensorError::Npy(e.to_string());
    writer.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    writer
        .write_all(&(header.len() as u16).to_le_bytes())
        .map_err(io)?;
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

    fn with_header(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        h.push_str(&" ".repeat((64 - (10 + h.len() + 1) % 64) % 64));
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn fortran_order_and_big_endian() {
        // [[1, 2, 3], [4, 5, 6]] stored column-major, big-endian int16.
        let body: Vec<u8> = [1i16, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let bytes = with_header(
            "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }",
            &body,
        );
        let t = read_npy(&bytes[..]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.as_slice::<i16>().unwrap(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn short_body_is_an_error() {
        let bytes = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            &[0; 8],
        );
        assert!(read_npy(&bytes[..]).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_npy(&b"not an npy file at all"[..]).is_err());
    }
}
