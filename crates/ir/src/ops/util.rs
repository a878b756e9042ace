//! Helpers shared by the operators' shape inference.

use slimnet_tensor::DType;

use crate::{Dim, InferInput, ValueInfo};

/// The input at `i`, or an error naming it as missing.
pub fn input<'a>(
    inputs: &'a [Option<InferInput<'a>>],
    i: usize,
) -> Result<&'a InferInput<'a>, String> {
    inputs
        .get(i)
        .and_then(|x| x.as_ref())
        .ok_or_else(|| format!("input {i} is required but missing"))
}

/// The input at `i` if present (optional inputs).
pub fn optional<'a>(inputs: &'a [Option<InferInput<'a>>], i: usize) -> Option<&'a InferInput<'a>> {
    inputs.get(i).and_then(|x| x.as_ref())
}

/// Broadcast of two symbolic shapes; an error only when two known dims conflict.
pub fn broadcast_dims(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank].clone()
        } else {
            Dim::Known(1)
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank].clone()
        } else {
            Dim::Known(1)
        };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (Dim::Known(1), y) => y,
            (x, Dim::Known(1)) => x,
            (Dim::Known(_), Dim::Known(_)) => {
                return Err(format!(
                    "shapes cannot be broadcast: {} vs {}",
                    fmt(a),
                    fmt(b)
                ));
            }
            (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(x),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

/// Broadcast of several inputs' shapes (unknown rank if any input's rank is unknown).
pub fn broadcast_all(infos: &[&ValueInfo]) -> Result<Option<Vec<Dim>>, String> {
    let mut acc: Vec<Dim> = Vec::new();
    for info in infos {
        match &info.shape {
            None => return Ok(None),
            Some(s) => acc = broadcast_dims(&acc, s)?,
        }
    }
    Ok(Some(acc))
}

fn fmt(s: &[Dim]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Normalizes a possibly negative axis against a rank (`-rank..rank`).
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Output info with the dtype of `from` and the given shape.
pub fn like(from: &InferInput, shape: Option<Vec<Dim>>) -> ValueInfo {
    ValueInfo {
        dtype: from.info.dtype,
        shape,
    }
}

/// Output info with an explicit dtype.
pub fn with_dtype(dtype: DType, shape: Option<Vec<Dim>>) -> ValueInfo {
    ValueInfo {
        dtype: Some(dtype),
        shape,
    }
}

/// The values of a small integer input known at inference time (e.g. a Reshape's
/// target shape), if known.
pub fn known_ints(input: Option<&InferInput>) -> Option<Vec<i64>> {
    input?.value?.to_i64_vec().ok()
}
