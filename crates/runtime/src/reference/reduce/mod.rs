//! Reference kernels of the reduce family: Reduce*, ArgMax/ArgMin, TopK, the
//! Softmax family, LayerNormalization, LpNormalization, MeanVarianceNormalization
//! and CumSum.
//!
//! Float reductions accumulate in `f64` and round once; integer sums and products
//! wrap like numpy's.

/// Matches a float tensor's data, binding the typed slice as `$v`.
macro_rules! float_dispatch {
    ($x:expr, $name:expr, $v:ident => $body:expr) => {
        match $x.data() {
            slimnet_tensor::TensorData::F32($v) => $body,
            slimnet_tensor::TensorData::F64($v) => $body,
            slimnet_tensor::TensorData::F16($v) => $body,
            slimnet_tensor::TensorData::BF16($v) => $body,
            _ => Err(format!(
                "{} expects a float tensor, got {}",
                $name,
                $x.dtype()
            )),
        }
    };
}

/// Matches a numeric tensor's data: floats bind `$f`, integers `$i`.
macro_rules! numeric_dispatch {
    ($x:expr, $name:expr, $f:ident => $fbody:expr, $i:ident => $ibody:expr) => {
        match $x.data() {
            slimnet_tensor::TensorData::F32($f) => $fbody,
            slimnet_tensor::TensorData::F64($f) => $fbody,
            slimnet_tensor::TensorData::F16($f) => $fbody,
            slimnet_tensor::TensorData::BF16($f) => $fbody,
            slimnet_tensor::TensorData::I8($i) => $ibody,
            slimnet_tensor::TensorData::I16($i) => $ibody,
            slimnet_tensor::TensorData::I32($i) => $ibody,
            slimnet_tensor::TensorData::I64($i) => $ibody,
            slimnet_tensor::TensorData::U8($i) => $ibody,
            slimnet_tensor::TensorData::U16($i) => $ibody,
            slimnet_tensor::TensorData::U32($i) => $ibody,
            slimnet_tensor::TensorData::U64($i) => $ibody,
            _ => Err(format!("{} does not support dtype {}", $name, $x.dtype())),
        }
    };
}

mod arg;
mod cumsum;
mod norm;
mod reducers;
mod softmax;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::ReduceOp;
use slimnet_tensor::{Element, Tensor};

use super::util::{input, normalize_axis, optional, reason};

/// Runs a reduce-family op; `num_outputs` is how many outputs the node has.
pub fn run(
    op: &ReduceOp,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        ReduceOp::Reduce {
            kind,
            axes,
            keepdims,
            noop_with_empty_axes,
        } => {
            let axes = match (axes, optional(inputs, 1)) {
                (Some(a), _) => a.clone(),
                (None, Some(t)) => t.to_i64_vec().map_err(|e| format!("axes: {e}"))?,
                (None, None) => Vec::new(),
            };
            // Empty axes with noop_with_empty_axes reduce over no axis: each element
            // alone, so ReduceSumSquare squares and ReduceLogSum takes logs.
            let mask = if axes.is_empty() && *noop_with_empty_axes {
                vec![false; x.rank()]
            } else {
                axis_mask(&axes, x.rank())?
            };
            one(reducers::reduce(*kind, x, &mask, *keepdims)?)
        }
        ReduceOp::ArgMax {
            axis,
            keepdims,
            select_last_index,
        } => one(arg::arg_extreme(
            x,
            *axis,
            *keepdims,
            *select_last_index,
            true,
        )?),
        ReduceOp::ArgMin {
            axis,
            keepdims,
            select_last_index,
        } => one(arg::arg_extreme(
            x,
            *axis,
            *keepdims,
            *select_last_index,
            false,
        )?),
        ReduceOp::TopK {
            axis, largest, k, ..
        } => {
            let k = match (k, optional(inputs, 1)) {
                (Some(k), _) => *k,
                (None, Some(t)) => single_int(t, "K")?,
                (None, None) => return Err("input 1 (K) is required but missing".into()),
            };
            arg::top_k(x, *axis, k, *largest)
        }
        ReduceOp::Softmax { axis, coerce_2d } => one(softmax::softmax(
            x,
            *axis,
            *coerce_2d,
            softmax::Kind::Softmax,
        )?),
        ReduceOp::LogSoftmax { axis, coerce_2d } => one(softmax::softmax(
            x,
            *axis,
            *coerce_2d,
            softmax::Kind::LogSoftmax,
        )?),
        ReduceOp::Hardmax { axis, coerce_2d } => one(softmax::softmax(
            x,
            *axis,
            *coerce_2d,
            softmax::Kind::Hardmax,
        )?),
        ReduceOp::LayerNormalization {
            axis,
            epsilon,
            stash_type,
        } => {
            let scale = input(inputs, 1)?;
            norm::layer_norm(
                x,
                scale,
                optional(inputs, 2),
                *axis,
                *epsilon,
                *stash_type,
                num_outputs,
            )
        }
        ReduceOp::LpNormalization { axis, p } => one(norm::lp_norm(x, *axis, *p)?),
        ReduceOp::MeanVarianceNormalization { axes } => one(norm::mean_variance(x, axes)?),
        ReduceOp::CumSum { exclusive, reverse } => {
            let axis = single_int(input(inputs, 1)?, "axis")?;
            one(cumsum::cumsum(x, axis, *exclusive, *reverse)?)
        }
    }
}

/// The single integer of a scalar (or one-element) tensor.
fn single_int(t: &Tensor, what: &str) -> Result<i64, String> {
    if !t.dtype().is_integer() {
        return Err(format!(
            "{what} must be an integer tensor, got {}",
            t.dtype()
        ));
    }
    match t.to_i64_vec().map_err(reason)?.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!(
            "{what} must hold one element, got shape {:?}",
            t.shape()
        )),
    }
}

/// Sizes of the dimensions before `axis`, at it, and after it.
fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Which axes of a tensor of rank `rank` to reduce: all when `axes` is empty; an
/// error for axes out of range or repeated.
fn axis_mask(axes: &[i64], rank: usize) -> Result<Vec<bool>, String> {
    let mut mask = vec![axes.is_empty(); rank];
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        if mask[n] {
            return Err(format!("axis {a} is repeated"));
        }
        mask[n] = true;
    }
    Ok(mask)
}

/// The reduced shape with reduced axes kept as 1, and with them dropped.
fn reduced_shapes(shape: &[usize], mask: &[bool]) -> (Vec<usize>, Vec<usize>) {
    let keep = shape
        .iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let drop = shape
        .iter()
        .zip(mask)
        .filter(|(_, &m)| !m)
        .map(|(&d, _)| d)
        .collect();
    (keep, drop)
}

/// Calls `f(out_index, run, spread)` for runs of consecutive elements of `v`
/// (shape `shape`) in row-major order. `out_index` is the position, in the tensor
/// of shape `keep` (the reduced shape, reduced axes kept as 1), of the run's first
/// element; with `spread` the run's elements go to consecutive output positions,
/// otherwise all to `out_index`.
fn for_each_reduced_run<T>(
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    mut f: impl FnMut(usize, &[T], bool),
) -> Result<(), String> {
    let plan = crate::reference::elementwise::broadcast::Plan::new([shape, keep])?;
    if plan.shape != shape {
        return Err(format!(
            "internal: shape {keep:?} does not reduce {shape:?}"
        ));
    }
    plan.for_each_run(|[oi, oo], n, [_, so]| f(oo, &v[oi..oi + n], so != 0));
    Ok(())
}

/// Calls `f(out_index, value)` for every element of `v` in row-major order (see
/// [`for_each_reduced_run`]).
fn for_each_reduced<T: Copy>(
    v: &[T],
    shape: &[usize],
    keep: &[usize],
    mut f: impl FnMut(usize, T),
) -> Result<(), String> {
    for_each_reduced_run(v, shape, keep, |o, run, spread| {
        if spread {
            for (j, &x) in run.iter().enumerate() {
                f(o + j, x);
            }
        } else {
            for &x in run {
                f(o, x);
            }
        }
    })
}

/// A tensor of `shape` holding `values`.
fn tensor<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<Tensor, String> {
    Tensor::from_vec(shape, values).map_err(reason)
}
