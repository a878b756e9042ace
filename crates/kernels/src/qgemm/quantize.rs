//! f32 → u8 / s8 quantization as ONNX `QuantizeLinear` defines it:
//! `saturate(round_half_to_even(x / scale) + zero)`, dividing (not multiplying by a
//! reciprocal), so that results match bit for bit.
//!
//! Every tier computes `v = round_half_even(clamp(x / scale, -256, 512))`, then
//! `clamp(v + zero, lo, hi)`; the first clamp keeps the value in the range where f32
//! holds integers exactly and maps NaN to `-256` (so NaN quantizes to `lo`: 0 for u8,
//! -128 for s8), infinities saturate.

/// A quantizer slot: `dst[i] = q(src[i])` as bytes, for `lo..=hi` (`0..=255` for u8,
/// `-128..=127` for s8 stored as its bytes) and zero point `zero`.
///
/// # Safety
/// The CPU must support the function's target features; `src` and `dst` hold `len`
/// values.
pub(crate) type QuantizeFn =
    unsafe fn(src: *const f32, scale: f32, zero: f32, lo: f32, hi: f32, dst: *mut u8, len: usize);

/// One value; the definition every tier follows.
#[inline]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max` maps it to the bound.
pub(crate) fn quantize_one(x: f32, scale: f32, zero: f32, lo: f32, hi: f32) -> f32 {
    let v = (x / scale).max(-256.0).min(512.0).round_ties_even();
    (v + zero).max(lo).min(hi)
}

/// The portable [`QuantizeFn`].
///
/// # Safety
/// As [`QuantizeFn`].
pub(crate) unsafe fn portable(
    src: *const f32,
    scale: f32,
    zero: f32,
    lo: f32,
    hi: f32,
    dst: *mut u8,
    len: usize,
) {
    // SAFETY: forwarded from the caller.
    let (src, dst) = unsafe {
        (
            std::slice::from_raw_parts(src, len),
            std::slice::from_raw_parts_mut(dst, len),
        )
    };
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = quantize_one(x, scale, zero, lo, hi) as i32 as u8;
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// The AVX-512F [`super::QuantizeFn`]: 16 values per step (`vpmovdb` narrows).
    ///
    /// # Safety
    /// AVX-512F present; as [`super::QuantizeFn`].
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn avx512(
        src: *const f32,
        scale: f32,
        zero: f32,
        lo: f32,
        hi: f32,
        dst: *mut u8,
        len: usize,
    ) {
        // SAFETY: the caller guarantees the feature and `len` values at both pointers.
        unsafe {
            let (sc, z) = (_mm512_set1_ps(scale), _mm512_set1_ps(zero));
            let (l, h) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
            let (cl, ch) = (_mm512_set1_ps(-256.0), _mm512_set1_ps(512.0));
            let mut i = 0;
            while i + 16 <= len {
                let x = _mm512_loadu_ps(src.add(i));
                // `max` returns its second operand when the first is NaN.
                let v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(x, sc), cl), ch);
                let v =
                    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, z), l), h);
                let b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
                _mm_storeu_si128(dst.add(i) as *mut __m128i, b);
                i += 16;
            }
            super::portable(src.add(i), scale, zero, lo, hi, dst.add(i), len - i);
        }
    }

    /// The AVX2 [`super::QuantizeFn`]: 8 values per step.
    ///
    /// # Safety
    /// AVX2 present; as [`super::QuantizeFn`].
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn avx2(
        src: *const f32,
        scale: f32,
        zero: f32,
        lo: f32,
        hi: f32,
        dst: *mut u8,
        len: usize,
    ) {
        // SAFETY: the caller guarantees the feature and `len` values at both pointers.
        unsafe {
            let (sc, z) = (_mm256_set1_ps(scale), _mm256_set1_ps(zero));
            let (l, h) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
            let (cl, ch) = (_mm256_set1_ps(-256.0), _mm256_set1_ps(512.0));
            // Byte 0 of each 32-bit lane, in each 128-bit half.
            let pick = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            let mut i = 0;
            while i + 8 <= len {
                let x = _mm256_loadu_ps(src.add(i));
                let v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, sc), cl), ch);
                let v = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, z), l), h);
                let n = _mm256_cvttps_epi32(v);
                let a = _mm_shuffle_epi8(_mm256_castsi256_si128(n), pick);
                let b = _mm_shuffle_epi8(_mm256_extracti128_si256::<1>(n), pick);
                let lanes = _mm_unpacklo_epi32(a, b);
                _mm_storel_epi64(dst.add(i) as *mut __m128i, lanes);
                i += 8;
            }
            super::portable(src.add(i), scale, zero, lo, hi, dst.add(i), len - i);
        }
    }
}
