//! Index arithmetic shared by shape inference and the reference kernels, so both
//! agree exactly on clamping, `-1` inference and split sizes.

use super::SymInt;
use crate::Dim;

/// Start index (in `[0, dim]`, or `[-1, dim - 1]` for a negative step) and length of
/// an ONNX `Slice` along one axis of size `dim`: negative bounds count from the end,
/// then are clamped.
pub fn slice_bounds(start: i64, end: i64, step: i64, dim: usize) -> Result<(i64, usize), String> {
    if step == 0 {
        return Err("slice step cannot be 0".into());
    }
    let d = dim as i128;
    let (start, end, step) = (start as i128, end as i128, step as i128);
    let s = if start < 0 { start + d } else { start };
    let e = if end < 0 { end + d } else { end };
    if dim == 0 {
        return Ok((0, 0));
    }
    let (s, len) = if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        (s, if e > s { (e - s - 1) / step + 1 } else { 0 })
    } else {
        let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
        (s, if s > e { (s - e - 1) / -step + 1 } else { 0 })
    };
    Ok((s as i64, len as usize))
}

/// The `[start, end)` range of a `Shape` op's output over a shape of rank `rank`.
pub fn clamp_shape_range(start: i64, end: Option<i64>, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let fix = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let s = fix(start);
    let e = fix(end.unwrap_or(r));
    (s, e.max(s))
}

/// Sizes of `n` parts of a dimension split without explicit sizes: equal parts
/// (an error when `dim` is not divisible), or with `ceil` (opset 18's
/// `num_outputs`) parts of `ceil(dim / n)` with a smaller last one.
pub fn split_sizes(dim: usize, n: usize, ceil: bool) -> Result<Vec<usize>, String> {
    if n == 0 {
        return Err("cannot split into 0 parts".into());
    }
    if dim.is_multiple_of(n) {
        return Ok(vec![dim / n; n]);
    }
    if !ceil {
        return Err(format!(
            "dimension {dim} cannot be split into {n} equal parts"
        ));
    }
    let chunk = dim.div_ceil(n);
    let used = chunk * (n - 1);
    if used > dim {
        return Err(format!(
            "dimension {dim} cannot be split into {n} parts of {chunk}"
        ));
    }
    let mut sizes = vec![chunk; n - 1];
    sizes.push(dim - used);
    Ok(sizes)
}

/// Checks that `perm` is a permutation of `0..rank`.
pub fn check_perm(perm: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    if perm.len() != rank {
        return Err(format!(
            "perm {perm:?} has {} entries for rank {rank}",
            perm.len()
        ));
    }
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(rank);
    for &p in perm {
        let i = usize::try_from(p)
            .ok()
            .filter(|&i| i < rank)
            .ok_or_else(|| format!("perm {perm:?} is not a permutation"))?;
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("perm {perm:?} is not a permutation"));
        }
        out.push(i);
    }
    Ok(out)
}

/// Output shape of `Reshape` of `input` (unknown rank: `None`) to `target`: `0`
/// copies the input's dimension at the same index unless `allowzero`, one `-1` takes
/// what is left. Symbolic dims are followed: `[batch, 3, 4]` to `[0, -1]` gives
/// `[batch, 12]`, and `[batch, 12]` to `[12, -1]` gives `[12, batch]`.
pub fn reshape_dims(
    input: Option<&[Dim]>,
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<Dim>, String> {
    let target: Vec<SymInt> = target.iter().map(|&v| SymInt::Int(v)).collect();
    reshape_sym(input, &target, allowzero)
}

/// [`reshape_dims`] with a target whose entries may be symbols (which become those
/// dimensions) or unknown.
pub fn reshape_sym(
    input: Option<&[Dim]>,
    target: &[SymInt],
    allowzero: bool,
) -> Result<Vec<Dim>, String> {
    let shown = || format!("{target:?}");
    let has_minus_one = target.contains(&SymInt::Int(-1));
    let mut infer_at = None;
    let mut out = Vec::with_capacity(target.len());
    for (i, v) in target.iter().enumerate() {
        out.push(match v {
            SymInt::Sym(s) => Dim::Symbol(s.clone()),
            SymInt::Unknown => Dim::Unknown,
            SymInt::Int(-1) => {
                if infer_at.replace(i).is_some() {
                    return Err(format!("shape {} has more than one -1", shown()));
                }
                Dim::Unknown
            }
            SymInt::Int(0) if allowzero => {
                if has_minus_one {
                    return Err(format!(
                        "shape {} has both 0 and -1 with allowzero",
                        shown()
                    ));
                }
                Dim::Known(0)
            }
            SymInt::Int(0) => match input {
                Some(s) => s.get(i).cloned().ok_or_else(|| {
                    format!(
                        "shape {} copies dimension {i}, but the input has rank {}",
                        shown(),
                        s.len()
                    )
                })?,
                None => Dim::Unknown,
            },
            SymInt::Int(v) if *v > 0 => {
                Dim::Known(usize::try_from(*v).map_err(|_| format!("dimension {v} is too large"))?)
            }
            SymInt::Int(v) => return Err(format!("invalid dimension {v} in shape {}", shown())),
        });
    }
    let Some(input) = input else { return Ok(out) };
    let (in_known, mut in_syms, in_unknown) = factors(input);
    let (out_known, out_syms, out_unknown) = factors(&out[..]);
    let (Some(in_known), Some(out_known)) = (in_known, out_known) else {
        return Ok(out);
    };
    let out_unknown = out_unknown - usize::from(infer_at.is_some());
    match infer_at {
        None => {
            if in_unknown == 0
                && out_unknown == 0
                && in_syms.is_empty()
                && out_syms.is_empty()
                && in_known != out_known
            {
                return Err(format!(
                    "cannot reshape {in_known} elements into shape {}",
                    shown()
                ));
            }
        }
        Some(at) => {
            if in_unknown > 0 || out_unknown > 0 {
                return Ok(out);
            }
            for s in &out_syms {
                match in_syms.iter().position(|x| x == s) {
                    Some(p) => {
                        in_syms.remove(p);
                    }
                    None => return Ok(out),
                }
            }
            out[at] = match in_syms.as_slice() {
                [] if out_known == 0 => {
                    if in_known == 0 {
                        return Err(format!(
                            "-1 in shape {} is ambiguous for an empty input",
                            shown()
                        ));
                    }
                    return Err(format!(
                        "cannot reshape {in_known} elements into shape {}",
                        shown()
                    ));
                }
                [] if !in_known.is_multiple_of(out_known) => {
                    return Err(format!(
                        "cannot reshape {in_known} elements into shape {}",
                        shown()
                    ));
                }
                [] => Dim::Known(in_known / out_known),
                [one] if in_known == out_known && out_known != 0 => Dim::Symbol(one.clone()),
                _ => Dim::Unknown,
            };
        }
    }
    Ok(out)
}

/// Product of the known dims (`None` on overflow), the symbols, and the count of
/// unknown dims.
fn factors(dims: &[Dim]) -> (Option<usize>, Vec<String>, usize) {
    let mut known = Some(1usize);
    let mut syms = Vec::new();
    let mut unknown = 0;
    for d in dims {
        match d {
            Dim::Known(n) => known = known.and_then(|k| k.checked_mul(*n)),
            Dim::Symbol(s) => syms.push(s.clone()),
            Dim::Unknown => unknown += 1,
        }
    }
    (known, syms, unknown)
}
