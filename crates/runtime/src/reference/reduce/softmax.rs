//! `Softmax`, `LogSoftmax` and `Hardmax`.

use slimnet_tensor::Tensor;

use super::{around_axis, tensor};
use crate::reference::elementwise::num::Float;
use crate::reference::util::normalize_axis;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// Index of the first maximum of each column of `block` (`n` rows of `inner`),
/// and the maxima; NaN counts as the maximum, like numpy's argmax.
fn column_max<T: Float>(block: &[T], inner: usize, max: &mut [f64], best: &mut [usize]) {
    max.fill(f64::NEG_INFINITY);
    best.fill(0);
    if inner == 1 {
        for (j, a) in block.iter().enumerate() {
            let a = a.to_f64();
            if !max[0].is_nan() && (a > max[0] || a.is_nan()) {
                max[0] = a;
                best[0] = j;
            }
        }
        return;
    }
    for (j, row) in block.chunks_exact(inner).enumerate() {
        for ((a, m), b) in row.iter().zip(max.iter_mut()).zip(best.iter_mut()) {
            let a = a.to_f64();
            if !m.is_nan() && (a > *m || a.is_nan()) {
                *m = a;
                *b = j;
            }
        }
    }
}

/// Works on one `[n, inner]` block per outer index, so every pass reads memory in
/// order whatever the axis; a row at a time when `inner` is 1.
fn run_typed<T: Float>(
    x: &Tensor,
    v: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    kind: Kind,
) -> Result<Tensor, String> {
    let mut out = vec![T::zero(); v.len()];
    let mut e = vec![0.0f64; n * inner];
    let mut max = vec![0.0f64; inner];
    let mut best = vec![0usize; inner];
    let mut sum = vec![0.0f64; inner];
    if v.is_empty() {
        return tensor(x.shape().to_vec(), out);
    }
    for (block, dst) in v
        .chunks_exact(n * inner)
        .zip(out.chunks_exact_mut(n * inner))
        .take(outer)
    {
        column_max(block, inner, &mut max, &mut best);
        match kind {
            Kind::Hardmax => {
                for (i, &j) in best.iter().enumerate() {
                    dst[j * inner + i] = T::one();
                }
            }
            Kind::Softmax if inner == 1 => {
                let m = max[0];
                let mut s = 0.0;
                for (ei, a) in e.iter_mut().zip(block) {
                    *ei = (a.to_f64() - m).exp();
                    s += *ei;
                }
                for (d, ei) in dst.iter_mut().zip(&e) {
                    *d = T::round_from(ei / s);
                }
            }
            Kind::Softmax => {
                sum.fill(0.0);
                for (row, er) in block.chunks_exact(inner).zip(e.chunks_exact_mut(inner)) {
                    for (((a, ei), m), s) in row.iter().zip(er).zip(&max).zip(sum.iter_mut()) {
                        *ei = (a.to_f64() - m).exp();
                        *s += *ei;
                    }
                }
                for (er, dr) in e.chunks_exact(inner).zip(dst.chunks_exact_mut(inner)) {
                    for ((ei, d), s) in er.iter().zip(dr).zip(&sum) {
                        *d = T::round_from(ei / s);
                    }
                }
            }
            Kind::LogSoftmax => {
                sum.fill(0.0);
                for row in block.chunks_exact(inner) {
                    for ((a, m), s) in row.iter().zip(&max).zip(sum.iter_mut()) {
                        *s += (a.to_f64() - m).exp();
                    }
                }
                sum.iter_mut().for_each(|s| *s = s.ln());
                for (row, dr) in block.chunks_exact(inner).zip(dst.chunks_exact_mut(inner)) {
                    for (((a, d), m), s) in row.iter().zip(dr).zip(&max).zip(&sum) {
                        *d = T::round_from(a.to_f64() - m - s);
                    }
                }
            }
        }
    }
    tensor(x.shape().to_vec(), out)
}

/// Normalizes along `axis`; with `coerce_2d` (opsets before 13) along the whole
/// flattened row of axes `axis..rank`.
pub fn softmax(x: &Tensor, axis: i64, coerce_2d: bool, kind: Kind) -> Result<Tensor, String> {
    let name = match kind {
        Kind::Softmax => "Softmax",
        Kind::LogSoftmax => "LogSoftmax",
        Kind::Hardmax => "Hardmax",
    };
    let (outer, n, inner) = if x.rank() == 0 {
        (1, 1, 1)
    } else {
        let a = normalize_axis(axis, x.rank())?;
        if coerce_2d {
            let (outer, _, _) = around_axis(x.shape(), a);
            (outer, x.shape()[a..].iter().product(), 1)
        } else {
            around_axis(x.shape(), a)
        }
    };
    float_dispatch!(x, name, v => run_typed(x, v, outer, n, inner, kind))
}
