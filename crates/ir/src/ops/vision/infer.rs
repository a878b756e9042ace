//! Shape and dtype inference of the vision family.

use slimnet_tensor::DType;

use super::{Col2Im, GridSample, MaxUnpool, RoiAlign};
use crate::ops::util::{input, known_ints, like, normalize_axis, optional, with_dtype};
use crate::{Dim, InferInput, ValueInfo};

type Inputs<'a, 'b> = &'a [Option<InferInput<'b>>];

fn float_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_float() => Err(format!("{what} must be a float tensor, got {d}")),
        _ => Ok(()),
    }
}

fn int_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_integer() => Err(format!("{what} must be an integer tensor, got {d}")),
        _ => Ok(()),
    }
}

fn numeric_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_float() && !d.is_integer() => {
            Err(format!("{what} must be numeric, got {d}"))
        }
        _ => Ok(()),
    }
}

/// The shape of `x`, checking its rank when known.
fn ranked<'a>(x: &'a InferInput, what: &str, rank: usize) -> Result<Option<&'a [Dim]>, String> {
    match &x.info.shape {
        Some(s) if s.len() != rank => Err(format!(
            "{what} must have rank {rank}, got rank {}",
            s.len()
        )),
        s => Ok(s.as_deref()),
    }
}

/// Two descriptions of the same dim: the known one (an error if both are known and
/// differ), else a symbol, else unknown.
fn same_dim(a: &Dim, b: &Dim, what: &str) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => {
            return Err(format!("{what} disagree: {x} vs {y}"));
        }
        (Dim::Known(_), _) => a.clone(),
        (_, Dim::Known(_)) => b.clone(),
        (Dim::Symbol(_), _) => a.clone(),
        _ => b.clone(),
    })
}

fn dim_at(s: Option<&[Dim]>, i: usize) -> Dim {
    s.and_then(|s| s.get(i)).cloned().unwrap_or(Dim::Unknown)
}

/// A dim from an int value of a constant input.
fn dim_of(v: i64, what: &str) -> Result<Dim, String> {
    usize::try_from(v)
        .map(Dim::Known)
        .map_err(|_| format!("{what} holds a negative size {v}"))
}

/// Length of a 1-D input's value, from its shape.
fn length_of(x: Option<&InferInput>) -> Option<usize> {
    match x?.info.shape.as_deref()? {
        [d] => d.known(),
        _ => None,
    }
}

pub(super) fn grid_sample(g: &GridSample, inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let grid = input(inputs, 1)?;
    float_input(grid, "grid")?;
    let xs = x.info.shape.as_deref();
    let gs = grid.info.shape.as_deref();
    for (s, what) in [(xs, "X"), (gs, "grid")] {
        match s {
            Some(s) if g.legacy && s.len() != 4 => {
                return Err(format!(
                    "{what} must have rank 4 before opset 20, got rank {}",
                    s.len()
                ))
            }
            Some(s) if s.len() < 3 => {
                return Err(format!(
                    "{what} must have rank 3 or more, got rank {}",
                    s.len()
                ))
            }
            _ => {}
        }
    }
    let rank = match (xs, gs) {
        (Some(a), Some(b)) if a.len() != b.len() => {
            return Err(format!(
                "X has rank {} but grid has rank {}",
                a.len(),
                b.len()
            ))
        }
        (Some(a), _) => a.len(),
        (None, Some(b)) => b.len(),
        (None, None) => return Ok(vec![like(x, None)]),
    };
    if let Some(Dim::Known(k)) = gs.and_then(|s| s.last()) {
        if *k != rank - 2 {
            return Err(format!(
                "grid's last axis has {k} coordinates, expected {}",
                rank - 2
            ));
        }
    }
    let mut out = vec![
        same_dim(&dim_at(xs, 0), &dim_at(gs, 0), "batch sizes of X and grid")?,
        dim_at(xs, 1),
    ];
    out.extend((1..rank - 1).map(|i| dim_at(gs, i)));
    Ok(vec![like(x, Some(out))])
}

pub(super) fn affine_grid(inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let theta = input(inputs, 0)?;
    let size = input(inputs, 1)?;
    float_input(theta, "theta")?;
    int_input(size, "size")?;
    let ts = ranked(theta, "theta", 3)?;
    let spatial = match (dim_at(ts, 1).known(), dim_at(ts, 2).known()) {
        (Some(2), Some(3) | None) | (None, Some(3)) => Some(2),
        (Some(3), Some(4) | None) | (None, Some(4)) => Some(3),
        (None, None) => None,
        (a, b) => {
            return Err(format!(
                "theta must be (N, 2, 3) or (N, 3, 4), got (N, {a:?}, {b:?})"
            ))
        }
    };
    let n = dim_at(ts, 0);
    let shape = match known_ints(Some(size)) {
        Some(v) => {
            if v.len() != 4 && v.len() != 5 {
                return Err(format!("size must hold 4 or 5 values, got {}", v.len()));
            }
            let r = v.len() - 2;
            if spatial.is_some_and(|s| s != r) {
                return Err(format!(
                    "theta is for {} spatial axes but size has {r}",
                    spatial.unwrap_or(0)
                ));
            }
            let mut out = vec![same_dim(
                &n,
                &dim_of(v[0], "size")?,
                "batch sizes of theta and size",
            )?];
            for &d in &v[2..] {
                out.push(dim_of(d, "size")?);
            }
            out.push(Dim::Known(r));
            Some(out)
        }
        None => match length_of(Some(size))
            .map(|l| l.checked_sub(2))
            .unwrap_or(spatial)
        {
            Some(r @ (2 | 3)) => {
                let mut out = vec![n];
                out.extend(std::iter::repeat_n(Dim::Unknown, r));
                out.push(Dim::Known(r));
                Some(out)
            }
            Some(_) => return Err("size must hold 4 or 5 values".into()),
            None => None,
        },
    };
    Ok(vec![like(theta, shape)])
}

pub(super) fn col2im(c: &Col2Im, inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let image = input(inputs, 1)?;
    let block = input(inputs, 2)?;
    int_input(image, "image_shape")?;
    int_input(block, "block_shape")?;
    let xs = ranked(x, "input", 3)?;
    let image_v = known_ints(Some(image));
    let block_v = known_ints(Some(block));
    let r = image_v
        .as_ref()
        .map(Vec::len)
        .or(block_v.as_ref().map(Vec::len))
        .or(length_of(Some(image)))
        .or(length_of(Some(block)));
    let Some(r) = r else {
        return Ok(vec![like(x, None)]);
    };
    if let (Some(i), Some(b)) = (&image_v, &block_v) {
        if i.len() != b.len() {
            return Err(format!(
                "image_shape has {} values but block_shape has {}",
                i.len(),
                b.len()
            ));
        }
    }
    let check_len = |v: &[i64], name: &str, n: usize| {
        if !v.is_empty() && v.len() != n {
            return Err(format!("{name} has {} values, expected {n}", v.len()));
        }
        Ok(())
    };
    check_len(&c.dilations, "dilations", r)?;
    check_len(&c.strides, "strides", r)?;
    check_len(&c.pads, "pads", 2 * r)?;
    let channels = match (dim_at(xs, 1).known(), &block_v) {
        (Some(cb), Some(b)) => {
            if b.iter().any(|&k| k < 1) {
                return Err(format!("block_shape {b:?} must be positive"));
            }
            let k = b
                .iter()
                .try_fold(1usize, |a, &k| a.checked_mul(k as usize))
                .ok_or("block_shape is too large")?;
            if !cb.is_multiple_of(k) {
                return Err(format!(
                    "input's axis 1 ({cb}) is not a multiple of the block size {k}"
                ));
            }
            Dim::Known(cb / k)
        }
        _ => Dim::Unknown,
    };
    if let (Some(i), Some(b), Some(l)) = (&image_v, &block_v, dim_at(xs, 2).known()) {
        let blocks = c.block_counts(i, b)?;
        let total = blocks
            .iter()
            .try_fold(1usize, |a, &k| a.checked_mul(k))
            .ok_or("too many blocks")?;
        if total != l {
            return Err(format!(
                "input's axis 2 has {l} blocks but the image holds {blocks:?} = {total}"
            ));
        }
    }
    let mut out = vec![dim_at(xs, 0), channels];
    match &image_v {
        Some(i) => {
            for &d in i {
                out.push(dim_of(d, "image_shape")?);
            }
        }
        None => out.extend(std::iter::repeat_n(Dim::Unknown, r)),
    }
    Ok(vec![like(x, Some(out))])
}

impl Col2Im {
    /// Number of sliding blocks along each axis of an image of `image` dims with
    /// blocks of `block` dims; an error when the attributes do not fit or a count is
    /// not positive.
    pub fn block_counts(&self, image: &[i64], block: &[i64]) -> Result<Vec<usize>, String> {
        let r = image.len();
        if block.len() != r {
            return Err(format!(
                "image_shape has {r} values but block_shape has {}",
                block.len()
            ));
        }
        let at = |v: &[i64], i: usize, d: i64| {
            if v.is_empty() {
                d
            } else {
                v.get(i).copied().unwrap_or(d)
            }
        };
        (0..r)
            .map(|i| {
                let (img, k) = (image[i] as i128, block[i] as i128);
                if img < 1 || k < 1 {
                    return Err(format!(
                        "image_shape {image:?} and block_shape {block:?} must be positive"
                    ));
                }
                let pads = at(&self.pads, i, 0) as i128 + at(&self.pads, i + r, 0) as i128;
                let extent = at(&self.dilations, i, 1) as i128 * (k - 1) + 1;
                let n = (img + pads - extent).div_euclid(at(&self.strides, i, 1) as i128) + 1;
                if n < 1 || img + pads < extent {
                    return Err(format!(
                        "axis {i}: a block of extent {extent} does not fit the padded image"
                    ));
                }
                usize::try_from(n).map_err(|_| format!("axis {i}: too many blocks"))
            })
            .collect()
    }
}

pub(super) fn roi_align(r: &RoiAlign, inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let rois = input(inputs, 1)?;
    let idx = input(inputs, 2)?;
    float_input(x, "X")?;
    float_input(rois, "rois")?;
    int_input(idx, "batch_indices")?;
    let xs = ranked(x, "X", 4)?;
    let rs = ranked(rois, "rois", 2)?;
    let is = ranked(idx, "batch_indices", 1)?;
    if let Some(Dim::Known(k)) = rs.and_then(|s| s.get(1)) {
        if *k != 4 {
            return Err(format!("rois must have 4 columns, got {k}"));
        }
    }
    let n = same_dim(
        &dim_at(rs, 0),
        &dim_at(is, 0),
        "numbers of rois and batch indices",
    )?;
    let out = vec![
        n,
        dim_at(xs, 1),
        Dim::Known(r.output_height as usize),
        Dim::Known(r.output_width as usize),
    ];
    Ok(vec![like(x, Some(out))])
}

pub(super) fn non_max_suppression(inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let boxes = input(inputs, 0)?;
    let scores = input(inputs, 1)?;
    float_input(boxes, "boxes")?;
    float_input(scores, "scores")?;
    let bs = ranked(boxes, "boxes", 3)?;
    let ss = ranked(scores, "scores", 3)?;
    if let Some(Dim::Known(k)) = bs.and_then(|s| s.get(2)) {
        if *k != 4 {
            return Err(format!("boxes must have 4 coordinates, got {k}"));
        }
    }
    same_dim(
        &dim_at(bs, 0),
        &dim_at(ss, 0),
        "batch sizes of boxes and scores",
    )?;
    same_dim(
        &dim_at(bs, 1),
        &dim_at(ss, 2),
        "numbers of boxes in boxes and scores",
    )?;
    if let Some(m) = optional(inputs, 2) {
        int_input(m, "max_output_boxes_per_class")?;
    }
    for i in [3, 4] {
        if let Some(t) = optional(inputs, i) {
            float_input(t, "thresholds")?;
        }
    }
    Ok(vec![with_dtype(
        DType::I64,
        Some(vec![Dim::Unknown, Dim::Known(3)]),
    )])
}

pub(super) fn max_unpool(m: &MaxUnpool, inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let i = input(inputs, 1)?;
    float_input(x, "X")?;
    int_input(i, "I")?;
    let xs = ranked(x, "X", m.kernel_shape.len() + 2)?;
    ranked(i, "I", m.kernel_shape.len() + 2)?;
    let rank = m.kernel_shape.len() + 2;
    let inferred = match xs {
        Some(s) => {
            let sizes: Vec<Option<usize>> = s[2..].iter().map(Dim::known).collect();
            m.spatial_output(&sizes)?
        }
        None => vec![None; rank - 2],
    };
    let shape = match optional(inputs, 2) {
        Some(o) => {
            int_input(o, "output_shape")?;
            match known_ints(Some(o)) {
                Some(v) => {
                    if v.len() != rank {
                        return Err(format!(
                            "output_shape has {} values, expected {rank}",
                            v.len()
                        ));
                    }
                    let mut out = Vec::with_capacity(rank);
                    out.push(same_dim(
                        &dim_at(xs, 0),
                        &dim_of(v[0], "output_shape")?,
                        "batch sizes",
                    )?);
                    out.push(same_dim(
                        &dim_at(xs, 1),
                        &dim_of(v[1], "output_shape")?,
                        "channels",
                    )?);
                    for (k, &d) in v[2..].iter().enumerate() {
                        if let Some(n) = inferred[k] {
                            if (d as i128) < n as i128 {
                                return Err(format!(
                                    "output_shape {v:?} is smaller than the unpooled size {n}"
                                ));
                            }
                        }
                        out.push(dim_of(d, "output_shape")?);
                    }
                    out
                }
                None => {
                    let mut out = vec![dim_at(xs, 0), dim_at(xs, 1)];
                    out.extend(std::iter::repeat_n(Dim::Unknown, rank - 2));
                    out
                }
            }
        }
        None => {
            let mut out = vec![dim_at(xs, 0), dim_at(xs, 1)];
            out.extend(
                inferred
                    .into_iter()
                    .map(|d| d.map_or(Dim::Unknown, Dim::Known)),
            );
            out
        }
    };
    Ok(vec![like(x, Some(shape))])
}

pub(super) fn center_crop_pad(
    axes: Option<&[i64]>,
    inputs: Inputs,
) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let shape = input(inputs, 1)?;
    int_input(shape, "shape")?;
    let Some(xs) = x.info.shape.as_deref() else {
        return Ok(vec![like(x, None)]);
    };
    let rank = xs.len();
    let axes: Vec<usize> = match axes {
        Some(a) => {
            let mut seen = vec![false; rank];
            let mut out = Vec::with_capacity(a.len());
            for &ax in a {
                let n = normalize_axis(ax, rank)?;
                if std::mem::replace(&mut seen[n], true) {
                    return Err(format!("axis {ax} is repeated"));
                }
                out.push(n);
            }
            out
        }
        None => (0..rank).collect(),
    };
    if let Some(l) = length_of(Some(shape)) {
        if l != axes.len() {
            return Err(format!("shape has {l} values for {} axes", axes.len()));
        }
    }
    let values = known_ints(Some(shape));
    let mut out = xs.to_vec();
    for (k, &a) in axes.iter().enumerate() {
        out[a] = match &values {
            Some(v) => dim_of(
                *v.get(k).ok_or("shape has fewer values than axes")?,
                "shape",
            )?,
            None => Dim::Unknown,
        };
    }
    Ok(vec![like(x, Some(out))])
}

pub(super) fn cum_prod(inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let axis = input(inputs, 1)?;
    numeric_input(x, "X")?;
    int_input(axis, "axis")?;
    if let Some(r) = axis.info.rank() {
        if r > 1 {
            return Err(format!("axis must be a scalar, got rank {r}"));
        }
    }
    if let (Some(v), Some(r)) = (known_ints(Some(axis)), x.info.rank()) {
        match v.as_slice() {
            [a] => {
                normalize_axis(*a, r)?;
            }
            _ => return Err(format!("axis must hold one value, got {}", v.len())),
        }
    }
    Ok(vec![x.info.clone()])
}

pub(super) fn det(inputs: Inputs) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    float_input(x, "X")?;
    let shape = match x.info.shape.as_deref() {
        None => None,
        Some(s) if s.len() < 2 => {
            return Err(format!("X must have rank 2 or more, got rank {}", s.len()))
        }
        Some(s) => {
            same_dim(
                &s[s.len() - 2],
                &s[s.len() - 1],
                "the matrix's row and column counts",
            )?;
            Some(s[..s.len() - 2].to_vec())
        }
    };
    Ok(vec![like(x, shape)])
}
