//! `Col2Im`, `MaxUnpool` and `CenterCropPad`: kernels that move elements between
//! layouts.

use slimnet_ir::ops::vision::{Col2Im, MaxUnpool};
use slimnet_tensor::{strides_of, Tensor, TensorData};

use super::{ints, out_len, pick_or_zero, tensor};
use crate::reference::elementwise::num::{Float, Int};
use crate::reference::util::normalize_axis;

/// For each element of one (batch, channel) slice of Col2Im's input (`K * L`
/// elements: kernel offsets by blocks), the image element it adds to, if any.
fn col2im_targets(
    c: &Col2Im,
    image: &[i64],
    block: &[i64],
    blocks: &[usize],
) -> Vec<Option<usize>> {
    let r = image.len();
    let at = |v: &[i64], i: usize, d: i64| if v.is_empty() { d } else { v[i] };
    let kernel: usize = block.iter().map(|&k| k as usize).product();
    let count: usize = blocks.iter().product();
    let image_strides = strides_of(&image.iter().map(|&d| d as usize).collect::<Vec<_>>());
    let mut targets = Vec::with_capacity(kernel * count);
    let mut offset = vec![0i64; r];
    let mut position = vec![0i64; r];
    for k in 0..kernel {
        let mut rest = k;
        for i in (0..r).rev() {
            offset[i] = (rest % block[i] as usize) as i64;
            rest /= block[i] as usize;
        }
        for l in 0..count {
            let mut rest = l;
            for i in (0..r).rev() {
                position[i] = (rest % blocks[i]) as i64;
                rest /= blocks[i];
            }
            let mut flat = Some(0usize);
            for i in 0..r {
                let p = position[i] * at(&c.strides, i, 1) - at(&c.pads, i, 0)
                    + offset[i] * at(&c.dilations, i, 1);
                flat = match flat {
                    Some(f) if (0..image[i]).contains(&p) => {
                        Some(f + p as usize * image_strides[i])
                    }
                    _ => None,
                };
            }
            targets.push(flat);
        }
    }
    targets
}

fn col2im_float<T: Float>(
    v: &[T],
    slices: usize,
    slice: usize,
    plane: usize,
    targets: &[Option<usize>],
) -> Vec<T> {
    let mut out = Vec::with_capacity(slices * plane);
    let mut acc = vec![0f64; plane];
    for s in 0..slices {
        acc.fill(0.0);
        for (x, t) in v[s * slice..(s + 1) * slice].iter().zip(targets) {
            if let Some(t) = t {
                acc[*t] += x.to_f64();
            }
        }
        out.extend(acc.iter().map(|&a| T::from_f64(a)));
    }
    out
}

fn col2im_int<T: Int>(
    v: &[T],
    slices: usize,
    slice: usize,
    plane: usize,
    targets: &[Option<usize>],
) -> Vec<T> {
    let mut out = vec![T::zero(); slices * plane];
    for s in 0..slices {
        let o = &mut out[s * plane..(s + 1) * plane];
        for (x, t) in v[s * slice..(s + 1) * slice].iter().zip(targets) {
            if let Some(t) = t {
                o[*t] = o[*t].wadd(*x);
            }
        }
    }
    out
}

/// Col2Im: input (N, C * prod(block), L) summed into images (N, C, image...).
pub fn col2im(c: &Col2Im, x: &Tensor, image: &Tensor, block: &Tensor) -> Result<Tensor, String> {
    let image = ints(image, "image_shape")?;
    let block = ints(block, "block_shape")?;
    let r = image.len();
    let lists = [
        (&c.dilations, r, "dilations"),
        (&c.strides, r, "strides"),
        (&c.pads, 2 * r, "pads"),
    ];
    for (v, n, name) in lists {
        if !v.is_empty() && v.len() != n {
            return Err(format!("{name} has {} values, expected {n}", v.len()));
        }
    }
    let blocks = c.block_counts(&image, &block)?;
    let xs = x.shape();
    if xs.len() != 3 {
        return Err(format!("input must have rank 3, got shape {xs:?}"));
    }
    let kernel = block
        .iter()
        .try_fold(1usize, |a, &k| a.checked_mul(k as usize))
        .ok_or("block_shape is too large")?;
    let count = blocks
        .iter()
        .try_fold(1usize, |a, &k| a.checked_mul(k))
        .ok_or("too many blocks")?;
    if !xs[1].is_multiple_of(kernel) || xs[2] != count {
        return Err(format!(
            "input of shape {xs:?} does not hold {kernel}-element blocks at {blocks:?} = {count} positions"
        ));
    }
    let channels = xs[1] / kernel;
    let mut out_shape = vec![xs[0], channels];
    out_shape.extend(image.iter().map(|&d| d as usize));
    out_len(&out_shape)?;
    let plane = out_len(&out_shape[2..])?;
    let slices = xs[0] * channels;
    if slices == 0 {
        return Tensor::zeros(x.dtype(), out_shape).map_err(crate::reference::util::reason);
    }
    // Each slice of the input holds `kernel * count` elements.
    let targets = col2im_targets(c, &image, &block, &blocks);
    let slice = kernel * count;
    match x.data() {
        TensorData::F32(v) => tensor(out_shape, col2im_float(v, slices, slice, plane, &targets)),
        TensorData::F64(v) => tensor(out_shape, col2im_float(v, slices, slice, plane, &targets)),
        TensorData::F16(v) => tensor(out_shape, col2im_float(v, slices, slice, plane, &targets)),
        TensorData::BF16(v) => tensor(out_shape, col2im_float(v, slices, slice, plane, &targets)),
        TensorData::I8(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::I16(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::I32(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::I64(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::U8(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::U16(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::U32(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        TensorData::U64(v) => tensor(out_shape, col2im_int(v, slices, slice, plane, &targets)),
        _ => Err(format!("Col2Im does not support {} tensors", x.dtype())),
    }
}

/// MaxUnpool: each element of `x` goes to the flat position `indices` gives it in
/// the unpooled shape (`(in - 1) * stride - pads + kernel` per spatial axis); with
/// `output_shape`, that result sits at the start of every axis of a larger zero
/// tensor (as in the ONNX operator's own examples).
pub fn max_unpool(
    m: &MaxUnpool,
    x: &Tensor,
    indices: &Tensor,
    output_shape: Option<&Tensor>,
) -> Result<Tensor, String> {
    let xs = x.shape();
    if xs.len() != m.kernel_shape.len() + 2 {
        return Err(format!(
            "X of shape {xs:?} does not fit kernel_shape {:?}",
            m.kernel_shape
        ));
    }
    if indices.shape() != xs {
        return Err(format!(
            "indices of shape {:?} differ from X's {xs:?}",
            indices.shape()
        ));
    }
    let idx = ints(indices, "indices")?;
    let sizes: Vec<Option<usize>> = xs[2..].iter().map(|&d| Some(d)).collect();
    let mut inferred = vec![xs[0], xs[1]];
    inferred.extend(
        m.spatial_output(&sizes)?
            .into_iter()
            .map(|d| d.unwrap_or(0)),
    );
    let inferred_len = out_len(&inferred)?;
    let shape = match output_shape {
        None => inferred.clone(),
        Some(s) => {
            let v = ints(s, "output_shape")?;
            if v.len() != xs.len() || v.iter().zip(&inferred).any(|(&o, &i)| o < i as i64) {
                return Err(format!(
                    "output_shape {v:?} is not at least the unpooled shape {inferred:?}"
                ));
            }
            v.iter().map(|&d| d as usize).collect()
        }
    };
    let total = out_len(&shape)?;
    let out_strides = strides_of(&shape);
    let mut sources = vec![None; total];
    for (k, &i) in idx.iter().enumerate() {
        if i < 0 || i as u64 >= inferred_len as u64 {
            return Err(format!(
                "index {i} is out of range for the unpooled shape {inferred:?}"
            ));
        }
        let mut rest = i as usize;
        let mut flat = 0;
        for d in (0..shape.len()).rev() {
            flat += (rest % inferred[d]) * out_strides[d];
            rest /= inferred[d];
        }
        sources[flat] = Some(k);
    }
    pick_or_zero(x, shape, &sources)
}

/// CenterCropPad: each of `axes` (all when `None`) cropped or zero-padded to the
/// matching value of `shape`, centered (the odd element goes to the end).
pub fn center_crop_pad(x: &Tensor, shape: &Tensor, axes: Option<&[i64]>) -> Result<Tensor, String> {
    let target = ints(shape, "shape")?;
    let xs = x.shape();
    let rank = xs.len();
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&ax| normalize_axis(ax, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if target.len() != axes.len() {
        return Err(format!(
            "shape has {} values for {} axes",
            target.len(),
            axes.len()
        ));
    }
    let mut out_shape = xs.to_vec();
    // Output index minus input index, per axis.
    let mut shift = vec![0i64; rank];
    let mut seen = vec![false; rank];
    for (&a, &t) in axes.iter().zip(&target) {
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("axis {a} is repeated"));
        }
        if t < 0 {
            return Err(format!("shape {target:?} holds a negative size"));
        }
        let d = xs[a] as i64;
        shift[a] = if t >= d { (t - d) / 2 } else { -((d - t) / 2) };
        out_shape[a] = t as usize;
    }
    let total = out_len(&out_shape)?;
    let in_strides = strides_of(xs);
    let mut sources = Vec::with_capacity(total);
    let mut index = vec![0usize; rank];
    for _ in 0..total {
        let mut flat = Some(0usize);
        for a in 0..rank {
            let i = index[a] as i64 - shift[a];
            flat = match flat {
                Some(f) if (0..xs[a] as i64).contains(&i) => Some(f + i as usize * in_strides[a]),
                _ => None,
            };
        }
        sources.push(flat);
        for a in (0..rank).rev() {
            index[a] += 1;
            if index[a] < out_shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    pick_or_zero(x, out_shape, &sources)
}
