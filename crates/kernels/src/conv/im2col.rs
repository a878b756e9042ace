//! im2col: the input patches of one group as the `B` matrix of a GEMM, written straight
//! into the packed panel layout the GEMM micro-kernels read (no intermediate matrix).

use std::cell::RefCell;

use super::Conv2dParams;

/// The packed layout of a `k×cols` block of `B` for a kernel with panels of `nr`
/// columns and depth blocks of `kc` rows (see `gemm::driver::pack_b_full`): for each
/// block of `kc` rows, the panels of every column, `cols` a multiple of `nr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PanelLayout {
    pub k: usize,
    pub cols: usize,
    pub nr: usize,
    pub kc: usize,
}

impl PanelLayout {
    /// Values the layout spans.
    pub(crate) fn len(&self) -> usize {
        self.k * self.cols
    }

    /// Index of element `(r, j)`.
    #[inline]
    fn index(&self, r: usize, j: usize) -> usize {
        let pc = r / self.kc * self.kc;
        let kb = self.kc.min(self.k - pc);
        pc * self.cols + (j / self.nr) * self.nr * kb + (r - pc) * self.nr + j % self.nr
    }
}

/// Writes columns `j0..j0 + nb` of the im2col matrix of one image's group into `out`
/// in the packed layout `lay`, column `j0` landing on the layout's column `at0`
/// (`lay.k == group_k`, `at0 + nb <= lay.cols`; other columns are left as they are): row `(ci*kernel_h + kh)*kernel_w + kw`,
/// column `oh*out_w + ow` holds
/// `input[ci][oh*sh + kh*dh - pad_top][ow*sw + kw*dw - pad_left]`, or zero in the
/// padding. `input` is the group's `in_channels/groups` planes.
pub(crate) fn im2col_packed(
    p: &Conv2dParams,
    input: &[f32],
    j0: usize,
    nb: usize,
    at0: usize,
    lay: &PanelLayout,
    out: &mut [f32],
) {
    let (ow_n, h, w) = (p.out_w(), p.in_h, p.in_w);
    let cg = p.in_channels / p.groups;
    let out = &mut out[..lay.len()];
    let mut row = 0;
    for ci in 0..cg {
        let plane = &input[ci * h * w..(ci + 1) * h * w];
        for kh in 0..p.kernel_h {
            for kw in 0..p.kernel_w {
                let off_w = kw * p.dilation_w;
                // Valid output columns: 0 <= ow*sw + off_w - pad_left < w.
                let lo = p.pad_left.saturating_sub(off_w).div_ceil(p.stride_w);
                let hi = if w + p.pad_left > off_w {
                    ((w - 1 + p.pad_left - off_w) / p.stride_w + 1).min(ow_n)
                } else {
                    0
                }
                .max(lo);
                let mut j = j0;
                while j < j0 + nb {
                    let (oh, ow) = (j / ow_n, j % ow_n);
                    // A run stays in one output row and one panel.
                    let jr = j - j0 + at0;
                    let len = (ow_n - ow).min(j0 + nb - j).min(lay.nr - jr % lay.nr);
                    let at = lay.index(row, jr);
                    let d = &mut out[at..at + len];
                    let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
                    if ih >= h {
                        d.fill(0.0);
                    } else {
                        let src = &plane[ih * w..(ih + 1) * w];
                        let (a, b) = (lo.clamp(ow, ow + len), hi.clamp(ow, ow + len));
                        d[..a - ow].fill(0.0);
                        d[b - ow..].fill(0.0);
                        let mid = &mut d[a - ow..b - ow];
                        if a == b {
                        } else if p.stride_w == 1 {
                            mid.copy_from_slice(
                                &src[a + off_w - p.pad_left..b + off_w - p.pad_left],
                            );
                        } else {
                            let s0 = a * p.stride_w + off_w - p.pad_left;
                            for (t, x) in mid.iter_mut().enumerate() {
                                *x = src[s0 + t * p.stride_w];
                            }
                        }
                    }
                    j += len;
                }
                row += 1;
            }
        }
    }
}

/// Outputs narrower than this take the gather path of [`im2col_columns`] (with enough
/// channels), where runs of contiguous input are too short for copies to pay.
const GATHER_BELOW_W: usize = 32;

/// Channels per group from which the gather path pays for its table (built once for
/// all channels).
const GATHER_MIN_CHANNELS: usize = 4;

/// The marker of a padding tap in a gather table (beyond any input index).
const NONE: u32 = u32::MAX;

thread_local! {
    static TABLE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Writes columns `c0..c0 + cols` of the batch-folded im2col matrix of group `g` into
/// `out` in the packed layout `lay` (`lay.k == group_k`, `cols <= lay.cols`), column
/// `c0 + t` landing on the layout's column `t`: column `b*out_h*out_w + oh*out_w + ow`
/// is column `oh*out_w + ow` of image `b`'s im2col matrix (see [`im2col_packed`]).
/// `input` is the whole NCHW input. Layout columns `cols..lay.cols` are zeroed on the
/// gather path and left as they are otherwise.
pub(crate) fn im2col_columns(
    p: &Conv2dParams,
    input: &[f32],
    g: usize,
    c0: usize,
    cols: usize,
    lay: &PanelLayout,
    out: &mut [f32],
) {
    let n = p.out_h() * p.out_w();
    let plane = p.in_h * p.in_w;
    let cg = p.in_channels / p.groups;
    let image = p.in_channels * plane;
    if p.kernel_w == 1 && p.pad_left == 0 && p.pad_right == 0 && p.stride_w == 1 && p.stride_h == 1
    {
        whole_rows(p, &input[g * cg * plane..], c0, cols, lay, out);
        return;
    }
    if p.out_w() < GATHER_BELOW_W && cg >= GATHER_MIN_CHANNELS && input.len() < NONE as usize {
        TABLE.with(|cell| {
            let mut tab = cell.borrow_mut();
            gather(p, &input[g * cg * plane..], c0, cols, lay, out, &mut tab);
        });
        return;
    }
    let mut c = c0;
    while c < c0 + cols {
        let (b, j) = (c / n, c % n);
        let len = (n - j).min(c0 + cols - c);
        let src = &input[b * image + g * cg * plane..][..cg * plane];
        im2col_packed(p, src, j, len, c - c0, lay, out);
        c += len;
    }
}

/// The gather path of [`im2col_columns`]: a table of input offsets per tap and column
/// (shared by all channels), then one indexed load per value. `input` starts at the
/// group's first channel of image 0.
fn gather(
    p: &Conv2dParams,
    input: &[f32],
    c0: usize,
    cols: usize,
    lay: &PanelLayout,
    out: &mut [f32],
    tab: &mut Vec<u32>,
) {
    let (oh_n, ow_n, h, w) = (p.out_h(), p.out_w(), p.in_h, p.in_w);
    let n = oh_n * ow_n;
    let plane = h * w;
    let image = p.in_channels * plane;
    let cg = p.in_channels / p.groups;
    let taps = p.kernel_h * p.kernel_w;
    let width = lay.cols;
    tab.clear();
    tab.resize(taps * width, NONE);
    for kh in 0..p.kernel_h {
        for kw in 0..p.kernel_w {
            let t = kh * p.kernel_w + kw;
            let row = &mut tab[t * width..t * width + cols];
            let (mut b, mut oh, mut ow) = (c0 / n, c0 % n / ow_n, c0 % n % ow_n);
            for x in row.iter_mut() {
                let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
                let iw = (ow * p.stride_w + kw * p.dilation_w).wrapping_sub(p.pad_left);
                if ih < h && iw < w {
                    // Below `NONE`: the caller checked the input's length.
                    *x = (b * image + ih * w + iw) as u32;
                }
                ow += 1;
                if ow == ow_n {
                    ow = 0;
                    oh += 1;
                    if oh == oh_n {
                        oh = 0;
                        b += 1;
                    }
                }
            }
        }
    }
    // Panel by panel, so that the packed block is written in order.
    let nr = lay.nr;
    let k = cg * taps;
    for pc in (0..k).step_by(lay.kc) {
        let kb = lay.kc.min(k - pc);
        let block = &mut out[pc * lay.cols..pc * lay.cols + kb * lay.cols];
        for (pi, panel) in block.chunks_exact_mut(nr * kb).enumerate() {
            let (mut ci, mut t) = (pc / taps, pc % taps);
            for d in panel.chunks_exact_mut(nr) {
                let src = &input[(ci * plane).min(input.len())..];
                let o = &tab[t * width + pi * nr..][..nr];
                for (x, &o) in d.iter_mut().zip(o) {
                    *x = src.get(o as usize).copied().unwrap_or(0.0);
                }
                t += 1;
                if t == taps {
                    t = 0;
                    ci += 1;
                }
            }
        }
    }
}

/// The path of [`im2col_columns`] for kernels one column wide with stride 1 and no
/// padding at the sides: a row of an image's im2col matrix is then its input plane
/// shifted by whole rows, so it is copied in contiguous runs. `input` starts at the
/// group's first channel of image 0.
fn whole_rows(
    p: &Conv2dParams,
    input: &[f32],
    c0: usize,
    cols: usize,
    lay: &PanelLayout,
    out: &mut [f32],
) {
    let w = p.in_w;
    let plane = p.in_h * w;
    let n = p.out_h() * p.out_w();
    let image = p.in_channels * plane;
    let cg = p.in_channels / p.groups;
    let nr = lay.nr;
    for ci in 0..cg {
        for kh in 0..p.kernel_h {
            let r = ci * p.kernel_h + kh;
            // Input position of output column `j` is `j + kh*dh*w - pad_top*w`.
            let (up, down) = (kh * p.dilation_h * w, p.pad_top * w);
            let pc = r / lay.kc * lay.kc;
            let kb = lay.kc.min(lay.k - pc);
            let base = pc * lay.cols + (r - pc) * nr;
            let mut at = 0;
            while at < cols {
                let panel = at / nr;
                let d = &mut out[base + panel * nr * kb..][..nr];
                let end = ((panel + 1) * nr).min(cols);
                while at < end {
                    let c = c0 + at;
                    let (b, j) = (c / n, c % n);
                    let len = (n - j).min(end - at);
                    let d = &mut d[at % nr..at % nr + len];
                    // Valid `t`: `0 <= j + t + up - down < plane`.
                    let lo = down.saturating_sub(j + up).min(len);
                    let hi = (plane + down).saturating_sub(j + up).clamp(lo, len);
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    if hi > lo {
                        let s = b * image + ci * plane + j + lo + up - down;
                        d[lo..hi].copy_from_slice(&input[s..s + hi - lo]);
                    }
                    at += len;
                }
            }
        }
    }
}
