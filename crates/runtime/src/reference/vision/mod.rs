//! Reference kernels of the vision family: GridSample, AffineGrid, Col2Im, RoiAlign,
//! NonMaxSuppression, MaxUnpool, CenterCropPad, CumProd and Det.
//!
//! Float arithmetic runs in `f64` and rounds once to the output type; integer
//! accumulations (Col2Im, CumProd) wrap like numpy's. Outputs past
//! [`MAX_ELEMENTS`] elements are refused.

mod boxes;
mod grid;
mod layout;
mod linalg;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::VisionOp;
use slimnet_tensor::{DType, Element, Tensor, TensorData};

use super::util::{input, optional, reason};

/// Largest output, in elements, a kernel of this family produces.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Runs a vision-family op; `num_outputs` is how many outputs the node has.
pub fn run(
    op: &VisionOp,
    inputs: &[Option<&Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let out = match op {
        VisionOp::GridSample(g) => grid::grid_sample(g, x, input(inputs, 1)?)?,
        VisionOp::AffineGrid { align_corners } => {
            grid::affine_grid(x, input(inputs, 1)?, *align_corners)?
        }
        VisionOp::Col2Im(c) => layout::col2im(c, x, input(inputs, 1)?, input(inputs, 2)?)?,
        VisionOp::RoiAlign(r) => boxes::roi_align(r, x, input(inputs, 1)?, input(inputs, 2)?)?,
        VisionOp::NonMaxSuppression { center_point_box } => boxes::non_max_suppression(
            x,
            input(inputs, 1)?,
            [
                optional(inputs, 2),
                optional(inputs, 3),
                optional(inputs, 4),
            ],
            *center_point_box,
        )?,
        VisionOp::MaxUnpool(m) => layout::max_unpool(m, x, input(inputs, 1)?, optional(inputs, 2))?,
        VisionOp::CenterCropPad { axes } => {
            layout::center_crop_pad(x, input(inputs, 1)?, axes.as_deref())?
        }
        VisionOp::CumProd { exclusive, reverse } => {
            linalg::cum_prod(x, input(inputs, 1)?, *exclusive, *reverse)?
        }
        VisionOp::Det => linalg::det(x)?,
    };
    Ok(vec![out])
}

/// Number of elements of an output shape; an error past [`MAX_ELEMENTS`].
fn out_len(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("output shape {shape:?} is too large"))
}

/// The elements of a float tensor as `f64`.
fn floats(x: &Tensor, what: &str) -> Result<Vec<f64>, String> {
    if !x.dtype().is_float() {
        return Err(format!("{what} must be a float tensor, got {}", x.dtype()));
    }
    x.to_vec::<f64>().map_err(reason)
}

/// The elements of an integer tensor as `i64`.
fn ints(x: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    if !x.dtype().is_integer() {
        return Err(format!(
            "{what} must be an integer tensor, got {}",
            x.dtype()
        ));
    }
    x.to_i64_vec().map_err(reason)
}

/// A tensor of `dtype` holding `values`, each rounded once from `f64`.
fn from_f64(shape: Vec<usize>, values: Vec<f64>, dtype: DType) -> Result<Tensor, String> {
    Tensor::from_vec(shape, values)
        .and_then(|t| t.cast(dtype))
        .map_err(reason)
}

fn tensor<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<Tensor, String> {
    Tensor::from_vec(shape, values).map_err(reason)
}

/// A tensor of `shape` whose element `i` is `x`'s element `sources[i]`, or zero
/// (false, empty string) where `sources[i]` is `None`. Works for every dtype.
fn pick_or_zero(
    x: &Tensor,
    shape: Vec<usize>,
    sources: &[Option<usize>],
) -> Result<Tensor, String> {
    let zero = TensorData::zeros(x.dtype(), 1);
    let padded = TensorData::concat(&[x.data(), &zero]).ok_or("internal: dtype mismatch")?;
    let sentinel = x.len();
    let data = padded.gather(sources.iter().map(|s| s.unwrap_or(sentinel)));
    Tensor::new(shape, data).map_err(reason)
}
