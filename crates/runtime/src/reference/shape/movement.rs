//! Kernels that rearrange elements: Reshape, Flatten, Transpose, Concat, Split,
//! Slice, Squeeze, Unsqueeze, Expand, Tile, Compress, ReverseSequence.

use slimnet_ir::ops::shape::{check_perm, reshape_dims, slice_bounds, split_sizes};
use slimnet_ir::Dim;
use slimnet_tensor::{broadcast_shapes, Tensor, TensorData};

use super::{axis_of, checked_len, full_table, gather_tables, make, strides};
use crate::reference::util::reason;

pub fn reshape(x: &Tensor, shape: &Tensor, allowzero: bool) -> Result<Tensor, String> {
    let target = super::int_values(shape, "shape")?;
    if shape.rank() != 1 {
        return Err(format!("shape must be 1-D, got shape {:?}", shape.shape()));
    }
    let input: Vec<Dim> = x.shape().iter().map(|&d| Dim::Known(d)).collect();
    let dims = reshape_dims(Some(&input), &target, allowzero)?;
    let out: Vec<usize> = dims
        .iter()
        .map(|d| {
            d.known()
                .ok_or_else(|| format!("cannot reshape {:?} into {target:?}", x.shape()))
        })
        .collect::<Result<_, _>>()?;
    let n = checked_len(&out)?;
    if n != x.len() {
        return Err(format!(
            "cannot reshape {:?} ({} elements) into {out:?}",
            x.shape(),
            x.len()
        ));
    }
    x.clone().reshape(out).map_err(reason)
}

pub fn flatten(x: &Tensor, axis: i64) -> Result<Tensor, String> {
    let r = x.rank() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let outer: usize = x.shape()[..a as usize].iter().product();
    let inner: usize = x.shape()[a as usize..].iter().product();
    x.clone().reshape(vec![outer, inner]).map_err(reason)
}

pub fn transpose(x: &Tensor, perm: Option<&[i64]>) -> Result<Tensor, String> {
    let rank = x.rank();
    let perm = match perm {
        Some(p) => check_perm(p, rank)?,
        None => (0..rank).rev().collect(),
    };
    let st = strides(x.shape());
    let tables: Vec<Vec<usize>> = perm
        .iter()
        .map(|&p| full_table(x.shape()[p], st[p]))
        .collect();
    gather_tables(x, &tables)
}

pub fn concat(ins: &[&Tensor], axis: i64) -> Result<Tensor, String> {
    let first = ins.first().ok_or("Concat needs at least one input")?;
    let rank = first.rank();
    let a = axis_of(axis, rank)?;
    let mut out_shape = first.shape().to_vec();
    out_shape[a] = 0;
    for t in ins {
        if t.dtype() != first.dtype() {
            return Err(format!(
                "inputs have dtypes {} and {}",
                first.dtype(),
                t.dtype()
            ));
        }
        let same =
            t.rank() == rank && (0..rank).all(|d| d == a || t.shape()[d] == first.shape()[d]);
        if !same {
            return Err(format!(
                "cannot concatenate shapes {:?} and {:?} on axis {a}",
                first.shape(),
                t.shape()
            ));
        }
        out_shape[a] += t.shape()[a];
    }
    let total = checked_len(&out_shape)?;
    let outer: usize = first.shape()[..a].iter().product();
    let inner: usize = first.shape()[a + 1..].iter().product();
    let datas: Vec<&TensorData> = ins.iter().map(|t| t.data()).collect();
    let all = TensorData::concat(&datas).ok_or("inputs have different dtypes")?;
    let mut bases = Vec::with_capacity(ins.len());
    let mut base = 0;
    for t in ins {
        bases.push(base);
        base += t.len();
    }
    let mut idx = Vec::with_capacity(total);
    for o in 0..outer {
        for (t, &b) in ins.iter().zip(&bases) {
            let block = t.shape()[a] * inner;
            idx.extend(b + o * block..b + (o + 1) * block);
        }
    }
    make(out_shape, all.gather(idx.into_iter()))
}

/// Splits `x` along `axis` by explicit `sizes`, or into `n` parts (ceil-sized parts
/// with a smaller last one when `ceil`).
pub fn split(
    x: &Tensor,
    axis: i64,
    sizes: Option<Vec<i64>>,
    n: usize,
    ceil: bool,
) -> Result<Vec<Tensor>, String> {
    let a = axis_of(axis, x.rank())?;
    let dim = x.shape()[a];
    let sizes: Vec<usize> = match sizes {
        Some(s) => {
            let sizes: Vec<usize> = s
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| format!("negative split size {v}")))
                .collect::<Result<_, _>>()?;
            if sizes.iter().sum::<usize>() != dim {
                return Err(format!(
                    "split sizes {s:?} do not add up to dimension {dim}"
                ));
            }
            sizes
        }
        None => split_sizes(dim, n, ceil)?,
    };
    let st = strides(x.shape());
    let mut tables: Vec<Vec<usize>> = x
        .shape()
        .iter()
        .zip(&st)
        .map(|(&d, &s)| full_table(d, s))
        .collect();
    let mut start = 0;
    let mut outs = Vec::with_capacity(sizes.len());
    for s in sizes {
        tables[a] = (start..start + s).map(|i| i * st[a]).collect();
        outs.push(gather_tables(x, &tables)?);
        start += s;
    }
    Ok(outs)
}

pub fn slice(
    x: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Tensor, String> {
    let n = starts.len();
    let default_axes: Vec<i64> = (0..n as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    let ones = vec![1i64; n];
    let steps = steps.unwrap_or(&ones);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err("starts, ends, axes and steps must have the same length".into());
    }
    let st = strides(x.shape());
    let mut tables: Vec<Vec<usize>> = x
        .shape()
        .iter()
        .zip(&st)
        .map(|(&d, &s)| full_table(d, s))
        .collect();
    let mut seen = vec![false; x.rank()];
    for i in 0..n {
        let a = axis_of(axes[i], x.rank())?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("axis {} is repeated", axes[i]));
        }
        let (start, len) = slice_bounds(starts[i], ends[i], steps[i], x.shape()[a])?;
        let step = steps[i];
        tables[a] = (0..len as i64)
            .map(|k| (start + k * step) as usize * st[a])
            .collect();
    }
    gather_tables(x, &tables)
}

pub fn squeeze(x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor, String> {
    let shape = x.shape();
    let out: Vec<usize> = match axes {
        None => shape.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let mut drop = vec![false; shape.len()];
            for &ax in axes {
                let a = axis_of(ax, shape.len())?;
                if std::mem::replace(&mut drop[a], true) {
                    return Err(format!("axis {ax} is repeated"));
                }
                if shape[a] != 1 {
                    return Err(format!("cannot squeeze axis {ax} of size {}", shape[a]));
                }
            }
            shape
                .iter()
                .zip(&drop)
                .filter(|(_, &d)| !d)
                .map(|(&s, _)| s)
                .collect()
        }
    };
    x.clone().reshape(out).map_err(reason)
}

pub fn unsqueeze(x: &Tensor, axes: &[i64]) -> Result<Tensor, String> {
    let rank = x.rank() + axes.len();
    let mut ones = vec![false; rank];
    for &ax in axes {
        let a = axis_of(ax, rank)?;
        if std::mem::replace(&mut ones[a], true) {
            return Err(format!("axis {ax} is repeated"));
        }
    }
    let mut rest = x.shape().iter();
    let out: Vec<usize> = ones
        .iter()
        .map(|&one| {
            if one {
                1
            } else {
                *rest.next().expect("counted")
            }
        })
        .collect();
    x.clone().reshape(out).map_err(reason)
}

pub fn expand(x: &Tensor, shape: &[i64]) -> Result<Tensor, String> {
    let target: Vec<usize> = shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in shape {shape:?}"))
        })
        .collect::<Result<_, _>>()?;
    let out = broadcast_shapes(x.shape(), &target).map_err(reason)?;
    checked_len(&out)?;
    let st = strides(x.shape());
    let lead = out.len() - x.rank();
    let tables: Vec<Vec<usize>> = out
        .iter()
        .enumerate()
        .map(|(d, &n)| match d.checked_sub(lead) {
            Some(i) if x.shape()[i] != 1 => full_table(n, st[i]),
            _ => vec![0; n],
        })
        .collect();
    gather_tables(x, &tables)
}

pub fn tile(x: &Tensor, repeats: &[i64]) -> Result<Tensor, String> {
    if repeats.len() != x.rank() {
        return Err(format!(
            "repeats has {} entries for an input of rank {}",
            repeats.len(),
            x.rank()
        ));
    }
    let st = strides(x.shape());
    let mut out = Vec::with_capacity(x.rank());
    for (&d, &r) in x.shape().iter().zip(repeats) {
        let r = usize::try_from(r).map_err(|_| format!("negative repeat {r}"))?;
        out.push(d.checked_mul(r).ok_or("output is too large")?);
    }
    checked_len(&out)?;
    let tables: Vec<Vec<usize>> = (0..x.rank())
        .map(|d| (0..out[d]).map(|i| (i % x.shape()[d]) * st[d]).collect())
        .collect();
    gather_tables(x, &tables)
}

pub fn compress(x: &Tensor, condition: &Tensor, axis: Option<i64>) -> Result<Tensor, String> {
    if condition.rank() != 1 {
        return Err(format!(
            "condition must be 1-D, got shape {:?}",
            condition.shape()
        ));
    }
    let cond: Vec<bool> = condition
        .to_vec::<f64>()
        .map_err(reason)?
        .iter()
        .map(|&c| c != 0.0)
        .collect();
    let (flat, a) = match axis {
        None => (x.clone().reshape(vec![x.len()]).map_err(reason)?, 0),
        Some(ax) => (x.clone(), axis_of(ax, x.rank())?),
    };
    let dim = flat.shape()[a];
    if cond.iter().skip(dim).any(|&c| c) {
        return Err(format!(
            "condition selects index {} or more on an axis of size {dim}",
            dim
        ));
    }
    let st = strides(flat.shape());
    let mut tables: Vec<Vec<usize>> = flat
        .shape()
        .iter()
        .zip(&st)
        .map(|(&d, &s)| full_table(d, s))
        .collect();
    tables[a] = cond
        .iter()
        .take(dim)
        .enumerate()
        .filter(|(_, &c)| c)
        .map(|(i, _)| i * st[a])
        .collect();
    gather_tables(&flat, &tables)
}

pub fn reverse_sequence(
    x: &Tensor,
    lens: &Tensor,
    time_axis: i64,
    batch_axis: i64,
) -> Result<Tensor, String> {
    if x.rank() < 2 {
        return Err(format!(
            "input must have rank 2 or more, got shape {:?}",
            x.shape()
        ));
    }
    let (t_ax, b_ax) = (axis_of(time_axis, 2)?, axis_of(batch_axis, 2)?);
    if t_ax == b_ax {
        return Err("time_axis and batch_axis must differ".into());
    }
    let lens = super::int_values(lens, "sequence_lens")?;
    let (t_dim, b_dim) = (x.shape()[t_ax], x.shape()[b_ax]);
    if lens.len() != b_dim {
        return Err(format!(
            "sequence_lens has {} entries for a batch of {b_dim}",
            lens.len()
        ));
    }
    let lens: Vec<usize> = lens
        .iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= t_dim)
                .ok_or_else(|| format!("sequence length {l} is out of range [0, {t_dim}]"))
        })
        .collect::<Result<_, _>>()?;
    let st = strides(x.shape());
    let (ts, bs) = (st[t_ax], st[b_ax]);
    let idx = (0..x.len()).map(|f| {
        let t = (f / ts) % t_dim;
        let len = lens[(f / bs) % b_dim];
        if t < len {
            f - t * ts + (len - 1 - t) * ts
        } else {
            f
        }
    });
    make(x.shape().to_vec(), x.data().gather(idx))
}
