//! im2col: the input patches of one group as the `B` matrix of a GEMM.

use super::Conv2dParams;

/// Writes columns `j0..j0 + nb` of the im2col matrix of one image's group into `out`
/// (`group_k` rows of `nb` values): row `(ci*kernel_h + kh)*kernel_w + kw`, column
/// `oh*out_w + ow` holds `input[ci][oh*sh + kh*dh - pad_top][ow*sw + kw*dw - pad_left]`,
/// or zero in the padding. `input` is the group's `in_channels/groups` planes.
pub(crate) fn im2col(p: &Conv2dParams, input: &[f32], j0: usize, nb: usize, out: &mut [f32]) {
    let (ow_n, h, w) = (p.out_w(), p.in_h, p.in_w);
    let cg = p.in_channels / p.groups;
    let mut row = 0;
    for ci in 0..cg {
        let plane = &input[ci * h * w..(ci + 1) * h * w];
        for kh in 0..p.kernel_h {
            for kw in 0..p.kernel_w {
                let dst = &mut out[row * nb..(row + 1) * nb];
                row += 1;
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
                    let seg = (ow_n - ow).min(j0 + nb - j);
                    let d = &mut dst[j - j0..j - j0 + seg];
                    let ih = (oh * p.stride_h + kh * p.dilation_h).wrapping_sub(p.pad_top);
                    if ih >= h {
                        d.fill(0.0);
                    } else {
                        let src = &plane[ih * w..(ih + 1) * w];
                        let (a, b) = (lo.clamp(ow, ow + seg), hi.clamp(ow, ow + seg));
                        if p.stride_w == 1 && a < b {
                            d[..a - ow].fill(0.0);
                            d[a - ow..b - ow].copy_from_slice(
                                &src[a + off_w - p.pad_left..b + off_w - p.pad_left],
                            );
                            d[b - ow..].fill(0.0);
                            j += seg;
                            continue;
                        }
                        for (t, x) in d.iter_mut().enumerate() {
                            let o = ow + t;
                            *x = if o >= lo && o < hi {
                                src[o * p.stride_w + off_w - p.pad_left]
                            } else {
                                0.0
                            };
                        }
                    }
                    j += seg;
                }
            }
        }
    }
}
