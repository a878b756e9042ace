//! Reference kernels of the signal family: DFT, STFT, the Hann, Hamming and
//! Blackman windows, and MelWeightMatrix.
//!
//! Everything is computed in `f64` and rounded once to the output type. Transforms
//! use [`fft::Fft`] (mixed radix, or Bluestein for lengths with a large prime
//! factor), so any length costs `O(n log n)`-ish rather than `O(n^2)`.

mod dft;
pub mod fft;
mod window;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::SignalOp;
use slimnet_tensor::{element_count, DType, Tensor};

use super::util::{input, optional, reason};

/// Largest output, in elements, that a signal kernel produces.
const MAX_ELEMENTS: usize = 1 << 31;

/// Runs a signal-family op; each has one output.
pub fn run(
    op: &SignalOp,
    inputs: &[Option<&Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let out = match op {
        SignalOp::Dft {
            axis,
            inverse,
            onesided,
        } => {
            let axis = match (axis, optional(inputs, 2)) {
                (Some(a), _) => *a,
                (None, Some(t)) => scalar_int(t, "axis")?,
                (None, None) => -2,
            };
            dft::dft(
                input(inputs, 0)?,
                optional(inputs, 1),
                axis,
                *inverse,
                *onesided,
            )?
        }
        SignalOp::Stft { onesided } => dft::stft(
            input(inputs, 0)?,
            input(inputs, 1)?,
            optional(inputs, 2),
            optional(inputs, 3),
            *onesided,
        )?,
        SignalOp::Window {
            kind,
            periodic,
            output_datatype,
        } => window::window(*kind, *periodic, *output_datatype, input(inputs, 0)?)?,
        SignalOp::MelWeightMatrix { output_datatype } => window::mel_weight_matrix(
            *output_datatype,
            [
                input(inputs, 0)?,
                input(inputs, 1)?,
                input(inputs, 2)?,
                input(inputs, 3)?,
                input(inputs, 4)?,
            ],
        )?,
    };
    Ok(vec![out])
}

/// The single integer of a scalar (or one-element) integer tensor.
fn scalar_int(t: &Tensor, what: &str) -> Result<i64, String> {
    if !t.dtype().is_integer() {
        return Err(format!(
            "{what} must be an integer tensor, got {}",
            t.dtype()
        ));
    }
    match t.to_i64_vec().map_err(reason)?.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!(
            "{what} must be a scalar, got shape {:?}",
            t.shape()
        )),
    }
}

/// The single value of a scalar (or one-element) float tensor.
fn scalar_float(t: &Tensor, what: &str) -> Result<f64, String> {
    let v = float_values(t, what)?;
    match v.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!(
            "{what} must be a scalar, got shape {:?}",
            t.shape()
        )),
    }
}

/// The elements of a float tensor as `f64`.
fn float_values(t: &Tensor, what: &str) -> Result<Vec<f64>, String> {
    if !t.dtype().is_float() {
        return Err(format!("{what} must be a float tensor, got {}", t.dtype()));
    }
    t.to_vec::<f64>().map_err(reason)
}

/// Number of elements of an output shape, or an error past [`MAX_ELEMENTS`].
fn output_len(shape: &[usize]) -> Result<usize, String> {
    element_count(shape)
        .ok()
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("output of shape {shape:?} is too large"))
}

/// A tensor of `dtype` holding `values` rounded once from `f64`.
fn from_f64(shape: Vec<usize>, values: Vec<f64>, dtype: DType) -> Result<Tensor, String> {
    let t = Tensor::from_vec(shape, values).map_err(reason)?;
    if dtype == DType::F64 {
        return Ok(t);
    }
    t.cast(dtype).map_err(reason)
}
