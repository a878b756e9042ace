//! `ReduceSum`, `ReduceMean`, `ReduceMax`, ... over any set of axes.

use slimnet_ir::ops::reduce::ReduceKind;
use slimnet_tensor::{Tensor, TensorData};

use super::{for_each_reduced, for_each_reduced_run, reduced_shapes, tensor};
use crate::reference::elementwise::math::{max_nan, min_nan};
use crate::reference::elementwise::num::{Float, Int};

/// Reduces `x` over the axes set in `mask`. Reducing an empty set gives the
/// operation's identity: 0 for sums, 1 for products, -inf for max and log-sums,
/// +inf for min (the type's extremes for integers), NaN for a float mean.
pub fn reduce(
    kind: ReduceKind,
    x: &Tensor,
    mask: &[bool],
    keepdims: bool,
) -> Result<Tensor, String> {
    let (keep, drop) = reduced_shapes(x.shape(), mask);
    let out_shape = if keepdims { keep.clone() } else { drop };
    let count: usize = x
        .shape()
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&d, _)| d)
        .product();
    let name = kind.op_type();
    if let TensorData::Bool(v) = x.data() {
        let values = match kind {
            ReduceKind::Max => fold(v, x.shape(), &keep, false, |a, b| a | b)?,
            ReduceKind::Min => fold(v, x.shape(), &keep, true, |a, b| a & b)?,
            _ => return Err(format!("{name} does not support bool tensors")),
        };
        return tensor(out_shape, values);
    }
    numeric_dispatch!(x, name,
        v => tensor(out_shape, reduce_float(kind, v, x.shape(), &keep, count)?),
        v => tensor(out_shape, reduce_int(kind, v, x.shape(), &keep, count)?))
}

/// Folds every element into the accumulator of its output position.
fn fold<T: Copy, A: Copy>(
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    init: A,
    f: impl Fn(A, T) -> A,
) -> Result<Vec<A>, String> {
    let n: usize = keep.iter().product();
    let mut acc = vec![init; n];
    for_each_reduced_run(v, shape, keep, |o, run, spread| {
        if spread {
            for (a, &x) in acc[o..o + run.len()].iter_mut().zip(run) {
                *a = f(*a, x);
            }
        } else {
            acc[o] = run.iter().fold(acc[o], |a, &x| f(a, x));
        }
    })?;
    Ok(acc)
}

fn sum_of<T: Float>(
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    g: impl Fn(f64) -> f64,
) -> Result<Vec<f64>, String> {
    fold(v, shape, keep, 0.0f64, |a, x| a + g(x.to_f64()))
}

fn reduce_float<T: Float>(
    kind: ReduceKind,
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    count: usize,
) -> Result<Vec<T>, String> {
    let acc: Vec<f64> = match kind {
        ReduceKind::Sum => sum_of(v, shape, keep, |x| x)?,
        ReduceKind::Mean => sum_of(v, shape, keep, |x| x)?
            .into_iter()
            .map(|s| s / count as f64)
            .collect(),
        ReduceKind::SumSquare => sum_of(v, shape, keep, |x| x * x)?,
        ReduceKind::L1 => sum_of(v, shape, keep, f64::abs)?,
        ReduceKind::L2 => sum_of(v, shape, keep, |x| x * x)?
            .into_iter()
            .map(f64::sqrt)
            .collect(),
        ReduceKind::LogSum => sum_of(v, shape, keep, |x| x)?
            .into_iter()
            .map(f64::ln)
            .collect(),
        ReduceKind::Prod => fold(v, shape, keep, 1.0f64, |a, x| a * x.to_f64())?,
        ReduceKind::Max => fold(v, shape, keep, f64::NEG_INFINITY, |a, x| {
            max_nan(a, x.to_f64())
        })?,
        ReduceKind::Min => fold(v, shape, keep, f64::INFINITY, |a, x| min_nan(a, x.to_f64()))?,
        ReduceKind::LogSumExp => {
            let max = fold(v, shape, keep, f64::NEG_INFINITY, |a, x| {
                max_nan(a, x.to_f64())
            })?;
            let mut s = vec![0.0f64; max.len()];
            for_each_reduced(v, shape, keep, |o, x| {
                if max[o].is_finite() {
                    s[o] += (x.to_f64() - max[o]).exp();
                }
            })?;
            max.iter()
                .zip(s)
                .map(|(&m, s)| if m.is_finite() { m + s.ln() } else { m })
                .collect()
        }
    };
    Ok(acc.into_iter().map(T::round_from).collect())
}

fn reduce_int<T: Int>(
    kind: ReduceKind,
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    count: usize,
) -> Result<Vec<T>, String> {
    let wide = |init: i128, f: fn(i128, i128) -> i128| -> Result<Vec<T>, String> {
        let acc = fold(v, shape, keep, init, |a, x| f(a, x.to_i128()))?;
        Ok(acc.into_iter().map(T::from_i128).collect())
    };
    let via_f64 = |finish: fn(f64) -> f64, g: fn(f64) -> f64| -> Result<Vec<T>, String> {
        let acc = fold(v, shape, keep, 0.0f64, |a, x| a + g(x.to_f64()))?;
        Ok(acc.into_iter().map(|s| T::from_f64(finish(s))).collect())
    };
    match kind {
        ReduceKind::Sum => wide(0, i128::wrapping_add),
        ReduceKind::SumSquare => wide(0, |a, x| a.wrapping_add(x.wrapping_mul(x))),
        ReduceKind::L1 => wide(0, |a, x| a.wrapping_add(x.abs())),
        ReduceKind::Prod => wide(1, i128::wrapping_mul),
        ReduceKind::Mean => {
            if count == 0 {
                return Err("ReduceMean of an empty set of integers is undefined".into());
            }
            let acc = fold(v, shape, keep, 0i128, |a, x| a.wrapping_add(x.to_i128()))?;
            Ok(acc
                .into_iter()
                .map(|s| T::from_i128(s / count as i128))
                .collect())
        }
        ReduceKind::Max => fold(v, shape, keep, T::MIN, |a, x| a.max(x)),
        ReduceKind::Min => fold(v, shape, keep, T::MAX, |a, x| a.min(x)),
        ReduceKind::L2 => via_f64(f64::sqrt, |x| x * x),
        ReduceKind::LogSum => via_f64(f64::ln, |x| x),
        ReduceKind::LogSumExp => via_f64(f64::ln, f64::exp),
    }
}
