//! QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.

use slimnet_tensor::{DType, Tensor};

use super::{dtype_range, floats, in_dtype, int_tensor, ints};
use crate::reference::util::{normalize_axis, reason};

/// How the elements of `x` find their scale and zero point.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// One scale for the whole tensor.
    Tensor,
    /// One scale per index of the axis; `inner` elements follow each index.
    Axis { dim: usize, inner: usize },
    /// One scale per `block` indices of the axis (`blocks` blocks).
    Blocked {
        dim: usize,
        inner: usize,
        block: usize,
        blocks: usize,
    },
}

impl Layout {
    fn new(x: &[usize], param: &[usize], axis: i64, block: i64) -> Result<Layout, String> {
        if param.iter().product::<usize>() == 1 && param.len() <= 1 {
            return Ok(Layout::Tensor);
        }
        let a = normalize_axis(axis, x.len())?;
        let (dim, inner) = (x[a], x[a + 1..].iter().product());
        if block == 0 {
            if param != [dim] {
                return Err(format!(
                    "a per-axis scale must have shape [{dim}] (axis {axis} of {x:?}), got {param:?}"
                ));
            }
            return Ok(Layout::Axis { dim, inner });
        }
        let block = block as usize;
        let blocks = dim.div_ceil(block);
        let mut want = x.to_vec();
        want[a] = blocks;
        if param != want {
            return Err(format!(
                "a blocked scale for {x:?} with block_size {block} along axis {axis} must have shape {want:?}, got {param:?}"
            ));
        }
        Ok(Layout::Blocked {
            dim,
            inner,
            block,
            blocks,
        })
    }

    /// Index of the parameter of element `i` of x.
    #[inline]
    fn index(self, i: usize) -> usize {
        match self {
            Layout::Tensor => 0,
            Layout::Axis { dim, inner } => (i / inner) % dim,
            Layout::Blocked {
                dim,
                inner,
                block,
                blocks,
            } => {
                let (outer, c, r) = (i / (dim * inner), (i / inner) % dim, i % inner);
                (outer * blocks + c / block) * inner + r
            }
        }
    }
}

/// Saturates a rounded value to `[lo, hi]` (NaN goes to `lo`).
pub fn saturate(v: f64, lo: i64, hi: i64) -> i64 {
    if v.is_nan() {
        return lo;
    }
    v.clamp(lo as f64, hi as f64) as i64
}

/// One quantized value: `saturate(round_half_even(q) + zero_point)` where `q` is
/// `x / scale` already computed in the working float type.
pub fn quantize_value(q: f64, zero_point: i64, lo: i64, hi: i64) -> i64 {
    saturate(q.round_ties_even() + zero_point as f64, lo, hi)
}

pub(super) fn quantize(
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
    axis: i64,
    block: i64,
    output_dtype: Option<DType>,
    precision: Option<DType>,
) -> Result<Tensor, String> {
    let out_dtype = match zero_point {
        Some(z) => {
            if output_dtype.is_some_and(|d| d != z.dtype()) {
                return Err(format!(
                    "output_dtype differs from y_zero_point's type {}",
                    z.dtype()
                ));
            }
            z.dtype()
        }
        None => output_dtype.unwrap_or(DType::U8),
    };
    let (lo, hi) = dtype_range(out_dtype)?;
    let xv = floats(x, "x")?;
    let sv = floats(scale, "y_scale")?;
    let layout = Layout::new(x.shape(), scale.shape(), axis, block)?;
    let zv = match zero_point {
        Some(z) => {
            if z.len() != scale.len() {
                return Err(format!(
                    "y_zero_point has shape {:?} but y_scale has {:?}",
                    z.shape(),
                    scale.shape()
                ));
            }
            ints(z, "y_zero_point")?
        }
        None => vec![0; sv.len()],
    };
    let work = precision.unwrap_or(x.dtype());
    let out: Vec<i64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let p = layout.index(i);
            let q = in_dtype(work, in_dtype(work, v) / in_dtype(work, sv[p]));
            quantize_value(q, zv[p], lo, hi)
        })
        .collect();
    int_tensor(x.shape().to_vec(), out, out_dtype)
}

pub(super) fn dequantize(
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
    axis: i64,
    block: i64,
    output_dtype: Option<DType>,
) -> Result<Tensor, String> {
    let xv = ints(x, "x")?;
    let sv = floats(scale, "x_scale")?;
    let layout = Layout::new(x.shape(), scale.shape(), axis, block)?;
    let zv = match zero_point {
        Some(z) => {
            if z.dtype() != x.dtype() {
                return Err(format!(
                    "x_zero_point has type {} but x has {}",
                    z.dtype(),
                    x.dtype()
                ));
            }
            if z.len() != scale.len() {
                return Err(format!(
                    "x_zero_point has shape {:?} but x_scale has {:?}",
                    z.shape(),
                    scale.shape()
                ));
            }
            ints(z, "x_zero_point")?
        }
        None => vec![0; sv.len()],
    };
    let out: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let p = layout.index(i);
            (v - zv[p]) as f64 * sv[p]
        })
        .collect();
    let out_dtype = output_dtype.unwrap_or(scale.dtype());
    Tensor::from_vec(x.shape().to_vec(), out)
        .and_then(|t| t.cast(out_dtype))
        .map_err(reason)
}

/// DynamicQuantizeLinear on a float32 `x`, in float32 as the ONNX reference does.
pub(super) fn dynamic_quantize(x: &Tensor) -> Result<Vec<Tensor>, String> {
    if x.dtype() != DType::F32 {
        return Err(format!(
            "DynamicQuantizeLinear expects a float32 x, got {}",
            x.dtype()
        ));
    }
    let xv = x.as_slice::<f32>().map_err(reason)?;
    let (qmin, qmax) = (0f32, 255f32);
    let maxx = xv.iter().copied().fold(0f32, f32::max);
    let minx = xv.iter().copied().fold(0f32, f32::min);
    let scale = if maxx == minx {
        1f32
    } else {
        (maxx - minx) / (qmax - qmin)
    };
    let zp = (qmin - minx / scale).clamp(qmin, qmax).round_ties_even();
    let y: Vec<i64> = xv
        .iter()
        .map(|&v| saturate(((v / scale).round_ties_even() + zp) as f64, 0, 255))
        .collect();
    Ok(vec![
        int_tensor(x.shape().to_vec(), y, DType::U8)?,
        Tensor::scalar(scale),
        Tensor::scalar(zp as u8),
    ])
}
