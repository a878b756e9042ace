//! 2-D max and average pooling over NCHW planes.

use std::cell::Cell;

use super::simd::{simd_entries, Simd};
use super::{split_range, SharedPtr, PAR_MIN_CHUNK};
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// The geometry of a 2-D pooling over NCHW f32 tensors.
///
/// Output `(oh, ow)` of each plane reads the window of input taps
/// `(oh·stride_h - pad_top + kh·dilation_h, ow·stride_w - pad_left + kw·dilation_w)`
/// for `kh < kernel_h`, `kw < kernel_w`; taps outside the input are padding.
/// `out_h`/`out_w` are the caller's (so ONNX `ceil_mode` is the caller's rounding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    /// Images (N).
    pub batch: usize,
    /// Channels per image (C).
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window height, at least 1.
    pub kernel_h: usize,
    /// Window width, at least 1.
    pub kernel_w: usize,
    /// Vertical step between windows, at least 1.
    pub stride_h: usize,
    /// Horizontal step between windows, at least 1.
    pub stride_w: usize,
    /// Vertical step between taps, at least 1.
    pub dilation_h: usize,
    /// Horizontal step between taps, at least 1.
    pub dilation_w: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
    /// Padding rows below the input (counted by `count_include_pad`).
    pub pad_bottom: usize,
    /// Padding columns right of the input (counted by `count_include_pad`).
    pub pad_right: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Average pooling only: divide by the taps inside the padded input
    /// (`[-pad_top, in_h + pad_bottom) × [-pad_left, in_w + pad_right)`) rather than
    /// by the taps inside the input.
    pub count_include_pad: bool,
}

impl Pool2dParams {
    /// Checks the parameters and that `x` and `out` hold the input and output.
    pub fn check(&self, x_len: usize, out_len: usize) -> Result<(), KernelError> {
        let bad = |what: &str| Err(KernelError::BadShape(format!("pool2d {self:?}: {what}")));
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return bad("kernel sizes must be at least 1");
        }
        if self.stride_h == 0 || self.stride_w == 0 || self.dilation_h == 0 || self.dilation_w == 0
        {
            return bad("strides and dilations must be at least 1");
        }
        let prod = |v: [usize; 4]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let planes = self.batch.checked_mul(self.channels);
        if planes.is_none()
            || prod([self.batch, self.channels, self.in_h, self.in_w]) != Some(x_len)
        {
            return bad(&format!(
                "input should hold batch·channels·in_h·in_w values, not {x_len}"
            ));
        }
        if prod([self.batch, self.channels, self.out_h, self.out_w]) != Some(out_len) {
            return bad(&format!(
                "output should hold batch·channels·out_h·out_w values, not {out_len}"
            ));
        }
        let limit = (isize::MAX / 4) as usize;
        let reach = |out: usize, stride: usize, k: usize, dil: usize, pads: [usize; 2]| {
            let a = out.saturating_sub(1).checked_mul(stride)?;
            let b = (k - 1).checked_mul(dil)?;
            let s = a
                .checked_add(b)?
                .checked_add(pads[0])?
                .checked_add(pads[1])?;
            (s <= limit).then_some(())
        };
        let h = reach(
            self.out_h,
            self.stride_h,
            self.kernel_h,
            self.dilation_h,
            [self.pad_top, self.pad_bottom],
        );
        let w = reach(
            self.out_w,
            self.stride_w,
            self.kernel_w,
            self.dilation_w,
            [self.pad_left, self.pad_right],
        );
        if h.is_none() || w.is_none() || self.in_h > limit || self.in_w > limit {
            return bad("the window positions overflow");
        }
        Ok(())
    }
}

/// Per-axis tables a pooling call computes, kept per thread so that steady-state
/// calls reuse their storage instead of allocating.
#[derive(Default)]
struct PoolTables {
    hc: Vec<f32>,
    wc: Vec<f32>,
    w_ranges: Vec<(isize, usize, usize)>,
}

thread_local! {
    static TABLES: Cell<PoolTables> = Cell::new(PoolTables::default());
}

/// Fills `counts` with how many taps of each output position along one axis fall
/// inside `[lo, hi)`.
#[allow(clippy::too_many_arguments)]
fn tap_counts(
    counts: &mut Vec<f32>,
    out: usize,
    stride: usize,
    k: usize,
    dil: usize,
    pad: usize,
    lo: isize,
    hi: isize,
) {
    counts.clear();
    counts.extend((0..out).map(|o| {
        let start = (o * stride) as isize - pad as isize;
        (0..k)
            .filter(|&t| (lo..hi).contains(&(start + (t * dil) as isize)))
            .count() as f32
    }));
}

/// The valid output range `[lo, hi)` along an axis for one tap offset `off`: the `o`
/// with `0 <= o·stride + off < len`.
fn valid_range(out: usize, stride: usize, off: isize, len: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let last = len as isize - 1 - off;
    let hi = if last < 0 { 0 } else { last / s + 1 };
    let lo = (lo as usize).min(out);
    (lo, (hi as usize).min(out).max(lo))
}

/// The signature of the pooling slot: whole planes of the input and the output,
/// average pooling when `avg`, else max pooling.
pub(crate) type PoolFn = unsafe fn(&Pool2dParams, &[f32], &mut [f32], bool);

/// `max` that propagates NaN from either side.
#[inline(always)]
fn max_nan<S: Simd>(acc: S::V, v: S::V) -> S::V {
    S::select(S::is_nan(v), v, S::max(v, acc))
}

/// # Safety
/// `p` was checked; `x` and `out` hold the same number of whole planes.
#[inline(always)]
unsafe fn pool_kernel<S: Simd>(p: &Pool2dParams, x: &[f32], out: &mut [f32], avg: bool) {
    let (in_plane, out_plane) = (p.in_h * p.in_w, p.out_h * p.out_w);
    if out_plane == 0 {
        return;
    }
    let mut tables = TABLES.with(Cell::take);
    let PoolTables { hc, wc, w_ranges } = &mut tables;
    // The window positions that count: the padded extent, or the input alone.
    let (h_lo, h_hi, w_lo, w_hi) = if p.count_include_pad {
        (
            -(p.pad_top as isize),
            (p.in_h + p.pad_bottom) as isize,
            -(p.pad_left as isize),
            (p.in_w + p.pad_right) as isize,
        )
    } else {
        (0, p.in_h as isize, 0, p.in_w as isize)
    };
    tap_counts(
        hc,
        p.out_h,
        p.stride_h,
        p.kernel_h,
        p.dilation_h,
        p.pad_top,
        h_lo,
        h_hi,
    );
    tap_counts(
        wc,
        p.out_w,
        p.stride_w,
        p.kernel_w,
        p.dilation_w,
        p.pad_left,
        w_lo,
        w_hi,
    );
    w_ranges.clear();
    for kw in 0..p.kernel_w {
        let off = (kw * p.dilation_w) as isize - p.pad_left as isize;
        let (lo, hi) = valid_range(p.out_w, p.stride_w, off, p.in_w);
        w_ranges.push((off, lo, hi));
    }
    let (hc, wc, w_ranges) = (&tables.hc[..], &tables.wc[..], &tables.w_ranges[..]);
    let l = S::LANES;
    let init = if avg { 0.0 } else { f32::NEG_INFINITY };
    let planes = out.len() / out_plane;
    for c in 0..planes {
        let xp = &x[c * in_plane..(c + 1) * in_plane];
        for oh in 0..p.out_h {
            let row = &mut out[c * out_plane + oh * p.out_w..c * out_plane + (oh + 1) * p.out_w];
            row.fill(init);
            let h0 = (oh * p.stride_h) as isize - p.pad_top as isize;
            for kh in 0..p.kernel_h {
                let ih = h0 + (kh * p.dilation_h) as isize;
                if ih < 0 || ih >= p.in_h as isize {
                    continue;
                }
                let xin = &xp[ih as usize * p.in_w..(ih as usize + 1) * p.in_w];
                for &(off, lo, hi) in w_ranges {
                    if p.stride_w == 1 {
                        // SAFETY: for `ow` in `lo..hi`, `ow + off` is inside the row.
                        unsafe {
                            let src = xin.as_ptr().offset(off);
                            let dst = row.as_mut_ptr();
                            let mut ow = lo;
                            while ow < hi {
                                let k = (hi - ow).min(l);
                                let (v, a) = if k == l {
                                    (S::load(src.add(ow)), S::load(dst.add(ow)))
                                } else {
                                    (S::load_part(src.add(ow), k), S::load_part(dst.add(ow), k))
                                };
                                let r = if avg {
                                    S::add(a, v)
                                } else {
                                    max_nan::<S>(a, v)
                                };
                                if k == l {
                                    S::store(dst.add(ow), r);
                                } else {
                                    S::store_part(dst.add(ow), k, r);
                                }
                                ow += l;
                            }
                        }
                    } else {
                        for (ow, acc) in row.iter_mut().enumerate().take(hi).skip(lo) {
                            let v = xin[((ow * p.stride_w) as isize + off) as usize];
                            *acc = if avg {
                                *acc + v
                            } else if v.is_nan() || acc.is_nan() {
                                f32::NAN
                            } else {
                                acc.max(v)
                            };
                        }
                    }
                }
            }
            if avg {
                let h = S::splat(hc[oh]);
                let mut ow = 0;
                // SAFETY: `row` and `wc` hold `out_w` values.
                unsafe {
                    while ow < p.out_w {
                        let k = (p.out_w - ow).min(l);
                        let (rp, wp) = (row.as_mut_ptr().add(ow), wc.as_ptr().add(ow));
                        if k == l {
                            S::store(rp, S::div(S::load(rp), S::mul(h, S::load(wp))));
                        } else {
                            let v = S::div(S::load_part(rp, k), S::mul(h, S::load_part(wp, k)));
                            S::store_part(rp, k, v);
                        }
                        ow += l;
                    }
                }
            }
        }
    }
    TABLES.with(|t| t.set(tables));
}

simd_entries!(pool_kernel(p: &Pool2dParams, x: &[f32], out: &mut [f32], avg: bool));

impl KernelTable {
    /// 2-D max pooling (ONNX `MaxPool`, values only): each output is the largest
    /// input tap of its window, NaN if any tap is NaN, `-inf` if no tap falls inside
    /// the input. Split over `threads` by channel planes when there is enough work.
    ///
    /// Fails with [`KernelError::BadShape`] when the parameters are invalid (a zero
    /// kernel, stride or dilation, window positions that overflow) or the slices do
    /// not hold the input and output.
    pub fn max_pool2d(
        &self,
        p: &Pool2dParams,
        x: &[f32],
        out: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        self.pool2d(p, x, out, threads, false)
    }

    /// 2-D average pooling (ONNX `AveragePool`): each output is the sum of its
    /// window's input taps divided by the number of taps counted (see
    /// [`Pool2dParams::count_include_pad`]); a window with no counted taps gives NaN.
    /// Sums are in f32. Split over `threads` as [`KernelTable::max_pool2d`] is, and
    /// fails as it does.
    pub fn avg_pool2d(
        &self,
        p: &Pool2dParams,
        x: &[f32],
        out: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        self.pool2d(p, x, out, threads, true)
    }

    fn pool2d(
        &self,
        p: &Pool2dParams,
        x: &[f32],
        out: &mut [f32],
        threads: &Threads,
        avg: bool,
    ) -> Result<(), KernelError> {
        p.check(x.len(), out.len())?;
        let planes = p.batch * p.channels;
        let (in_plane, out_plane) = (p.in_h * p.in_w, p.out_h * p.out_w);
        let work = (out_plane * p.kernel_h * p.kernel_w).max(in_plane).max(1);
        let f = self.eltwise.pool;
        let op = SharedPtr(out.as_mut_ptr());
        split_range(
            Some(threads),
            planes,
            (PAR_MIN_CHUNK / work).max(1),
            1,
            |s, e| {
                // SAFETY: `p` was checked; tasks write disjoint planes of `out`.
                unsafe {
                    let o = std::slice::from_raw_parts_mut(
                        op.get().add(s * out_plane),
                        (e - s) * out_plane,
                    );
                    let xs = &x[s * in_plane..e * in_plane];
                    if !avg && is_max_2x2_s2(p) {
                        max_pool_2x2_s2(p, xs, o);
                    } else {
                        f(p, xs, o, avg)
                    }
                }
            },
        );
        Ok(())
    }
}

/// Whether `p` is the common 2x2, stride-2 max pooling window without padding or
/// dilation that fits inside the input.
fn is_max_2x2_s2(p: &Pool2dParams) -> bool {
    p.kernel_h == 2
        && p.kernel_w == 2
        && p.stride_h == 2
        && p.stride_w == 2
        && p.dilation_h == 1
        && p.dilation_w == 1
        && p.pad_top == 0
        && p.pad_left == 0
        && 2 * p.out_h <= p.in_h
        && 2 * p.out_w <= p.in_w
}

/// The larger of two values, NaN if either is (as the general kernel does).
#[inline(always)]
fn max_or_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// 2x2 stride-2 max pooling of whole planes: each output is the maximum of a 2x2
/// block; a direct loop the compiler vectorizes, for a window the general kernel
/// handles tap by tap.
fn max_pool_2x2_s2(p: &Pool2dParams, x: &[f32], out: &mut [f32]) {
    let (in_plane, out_plane) = (p.in_h * p.in_w, p.out_h * p.out_w);
    for (xp, op) in x
        .chunks_exact(in_plane)
        .zip(out.chunks_exact_mut(out_plane))
    {
        for (oh, row) in op.chunks_exact_mut(p.out_w).enumerate() {
            let r0 = &xp[2 * oh * p.in_w..(2 * oh + 1) * p.in_w];
            let r1 = &xp[(2 * oh + 1) * p.in_w..(2 * oh + 2) * p.in_w];
            for (ow, o) in row.iter_mut().enumerate() {
                let top = max_or_nan(r0[2 * ow], r0[2 * ow + 1]);
                let bottom = max_or_nan(r1[2 * ow], r1[2 * ow + 1]);
                *o = max_or_nan(top, bottom);
            }
        }
    }
}
