//! `CumSum`.

use slimnet_tensor::Tensor;

use super::{around_axis, tensor};
use crate::reference::elementwise::num::{Float, Int};
use crate::reference::util::normalize_axis;

/// Calls `line` with the flat indices of every line along the axis, in order
/// (reversed with `reverse`).
fn lines(
    outer: usize,
    n: usize,
    inner: usize,
    reverse: bool,
    mut line: impl FnMut(&mut dyn Iterator<Item = usize>),
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = move |j: usize| o * n * inner + j * inner + i;
            if reverse {
                line(&mut (0..n).rev().map(at));
            } else {
                line(&mut (0..n).map(at));
            }
        }
    }
}

fn float_typed<T: Float>(
    x: &Tensor,
    v: &[T],
    axis: usize,
    exclusive: bool,
    reverse: bool,
) -> Result<Tensor, String> {
    let (outer, n, inner) = around_axis(x.shape(), axis);
    let mut out = vec![T::zero(); v.len()];
    lines(outer, n, inner, reverse, |idx| {
        let mut acc = 0.0f64;
        for k in idx {
            let before = acc;
            acc += v[k].to_f64();
            out[k] = T::round_from(if exclusive { before } else { acc });
        }
    });
    tensor(x.shape().to_vec(), out)
}

fn int_typed<T: Int>(
    x: &Tensor,
    v: &[T],
    axis: usize,
    exclusive: bool,
    reverse: bool,
) -> Result<Tensor, String> {
    let (outer, n, inner) = around_axis(x.shape(), axis);
    let mut out = vec![T::zero(); v.len()];
    lines(outer, n, inner, reverse, |idx| {
        let mut acc = T::zero();
        for k in idx {
            let before = acc;
            acc = acc.wadd(v[k]);
            out[k] = if exclusive { before } else { acc };
        }
    });
    tensor(x.shape().to_vec(), out)
}

/// Cumulative sum along `axis`; `exclusive` leaves out each element itself,
/// `reverse` sums from the end. Float sums accumulate in `f64`.
pub fn cumsum(x: &Tensor, axis: i64, exclusive: bool, reverse: bool) -> Result<Tensor, String> {
    let a = normalize_axis(axis, x.rank())?;
    numeric_dispatch!(x, "CumSum",
        v => float_typed(x, v, a, exclusive, reverse),
        v => int_typed(x, v, a, exclusive, reverse))
}
