//! Shape and dtype inference of the shape family, keeping symbolic dimensions
//! wherever they can be followed (copies, broadcasts, and Reshape's `-1` when the
//! symbols on both sides cancel).

use slimnet_tensor::{DType, Tensor};

use super::rules::reshape_sym;
use super::symbolic::{ints_of, syms_of, SymInt};
use super::{clamp_shape_range, slice_bounds, split_sizes, ShapeOp, SliceAttrs};
use crate::ops::util::{broadcast_dims, input, like, optional, with_dtype};
use crate::{Dim, InferInput, ValueInfo};

pub(super) fn infer(
    op: &ShapeOp,
    inputs: &[Option<InferInput>],
    syms: &[Option<Vec<SymInt>>],
) -> Result<Vec<ValueInfo>, String> {
    if let ShapeOp::Constant { value } = op {
        return Ok(vec![ValueInfo::of_tensor(value)]);
    }
    let x = input(inputs, 0)?;
    let shape = x.info.shape.as_deref();
    let rank = shape.map(<[Dim]>::len);
    let out = match op {
        ShapeOp::Reshape { allowzero } => {
            let target = input(inputs, 1)?;
            match syms_of(inputs, syms, 1) {
                Some(t) => like(x, Some(reshape_sym(shape, &t, *allowzero)?)),
                None => like(x, one_d_len(target).map(|n| vec![Dim::Unknown; n])),
            }
        }
        ShapeOp::Flatten { axis } => {
            let out = match shape {
                Some(s) => {
                    let r = s.len() as i64;
                    let a = if *axis < 0 { axis + r } else { *axis };
                    if a < 0 || a > r {
                        return Err(format!("axis {axis} is out of range for rank {r}"));
                    }
                    let a = a as usize;
                    Some(vec![product(&s[..a]), product(&s[a..])])
                }
                None => Some(vec![Dim::Unknown, Dim::Unknown]),
            };
            like(x, out)
        }
        ShapeOp::Transpose { perm } => {
            let out = match shape {
                Some(s) => {
                    let p = perm_or_default(perm.as_deref(), s.len())?;
                    Some(p.iter().map(|&i| s[i].clone()).collect())
                }
                None => perm.as_ref().map(|p| vec![Dim::Unknown; p.len()]),
            };
            like(x, out)
        }
        ShapeOp::Concat { axis } => concat(inputs, *axis)?,
        ShapeOp::Split {
            axis,
            split,
            num_outputs,
            outputs,
        } => {
            let sizes = match split {
                Some(s) => Some(s.clone()),
                None => ints_of(inputs, syms, 1),
            };
            let sizes_unknown = sizes.is_none() && optional(inputs, 1).is_some();
            let n = sizes
                .as_ref()
                .map_or(num_outputs.map_or(*outputs, |n| n as usize), Vec::len);
            let Some(s) = shape else {
                return Ok(vec![like(x, None); n]);
            };
            let a = axis_exclusive(*axis, s.len())?;
            let axis_sizes: Vec<Dim> = match (&sizes, s[a].known()) {
                (Some(sz), _) => {
                    if let Some(d) = s[a].known() {
                        let total: i64 = sz.iter().sum();
                        if total != d as i64 {
                            return Err(format!(
                                "split sizes {sz:?} do not add up to dimension {d}"
                            ));
                        }
                    }
                    sz.iter()
                        .map(|&v| {
                            usize::try_from(v)
                                .map(Dim::Known)
                                .map_err(|_| format!("negative split size {v}"))
                        })
                        .collect::<Result<_, _>>()?
                }
                (None, _) if sizes_unknown => vec![Dim::Unknown; n],
                (None, Some(d)) => split_sizes(d, n, num_outputs.is_some())?
                    .into_iter()
                    .map(Dim::Known)
                    .collect(),
                (None, None) => vec![Dim::Unknown; n],
            };
            return Ok(axis_sizes
                .into_iter()
                .map(|d| {
                    let mut o = s.to_vec();
                    o[a] = d;
                    like(x, Some(o))
                })
                .collect());
        }
        ShapeOp::Slice { attrs } => like(x, slice(shape, attrs.as_ref(), inputs, syms)?),
        ShapeOp::Gather { axis } => {
            let idx = input(inputs, 1)?;
            let out = match (shape, idx.info.shape.as_deref()) {
                (Some(s), Some(i)) => {
                    let a = axis_exclusive(*axis, s.len())?;
                    let mut o = s[..a].to_vec();
                    o.extend_from_slice(i);
                    o.extend_from_slice(&s[a + 1..]);
                    Some(o)
                }
                _ => None,
            };
            like(x, out)
        }
        ShapeOp::GatherElements { axis } => {
            let idx = input(inputs, 1)?;
            if let (Some(r), Some(q)) = (rank, idx.info.rank()) {
                if r != q {
                    return Err(format!("indices have rank {q} but data has rank {r}"));
                }
                axis_exclusive(*axis, r)?;
            }
            like(x, idx.info.shape.clone())
        }
        ShapeOp::GatherND { batch_dims } => {
            let idx = input(inputs, 1)?;
            let out = match (shape, idx.info.shape.as_deref()) {
                (Some(s), Some(i)) if !i.is_empty() => match i[i.len() - 1].known() {
                    Some(k) => {
                        let b = usize::try_from(*batch_dims)
                            .map_err(|_| "batch_dims must be >= 0".to_string())?;
                        if b + k > s.len() || b >= i.len() {
                            return Err(format!(
                                "batch_dims {b} and index depth {k} do not fit data of rank {}",
                                s.len()
                            ));
                        }
                        let mut o = i[..i.len() - 1].to_vec();
                        o.extend_from_slice(&s[b + k..]);
                        Some(o)
                    }
                    None => None,
                },
                _ => None,
            };
            like(x, out)
        }
        ShapeOp::ScatterND { .. }
        | ShapeOp::ScatterElements { .. }
        | ShapeOp::Scatter { .. }
        | ShapeOp::Trilu { .. }
        | ShapeOp::ReverseSequence { .. } => x.info.clone(),
        ShapeOp::Squeeze { axes } => {
            let axes = match axes {
                Some(a) => Some(a.clone()),
                None => match optional(inputs, 1) {
                    Some(_) => match ints_of(inputs, syms, 1) {
                        Some(a) => Some(a),
                        None => return Ok(vec![like(x, None)]),
                    },
                    None => None,
                },
            };
            like(x, squeeze(shape, axes.as_deref())?)
        }
        ShapeOp::Unsqueeze { axes } => {
            let axes = match axes {
                Some(a) => Some(a.clone()),
                None => ints_of(inputs, syms, 1),
            };
            let out = match (shape, axes) {
                (Some(s), Some(axes)) => Some(unsqueeze(s, &axes)?),
                (Some(s), None) => {
                    one_d_len(input(inputs, 1)?).map(|k| vec![Dim::Unknown; s.len() + k])
                }
                _ => None,
            };
            like(x, out)
        }
        ShapeOp::Expand => {
            input(inputs, 1)?;
            let out = match (shape, syms_of(inputs, syms, 1)) {
                (Some(s), Some(t)) => {
                    let t = t
                        .iter()
                        .map(SymInt::to_dim)
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(broadcast_dims(s, &t)?)
                }
                _ => None,
            };
            like(x, out)
        }
        ShapeOp::Shape { start, end } => {
            let len = rank.map(|r| {
                let (s, e) = clamp_shape_range(*start, *end, r);
                Dim::Known(e - s)
            });
            with_dtype(DType::I64, Some(vec![len.unwrap_or(Dim::Unknown)]))
        }
        ShapeOp::Size => with_dtype(DType::I64, Some(vec![])),
        ShapeOp::Tile => {
            input(inputs, 1)?;
            let out = match (shape, ints_of(inputs, syms, 1)) {
                (Some(s), Some(r)) => {
                    if r.len() != s.len() {
                        return Err(format!(
                            "repeats has {} entries for an input of rank {}",
                            r.len(),
                            s.len()
                        ));
                    }
                    let mut o = Vec::with_capacity(s.len());
                    for (d, &k) in s.iter().zip(&r) {
                        let k = usize::try_from(k).map_err(|_| format!("negative repeat {k}"))?;
                        o.push(match (d, k) {
                            (_, 0) => Dim::Known(0),
                            (d, 1) => d.clone(),
                            (Dim::Known(n), k) => n.checked_mul(k).map_or(Dim::Unknown, Dim::Known),
                            _ => Dim::Unknown,
                        });
                    }
                    Some(o)
                }
                (Some(s), None) => Some(vec![Dim::Unknown; s.len()]),
                _ => None,
            };
            like(x, out)
        }
        ShapeOp::ConstantOfShape { value } => {
            let out = match syms_of(inputs, syms, 0) {
                Some(t) => Some(
                    t.iter()
                        .map(SymInt::to_dim)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => one_d_len(x).map(|n| vec![Dim::Unknown; n]),
            };
            with_dtype(value.dtype(), out)
        }
        ShapeOp::Range => {
            for i in 0..3 {
                if let Some(r) = input(inputs, i)?.info.rank() {
                    if r > 1 {
                        return Err(format!("input {i} must be a scalar"));
                    }
                }
            }
            like(x, Some(vec![range_len(inputs, syms)]))
        }
        ShapeOp::NonZero => with_dtype(
            DType::I64,
            Some(vec![
                rank.map_or(Dim::Unknown, |r| Dim::Known(r.max(1))),
                Dim::Unknown,
            ]),
        ),
        ShapeOp::OneHot { axis } => {
            let values = input(inputs, 2)?;
            let depth = match syms_of(inputs, syms, 1).as_deref() {
                Some([d]) => d.to_dim().unwrap_or(Dim::Unknown),
                _ => Dim::Unknown,
            };
            let out = match shape {
                Some(s) => {
                    let a = axis_inclusive(*axis, s.len())?;
                    let mut o = s.to_vec();
                    o.insert(a, depth);
                    Some(o)
                }
                None => None,
            };
            ValueInfo {
                dtype: values.info.dtype,
                shape: out,
            }
        }
        ShapeOp::EyeLike { dtype, .. } => {
            if let Some(r) = rank {
                if r != 2 {
                    return Err(format!("input must have rank 2, got rank {r}"));
                }
            }
            ValueInfo {
                dtype: dtype.or(x.info.dtype),
                shape: Some(shape.map_or(vec![Dim::Unknown; 2], <[Dim]>::to_vec)),
            }
        }
        ShapeOp::Compress { axis } => {
            let out = match (axis, shape) {
                (None, _) => Some(vec![Dim::Unknown]),
                (Some(a), Some(s)) => {
                    let a = axis_exclusive(*a, s.len())?;
                    let mut o = s.to_vec();
                    o[a] = Dim::Unknown;
                    Some(o)
                }
                (Some(_), None) => None,
            };
            like(x, out)
        }
        ShapeOp::Unique { axis, .. } => {
            let (y, inverse) = match (axis, shape) {
                (None, s) => (
                    Some(vec![Dim::Unknown]),
                    s.map(product).unwrap_or(Dim::Unknown),
                ),
                (Some(a), Some(s)) => {
                    let a = axis_exclusive(*a, s.len())?;
                    let mut o = s.to_vec();
                    o[a] = Dim::Unknown;
                    (Some(o), s[a].clone())
                }
                (Some(_), None) => (None, Dim::Unknown),
            };
            let i64_1d = |d: Dim| with_dtype(DType::I64, Some(vec![d]));
            return Ok(vec![
                like(x, y),
                i64_1d(Dim::Unknown),
                i64_1d(inverse),
                i64_1d(Dim::Unknown),
            ]);
        }
        ShapeOp::Constant { .. } => unreachable!("handled above"),
    };
    Ok(vec![out])
}

pub(super) fn infer_value(op: &ShapeOp, inputs: &[Option<InferInput>]) -> Option<Vec<Tensor>> {
    let x = inputs.first()?.as_ref()?;
    let dims = x.info.concrete_shape()?;
    match op {
        ShapeOp::Shape { start, end } => {
            let (s, e) = clamp_shape_range(*start, *end, dims.len());
            let v: Vec<i64> = dims[s..e].iter().map(|&d| d as i64).collect();
            Tensor::from_vec(vec![v.len()], v).ok().map(|t| vec![t])
        }
        ShapeOp::Size => {
            let n = dims
                .iter()
                .try_fold(1i64, |acc, &d| acc.checked_mul(i64::try_from(d).ok()?))?;
            Some(vec![Tensor::scalar(n)])
        }
        _ => None,
    }
}

/// Length of a 1-D input whose values are unknown (a shape or axes input).
fn one_d_len(i: &InferInput) -> Option<usize> {
    match i.info.shape.as_deref() {
        Some([d]) => d.known(),
        _ => None,
    }
}

/// The product of dims: known if all are known (or one is 0), the symbol itself when
/// it is the only non-1 factor, unknown otherwise.
fn product(dims: &[Dim]) -> Dim {
    if dims.contains(&Dim::Known(0)) {
        return Dim::Known(0);
    }
    let mut known = 1usize;
    let mut other: Vec<&Dim> = Vec::new();
    for d in dims {
        match d {
            Dim::Known(n) => match known.checked_mul(*n) {
                Some(k) => known = k,
                None => return Dim::Unknown,
            },
            d => other.push(d),
        }
    }
    match other.as_slice() {
        [] => Dim::Known(known),
        [Dim::Symbol(s)] if known == 1 => Dim::Symbol(s.clone()),
        _ => Dim::Unknown,
    }
}

/// Axis in `[-rank, rank - 1]`.
fn axis_exclusive(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Axis against an output rank of `rank + 1` (OneHot, whose negative axes count
/// from the output's end).
fn axis_inclusive(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r + 1 } else { axis };
    if a < 0 || a > r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

fn perm_or_default(perm: Option<&[i64]>, rank: usize) -> Result<Vec<usize>, String> {
    match perm {
        None => Ok((0..rank).rev().collect()),
        Some(p) => super::check_perm(p, rank),
    }
}

fn concat(inputs: &[Option<InferInput>], axis: i64) -> Result<ValueInfo, String> {
    let mut ins = Vec::with_capacity(inputs.len());
    for i in 0..inputs.len() {
        ins.push(input(inputs, i)?);
    }
    let dtype = ins.iter().find_map(|i| i.info.dtype);
    let Some(rank) = ins.iter().find_map(|i| i.info.rank()) else {
        return Ok(ValueInfo { dtype, shape: None });
    };
    if let Some(bad) = ins
        .iter()
        .filter_map(|i| i.info.rank())
        .find(|&r| r != rank)
    {
        return Err(format!("inputs have ranks {rank} and {bad}"));
    }
    let a = axis_exclusive(axis, rank)?;
    let mut out = Vec::with_capacity(rank);
    for d in 0..rank {
        let dims: Vec<Dim> = ins
            .iter()
            .map(|i| i.info.shape.as_ref().map_or(Dim::Unknown, |s| s[d].clone()))
            .collect();
        if d == a {
            let unknown: Vec<&Dim> = dims.iter().filter(|d| d.known().is_none()).collect();
            let sum: usize = dims.iter().filter_map(Dim::known).sum();
            out.push(match unknown.as_slice() {
                [] => Dim::Known(sum),
                [one] if sum == 0 => (*one).clone(),
                _ => Dim::Unknown,
            });
        } else {
            let mut merged = Dim::Unknown;
            for dim in dims {
                match (&merged, &dim) {
                    (Dim::Known(m), Dim::Known(n)) if m != n => {
                        return Err(format!("inputs disagree on dimension {d}: {m} vs {n}"));
                    }
                    (Dim::Known(_), _) => {}
                    (_, Dim::Known(_)) => merged = dim,
                    (Dim::Unknown, Dim::Symbol(_)) => merged = dim,
                    _ => {}
                }
            }
            out.push(merged);
        }
    }
    Ok(ValueInfo {
        dtype,
        shape: Some(out),
    })
}

fn slice(
    shape: Option<&[Dim]>,
    attrs: Option<&SliceAttrs>,
    inputs: &[Option<InferInput>],
    syms: &[Option<Vec<SymInt>>],
) -> Result<Option<Vec<Dim>>, String> {
    let Some(s) = shape else { return Ok(None) };
    let (starts, ends, axes, steps) = match attrs {
        Some(a) => (
            Some(a.starts.clone()),
            Some(a.ends.clone()),
            a.axes.clone(),
            None,
        ),
        None => (
            ints_of(inputs, syms, 1),
            ints_of(inputs, syms, 2),
            ints_of(inputs, syms, 3),
            ints_of(inputs, syms, 4),
        ),
    };
    let axes_known = attrs.is_some() || optional(inputs, 3).is_none() || axes.is_some();
    let steps_known = attrs.is_some() || optional(inputs, 4).is_none() || steps.is_some();
    let (Some(starts), Some(ends), true, true) = (starts, ends, axes_known, steps_known) else {
        // Which axes change is unknown unless the axes are.
        let mut out = s.to_vec();
        match (axes_known, &axes) {
            (true, Some(ax)) => {
                for &a in ax {
                    let a = axis_exclusive(a, s.len())?;
                    out[a] = Dim::Unknown;
                }
            }
            _ => out.iter_mut().for_each(|d| *d = Dim::Unknown),
        }
        return Ok(Some(out));
    };
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err("starts, ends, axes and steps must have the same length".into());
    }
    let mut out = s.to_vec();
    let mut seen = vec![false; s.len()];
    for i in 0..n {
        let a = axis_exclusive(axes[i], s.len())?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("axis {} is repeated", axes[i]));
        }
        if steps[i] == 0 {
            return Err("slice step cannot be 0".into());
        }
        out[a] = match &s[a] {
            Dim::Known(d) => Dim::Known(slice_bounds(starts[i], ends[i], steps[i], *d)?.1),
            // The whole axis, forwards or backwards, whatever its size.
            d if steps[i] == 1
                && (starts[i] == 0 || starts[i] <= -(i32::MAX as i64))
                && ends[i] >= i32::MAX as i64 =>
            {
                d.clone()
            }
            d if steps[i] == -1
                && (starts[i] == -1 || starts[i] >= i32::MAX as i64)
                && ends[i] <= i32::MIN as i64 =>
            {
                d.clone()
            }
            _ => Dim::Unknown,
        };
    }
    Ok(Some(out))
}

fn squeeze(shape: Option<&[Dim]>, axes: Option<&[i64]>) -> Result<Option<Vec<Dim>>, String> {
    let Some(s) = shape else { return Ok(None) };
    match axes {
        None => {
            if s.iter().any(|d| d.known().is_none()) {
                return Ok(None);
            }
            Ok(Some(
                s.iter().filter(|d| **d != Dim::Known(1)).cloned().collect(),
            ))
        }
        Some(axes) => {
            let mut drop = vec![false; s.len()];
            for &a in axes {
                let i = axis_exclusive(a, s.len())?;
                if std::mem::replace(&mut drop[i], true) {
                    return Err(format!("axis {a} is repeated"));
                }
                if let Dim::Known(n) = s[i] {
                    if n != 1 {
                        return Err(format!("cannot squeeze axis {a} of size {n}"));
                    }
                }
            }
            Ok(Some(
                s.iter()
                    .zip(&drop)
                    .filter(|(_, &d)| !d)
                    .map(|(x, _)| x.clone())
                    .collect(),
            ))
        }
    }
}

fn unsqueeze(s: &[Dim], axes: &[i64]) -> Result<Vec<Dim>, String> {
    let rank = s.len() + axes.len();
    let mut ones = vec![false; rank];
    for &a in axes {
        let i = axis_exclusive(a, rank)?;
        if std::mem::replace(&mut ones[i], true) {
            return Err(format!("axis {a} is repeated"));
        }
    }
    let mut rest = s.iter();
    Ok(ones
        .iter()
        .map(|&one| {
            if one {
                Dim::Known(1)
            } else {
                rest.next().expect("counted").clone()
            }
        })
        .collect())
}

/// Length of a Range output: known for integer bounds, the symbol itself for
/// `Range(0, n, 1)` with a symbolic `n`.
fn range_len(inputs: &[Option<InferInput>], syms: &[Option<Vec<SymInt>>]) -> Dim {
    let one = |i: usize| match syms_of(inputs, syms, i).as_deref() {
        Some([v]) => Some(v.clone()),
        _ => None,
    };
    match (one(0), one(1), one(2)) {
        (Some(SymInt::Int(s)), Some(SymInt::Int(l)), Some(SymInt::Int(d))) if d != 0 => {
            let (s, l, d) = (s as i128, l as i128, d as i128);
            let span = l - s;
            let n = if span != 0 && (span > 0) == (d > 0) {
                (span.abs() + d.abs() - 1) / d.abs()
            } else {
                0
            };
            usize::try_from(n).map_or(Dim::Unknown, Dim::Known)
        }
        (Some(SymInt::Int(0)), Some(SymInt::Sym(n)), Some(SymInt::Int(1))) => Dim::Symbol(n),
        _ => Dim::Unknown,
    }
}
