//! `ArgMax`, `ArgMin` and `TopK`.

use std::cmp::Ordering;

use slimnet_tensor::{Element, Tensor};

use super::{around_axis, tensor};
use crate::reference::util::normalize_axis;

/// Whether `v` is NaN (always false for integers).
#[inline]
#[allow(clippy::eq_op)]
fn is_nan<T: PartialOrd>(v: &T) -> bool {
    v != v
}

fn arg_typed<T: Element>(
    x: &Tensor,
    v: &[T],
    axis: usize,
    keepdims: bool,
    last: bool,
    max: bool,
) -> Result<Tensor, String> {
    let (outer, n, inner) = around_axis(x.shape(), axis);
    if n == 0 && outer * inner > 0 {
        return Err(format!(
            "cannot take the arg{} of an empty axis",
            if max { "max" } else { "min" }
        ));
    }
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let mut best = 0usize;
            let mut bv = v[base];
            for j in 1..n {
                let c = v[base + j * inner];
                let take = if is_nan(&bv) {
                    last && is_nan(&c)
                } else if is_nan(&c) {
                    true
                } else if max {
                    if last {
                        c >= bv
                    } else {
                        c > bv
                    }
                } else if last {
                    c <= bv
                } else {
                    c < bv
                };
                if take {
                    best = j;
                    bv = c;
                }
            }
            out.push(best as i64);
        }
    }
    let mut shape = x.shape().to_vec();
    if keepdims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    tensor(shape, out)
}

/// Indices (int64) of the first (or, with `last`, the last) maximum or minimum along
/// `axis`; NaN counts as the extreme, like numpy.
pub fn arg_extreme(
    x: &Tensor,
    axis: i64,
    keepdims: bool,
    last: bool,
    max: bool,
) -> Result<Tensor, String> {
    let a = normalize_axis(axis, x.rank())?;
    let name = if max { "ArgMax" } else { "ArgMin" };
    if let slimnet_tensor::TensorData::Bool(v) = x.data() {
        return arg_typed(x, v, a, keepdims, last, max);
    }
    numeric_dispatch!(x, name, v => arg_typed(x, v, a, keepdims, last, max), v => arg_typed(x, v, a, keepdims, last, max))
}

/// Total order with NaN above every number.
fn total<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    a.partial_cmp(b)
        .unwrap_or_else(|| match (is_nan(a), is_nan(b)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            _ => Ordering::Less,
        })
}

fn top_k_typed<T: Element>(
    x: &Tensor,
    v: &[T],
    axis: usize,
    k: usize,
    largest: bool,
) -> Result<Vec<Tensor>, String> {
    let (outer, n, inner) = around_axis(x.shape(), axis);
    let mut values = Vec::with_capacity(outer * k * inner);
    let mut indices = Vec::with_capacity(outer * k * inner);
    values.resize(outer * k * inner, T::zero());
    indices.resize(outer * k * inner, 0i64);
    let mut scratch: Vec<(T, usize)> = Vec::with_capacity(n);
    let order = |a: &(T, usize), b: &(T, usize)| {
        let by_value = if largest {
            total(&b.0, &a.0)
        } else {
            total(&a.0, &b.0)
        };
        by_value.then(a.1.cmp(&b.1))
    };
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            scratch.clear();
            scratch.extend((0..n).map(|j| (v[base + j * inner], j)));
            if k > 0 && k < n {
                scratch.select_nth_unstable_by(k - 1, order);
            }
            let top = &mut scratch[..k];
            top.sort_unstable_by(order);
            for (j, &(val, idx)) in top.iter().enumerate() {
                let at = o * k * inner + j * inner + i;
                values[at] = val;
                indices[at] = idx as i64;
            }
        }
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = k;
    Ok(vec![
        tensor(shape.clone(), values)?,
        tensor(shape, indices)?,
    ])
}

/// The `k` largest (or smallest) elements along `axis`, sorted, ties broken by the
/// lower index; returns the values and their int64 indices.
pub fn top_k(x: &Tensor, axis: i64, k: i64, largest: bool) -> Result<Vec<Tensor>, String> {
    let a = normalize_axis(axis, x.rank())?;
    let n = x.shape()[a];
    if k < 0 || k as u64 > n as u64 {
        return Err(format!(
            "K = {k} is out of range for an axis of {n} elements"
        ));
    }
    let k = k as usize;
    numeric_dispatch!(x, "TopK", v => top_k_typed(x, v, a, k, largest), v => top_k_typed(x, v, a, k, largest))
}
