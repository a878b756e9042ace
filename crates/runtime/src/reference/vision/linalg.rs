//! `CumProd` and `Det`.

use slimnet_tensor::{Tensor, TensorData};

use super::{floats, from_f64, ints, out_len, tensor};
use crate::reference::elementwise::num::{Float, Int};
use crate::reference::util::normalize_axis;

/// Calls `line` with the flat indices of every line along an axis of `n` elements
/// (between `outer` and `inner` elements), in order, reversed with `reverse`.
fn lines(
    outer: usize,
    n: usize,
    inner: usize,
    reverse: bool,
    mut line: impl FnMut(&mut dyn Iterator<Item = usize>),
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = move |j: usize| (o * n + j) * inner + i;
            if reverse {
                line(&mut (0..n).rev().map(at));
            } else {
                line(&mut (0..n).map(at));
            }
        }
    }
}

fn cum_float<T: Float>(
    v: &[T],
    dims: (usize, usize, usize),
    exclusive: bool,
    reverse: bool,
) -> Vec<T> {
    let mut out = vec![T::zero(); v.len()];
    lines(dims.0, dims.1, dims.2, reverse, |idx| {
        let mut acc = 1.0f64;
        for k in idx {
            let before = acc;
            acc *= v[k].to_f64();
            out[k] = T::from_f64(if exclusive { before } else { acc });
        }
    });
    out
}

fn cum_int<T: Int>(v: &[T], dims: (usize, usize, usize), exclusive: bool, reverse: bool) -> Vec<T> {
    let mut out = vec![T::zero(); v.len()];
    lines(dims.0, dims.1, dims.2, reverse, |idx| {
        let mut acc = T::one();
        for k in idx {
            let before = acc;
            acc = acc.wmul(v[k]);
            out[k] = if exclusive { before } else { acc };
        }
    });
    out
}

/// Cumulative product along the axis held by `axis` (a scalar or one-element
/// tensor); `exclusive` leaves out each element itself (the first is 1), `reverse`
/// multiplies from the end. Float products run in `f64`; integer ones wrap.
pub fn cum_prod(
    x: &Tensor,
    axis: &Tensor,
    exclusive: bool,
    reverse: bool,
) -> Result<Tensor, String> {
    let a = match ints(axis, "axis")?.as_slice() {
        [a] if axis.rank() <= 1 => *a,
        _ => {
            return Err(format!(
                "axis must be a scalar, got shape {:?}",
                axis.shape()
            ))
        }
    };
    let shape = x.shape();
    let a = normalize_axis(a, shape.len())?;
    if x.is_empty() {
        return Ok(x.clone());
    }
    let dims = (
        shape[..a].iter().product(),
        shape[a],
        shape[a + 1..].iter().product(),
    );
    let s = shape.to_vec();
    match x.data() {
        TensorData::F32(v) => tensor(s, cum_float(v, dims, exclusive, reverse)),
        TensorData::F64(v) => tensor(s, cum_float(v, dims, exclusive, reverse)),
        TensorData::F16(v) => tensor(s, cum_float(v, dims, exclusive, reverse)),
        TensorData::BF16(v) => tensor(s, cum_float(v, dims, exclusive, reverse)),
        TensorData::I8(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::I16(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::I32(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::I64(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::U8(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::U16(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::U32(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        TensorData::U64(v) => tensor(s, cum_int(v, dims, exclusive, reverse)),
        _ => Err(format!("CumProd does not support {} tensors", x.dtype())),
    }
}

/// Determinant of the `m` x `m` row-major matrix `a` (overwritten), by Gaussian
/// elimination with partial pivoting.
fn determinant(a: &mut [f64], m: usize) -> f64 {
    let mut det = 1.0;
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))
            .unwrap_or(col);
        let p = a[pivot * m + col];
        if p == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for k in 0..m {
                a.swap(pivot * m + k, col * m + k);
            }
            det = -det;
        }
        det *= p;
        for row in col + 1..m {
            let f = a[row * m + col] / p;
            if f != 0.0 {
                for k in col..m {
                    a[row * m + k] -= f * a[col * m + k];
                }
            }
        }
    }
    det
}

/// Det: determinants of the square matrices of the last two axes.
pub fn det(x: &Tensor) -> Result<Tensor, String> {
    let v = floats(x, "X")?;
    let s = x.shape();
    let r = s.len();
    if r < 2 || s[r - 1] != s[r - 2] {
        return Err(format!(
            "X must hold square matrices in its last two axes, got shape {s:?}"
        ));
    }
    let m = s[r - 1];
    let out_shape = s[..r - 2].to_vec();
    let count = out_len(&out_shape)?;
    if m == 0 || count == 0 {
        // The determinant of an empty matrix is 1.
        return from_f64(out_shape, vec![1.0; count], x.dtype());
    }
    let size = m * m;
    let mut out = Vec::with_capacity(count);
    let mut work = vec![0f64; size];
    for k in 0..count {
        work.copy_from_slice(&v[k * size..(k + 1) * size]);
        out.push(determinant(&mut work, m));
    }
    from_f64(out_shape, out, x.dtype())
}
