//! Index-driven kernels: Gather, GatherElements, GatherND, ScatterND and
//! ScatterElements (and the old Scatter).

use slimnet_ir::ops::shape::ScatterReduction;
use slimnet_tensor::{bf16, f16, Tensor, TensorData};

use super::{
    axis_of, checked_len, full_table, gather_tables, int_values, make, strides, wrap_index,
};

pub fn gather(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, String> {
    let a = axis_of(axis, x.rank())?;
    let dim = x.shape()[a];
    let idx = int_values(indices, "indices")?;
    let st = strides(x.shape());
    let pre: usize = x.shape()[..a].iter().product();
    let post: usize = x.shape()[a + 1..].iter().product();
    let picked: Vec<usize> = idx
        .iter()
        .map(|&i| wrap_index(i, dim).map(|j| j * st[a]))
        .collect::<Result<_, _>>()?;
    let tables = vec![full_table(pre, dim * post), picked, full_table(post, 1)];
    let flat = gather_tables(x, &tables)?;
    let mut shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&x.shape()[a + 1..]);
    flat.reshape(shape).map_err(super::reason)
}

/// The flat offset into `data_shape` of each position of `idx_shape`, with the
/// coordinate along `axis` replaced by the index found there.
fn element_offsets(
    data_shape: &[usize],
    idx_shape: &[usize],
    idx: &[i64],
    axis: i64,
) -> Result<Vec<usize>, String> {
    let rank = data_shape.len();
    if idx_shape.len() != rank {
        return Err(format!(
            "indices have shape {idx_shape:?} but data has shape {data_shape:?}"
        ));
    }
    let a = axis_of(axis, rank)?;
    for d in 0..rank {
        if d != a && idx_shape[d] > data_shape[d] {
            return Err(format!(
                "indices of shape {idx_shape:?} do not fit data of shape {data_shape:?}"
            ));
        }
    }
    let st = strides(data_shape);
    let mut coord = vec![0usize; rank];
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let j = wrap_index(i, data_shape[a])?;
        let off: usize = (0..rank)
            .map(|d| if d == a { j * st[d] } else { coord[d] * st[d] })
            .sum();
        out.push(off);
        for d in (0..rank).rev() {
            coord[d] += 1;
            if coord[d] < idx_shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    Ok(out)
}

pub fn gather_elements(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, String> {
    let idx = int_values(indices, "indices")?;
    let offs = element_offsets(x.shape(), indices.shape(), &idx, axis)?;
    make(indices.shape().to_vec(), x.data().gather(offs.into_iter()))
}

/// For GatherND and ScatterND: the flat offset into `data` of each index tuple and the
/// size of the slice it addresses. `indices` has shape `[b..., m..., k]`.
fn nd_offsets(
    data_shape: &[usize],
    indices: &Tensor,
    batch_dims: usize,
) -> Result<(Vec<usize>, usize), String> {
    let q = indices.rank();
    let r = data_shape.len();
    if q == 0 {
        return Err("indices must have rank 1 or more".into());
    }
    let k = indices.shape()[q - 1];
    if batch_dims >= q || batch_dims + k > r {
        return Err(format!(
            "indices of shape {:?} with batch_dims {batch_dims} do not fit data of shape {data_shape:?}",
            indices.shape()
        ));
    }
    if indices.shape()[..batch_dims] != data_shape[..batch_dims] {
        return Err(format!(
            "batch dimensions of indices {:?} and data {data_shape:?} differ",
            indices.shape()
        ));
    }
    let idx = int_values(indices, "indices")?;
    let st = strides(data_shape);
    let slice: usize = data_shape[batch_dims + k..].iter().product();
    let batch_stride: usize = data_shape[batch_dims..].iter().product();
    let per_batch: usize = indices.shape()[batch_dims..q - 1].iter().product();
    let tuples: usize = indices.shape()[..q - 1].iter().product();
    let mut out = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let b = t / per_batch;
        let mut off = b * batch_stride;
        for j in 0..k {
            off += wrap_index(idx[t * k + j], data_shape[batch_dims + j])? * st[batch_dims + j];
        }
        out.push(off);
    }
    Ok((out, slice))
}

pub fn gather_nd(x: &Tensor, indices: &Tensor, batch_dims: i64) -> Result<Tensor, String> {
    let b = usize::try_from(batch_dims)
        .map_err(|_| format!("batch_dims must be >= 0, got {batch_dims}"))?;
    let (offs, slice) = nd_offsets(x.shape(), indices, b)?;
    let q = indices.rank();
    let k = indices.shape()[q - 1];
    let mut shape = indices.shape()[..q - 1].to_vec();
    shape.extend_from_slice(&x.shape()[b + k..]);
    let n = checked_len(&shape)?;
    let mut src = Vec::with_capacity(n);
    for o in offs {
        src.extend(o..o + slice);
    }
    make(shape, x.data().gather(src.into_iter()))
}

pub fn scatter_nd(
    x: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    reduction: ScatterReduction,
) -> Result<Tensor, String> {
    let (offs, slice) = nd_offsets(x.shape(), indices, 0)?;
    let q = indices.rank();
    let k = indices.shape()[q - 1];
    let mut want = indices.shape()[..q - 1].to_vec();
    want.extend_from_slice(&x.shape()[k..]);
    if updates.shape() != want.as_slice() {
        return Err(format!(
            "updates have shape {:?}, expected {want:?}",
            updates.shape()
        ));
    }
    let mut pairs = Vec::with_capacity(updates.len());
    for (t, o) in offs.into_iter().enumerate() {
        pairs.extend((0..slice).map(|s| (o + s, t * slice + s)));
    }
    scatter(x, updates, &pairs, reduction)
}

pub fn scatter_elements(
    x: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    axis: i64,
    reduction: ScatterReduction,
) -> Result<Tensor, String> {
    if updates.shape() != indices.shape() {
        return Err(format!(
            "updates have shape {:?} but indices {:?}",
            updates.shape(),
            indices.shape()
        ));
    }
    let idx = int_values(indices, "indices")?;
    let offs = element_offsets(x.shape(), indices.shape(), &idx, axis)?;
    let pairs: Vec<(usize, usize)> = offs.into_iter().enumerate().map(|(s, d)| (d, s)).collect();
    scatter(x, updates, &pairs, reduction)
}

/// Writes `updates[src]` into a copy of `x` at `dst` for each `(dst, src)` pair, in
/// order, combining with `reduction`.
fn scatter(
    x: &Tensor,
    updates: &Tensor,
    pairs: &[(usize, usize)],
    reduction: ScatterReduction,
) -> Result<Tensor, String> {
    if x.dtype() != updates.dtype() {
        return Err(format!(
            "data is {} but updates are {}",
            x.dtype(),
            updates.dtype()
        ));
    }
    if reduction == ScatterReduction::None {
        let n = x.len();
        let mut src: Vec<usize> = (0..n).collect();
        for &(d, s) in pairs {
            src[d] = n + s;
        }
        let all = TensorData::concat(&[x.data(), updates.data()]).ok_or("dtypes differ")?;
        return make(x.shape().to_vec(), all.gather(src.into_iter()));
    }
    let mut out = x.clone();
    macro_rules! apply {
        ($($variant:ident),*) => {
            match (out.data_mut(), updates.data()) {
                $((TensorData::$variant(o), TensorData::$variant(u)) => combine(o, u, pairs, reduction),)*
                _ => return Err(format!("reduction '{}' does not apply to {}", reduction.name(), x.dtype())),
            }
        };
    }
    apply!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(out)
}

fn combine<T: Combine>(
    out: &mut [T],
    updates: &[T],
    pairs: &[(usize, usize)],
    reduction: ScatterReduction,
) {
    for &(d, s) in pairs {
        let (a, b) = (out[d], updates[s]);
        out[d] = match reduction {
            ScatterReduction::None => b,
            ScatterReduction::Add => a.add(b),
            ScatterReduction::Mul => a.mul(b),
            ScatterReduction::Max => a.max(b),
            ScatterReduction::Min => a.min(b),
        };
    }
}

/// Arithmetic of the scatter reductions (integers wrap, bools use or/and).
trait Combine: Copy {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
}

macro_rules! combine_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            fn max(self, o: Self) -> Self { Ord::max(self, o) }
            fn min(self, o: Self) -> Self { Ord::min(self, o) }
        }
    )*};
}
combine_int!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! combine_float {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self + o }
            fn mul(self, o: Self) -> Self { self * o }
            fn max(self, o: Self) -> Self { if self.is_nan() || o.is_nan() { <$t>::NAN } else if o > self { o } else { self } }
            fn min(self, o: Self) -> Self { if self.is_nan() || o.is_nan() { <$t>::NAN } else if o < self { o } else { self } }
        }
    )*};
}
combine_float!(f32, f64, f16, bf16);

impl Combine for bool {
    fn add(self, o: Self) -> Self {
        self || o
    }
    fn mul(self, o: Self) -> Self {
        self && o
    }
    fn max(self, o: Self) -> Self {
        self || o
    }
    fn min(self, o: Self) -> Self {
        self && o
    }
}
