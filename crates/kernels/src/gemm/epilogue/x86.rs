//! The AVX2+FMA and AVX-512F epilogues: vector activations (`exp` by range reduction
//! and a polynomial; `tanh` by a series near zero and `exp` elsewhere), shared with the
//! direct convolution kernels.

use std::arch::x86_64::*;

use super::TileEpi;
use crate::epilogue::Activation;

const EXP_HI: f32 = 88.0;
const EXP_LO: f32 = -87.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];
/// Below this magnitude `tanh` uses its series.
const TANH_SMALL: f32 = 0.25;
const TANH_P: [f32; 5] = [62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0];

/// `e^x` on 16 lanes, with `x` clamped to the range where the result is a normal f32.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn exp512(x: __m512) -> __m512 {
    let x = _mm512_max_ps(
        _mm512_min_ps(x, _mm512_set1_ps(EXP_HI)),
        _mm512_set1_ps(EXP_LO),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let y = _mm512_add_ps(
        _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
        _mm512_set1_ps(1.0),
    );
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(e))
}

/// The activation on 16 lanes, as [`super::act_scalar`] defines it.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn act512(x: __m512, act: Activation) -> __m512 {
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_ps(1.0);
    match act {
        Activation::Identity => x,
        Activation::Relu => _mm512_max_ps(x, zero),
        Activation::LeakyRelu { alpha } => {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, zero);
            _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(alpha))
        }
        Activation::Clip { min, max } => {
            _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(min)), _mm512_set1_ps(max))
        }
        Activation::Sigmoid => {
            _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(zero, x))))
        }
        Activation::HardSigmoid { alpha, beta } => {
            let g = _mm512_fmadd_ps(x, _mm512_set1_ps(alpha), _mm512_set1_ps(beta));
            _mm512_min_ps(_mm512_max_ps(g, zero), one)
        }
        Activation::HardSwish => {
            let g = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5));
            _mm512_mul_ps(x, _mm512_min_ps(_mm512_max_ps(g, zero), one))
        }
        Activation::Tanh => {
            let sign = _mm512_set1_epi32(i32::MIN);
            let xi = _mm512_castps_si512(x);
            let ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
            let t = exp512(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0)));
            let big = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
            let x2 = _mm512_mul_ps(x, x);
            let mut p = _mm512_set1_ps(TANH_P[0]);
            for &c in &TANH_P[1..] {
                p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(c));
            }
            let small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, _mm512_set1_ps(TANH_SMALL));
            let mag = _mm512_mask_mul_ps(big, small, p, ax);
            let s = _mm512_and_si512(xi, sign);
            _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), s))
        }
    }
}

/// `e^x` on 8 lanes, with `x` clamped to the range where the result is a normal f32.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn exp256(x: __m256) -> __m256 {
    let x = _mm256_max_ps(
        _mm256_min_ps(x, _mm256_set1_ps(EXP_HI)),
        _mm256_set1_ps(EXP_LO),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(e))
}

/// The activation on 8 lanes, as [`super::act_scalar`] defines it.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn act256(x: __m256, act: Activation) -> __m256 {
    let zero = _mm256_setzero_ps();
    let one = _mm256_set1_ps(1.0);
    match act {
        Activation::Identity => x,
        Activation::Relu => _mm256_max_ps(x, zero),
        Activation::LeakyRelu { alpha } => {
            let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, zero);
            _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(alpha)), neg)
        }
        Activation::Clip { min, max } => {
            _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(min)), _mm256_set1_ps(max))
        }
        Activation::Sigmoid => {
            _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, x))))
        }
        Activation::HardSigmoid { alpha, beta } => {
            let g = _mm256_fmadd_ps(x, _mm256_set1_ps(alpha), _mm256_set1_ps(beta));
            _mm256_min_ps(_mm256_max_ps(g, zero), one)
        }
        Activation::HardSwish => {
            let g = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0 / 6.0), _mm256_set1_ps(0.5));
            _mm256_mul_ps(x, _mm256_min_ps(_mm256_max_ps(g, zero), one))
        }
        Activation::Tanh => {
            let sign = _mm256_set1_ps(-0.0);
            let ax = _mm256_andnot_ps(sign, x);
            let t = exp256(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0)));
            let big = _mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t));
            let x2 = _mm256_mul_ps(x, x);
            let mut p = _mm256_set1_ps(TANH_P[0]);
            for &c in &TANH_P[1..] {
                p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(c));
            }
            let small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(TANH_SMALL));
            let mag = _mm256_blendv_ps(big, _mm256_mul_ps(p, ax), small);
            _mm256_or_ps(mag, _mm256_and_ps(x, sign))
        }
    }
}

/// The AVX-512F [`super::EpiFn`].
///
/// # Safety
/// As [`super::EpiFn`], with AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn apply_avx512(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    epi: &TileEpi,
) {
    if epi.is_noop() {
        return;
    }
    // SAFETY: the caller guarantees the tile and the biases are valid; masked lanes are
    // neither read nor written.
    unsafe {
        for i in 0..rows {
            let rb = _mm512_set1_ps(if epi.row_bias.is_null() {
                0.0
            } else {
                *epi.row_bias.add(i)
            });
            let row = c.add(i * ldc);
            let mut j = 0;
            while j < cols {
                let left = cols - j;
                let mask: __mmask16 = if left >= 16 {
                    0xffff
                } else {
                    (1u16 << left) - 1
                };
                let mut v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row.add(j)), rb);
                if !epi.col_bias.is_null() {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, epi.col_bias.add(j)));
                }
                _mm512_mask_storeu_ps(row.add(j), mask, act512(v, epi.act));
                j += 16;
            }
        }
    }
}

/// The AVX2+FMA [`super::EpiFn`].
///
/// # Safety
/// As [`super::EpiFn`], with AVX2 and FMA present.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn apply_avx2(c: *mut f32, ldc: usize, rows: usize, cols: usize, epi: &TileEpi) {
    if epi.is_noop() {
        return;
    }
    // SAFETY: the caller guarantees the tile and the biases are valid; the tail goes
    // through a local buffer.
    unsafe {
        for i in 0..rows {
            let rbs = if epi.row_bias.is_null() {
                0.0
            } else {
                *epi.row_bias.add(i)
            };
            let rb = _mm256_set1_ps(rbs);
            let row = c.add(i * ldc);
            let mut j = 0;
            while j + 8 <= cols {
                let mut v = _mm256_add_ps(_mm256_loadu_ps(row.add(j)), rb);
                if !epi.col_bias.is_null() {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(epi.col_bias.add(j)));
                }
                _mm256_storeu_ps(row.add(j), act256(v, epi.act));
                j += 8;
            }
            if j < cols {
                let n = cols - j;
                let mut buf = [0.0f32; 8];
                for (t, b) in buf.iter_mut().enumerate().take(n) {
                    *b = *row.add(j + t)
                        + rbs
                        + if epi.col_bias.is_null() {
                            0.0
                        } else {
                            *epi.col_bias.add(j + t)
                        };
                }
                let v = act256(_mm256_loadu_ps(buf.as_ptr()), epi.act);
                _mm256_storeu_ps(buf.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(buf.as_ptr(), row.add(j), n);
            }
        }
    }
}
