//! Int8 2-D convolution (NCHW, u8 input, s8 weights, f32 output with the fused
//! epilogue of [`QEpilogue`]): pointwise convolutions as a GEMM on the input itself,
//! every other one as a u8 im2col (padding with the input's zero point) in column
//! blocks followed by a GEMM, per image and group; depthwise ones directly.

use super::driver::PanelSrc;
use super::{pack_qweights, PackedQWeights, QEpilogue, QKernel};
use crate::conv::Conv2dParams;
use crate::epilogue::Activation;
use crate::error::KernelError;
use crate::gemm::epilogue::act_scalar;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// Target size, in bytes, of one block of im2col columns.
const IM2COL_BLOCK: usize = 1 << 18;

thread_local! {
    /// Each thread's im2col block, kept between calls (allocating it per call costs
    /// page faults on every convolution).
    static COL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` bytes: this thread's kept one, or a fresh one when it
/// is already in use further up the stack.
fn with_col<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    COL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Int8 convolution weights packed for [`KernelTable::qconv2d`]: one
/// [`PackedQWeights`] per group (`out_channels/groups × group_k`). The layout does not
/// depend on the tier.
#[derive(Clone, Debug)]
pub struct PackedQConvWeights {
    params: Conv2dParams,
    groups: Vec<PackedQWeights>,
}

impl PackedQConvWeights {
    /// The parameters the weights were packed for.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }
}

/// The output columns `lo..hi` whose tap at horizontal offset `off` (the kernel
/// column times the dilation) lies inside an input row of width `w`:
/// `0 <= ow*stride_w + off - pad_left < w`, clamped to `ow_n` columns.
fn valid_columns(p: &Conv2dParams, off: usize, w: usize, ow_n: usize) -> (usize, usize) {
    let lo = p
        .pad_left
        .saturating_sub(off)
        .div_ceil(p.stride_w)
        .min(ow_n);
    let hi = if w + p.pad_left > off {
        ((w - 1 + p.pad_left - off) / p.stride_w + 1).min(ow_n)
    } else {
        0
    }
    .max(lo);
    (lo, hi)
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row), in
/// fixed-size pieces the compiler keeps inline instead of calling `memcpy`.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[u8; 16] = s.try_into().expect("16 bytes");
        d.copy_from_slice(s);
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let mut i = 0;
    for width in [8usize, 4, 2, 1] {
        if d.len() - i >= width {
            d[i..i + width].copy_from_slice(&s[i..i + width]);
            i += width;
        }
    }
}

/// `dst.fill(value)` for short runs, like [`copy_short`].
#[inline(always)]
fn fill_short(dst: &mut [u8], value: u8) {
    let chunk = [value; 16];
    let mut d = dst.chunks_exact_mut(16);
    for d in &mut d {
        d.copy_from_slice(&chunk);
    }
    let d = d.into_remainder();
    let mut i = 0;
    for width in [8usize, 4, 2, 1] {
        if d.len() - i >= width {
            d[i..i + width].copy_from_slice(&chunk[..width]);
            i += width;
        }
    }
}

/// Writes columns `j0..j0 + nb` of the u8 im2col matrix of one image's group into
/// `out` (row-major, `nb` columns per row): row `(ci*kernel_h + kh)*kernel_w + kw`,
/// column `oh*out_w + ow` holds `input[ci][oh*sh + kh*dh - pad_top][ow*sw + kw*dw -
/// pad_left]`, or `pad` outside the input. `input` is the group's planes.
fn im2col_u8(p: &Conv2dParams, input: &[u8], pad: u8, j0: usize, nb: usize, out: &mut [u8]) {
    let (ow_n, h, w) = (p.out_w(), p.in_h, p.in_w);
    let cg = p.in_channels / p.groups;
    let mut row = 0;
    for ci in 0..cg {
        let plane = &input[ci * h * w..(ci + 1) * h * w];
        for kh in 0..p.kernel_h {
            for kw in 0..p.kernel_w {
                let off_w = kw * p.dilation_w;
                let (lo, hi) = valid_columns(p, off_w, w, ow_n);
                let dst_row = &mut out[row * nb..(row + 1) * nb];
                let mut j = j0;
                let (mut oh, mut ow) = (j0 / ow_n, j0 % ow_n);
                while j < j0 + nb {
                    let len = (ow_n - ow).min(j0 + nb - j);
                    let d = &mut dst_row[j - j0..j - j0 + len];
                    let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
                    if ih >= h {
                        fill_short(d, pad);
                    } else {
                        let src = &plane[ih * w..(ih + 1) * w];
                        let (a, b) = (lo.clamp(ow, ow + len), hi.clamp(ow, ow + len));
                        fill_short(&mut d[..a - ow], pad);
                        fill_short(&mut d[b - ow..], pad);
                        // Taps `a..b` lie in the input (none when `a == b`).
                        let first = (a * p.stride_w + off_w).wrapping_sub(p.pad_left);
                        if b == a {
                        } else if p.stride_w == 1 {
                            copy_short(&mut d[a - ow..b - ow], &src[first..first + (b - a)]);
                        } else {
                            for (t, v) in d[a - ow..b - ow].iter_mut().enumerate() {
                                *v = src[first + t * p.stride_w];
                            }
                        }
                    }
                    j += len;
                    oh += 1;
                    ow = 0;
                }
                row += 1;
            }
        }
    }
}

/// A raw output pointer that threads write disjoint planes of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes its own planes of the output.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Multiply-adds below which an im2col convolution is not split into blocks over
/// threads.
const TINY_IM2COL: usize = 1 << 20;

/// Multiply-adds below which a depthwise convolution runs on the calling thread.
const TINY_DEPTHWISE: usize = 1 << 18;

/// One plane of the depthwise convolution: `o` (`out_h·out_w` values) from `plane`
/// (`in_h·in_w` values) and the channel's `kernel_h·kernel_w` weights `wv`; `acc`
/// holds `out_w` values of scratch.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dw_plane(
    p: &Conv2dParams,
    plane: &[u8],
    wv: &[i8],
    xz: i32,
    s: f32,
    b: f32,
    act: Activation,
    acc: &mut [i32],
    o: &mut [f32],
) {
    let (oh_n, ow_n, h, w) = (p.out_h(), p.out_w(), p.in_h, p.in_w);
    for oh in 0..oh_n {
        acc.fill(0);
        for kh in 0..p.kernel_h {
            let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
            if ih >= h {
                continue;
            }
            let row = &plane[ih * w..(ih + 1) * w];
            for kw in 0..p.kernel_w {
                let off = kw * p.dilation_w;
                let (lo, hi) = valid_columns(p, off, w, ow_n);
                if hi == lo {
                    continue;
                }
                let wt = wv[kh * p.kernel_w + kw] as i32;
                let first = lo * p.stride_w + off - p.pad_left;
                if p.stride_w == 1 {
                    let src = &row[first..first + (hi - lo)];
                    for (a, &x) in acc[lo..hi].iter_mut().zip(src) {
                        *a += (x as i32 - xz) * wt;
                    }
                } else {
                    for (t, a) in acc[lo..hi].iter_mut().enumerate() {
                        *a += (row[first + t * p.stride_w] as i32 - xz) * wt;
                    }
                }
            }
        }
        for (d, &a) in o[oh * ow_n..(oh + 1) * ow_n].iter_mut().zip(acc.iter()) {
            *d = act_scalar(a as f32 * s + b, act);
        }
    }
}

/// [`dw_plane`] compiled for AVX2, so that its loops are vectorized with it.
///
/// # Safety
/// AVX2 present.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn dw_plane_avx2(
    p: &Conv2dParams,
    plane: &[u8],
    wv: &[i8],
    xz: i32,
    s: f32,
    b: f32,
    act: Activation,
    acc: &mut [i32],
    o: &mut [f32],
) {
    dw_plane(p, plane, wv, xz, s, b, act, acc, o)
}

/// The direct depthwise convolution (one input and one output channel per group):
/// per output row, `acc[ow] = Σ (x − xz)·w` over the taps inside the input (padding
/// taps add `(xz − xz)·w = 0`), which equals the GEMM's `acc − xz·wsum` exactly, then
/// the same epilogue. The checks are the caller's.
fn depthwise(
    p: &Conv2dParams,
    input: &[u8],
    weights: &PackedQConvWeights,
    epi: &QEpilogue,
    output: &mut [f32],
    threads: &Threads,
    kern: QKernel,
) {
    let (oh_n, ow_n, h, w) = (p.out_h(), p.out_w(), p.in_h, p.in_w);
    let vector = kern != QKernel::Portable;
    let taps = p.kernel_h * p.kernel_w;
    let planes = p.batch * p.in_channels;
    let xz = epi.x_zero as i32;
    let out = OutPtr(output.as_mut_ptr());
    let plane_out = oh_n * ow_n;
    let run = |c0: usize, c1: usize| {
        let mut acc = vec![0i32; ow_n];
        for pl in c0..c1 {
            let c = pl % p.in_channels;
            let wq = &weights.groups[c];
            let wv = &wq.data[..taps];
            let s = epi.x_scale * wq.scales[0];
            let b = epi.bias.map_or(0.0, |v| v[c]);
            let plane = &input[pl * h * w..(pl + 1) * h * w];
            // SAFETY: plane `pl` of the output lies in the checked output and only
            // this task writes it.
            let o =
                unsafe { std::slice::from_raw_parts_mut(out.get().add(pl * plane_out), plane_out) };
            #[cfg(target_arch = "x86_64")]
            if vector {
                // SAFETY: the table's int8 kernel is AVX2 or VNNI, so AVX2 is present.
                unsafe { dw_plane_avx2(p, plane, wv, xz, s, b, epi.activation, &mut acc, o) };
                continue;
            }
            dw_plane(p, plane, wv, xz, s, b, epi.activation, &mut acc, o);
        }
    };
    let t = threads.count().min(planes).max(1);
    if t == 1 || planes * plane_out * taps < TINY_DEPTHWISE {
        return run(0, planes);
    }
    threads.for_each(t, |i| run(i * planes / t, (i + 1) * planes / t));
}

impl KernelTable {
    /// Packs OIHW s8 weights (`p.weights_len()` values) with `scales` (one per output
    /// channel, or one for all) for [`KernelTable::qconv2d`].
    ///
    /// Fails with [`KernelError::BadShape`] when `p` is invalid, the weights are too
    /// short, or `scales` has neither 1 nor `out_channels` values.
    pub fn pack_qconv_weights(
        &self,
        p: &Conv2dParams,
        weights_oihw: &[i8],
        scales: &[f32],
    ) -> Result<PackedQConvWeights, KernelError> {
        p.check()?;
        if weights_oihw.len() < p.weights_len() {
            return Err(KernelError::BadShape(format!(
                "weights hold {} values, the convolution needs {}",
                weights_oihw.len(),
                p.weights_len()
            )));
        }
        let scales = super::expand_scales(scales, p.out_channels)?;
        let (mg, kg) = (p.out_channels / p.groups, p.group_k());
        let groups = (0..p.groups)
            .map(|g| {
                pack_qweights(
                    mg,
                    kg,
                    &weights_oihw[g * mg * kg..(g + 1) * mg * kg],
                    &scales[g * mg..(g + 1) * mg],
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(PackedQConvWeights { params: *p, groups })
    }

    /// `output = act(conv(input, weights)·scales + bias)` for an NCHW u8 `input` of `p`'s
    /// sizes (`p.input_len()` values, zero point `epi.x_zero`, which is also the value
    /// of the padding) and f32 `output` (`p.output_len()` values); the epilogue of
    /// [`QEpilogue`] with channel = output channel (`epi.bias` holds one value per
    /// output channel). Work is split over `threads`. Pointwise convolutions are one
    /// GEMM on the input per image and group; depthwise ones are computed directly
    /// (portable code); every other one allocates an im2col block of at most about
    /// 256 KiB per call.
    ///
    /// Fails with [`KernelError::BadShape`] when `p` is invalid, the weights were packed
    /// for other parameters (batch and input size aside), or a slice is too short;
    /// nothing is written then.
    pub fn qconv2d(
        &self,
        p: &Conv2dParams,
        input: &[u8],
        weights: &PackedQConvWeights,
        epi: &QEpilogue,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        p.check()?;
        let bad = |s: String| Err(KernelError::BadShape(s));
        if !p.same_filter(&weights.params) {
            return bad("the weights were packed for other convolution parameters".into());
        }
        if input.len() < p.input_len() {
            return bad(format!(
                "input holds {} values, needs {}",
                input.len(),
                p.input_len()
            ));
        }
        if output.len() < p.output_len() {
            return bad(format!(
                "output holds {} values, needs {}",
                output.len(),
                p.output_len()
            ));
        }
        if let Some(b) = epi.bias {
            if b.len() < p.out_channels {
                return bad(format!(
                    "bias holds {} values for {} channels",
                    b.len(),
                    p.out_channels
                ));
            }
        }
        if p.output_len() == 0 {
            return Ok(());
        }
        if p.is_depthwise() {
            depthwise(p, input, weights, epi, output, threads, self.quant.q8);
            return Ok(());
        }
        let n = p.out_h() * p.out_w();
        let in_plane = p.in_h * p.in_w;
        let (mg, cg, kg) = (
            p.out_channels / p.groups,
            p.in_channels / p.groups,
            p.group_k(),
        );
        let nb = if p.is_pointwise() {
            0
        } else {
            (IM2COL_BLOCK / kg.max(1)).div_ceil(32).max(1) * 32
        }
        .min(n);
        if !p.is_pointwise() {
            let blocks = n.div_ceil(nb);
            let items = p.batch * p.groups * blocks;
            let t = threads.count();
            let macs = (p.batch * n)
                .saturating_mul(kg)
                .saturating_mul(p.out_channels);
            if t > 1 && items >= 2 * t && macs >= TINY_IM2COL {
                // Blocks of columns spread over the threads, each with its own im2col
                // buffer and a single-threaded GEMM.
                let out = OutPtr(output.as_mut_ptr());
                let out_len = output.len();
                let single = Threads::single();
                let failed = std::sync::atomic::AtomicBool::new(false);
                threads.for_each(t, |ti| {
                    with_col(kg * nb, |col| {
                        for item in ti * items / t..(ti + 1) * items / t {
                            let (bg, blk) = (item / blocks, item % blocks);
                            let (b, g) = (bg / p.groups, bg % p.groups);
                            let (j0, cols) = (blk * nb, nb.min(n - blk * nb));
                            let src =
                                &input[(b * p.in_channels + g * cg) * in_plane..][..cg * in_plane];
                            im2col_u8(p, src, epi.x_zero, j0, cols, col);
                            let ge = QEpilogue {
                                bias: epi.bias.map(|v| &v[g * mg..]),
                                ..*epi
                            };
                            let at = (b * p.out_channels + g * mg) * n + j0;
                            let panels = PanelSrc::Raw {
                                ptr: col.as_ptr(),
                                ldb: cols,
                            };
                            // SAFETY: this item alone writes columns `j0..j0 + cols` of
                            // its image's group rows, which lie inside the checked output
                            // (`at + (mg-1)*n + cols <= out_len`); `col` holds `kg` rows of
                            // `cols` columns.
                            let r = unsafe {
                                self.qgemm_left_raw(
                                    &weights.groups[g],
                                    panels,
                                    cols,
                                    out.get().add(at),
                                    out_len - at,
                                    n,
                                    &ge,
                                    &single,
                                )
                            };
                            if r.is_err() {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    })
                });
                if failed.into_inner() {
                    return Err(KernelError::BadShape(
                        "internal int8 im2col GEMM shape mismatch".into(),
                    ));
                }
                return Ok(());
            }
        }
        with_col(kg * nb, |col| {
            self.qconv2d_serial(p, input, weights, epi, output, threads, nb, col)
        })
    }

    /// The single-pass loop of [`KernelTable::qconv2d`]: every image and group in turn,
    /// the GEMM split over `threads`, im2col blocks of `nb` columns in `col`.
    #[allow(clippy::too_many_arguments)]
    fn qconv2d_serial(
        &self,
        p: &Conv2dParams,
        input: &[u8],
        weights: &PackedQConvWeights,
        epi: &QEpilogue,
        output: &mut [f32],
        threads: &Threads,
        nb: usize,
        col: &mut [u8],
    ) -> Result<(), KernelError> {
        let n = p.out_h() * p.out_w();
        let in_plane = p.in_h * p.in_w;
        let (mg, cg) = (p.out_channels / p.groups, p.in_channels / p.groups);
        for b in 0..p.batch {
            for (g, w) in weights.groups.iter().enumerate() {
                let ge = QEpilogue {
                    bias: epi.bias.map(|v| &v[g * mg..]),
                    ..*epi
                };
                let src = &input[(b * p.in_channels + g * cg) * in_plane..][..cg * in_plane];
                let dst = &mut output[(b * p.out_channels + g * mg) * n..][..mg * n];
                if p.is_pointwise() {
                    self.qgemm(w, src, n, n, dst, n, &ge, threads)?;
                    continue;
                }
                for j0 in (0..n).step_by(nb) {
                    let cols = nb.min(n - j0);
                    im2col_u8(p, src, epi.x_zero, j0, cols, col);
                    let len = (mg - 1) * n + cols;
                    self.qgemm(w, col, cols, cols, &mut dst[j0..j0 + len], n, &ge, threads)?;
                }
            }
        }
        Ok(())
    }
}
