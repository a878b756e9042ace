//! Kernels that make new values: Shape, ConstantOfShape, Range, NonZero, OneHot,
//! Trilu, EyeLike.

use slimnet_ir::ops::shape::clamp_shape_range;
use slimnet_tensor::{match_data, DType, Element, Tensor, TensorData};

use super::{checked_len, int_values, make, strides, MAX_ELEMENTS};
use crate::reference::util::reason;

pub fn shape(x: &Tensor, start: i64, end: Option<i64>) -> Result<Tensor, String> {
    let (s, e) = clamp_shape_range(start, end, x.rank());
    let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
    Tensor::from_vec(vec![v.len()], v).map_err(reason)
}

pub fn constant_of_shape(shape: &Tensor, value: &Tensor) -> Result<Tensor, String> {
    if shape.rank() > 1 {
        return Err(format!("shape must be 1-D, got shape {:?}", shape.shape()));
    }
    let dims: Vec<usize> = int_values(shape, "shape")?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<_, _>>()?;
    let n = checked_len(&dims)?;
    if value.len() != 1 {
        return Err("value must hold exactly one element".into());
    }
    make(dims, value.data().gather(std::iter::repeat_n(0, n)))
}

pub fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor, String> {
    for (name, t) in [("start", start), ("limit", limit), ("delta", delta)] {
        if t.len() != 1 || t.rank() > 1 {
            return Err(format!(
                "{name} must be a scalar, got shape {:?}",
                t.shape()
            ));
        }
        if t.dtype() != start.dtype() {
            return Err(format!(
                "{name} is {} but start is {}",
                t.dtype(),
                start.dtype()
            ));
        }
    }
    let dtype = start.dtype();
    if dtype.is_integer() {
        let get = |t: &Tensor| t.to_i64_vec().map(|v| v[0] as i128).map_err(reason);
        let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
        if d == 0 {
            return Err("delta cannot be 0".into());
        }
        // ceil((l - s) / d), at least 0
        let span = l - s;
        let n = if (span > 0) == (d > 0) && span != 0 {
            (span.abs() + d.abs() - 1) / d.abs()
        } else {
            0
        };
        if n > MAX_ELEMENTS as i128 {
            return Err(format!("Range would produce {n} elements"));
        }
        let v: Vec<i64> = (0..n).map(|i| (s + i * d) as i64).collect();
        return Tensor::from_vec(vec![v.len()], v)
            .map_err(reason)?
            .cast(dtype)
            .map_err(reason);
    }
    if !dtype.is_float() {
        return Err(format!("Range does not apply to {dtype}"));
    }
    let get = |t: &Tensor| t.to_vec::<f64>().map(|v| v[0]).map_err(reason);
    let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
    if d == 0.0 {
        return Err("delta cannot be 0".into());
    }
    let n = ((l - s) / d).ceil();
    if n.is_nan() || n > MAX_ELEMENTS as f64 {
        return Err(format!(
            "Range({s}, {l}, {d}) would produce too many elements"
        ));
    }
    let n = n.max(0.0) as usize;
    let v: Vec<f64> = match dtype {
        // Computed in f32 for f32, like numpy.arange of float32 values.
        DType::F32 => {
            let (s, d) = (s as f32, d as f32);
            (0..n).map(|i| (s + i as f32 * d) as f64).collect()
        }
        _ => (0..n).map(|i| s + i as f64 * d).collect(),
    };
    Tensor::from_vec(vec![n], v)
        .map_err(reason)?
        .cast(dtype)
        .map_err(reason)
}

/// Whether each element is non-zero (strings: non-empty; NaN counts as non-zero).
fn nonzero_mask(data: &TensorData) -> Vec<bool> {
    fn mask<T: Element>(v: &[T]) -> Vec<bool> {
        v.iter().map(|x| x.to_f64() != 0.0).collect()
    }
    match_data!(data, v => mask(v), s => s.iter().map(|x| !x.is_empty()).collect())
}

pub fn nonzero(x: &Tensor) -> Result<Tensor, String> {
    let mask = nonzero_mask(x.data());
    let count = mask.iter().filter(|&&m| m).count();
    let rank = x.rank().max(1);
    let dims: Vec<usize> = if x.rank() == 0 {
        vec![1]
    } else {
        x.shape().to_vec()
    };
    let st = strides(&dims);
    let mut out = vec![0i64; rank * count];
    for (j, f) in mask
        .iter()
        .enumerate()
        .filter(|(_, &m)| m)
        .map(|(f, _)| f)
        .enumerate()
    {
        for d in 0..rank {
            out[d * count + j] = ((f / st[d]) % dims[d]) as i64;
        }
    }
    Tensor::from_vec(vec![rank, count], out).map_err(reason)
}

pub fn one_hot(
    indices: &Tensor,
    depth: &Tensor,
    values: &Tensor,
    axis: i64,
) -> Result<Tensor, String> {
    if depth.len() != 1 {
        return Err(format!(
            "depth must hold one element, got shape {:?}",
            depth.shape()
        ));
    }
    if values.len() != 2 {
        return Err(format!(
            "values must hold [off, on], got shape {:?}",
            values.shape()
        ));
    }
    let depth = depth.to_vec::<f64>().map_err(reason)?[0];
    if depth.is_nan() || depth < 1.0 || depth > MAX_ELEMENTS as f64 {
        return Err(format!("depth {depth} is out of range"));
    }
    let depth = depth as usize;
    let r = indices.rank() as i64;
    let a = if axis < 0 { axis + r + 1 } else { axis };
    if a < 0 || a > r {
        return Err(format!(
            "axis {axis} is out of range for an output of rank {}",
            r + 1
        ));
    }
    let a = a as usize;
    let idx: Vec<f64> = indices.to_vec::<f64>().map_err(reason)?;
    let mut shape = indices.shape().to_vec();
    shape.insert(a, depth);
    let n = checked_len(&shape)?;
    let inner: usize = indices.shape()[a..].iter().product();
    let d = depth as i64;
    let pick = (0..n).map(|f| {
        let (o, rest) = (f / (depth * inner), f % (depth * inner));
        let (k, i) = (rest / inner, rest % inner);
        let mut v = idx[o * inner + i].trunc() as i64;
        if v < 0 {
            v += d;
        }
        usize::from(v == k as i64)
    });
    make(shape, values.data().gather(pick))
}

pub fn trilu(x: &Tensor, k: Option<&Tensor>, upper: bool) -> Result<Tensor, String> {
    if x.rank() < 2 {
        return Err(format!(
            "input must have rank 2 or more, got shape {:?}",
            x.shape()
        ));
    }
    let k = match k {
        Some(t) => {
            let v = int_values(t, "k")?;
            if v.len() != 1 {
                return Err(format!("k must be a scalar, got shape {:?}", t.shape()));
            }
            v[0]
        }
        None => 0,
    };
    let (rows, cols) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
    let n = x.len();
    let zero = TensorData::zeros(x.dtype(), 1);
    let all = TensorData::concat(&[x.data(), &zero]).expect("same dtype");
    let pick = (0..n).map(|f| {
        let (i, j) = ((f / cols.max(1)) % rows.max(1), f % cols.max(1));
        let diff = j as i64 - i as i64;
        let keep = if upper { diff >= k } else { diff <= k };
        if keep {
            f
        } else {
            n
        }
    });
    make(x.shape().to_vec(), all.gather(pick))
}

pub fn eye_like(x: &Tensor, dtype: Option<DType>, k: i64) -> Result<Tensor, String> {
    if x.rank() != 2 {
        return Err(format!("input must be 2-D, got shape {:?}", x.shape()));
    }
    let dtype = dtype.unwrap_or(x.dtype());
    if dtype == DType::String {
        return Err("EyeLike does not produce strings".into());
    }
    let cols = x.shape()[1];
    let v: Vec<f64> = (0..x.len())
        .map(|f| f64::from(((f % cols) as i64 - (f / cols) as i64) == k))
        .collect();
    Tensor::from_vec(x.shape().to_vec(), v)
        .map_err(reason)?
        .cast(dtype)
        .map_err(reason)
}
