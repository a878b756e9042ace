//! Just enough of the .npy format (version 1-3, C order, little-endian) for the
//! reference inputs: float32, float64, int64, int32, int8, uint8 and bool.
//! rten has no 64-bit tensors, so float64 becomes float32 and int64 becomes int32.

use rten::Value;

pub fn read(path: &str) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(start..start + header_len).ok_or("truncated header")?)
        .map_err(|e| e.to_string())?;
    let data = &bytes[start + header_len..];
    let descr = field(header, "descr").ok_or("no descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split_once('\''))
        .map(|(d, _)| d)
        .ok_or("bad descr")?;
    if field(header, "fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err("Fortran order not supported".into());
    }
    let shape = parse_shape(header)?;
    let n: usize = shape.iter().product();
    let take = |size: usize| -> Result<std::slice::ChunksExact<'_, u8>, String> {
        let d = data.get(..n * size).ok_or("truncated data")?;
        Ok(d.chunks_exact(size))
    };
    fn value<T>(shape: &[usize], data: Vec<T>) -> Result<Value, String>
    where
        Value: From<rten_tensor::Tensor<T>>,
    {
        Value::from_shape(shape, data).map_err(|e| e.to_string())
    }
    match descr {
        "<f4" => value(&shape, take(4)?.map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()),
        "<f8" => value(&shape, take(8)?.map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect::<Vec<_>>()),
        "<i8" => value(&shape, take(8)?.map(|c| i64::from_le_bytes(c.try_into().unwrap()) as i32).collect::<Vec<_>>()),
        "<i4" => value(&shape, take(4)?.map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()),
        "|i1" => value(&shape, take(1)?.map(|c| c[0] as i8).collect::<Vec<_>>()),
        "|u1" | "|b1" => value(&shape, take(1)?.map(|c| c[0]).collect::<Vec<_>>()),
        d => Err(format!("unsupported dtype {d}")),
    }
}

/// The text after `'key':` in the header dict.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

fn parse_shape(header: &str) -> Result<Vec<usize>, String> {
    let s = field(header, "shape").ok_or("no shape")?;
    let s = s.strip_prefix('(').ok_or("bad shape")?;
    let s = &s[..s.find(')').ok_or("bad shape")?];
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().map_err(|e| format!("shape: {e}")))
        .collect()
}
