//! Reference kernels of the shape family. Every kernel is dtype-generic: it computes
//! the flat source index of each output element once and moves elements with
//! [`TensorData::gather`], so strings and bools work like numbers.

mod create;
mod index;
mod movement;
#[cfg(test)]
mod tests;
mod unique;

use slimnet_ir::ops::ShapeOp;
use slimnet_tensor::{Tensor, TensorData};

use super::util::{input, reason};

/// Largest number of elements a kernel of this family produces; larger outputs (a
/// ConstantOfShape, Expand, Tile or Range asked for billions of elements) are errors.
pub const MAX_ELEMENTS: usize = 1 << 31;

pub fn run(
    op: &ShapeOp,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let one = |t: Result<Tensor, String>| t.map(|t| vec![t]);
    match op {
        ShapeOp::Constant { value } => Ok(vec![value.clone()]),
        ShapeOp::Range => one(create::range(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
        )),
        ShapeOp::Reshape { allowzero } => one(movement::reshape(
            input(inputs, 0)?,
            input(inputs, 1)?,
            *allowzero,
        )),
        ShapeOp::Flatten { axis } => one(movement::flatten(input(inputs, 0)?, *axis)),
        ShapeOp::Transpose { perm } => one(movement::transpose(input(inputs, 0)?, perm.as_deref())),
        ShapeOp::Concat { axis } => {
            let ins: Vec<&Tensor> = (0..inputs.len())
                .map(|i| input(inputs, i))
                .collect::<Result<_, _>>()?;
            one(movement::concat(&ins, *axis))
        }
        ShapeOp::Split {
            axis,
            split,
            num_outputs: n,
            outputs,
        } => {
            let sizes = match split {
                Some(s) => Some(s.clone()),
                None => super::util::optional(inputs, 1)
                    .map(|t| int_values(t, "split"))
                    .transpose()?,
            };
            let count = if *outputs > 0 { *outputs } else { num_outputs };
            movement::split(
                input(inputs, 0)?,
                *axis,
                sizes,
                n.map_or(count, |n| n as usize),
                n.is_some(),
            )
        }
        ShapeOp::Slice { attrs } => {
            let x = input(inputs, 0)?;
            let (starts, ends, axes, steps) = match attrs {
                Some(a) => (a.starts.clone(), a.ends.clone(), a.axes.clone(), None),
                None => {
                    let opt = |i: usize, what: &str| {
                        super::util::optional(inputs, i)
                            .map(|t| int_values(t, what))
                            .transpose()
                    };
                    (
                        int_values(input(inputs, 1)?, "starts")?,
                        int_values(input(inputs, 2)?, "ends")?,
                        opt(3, "axes")?,
                        opt(4, "steps")?,
                    )
                }
            };
            one(movement::slice(
                x,
                &starts,
                &ends,
                axes.as_deref(),
                steps.as_deref(),
            ))
        }
        ShapeOp::Squeeze { axes } => {
            let axes = match axes {
                Some(a) => Some(a.clone()),
                None => super::util::optional(inputs, 1)
                    .map(|t| int_values(t, "axes"))
                    .transpose()?,
            };
            one(movement::squeeze(input(inputs, 0)?, axes.as_deref()))
        }
        ShapeOp::Unsqueeze { axes } => {
            let axes = match axes {
                Some(a) => a.clone(),
                None => int_values(input(inputs, 1)?, "axes")?,
            };
            one(movement::unsqueeze(input(inputs, 0)?, &axes))
        }
        ShapeOp::Expand => one(movement::expand(
            input(inputs, 0)?,
            &int_values(input(inputs, 1)?, "shape")?,
        )),
        ShapeOp::Tile => one(movement::tile(
            input(inputs, 0)?,
            &int_values(input(inputs, 1)?, "repeats")?,
        )),
        ShapeOp::Compress { axis } => one(movement::compress(
            input(inputs, 0)?,
            input(inputs, 1)?,
            *axis,
        )),
        ShapeOp::ReverseSequence {
            time_axis,
            batch_axis,
        } => one(movement::reverse_sequence(
            input(inputs, 0)?,
            input(inputs, 1)?,
            *time_axis,
            *batch_axis,
        )),
        ShapeOp::Gather { axis } => one(index::gather(input(inputs, 0)?, input(inputs, 1)?, *axis)),
        ShapeOp::GatherElements { axis } => one(index::gather_elements(
            input(inputs, 0)?,
            input(inputs, 1)?,
            *axis,
        )),
        ShapeOp::GatherND { batch_dims } => one(index::gather_nd(
            input(inputs, 0)?,
            input(inputs, 1)?,
            *batch_dims,
        )),
        ShapeOp::ScatterND { reduction } => one(index::scatter_nd(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
            *reduction,
        )),
        ShapeOp::ScatterElements { axis, reduction } => one(index::scatter_elements(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
            *axis,
            *reduction,
        )),
        ShapeOp::Scatter { axis } => one(index::scatter_elements(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
            *axis,
            slimnet_ir::ops::shape::ScatterReduction::None,
        )),
        ShapeOp::Shape { start, end } => one(create::shape(input(inputs, 0)?, *start, *end)),
        ShapeOp::Size => Ok(vec![Tensor::scalar(input(inputs, 0)?.len() as i64)]),
        ShapeOp::ConstantOfShape { value } => {
            one(create::constant_of_shape(input(inputs, 0)?, value))
        }
        ShapeOp::NonZero => one(create::nonzero(input(inputs, 0)?)),
        ShapeOp::OneHot { axis } => one(create::one_hot(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
            *axis,
        )),
        ShapeOp::Trilu { upper } => one(create::trilu(
            input(inputs, 0)?,
            super::util::optional(inputs, 1),
            *upper,
        )),
        ShapeOp::EyeLike { dtype, k } => one(create::eye_like(input(inputs, 0)?, *dtype, *k)),
        ShapeOp::Unique { axis, sorted } => unique::unique(input(inputs, 0)?, *axis, *sorted),
    }
}

/// Number of elements of an output shape, or an error past [`MAX_ELEMENTS`].
fn checked_len(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("output shape {shape:?} would hold more than 2^31 elements"))
}

/// The values of an integer input (shape, axes, indices, repeats, ...).
fn int_values(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    if !t.dtype().is_integer() {
        return Err(format!(
            "{what} must be an integer tensor, got {}",
            t.dtype()
        ));
    }
    t.to_i64_vec().map_err(reason)
}

/// A possibly negative index into a dimension of size `dim`.
fn wrap_index(i: i64, dim: usize) -> Result<usize, String> {
    let d = dim as i64;
    let j = if i < 0 { i + d } else { i };
    if j < 0 || j >= d {
        return Err(format!(
            "index {i} is out of range for a dimension of size {dim}"
        ));
    }
    Ok(j as usize)
}

/// Axis in `[-rank, rank - 1]`.
fn axis_of(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    slimnet_tensor::strides_of(shape)
}

/// Flat source offsets of an output whose dimension `d` has `tables[d].len()` entries,
/// where coordinate `i` along `d` contributes `tables[d][i]` to the offset.
fn table_offsets(tables: &[Vec<usize>]) -> Vec<usize> {
    let total: usize = tables.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    let Some((last, outer)) = tables.split_last() else {
        out.push(0);
        return out;
    };
    if total == 0 {
        return out;
    }
    let mut counter = vec![0usize; outer.len()];
    loop {
        let base: usize = outer.iter().zip(&counter).map(|(t, &c)| t[c]).sum();
        out.extend(last.iter().map(|&t| base + t));
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            counter[d] += 1;
            if counter[d] < outer[d].len() {
                break;
            }
            counter[d] = 0;
        }
    }
}

/// Gathers `x` into the shape given by the tables' lengths (see [`table_offsets`]).
fn gather_tables(x: &Tensor, tables: &[Vec<usize>]) -> Result<Tensor, String> {
    let shape: Vec<usize> = tables.iter().map(Vec::len).collect();
    checked_len(&shape)?;
    let data = x.data().gather(table_offsets(tables).into_iter());
    Tensor::new(shape, data).map_err(reason)
}

/// The table of an axis taken whole: `i * stride`.
fn full_table(dim: usize, stride: usize) -> Vec<usize> {
    (0..dim).map(|i| i * stride).collect()
}

/// A tensor from a shape and data built for it.
fn make(shape: Vec<usize>, data: TensorData) -> Result<Tensor, String> {
    Tensor::new(shape, data).map_err(reason)
}
