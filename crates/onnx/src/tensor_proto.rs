//! `TensorProto` <-> [`Tensor`], including external data files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use slimnet_tensor::{bf16, element_count, f16, DType, Tensor, TensorData};

use crate::proto::{TensorProto, DATA_LOCATION_EXTERNAL};

/// Where external data files may be read from: the model's own folder.
#[derive(Clone, Copy, Debug)]
pub struct DataDir<'a>(pub Option<&'a Path>);

/// Decodes a tensor; the error is a one-line reason (the caller names the tensor).
///
/// The declared dims are checked against the data actually present before anything
/// is allocated, so a tensor that claims more elements than it holds is an error.
pub fn tensor_from_proto(p: &TensorProto, dir: DataDir) -> Result<Tensor, String> {
    let dtype = DType::from_onnx_code(p.data_type).ok_or_else(|| match p.data_type {
        0 => "element type is undefined".to_string(),
        c => format!("element type {c} ({}) is not supported", onnx_type_name(c)),
    })?;
    let mut shape = Vec::with_capacity(p.dims.len());
    for &d in &p.dims {
        if d < 0 {
            return Err(format!("negative dimension {d} in dims {:?}", p.dims));
        }
        shape.push(usize::try_from(d).map_err(|_| format!("dimension {d} is too large"))?);
    }
    let count = element_count(&shape)
        .map_err(|_| format!("dims {:?} overflow the element count", p.dims))?;
    let external;
    let raw: Option<&[u8]> = if p.data_location == DATA_LOCATION_EXTERNAL {
        external = read_external(p, dir, count, dtype)?;
        Some(&external)
    } else if !p.raw_data.is_empty() {
        Some(&p.raw_data)
    } else {
        None
    };
    let data = match raw {
        Some(bytes) => from_raw(bytes, dtype, count)?,
        None => from_typed(p, dtype, count)?,
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

fn claims(count: usize, held: usize, unit: &str) -> String {
    format!("dims claim {count} elements but the tensor holds {held} {unit}")
}

fn from_raw(bytes: &[u8], dtype: DType, count: usize) -> Result<TensorData, String> {
    if dtype == DType::String {
        return Err("string tensors cannot use raw_data".into());
    }
    if matches!(dtype, DType::I4 | DType::U4) {
        if count.div_ceil(2) != bytes.len() {
            return Err(format!(
                "{} of raw data (4-bit values pack two per byte)",
                claims(count, bytes.len(), "bytes")
            ));
        }
        return Ok(unpack_4bit(bytes.iter().map(|&b| b as i32), dtype, count));
    }
    let size = dtype.size_of();
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(format!(
            "{} of raw data",
            claims(count, bytes.len(), "bytes")
        ));
    }
    macro_rules! le {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                .collect()
        };
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(le!(f32, 4)),
        DType::F64 => TensorData::F64(le!(f64, 8)),
        DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::I16 => TensorData::I16(le!(i16, 2)),
        DType::U16 => TensorData::U16(le!(u16, 2)),
        DType::I32 => TensorData::I32(le!(i32, 4)),
        DType::U32 => TensorData::U32(le!(u32, 4)),
        DType::I64 => TensorData::I64(le!(i64, 8)),
        DType::U64 => TensorData::U64(le!(u64, 8)),
        DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DType::F16 => TensorData::F16(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        DType::BF16 => TensorData::BF16(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        DType::String | DType::I4 | DType::U4 => unreachable!(),
    })
}

/// 4-bit values from bytes holding two each, low nibble first (ONNX's packing;
/// the last high nibble of an odd count is padding). Signed values are sign-extended.
fn unpack_4bit(bytes: impl Iterator<Item = i32>, dtype: DType, count: usize) -> TensorData {
    let nibbles = bytes
        .flat_map(|b| [(b & 0xF) as u8, ((b >> 4) & 0xF) as u8])
        .take(count);
    if dtype == DType::I4 {
        TensorData::I4(nibbles.map(|n| ((n << 4) as i8) >> 4).collect())
    } else {
        TensorData::U4(nibbles.collect())
    }
}

/// 4-bit values packed two per byte, low nibble first; an odd count leaves the
/// last high nibble zero.
fn pack_4bit(nibbles: impl Iterator<Item = u8>) -> Vec<u8> {
    let nibbles: Vec<u8> = nibbles.map(|n| n & 0xF).collect();
    nibbles
        .chunks(2)
        .map(|c| c[0] | c.get(1).map_or(0, |h| h << 4))
        .collect()
}

fn from_typed(p: &TensorProto, dtype: DType, count: usize) -> Result<TensorData, String> {
    let held = match dtype {
        DType::F32 => p.float_data.len(),
        DType::F64 => p.double_data.len(),
        DType::I64 => p.int64_data.len(),
        DType::U32 | DType::U64 => p.uint64_data.len(),
        DType::String => p.string_data.len(),
        // 4-bit values pack two per int32 entry, like raw bytes.
        DType::I4 | DType::U4 => p.int32_data.len() * 2,
        _ => p.int32_data.len(),
    };
    let held_ok = match dtype {
        DType::I4 | DType::U4 => count.div_ceil(2) * 2 == held,
        _ => held == count,
    };
    if !held_ok {
        return Err(claims(count, held, "values"));
    }
    let i32s = &p.int32_data;
    Ok(match dtype {
        DType::F32 => TensorData::F32(p.float_data.clone()),
        DType::F64 => TensorData::F64(p.double_data.clone()),
        DType::I64 => TensorData::I64(p.int64_data.clone()),
        DType::U64 => TensorData::U64(p.uint64_data.clone()),
        DType::U32 => TensorData::U32(p.uint64_data.iter().map(|&v| v as u32).collect()),
        DType::I32 => TensorData::I32(i32s.clone()),
        DType::I16 => TensorData::I16(i32s.iter().map(|&v| v as i16).collect()),
        DType::I8 => TensorData::I8(i32s.iter().map(|&v| v as i8).collect()),
        DType::U16 => TensorData::U16(i32s.iter().map(|&v| v as u16).collect()),
        DType::U8 => TensorData::U8(i32s.iter().map(|&v| v as u8).collect()),
        DType::Bool => TensorData::Bool(i32s.iter().map(|&v| v != 0).collect()),
        DType::F16 => TensorData::F16(i32s.iter().map(|&v| f16::from_bits(v as u16)).collect()),
        DType::BF16 => TensorData::BF16(i32s.iter().map(|&v| bf16::from_bits(v as u16)).collect()),
        DType::I4 | DType::U4 => unpack_4bit(i32s.iter().copied(), dtype, count),
        DType::String => TensorData::String(
            p.string_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
    })
}

fn read_external(
    p: &TensorProto,
    dir: DataDir,
    count: usize,
    dtype: DType,
) -> Result<Vec<u8>, String> {
    let entry = |key: &str| {
        p.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("external data has no 'location'")?;
    let parse = |key: &str| -> Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("external data '{key}' is not a number: {v}"))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location '{location}' must be a relative path inside the model's folder"
        ));
    }
    let Some(base) = dir.0 else {
        return Err(format!(
            "external data '{location}' cannot be resolved: the model was not loaded from a file"
        ));
    };
    let path = base.join(rel);
    let canon_base = base
        .canonicalize()
        .map_err(|e| format!("model folder: {e}"))?;
    let canon = path
        .canonicalize()
        .map_err(|e| format!("external data file '{location}': {e}"))?;
    if !canon.starts_with(&canon_base) {
        return Err(format!(
            "external data location '{location}' resolves outside the model's folder"
        ));
    }
    let expected = match dtype {
        DType::I4 | DType::U4 => count.div_ceil(2),
        _ => count
            .checked_mul(dtype.size_of())
            .ok_or("element count overflows")?,
    } as u64;
    let mut file =
        File::open(&canon).map_err(|e| format!("external data file '{location}': {e}"))?;
    let file_len = file
        .metadata()
        .map_err(|e| format!("external data file '{location}': {e}"))?
        .len();
    let length = length.unwrap_or(file_len.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(format!(
            "external data '{location}' range {offset}+{length} exceeds the file's {file_len} bytes"
        ));
    }
    if length != expected {
        return Err(format!(
            "{} in external data",
            claims(count, length as usize, "bytes")
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; length as usize];
    file.read_exact(&mut buf)
        .map_err(|e| format!("external data file '{location}': {e}"))?;
    Ok(buf)
}

/// Encodes a tensor with `raw_data` (strings with `string_data`; 4-bit types packed
/// two per byte, low nibble first).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut p = TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        ..Default::default()
    };
    let raw: Vec<u8> = match t.data() {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        TensorData::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        TensorData::BF16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        TensorData::I4(v) => pack_4bit(v.iter().map(|&x| x as u8)),
        TensorData::U4(v) => pack_4bit(v.iter().copied()),
        TensorData::String(v) => {
            p.string_data = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            return p;
        }
    };
    p.raw_data = raw;
    p
}

/// Name of an ONNX element type code, for messages.
pub fn onnx_type_name(code: i32) -> &'static str {
    match code {
        14 => "complex64",
        15 => "complex128",
        17 => "float8e4m3fn",
        18 => "float8e4m3fnuz",
        19 => "float8e5m2",
        20 => "float8e5m2fnuz",
        23 => "float4e2m1",
        c => DType::from_onnx_code(c)
            .map(|d| d.name())
            .unwrap_or("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int4_packs_low_nibble_first_and_round_trips() {
        let t = Tensor::new(vec![3], TensorData::i4(vec![-8, 7, -1]).unwrap()).unwrap();
        let p = tensor_to_proto("w", &t);
        assert_eq!(p.data_type, 22);
        assert_eq!(p.raw_data, vec![0x78, 0x0F]);
        assert_eq!(tensor_from_proto(&p, DataDir(None)).unwrap(), t);
        // int32_data form: one packed byte per entry.
        let q = TensorProto {
            data_type: 22,
            dims: vec![3],
            int32_data: vec![0x78, 0x0F],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&q, DataDir(None)).unwrap(), t);
        let u = Tensor::new(vec![2, 2], TensorData::u4(vec![1, 15, 0, 9]).unwrap()).unwrap();
        let p = tensor_to_proto("u", &u);
        assert_eq!(p.raw_data, vec![0xF1, 0x90]);
        assert_eq!(tensor_from_proto(&p, DataDir(None)).unwrap(), u);
        let short = TensorProto {
            data_type: 21,
            dims: vec![5],
            raw_data: vec![0, 0],
            ..Default::default()
        };
        assert!(tensor_from_proto(&short, DataDir(None)).is_err());
    }
}
