//! AVX-512F and AVX2+FMA depthwise kernels: square 3×3 and 5×5 filters with stride 1 or
//! 2 and no dilation, vectorized along the output width (stride 2 gathers the even
//! inputs with a permute; borders and tails load through in-row masks); every other
//! shape runs the portable kernel.

use std::arch::x86_64::*;

use super::{portable, valid_range};
use crate::conv::Conv2dParams;
use crate::epilogue::Activation;
use crate::gemm::epilogue::x86::{act256, act512};

/// Output vectors computed together in the interior (independent FMA chains).
const UNROLL: usize = 4;

/// The filter sizes and strides with a SIMD kernel, as `(kernel, stride)`.
fn specialized(p: &Conv2dParams) -> Option<(usize, usize)> {
    let square = p.kernel_h == p.kernel_w && p.stride_h == p.stride_w;
    let plain = p.dilation_h == 1 && p.dilation_w == 1;
    match (square && plain, p.kernel_h, p.stride_h) {
        (true, k @ (3 | 5), s @ (1 | 2)) => Some((k, s)),
        _ => None,
    }
}

/// The first output row and the range of filter rows in bounds for output row `oh`.
#[inline]
fn rows_in_bounds(p: &Conv2dParams, oh: usize, k: usize) -> (isize, usize, usize) {
    let base = (oh * p.stride_h) as isize - p.pad_top as isize;
    let lo = (-base).max(0) as usize;
    let hi = (p.in_h as isize - base).clamp(0, k as isize) as usize;
    (base, lo.min(hi), hi)
}

/// The columns whose every filter tap is in bounds.
#[inline]
fn interior(p: &Conv2dParams, k: usize) -> (usize, usize) {
    let ow_n = p.out_w();
    let lo = valid_range(p.in_w, p.pad_left, 0, p.stride_w, ow_n).0;
    let hi = valid_range(p.in_w, p.pad_left, k - 1, p.stride_w, ow_n).1;
    (lo, hi.max(lo))
}

/// The AVX-512F [`super::DwFn`].
///
/// # Safety
/// As [`super::DwFn`], with AVX-512F present.
pub(crate) unsafe fn avx512(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match specialized(p) {
            Some((3, 1)) => dw512::<3, 1>(p, input, w, bias, act, out),
            Some((3, 2)) => dw512::<3, 2>(p, input, w, bias, act, out),
            Some((5, 1)) => dw512::<5, 1>(p, input, w, bias, act, out),
            Some((5, 2)) => dw512::<5, 2>(p, input, w, bias, act, out),
            _ => portable(p, input, w, bias, act, out),
        }
    }
}

/// Sixteen inputs `x[S*t]` for `t < 16` starting at `ptr`; reads only those.
///
/// # Safety
/// `ptr` must be valid for reads of `S*15 + 1` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load512<const S: usize>(ptr: *const f32) -> __m512 {
    // SAFETY: forwarded; masked lanes are not read.
    unsafe {
        if S == 1 {
            _mm512_loadu_ps(ptr)
        } else {
            let lo = _mm512_loadu_ps(ptr);
            let hi = _mm512_maskz_loadu_ps(0x7fff, ptr.add(16));
            let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(lo, idx, hi)
        }
    }
}

/// Lanes `t < lanes` of `x[start + S*t]` from the row at `row` of `width` values, with
/// zero where `start + S*t` falls outside the row (`start` may be negative) and in
/// lanes from `lanes` on; reads only in-row values.
///
/// # Safety
/// `row` must be valid for reads of `width` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load512_masked<const S: usize>(
    row: *const f32,
    start: isize,
    width: usize,
    lanes: usize,
) -> __m512 {
    let e_lo = (-start).max(0) as u32;
    let e_hi = (width as isize - start).clamp(0, (S * (lanes - 1) + 1) as isize) as u32;
    let bits = |e: u32| if e >= 64 { u64::MAX } else { (1u64 << e) - 1 };
    let m = bits(e_hi) & !bits(e_lo.min(e_hi));
    let ptr = row.wrapping_offset(start);
    // SAFETY: the masks select only elements inside the row.
    unsafe {
        if S == 1 {
            _mm512_maskz_loadu_ps(m as u16, ptr)
        } else {
            let l = _mm512_maskz_loadu_ps(m as u16, ptr);
            let h = _mm512_maskz_loadu_ps((m >> 16) as u16, ptr.wrapping_add(16));
            let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(l, idx, h)
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn dw512<const K: usize, const S: usize>(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    let (oh_n, ow_n, iw_n) = (p.out_h(), p.out_w(), p.in_w);
    let (olo, ohi) = interior(p, K);
    let mut wv = [_mm512_setzero_ps(); 25];
    for (v, &x) in wv.iter_mut().zip(&w[..K * K]) {
        *v = _mm512_set1_ps(x);
    }
    let bv = _mm512_set1_ps(bias);
    let inp = input.as_ptr();
    for oh in 0..oh_n {
        let (base, khlo, khhi) = rows_in_bounds(p, oh, K);
        let orow = out[oh * ow_n..].as_mut_ptr();
        let mut ow = 0;
        while ow < ow_n {
            if ow >= olo && ow + 16 * UNROLL <= ohi {
                let mut acc = [bv; UNROLL];
                // SAFETY: every chunk of the group is interior (see below).
                unsafe {
                    for kh in khlo..khhi {
                        let rp = inp.offset(
                            (base + kh as isize) * iw_n as isize + (ow * S) as isize
                                - p.pad_left as isize,
                        );
                        for kw in 0..K {
                            for (u, a) in acc.iter_mut().enumerate() {
                                *a = _mm512_fmadd_ps(
                                    load512::<S>(rp.add(kw + u * 16 * S)),
                                    wv[kh * K + kw],
                                    *a,
                                );
                            }
                        }
                    }
                    for (u, &a) in acc.iter().enumerate() {
                        _mm512_storeu_ps(orow.add(ow + u * 16), act512(a, act));
                    }
                }
                ow += 16 * UNROLL;
                continue;
            }
            let lanes = (ow_n - ow).min(16);
            let mut acc = bv;
            // SAFETY: rows `base + kh` lie in the plane (`rows_in_bounds`); interior
            // chunks read inside their rows, the others only through in-row masks; the
            // store stays in row `oh`.
            unsafe {
                if lanes == 16 && ow >= olo && ow + 16 <= ohi {
                    for kh in khlo..khhi {
                        let rp = inp.offset(
                            (base + kh as isize) * iw_n as isize + (ow * S) as isize
                                - p.pad_left as isize,
                        );
                        for kw in 0..K {
                            acc = _mm512_fmadd_ps(load512::<S>(rp.add(kw)), wv[kh * K + kw], acc);
                        }
                    }
                    _mm512_storeu_ps(orow.add(ow), act512(acc, act));
                } else {
                    // One chain per filter column, so that the FMAs overlap.
                    let mut part = [_mm512_setzero_ps(); K];
                    for kh in khlo..khhi {
                        let row = inp.offset((base + kh as isize) * iw_n as isize);
                        for (kw, pk) in part.iter_mut().enumerate() {
                            let start = (ow * S + kw) as isize - p.pad_left as isize;
                            let x = load512_masked::<S>(row, start, iw_n, lanes);
                            *pk = _mm512_fmadd_ps(x, wv[kh * K + kw], *pk);
                        }
                    }
                    for pk in part {
                        acc = _mm512_add_ps(acc, pk);
                    }
                    let mask: __mmask16 = if lanes == 16 {
                        0xffff
                    } else {
                        (1u16 << lanes) - 1
                    };
                    _mm512_mask_storeu_ps(orow.add(ow), mask, act512(acc, act));
                }
            }
            ow += lanes;
        }
    }
}

/// The AVX2+FMA [`super::DwFn`].
///
/// # Safety
/// As [`super::DwFn`], with AVX2 and FMA present.
pub(crate) unsafe fn avx2(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match specialized(p) {
            Some((3, 1)) => dw256::<3, 1>(p, input, w, bias, act, out),
            Some((3, 2)) => dw256::<3, 2>(p, input, w, bias, act, out),
            Some((5, 1)) => dw256::<5, 1>(p, input, w, bias, act, out),
            Some((5, 2)) => dw256::<5, 2>(p, input, w, bias, act, out),
            _ => portable(p, input, w, bias, act, out),
        }
    }
}

/// Eight inputs `x[S*t]` for `t < 8` starting at `ptr`; reads only those.
///
/// # Safety
/// `ptr` must be valid for reads of `S*7 + 1` values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load256<const S: usize>(ptr: *const f32) -> __m256 {
    // SAFETY: forwarded; masked lanes are not read.
    unsafe {
        if S == 1 {
            _mm256_loadu_ps(ptr)
        } else {
            let lo = _mm256_loadu_ps(ptr);
            let hi =
                _mm256_maskload_ps(ptr.add(8), _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0));
            let ev = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(ev)))
        }
    }
}

/// Lanes `t < lanes` of `x[start + S*t]` from the row at `row` of `width` values, with
/// zero where `start + S*t` falls outside the row (`start` may be negative) and in
/// lanes from `lanes` on; reads only in-row values.
///
/// # Safety
/// `row` must be valid for reads of `width` values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load256_masked<const S: usize>(
    row: *const f32,
    start: isize,
    width: usize,
    lanes: usize,
) -> __m256 {
    let e_lo = _mm256_set1_epi32((-start).max(0) as i32);
    let e_hi =
        _mm256_set1_epi32((width as isize - start).clamp(0, (S * (lanes - 1) + 1) as isize) as i32);
    let in_range =
        |e: __m256i| _mm256_andnot_si256(_mm256_cmpgt_epi32(e_lo, e), _mm256_cmpgt_epi32(e_hi, e));
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let ptr = row.wrapping_offset(start);
    // SAFETY: the masks select only elements inside the row.
    unsafe {
        if S == 1 {
            _mm256_maskload_ps(ptr, in_range(iota))
        } else {
            let lo = _mm256_maskload_ps(ptr, in_range(iota));
            let hi = _mm256_maskload_ps(
                ptr.wrapping_add(8),
                in_range(_mm256_add_epi32(iota, _mm256_set1_epi32(8))),
            );
            let ev = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(ev)))
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dw256<const K: usize, const S: usize>(
    p: &Conv2dParams,
    input: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    let (oh_n, ow_n, iw_n) = (p.out_h(), p.out_w(), p.in_w);
    let (olo, ohi) = interior(p, K);
    let mut wv = [_mm256_setzero_ps(); 25];
    for (v, &x) in wv.iter_mut().zip(&w[..K * K]) {
        *v = _mm256_set1_ps(x);
    }
    let bv = _mm256_set1_ps(bias);
    let inp = input.as_ptr();
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for oh in 0..oh_n {
        let (base, khlo, khhi) = rows_in_bounds(p, oh, K);
        let orow = out[oh * ow_n..].as_mut_ptr();
        let mut ow = 0;
        while ow < ow_n {
            // SAFETY: as in `dw512`.
            unsafe {
                if ow >= olo && ow + 8 * UNROLL <= ohi {
                    let mut acc = [bv; UNROLL];
                    for kh in khlo..khhi {
                        let rp = inp.offset(
                            (base + kh as isize) * iw_n as isize + (ow * S) as isize
                                - p.pad_left as isize,
                        );
                        for kw in 0..K {
                            for (u, a) in acc.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(
                                    load256::<S>(rp.add(kw + u * 8 * S)),
                                    wv[kh * K + kw],
                                    *a,
                                );
                            }
                        }
                    }
                    for (u, &a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(orow.add(ow + u * 8), act256(a, act));
                    }
                    ow += 8 * UNROLL;
                    continue;
                }
                let lanes = (ow_n - ow).min(8);
                let mut acc = bv;
                if lanes == 8 && ow >= olo && ow + 8 <= ohi {
                    for kh in khlo..khhi {
                        let rp = inp.offset(
                            (base + kh as isize) * iw_n as isize + (ow * S) as isize
                                - p.pad_left as isize,
                        );
                        for kw in 0..K {
                            acc = _mm256_fmadd_ps(load256::<S>(rp.add(kw)), wv[kh * K + kw], acc);
                        }
                    }
                    _mm256_storeu_ps(orow.add(ow), act256(acc, act));
                } else {
                    // One chain per filter column, so that the FMAs overlap.
                    let mut part = [_mm256_setzero_ps(); K];
                    for kh in khlo..khhi {
                        let row = inp.offset((base + kh as isize) * iw_n as isize);
                        for (kw, pk) in part.iter_mut().enumerate() {
                            let start = (ow * S + kw) as isize - p.pad_left as isize;
                            let x = load256_masked::<S>(row, start, iw_n, lanes);
                            *pk = _mm256_fmadd_ps(x, wv[kh * K + kw], *pk);
                        }
                    }
                    for pk in part {
                        acc = _mm256_add_ps(acc, pk);
                    }
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), iota);
                    _mm256_maskstore_ps(orow.add(ow), mask, act256(acc, act));
                }
                ow += lanes;
            }
        }
    }
}
