//! Symbolic values: the elements of small integer tensors computed from shapes
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`), as numbers or dimension
//! symbols, so that a graph with a symbolic batch keeps it through such chains.
//!
//! Inference that tracks these values calls [`ShapeOp::infer_sym_value`] for each
//! node of this family and passes the inputs' values to [`ShapeOp::infer_with_sym`].

use slimnet_tensor::Tensor;

use super::{clamp_shape_range, slice_bounds, ShapeOp, SliceAttrs};
use crate::{Dim, InferInput};

/// One element of an integer tensor known at inference time: a number, a symbolic
/// dimension, or unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymInt {
    Int(i64),
    Sym(String),
    Unknown,
}

impl SymInt {
    /// The element that a dimension of a shape becomes in a `Shape` output.
    pub fn of_dim(d: &Dim) -> SymInt {
        match d {
            Dim::Known(n) => i64::try_from(*n).map_or(SymInt::Unknown, SymInt::Int),
            Dim::Symbol(s) => SymInt::Sym(s.clone()),
            Dim::Unknown => SymInt::Unknown,
        }
    }

    /// The dimension this element stands for when used as a size (negative numbers
    /// are an error).
    pub fn to_dim(&self) -> Result<Dim, String> {
        match self {
            SymInt::Int(v) => usize::try_from(*v)
                .map(Dim::Known)
                .map_err(|_| format!("negative dimension {v}")),
            SymInt::Sym(s) => Ok(Dim::Symbol(s.clone())),
            SymInt::Unknown => Ok(Dim::Unknown),
        }
    }

    /// Elements of an integer tensor (at most [`MAX_SYM_LEN`]).
    pub fn of_tensor(t: &Tensor) -> Option<Vec<SymInt>> {
        if !t.dtype().is_integer() || t.len() > MAX_SYM_LEN {
            return None;
        }
        Some(t.to_i64_vec().ok()?.into_iter().map(SymInt::Int).collect())
    }
}

/// Longest symbolic value tracked (shapes and index lists are short).
pub const MAX_SYM_LEN: usize = 64;

/// The symbolic value of input `i`: its constant value, else what tracking found.
pub(super) fn syms_of(
    inputs: &[Option<InferInput>],
    syms: &[Option<Vec<SymInt>>],
    i: usize,
) -> Option<Vec<SymInt>> {
    let inp = inputs.get(i)?.as_ref()?;
    if let Some(v) = inp.value {
        return SymInt::of_tensor(v);
    }
    syms.get(i)?.clone()
}

/// The integer values of input `i` when every element is a known number.
pub(super) fn ints_of(
    inputs: &[Option<InferInput>],
    syms: &[Option<Vec<SymInt>>],
    i: usize,
) -> Option<Vec<i64>> {
    if let Some(v) = inputs.get(i)?.as_ref()?.value {
        return v.to_i64_vec().ok();
    }
    syms_of(inputs, syms, i)?
        .into_iter()
        .map(|s| {
            if let SymInt::Int(v) = s {
                Some(v)
            } else {
                None
            }
        })
        .collect()
}

pub(super) fn infer_sym_value(
    op: &ShapeOp,
    inputs: &[Option<InferInput>],
    syms: &[Option<Vec<SymInt>>],
) -> Option<Vec<SymInt>> {
    let rank_at_most_1 = |i: usize| inputs.get(i)?.as_ref()?.info.rank().filter(|&r| r <= 1);
    let out = match op {
        ShapeOp::Constant { value } => SymInt::of_tensor(value)?,
        ShapeOp::Shape { start, end } => {
            let shape = inputs.first()?.as_ref()?.info.shape.as_ref()?;
            let (s, e) = clamp_shape_range(*start, *end, shape.len());
            shape[s..e].iter().map(SymInt::of_dim).collect()
        }
        ShapeOp::Size => {
            let shape = inputs.first()?.as_ref()?.info.shape.as_ref()?;
            let mut known = 1i64;
            let mut syms_found = Vec::new();
            for d in shape {
                match d {
                    Dim::Known(n) => known = known.checked_mul(i64::try_from(*n).ok()?)?,
                    Dim::Symbol(s) => syms_found.push(s.clone()),
                    Dim::Unknown => return None,
                }
            }
            match syms_found.as_slice() {
                [] => vec![SymInt::Int(known)],
                [one] if known == 1 => vec![SymInt::Sym(one.clone())],
                _ => return None,
            }
        }
        ShapeOp::Gather { axis } => {
            rank_at_most_1(0)?;
            let data = syms_of(inputs, syms, 0)?;
            if !(*axis == 0 || *axis == -1) {
                return None;
            }
            let idx = ints_of(inputs, syms, 1)?;
            let n = data.len() as i64;
            idx.iter()
                .map(|&i| {
                    let j = if i < 0 { i + n } else { i };
                    (0..n).contains(&j).then(|| data[j as usize].clone())
                })
                .collect::<Option<Vec<_>>>()?
        }
        ShapeOp::Slice { attrs } => {
            rank_at_most_1(0)?;
            let data = syms_of(inputs, syms, 0)?;
            let (starts, ends, axes, steps) = match attrs {
                Some(SliceAttrs { starts, ends, axes }) => {
                    (starts.clone(), ends.clone(), axes.clone(), None)
                }
                None => (
                    ints_of(inputs, syms, 1)?,
                    ints_of(inputs, syms, 2)?,
                    match inputs.get(3).and_then(Option::as_ref) {
                        Some(_) => Some(ints_of(inputs, syms, 3)?),
                        None => None,
                    },
                    match inputs.get(4).and_then(Option::as_ref) {
                        Some(_) => Some(ints_of(inputs, syms, 4)?),
                        None => None,
                    },
                ),
            };
            if starts.len() != 1 || ends.len() != 1 || !axes.is_none_or(|a| a == [0] || a == [-1]) {
                return None;
            }
            let step = steps.map_or(Some(1), |s| (s.len() == 1).then(|| s[0]))?;
            let (start, len) = slice_bounds(starts[0], ends[0], step, data.len()).ok()?;
            (0..len as i64)
                .map(|k| data[(start + k * step) as usize].clone())
                .collect()
        }
        ShapeOp::Concat { .. } => {
            let mut out = Vec::new();
            for i in 0..inputs.len() {
                rank_at_most_1(i)?;
                out.extend(syms_of(inputs, syms, i)?);
            }
            out
        }
        ShapeOp::Reshape { .. }
        | ShapeOp::Squeeze { .. }
        | ShapeOp::Unsqueeze { .. }
        | ShapeOp::Flatten { .. } => syms_of(inputs, syms, 0)?,
        _ => return None,
    };
    (out.len() <= MAX_SYM_LEN).then_some(out)
}
