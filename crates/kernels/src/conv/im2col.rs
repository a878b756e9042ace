//! im2col: the input patches of one group as the `B` matrix of a GEMM, written straight
//! into the packed panel layout the GEMM micro-kernels read (no intermediate matrix).

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
/// in the packed layout `lay` (`lay.k == group_k`, `nb <= lay.cols`; the padding
/// columns `nb..lay.cols` are left as they are): row `(ci*kernel_h + kh)*kernel_w + kw`,
/// column `oh*out_w + ow` holds
/// `input[ci][oh*sh + kh*dh - pad_top][ow*sw + kw*dw - pad_left]`, or zero in the
/// padding. `input` is the group's `in_channels/groups` planes.
pub(crate) fn im2col_packed(
    p: &Conv2dParams,
    input: &[f32],
    j0: usize,
    nb: usize,
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
                    let jr = j - j0;
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
