//! Direct depthwise convolution: one input plane, one `kernel_h×kernel_w` filter, one
//! output plane per channel, with the bias and activation fused.

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use super::Conv2dParams;
use crate::epilogue::Activation;
use crate::gemm::epilogue::act_scalar;

/// Convolves one channel: `input` is an `in_h×in_w` plane, `w` the channel's filter,
/// `out` the `out_h×out_w` plane; then adds `bias` and applies `act`.
///
/// # Safety
/// The CPU must support the function's target features; the slices hold the sizes
/// above for the checked parameters `p`.
pub(crate) type DwFn = unsafe fn(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
);

/// The range of output positions `o` whose input `o*stride + off - pad` lies in
/// `0..size`, clamped to `0..out`.
#[inline]
pub(crate) fn valid_range(
    size: usize,
    pad: usize,
    off: usize,
    stride: usize,
    out: usize,
) -> (usize, usize) {
    let lo = pad.saturating_sub(off).div_ceil(stride).min(out);
    let hi = if size + pad > off {
        ((size - 1 + pad - off) / stride + 1).min(out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// The portable [`DwFn`]: for each output row, accumulates each filter tap over the
/// columns where it is in bounds (a loop the compiler vectorizes for stride 1).
///
/// # Safety
/// As [`DwFn`] (no target features needed).
pub(crate) unsafe fn portable(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    for oh in 0..oh_n {
        let row = &mut out[oh * ow_n..(oh + 1) * ow_n];
        row.fill(bias);
        for kh in 0..p.kernel_h {
            let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
            if ih >= p.in_h {
                continue;
            }
            let src = &input[ih * p.in_w..(ih + 1) * p.in_w];
            for kw in 0..p.kernel_w {
                let wv = w[kh * p.kernel_w + kw];
                let off = kw * p.dilation_w;
                let (lo, hi) = valid_range(p.in_w, p.pad_left, off, p.stride_w, ow_n);
                if lo == hi {
                    continue;
                }
                let start = lo * p.stride_w + off - p.pad_left;
                if p.stride_w == 1 {
                    for (o, &x) in row[lo..hi].iter_mut().zip(&src[start..start + hi - lo]) {
                        *o += wv * x;
                    }
                } else {
                    for (o, x) in row[lo..hi]
                        .iter_mut()
                        .zip(src[start..].iter().step_by(p.stride_w))
                    {
                        *o += wv * x;
                    }
                }
            }
        }
        if act != Activation::Identity {
            row.iter_mut().for_each(|x| *x = act_scalar(*x, act));
        }
    }
}
