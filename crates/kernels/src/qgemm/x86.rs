//! The x86-64 int8 tile kernels and epilogues: AVX-512 VNNI (`vpdpbusd`: four u8×s8
//! products summed into each i32 lane, exactly) and AVX2.
//!
//! AVX2 has no `vpdpbusd`; `vpmaddubsw` multiplies u8×s8 pairs but adds each two
//! adjacent products into an i16 with *signed saturation*, so `255·127 + 255·127 =
//! 64770` would saturate to 32767. The AVX2 kernel therefore uses it directly only
//! when the packer saw every weight in `[-64, 64]` (`2·255·64 = 32640` fits); otherwise
//! it splits each u8 `x` into `x & 0x7f` and `x & 0x80`, for which the pair sums stay
//! within `[-32768, 32512]`, and widens each half to i32 with `vpmaddwd` separately.
//! Both ways are exact, so every tier produces the same i32 accumulators.

use std::arch::x86_64::*;

use super::driver::{epi_one, QEpi, NR};
use crate::gemm::epilogue::x86::{act256, act512};

/// `acc + Σ` of the four u8×s8 products in each 32-bit lane (`a` is the u8 operand
/// when `ROWS_U8`, else `p`).
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
fn dp<const ROWS_U8: bool>(acc: __m512i, a: __m512i, p: __m512i) -> __m512i {
    if ROWS_U8 {
        _mm512_dpbusd_epi32(acc, a, p)
    } else {
        _mm512_dpbusd_epi32(acc, p, a)
    }
}

/// The VNNI tile: `out[i*NR + j] = Σ R[i][p]·P[p][j]` for `i < R`, 32 columns.
///
/// # Safety
/// AVX-512F and AVX-512 VNNI present; `rows` holds `R` rows of `4·kq` bytes at stride
/// `rs`, `panel` `128·kq` bytes, `out` `R·NR` values.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni<const R: usize, const ROWS_U8: bool>(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    out: *mut i32,
) {
    // SAFETY: the caller guarantees the features and the memory.
    unsafe {
        let z = _mm512_setzero_si512();
        let mut acc = [[z; 2]; R];
        let mut acc2 = [[z; 2]; R];
        macro_rules! bc {
            ($i:expr, $q:expr) => {
                _mm512_set1_epi32((rows.add($i * rs + 4 * $q) as *const i32).read_unaligned())
            };
        }
        macro_rules! ld {
            ($q:expr, $h:expr) => {
                _mm512_loadu_si512(panel.add($q * 128 + $h * 64) as *const _)
            };
        }
        let mut q = 0;
        if R <= 4 {
            // Two independent chains per accumulator hide `vpdpbusd`'s latency when
            // there are few rows.
            while q + 2 <= kq {
                let (p0, p1) = (ld!(q, 0), ld!(q, 1));
                let (p2, p3) = (ld!(q + 1, 0), ld!(q + 1, 1));
                for i in 0..R {
                    let a = bc!(i, q);
                    acc[i][0] = dp::<ROWS_U8>(acc[i][0], a, p0);
                    acc[i][1] = dp::<ROWS_U8>(acc[i][1], a, p1);
                    let a = bc!(i, q + 1);
                    acc2[i][0] = dp::<ROWS_U8>(acc2[i][0], a, p2);
                    acc2[i][1] = dp::<ROWS_U8>(acc2[i][1], a, p3);
                }
                q += 2;
            }
        }
        while q < kq {
            let (p0, p1) = (ld!(q, 0), ld!(q, 1));
            for (i, row) in acc.iter_mut().enumerate() {
                let a = bc!(i, q);
                row[0] = dp::<ROWS_U8>(row[0], a, p0);
                row[1] = dp::<ROWS_U8>(row[1], a, p1);
            }
            q += 1;
        }
        for i in 0..R {
            let o = out.add(i * NR);
            _mm512_storeu_si512(o as *mut _, _mm512_add_epi32(acc[i][0], acc2[i][0]));
            _mm512_storeu_si512(o.add(16) as *mut _, _mm512_add_epi32(acc[i][1], acc2[i][1]));
        }
    }
}

/// The VNNI tile for `r <= 8` rows; see [`super::driver::tile_portable`].
///
/// # Safety
/// As [`vnni`], for `r` rows.
pub(crate) unsafe fn tile_vnni(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    r: usize,
    rows_u8: bool,
    out: *mut i32,
) {
    macro_rules! go {
        ($r:literal) => {
            if rows_u8 {
                vnni::<$r, true>(kq, rows, rs, panel, out)
            } else {
                vnni::<$r, false>(kq, rows, rs, panel, out)
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match r {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            4 => go!(4),
            5 => go!(5),
            6 => go!(6),
            7 => go!(7),
            _ => go!(8),
        }
    }
}

/// `acc + Σ` of the four u8×s8 products in each 32-bit lane of `u` and `s`, exactly:
/// with `SMALL` (every s8 in `[-64, 64]`) by one saturating `vpmaddubsw`, otherwise by
/// splitting `u` into its low 7 bits and its top bit.
#[target_feature(enable = "avx2")]
#[inline]
fn dp2<const SMALL: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    {
        let ones = _mm256_set1_epi16(1);
        if SMALL {
            _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones))
        } else {
            let lo = _mm256_and_si256(u, _mm256_set1_epi8(0x7f));
            let hi = _mm256_and_si256(u, _mm256_set1_epi8(0x80u8 as i8));
            let a = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, s), ones);
            let b = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, s), ones);
            _mm256_add_epi32(acc, _mm256_add_epi32(a, b))
        }
    }
}

/// The AVX2 tile, in two halves of 16 columns.
///
/// # Safety
/// AVX2 present; memory as [`vnni`].
#[target_feature(enable = "avx2")]
unsafe fn avx2<const R: usize, const ROWS_U8: bool, const SMALL: bool>(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    out: *mut i32,
) {
    // SAFETY: the caller guarantees the feature and the memory.
    unsafe {
        for h in 0..2 {
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let mut pp = panel.add(h * 64);
            for q in 0..kq {
                let p0 = _mm256_loadu_si256(pp as *const __m256i);
                let p1 = _mm256_loadu_si256(pp.add(32) as *const __m256i);
                for (i, row) in acc.iter_mut().enumerate() {
                    let a = _mm256_set1_epi32(
                        (rows.add(i * rs + 4 * q) as *const i32).read_unaligned(),
                    );
                    if ROWS_U8 {
                        row[0] = dp2::<SMALL>(row[0], a, p0);
                        row[1] = dp2::<SMALL>(row[1], a, p1);
                    } else {
                        row[0] = dp2::<SMALL>(row[0], p0, a);
                        row[1] = dp2::<SMALL>(row[1], p1, a);
                    }
                }
                pp = pp.add(128);
            }
            for (i, row) in acc.iter().enumerate() {
                let o = out.add(i * NR + h * 16);
                _mm256_storeu_si256(o as *mut __m256i, row[0]);
                _mm256_storeu_si256(o.add(8) as *mut __m256i, row[1]);
            }
        }
    }
}

/// The AVX2 tile for `r <= 4` rows; `small` as [`super::driver::QJob::small`].
///
/// # Safety
/// As [`avx2`], for `r` rows.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_avx2(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    r: usize,
    rows_u8: bool,
    small: bool,
    out: *mut i32,
) {
    macro_rules! go {
        ($r:literal) => {
            match (rows_u8, small) {
                (true, true) => avx2::<$r, true, true>(kq, rows, rs, panel, out),
                (true, false) => avx2::<$r, true, false>(kq, rows, rs, panel, out),
                (false, true) => avx2::<$r, false, true>(kq, rows, rs, panel, out),
                (false, false) => avx2::<$r, false, false>(kq, rows, rs, panel, out),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match r {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            _ => go!(4),
        }
    }
}

/// The AVX-512 epilogue; see [`super::driver::epilogue_portable`].
///
/// # Safety
/// AVX-512F present; as [`super::driver::epilogue_portable`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn epilogue_avx512(
    tile: &[i32],
    r: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    e: &QEpi,
    i0: usize,
    j0: usize,
) {
    // SAFETY: the caller guarantees the feature and the memory; masked loads and
    // stores touch only the tile's `cols` columns.
    unsafe {
        let sx = _mm512_set1_ps(e.sx);
        let xz = _mm512_set1_epi32(e.xz);
        for i in 0..r {
            let mut j = 0;
            while j < cols {
                let k: __mmask16 = if cols - j >= 16 {
                    0xffff
                } else {
                    (1u16 << (cols - j)) - 1
                };
                let acc = _mm512_maskz_loadu_epi32(k, tile.as_ptr().add(i * NR + j));
                let (s, corr, b) = if e.per_row {
                    let ch = i0 + i;
                    let b = if e.bias.is_null() {
                        0.0
                    } else {
                        *e.bias.add(ch)
                    };
                    (
                        _mm512_set1_ps(e.sx * *e.sw.add(ch)),
                        _mm512_set1_epi32(e.xz.wrapping_mul(*e.wsum.add(ch))),
                        _mm512_set1_ps(b),
                    )
                } else {
                    let ch = j0 + j;
                    let b = if e.bias.is_null() {
                        _mm512_setzero_ps()
                    } else {
                        _mm512_maskz_loadu_ps(k, e.bias.add(ch))
                    };
                    (
                        _mm512_mul_ps(sx, _mm512_maskz_loadu_ps(k, e.sw.add(ch))),
                        _mm512_mullo_epi32(xz, _mm512_maskz_loadu_epi32(k, e.wsum.add(ch))),
                        b,
                    )
                };
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, corr));
                let v = act512(_mm512_add_ps(_mm512_mul_ps(v, s), b), e.act);
                _mm512_mask_storeu_ps(c.add(i * ldc + j), k, v);
                j += 16;
            }
        }
    }
}

/// The AVX2 epilogue (8 lanes, the last `cols % 8` values scalar).
///
/// # Safety
/// AVX2 and FMA present; as [`super::driver::epilogue_portable`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn epilogue_avx2(
    tile: &[i32],
    r: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    e: &QEpi,
    i0: usize,
    j0: usize,
) {
    // SAFETY: the caller guarantees the features and the memory; vector accesses stay
    // within the tile's `cols` columns.
    unsafe {
        let sx = _mm256_set1_ps(e.sx);
        let xz = _mm256_set1_epi32(e.xz);
        for i in 0..r {
            let mut j = 0;
            while j + 8 <= cols {
                let acc = _mm256_loadu_si256(tile.as_ptr().add(i * NR + j) as *const __m256i);
                let (s, corr, b) = if e.per_row {
                    let ch = i0 + i;
                    let b = if e.bias.is_null() {
                        0.0
                    } else {
                        *e.bias.add(ch)
                    };
                    (
                        _mm256_set1_ps(e.sx * *e.sw.add(ch)),
                        _mm256_set1_epi32(e.xz.wrapping_mul(*e.wsum.add(ch))),
                        _mm256_set1_ps(b),
                    )
                } else {
                    let ch = j0 + j;
                    let b = if e.bias.is_null() {
                        _mm256_setzero_ps()
                    } else {
                        _mm256_loadu_ps(e.bias.add(ch))
                    };
                    (
                        _mm256_mul_ps(sx, _mm256_loadu_ps(e.sw.add(ch))),
                        _mm256_mullo_epi32(
                            xz,
                            _mm256_loadu_si256(e.wsum.add(ch) as *const __m256i),
                        ),
                        b,
                    )
                };
                let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, corr));
                let v = act256(_mm256_add_ps(_mm256_mul_ps(v, s), b), e.act);
                _mm256_storeu_ps(c.add(i * ldc + j), v);
                j += 8;
            }
            for j in j..cols {
                let ch = if e.per_row { i0 + i } else { j0 + j };
                *c.add(i * ldc + j) = epi_one(tile[i * NR + j], e, ch);
            }
        }
    }
}

/// A deliberately wrong AVX2 tile that always uses one saturating `vpmaddubsw`, for
/// the test that shows the exact scheme is needed.
///
/// # Safety
/// As [`tile_avx2`].
#[cfg(test)]
pub(crate) unsafe fn tile_avx2_naive(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    rows_u8: bool,
    out: *mut i32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if rows_u8 {
            avx2::<1, true, true>(kq, rows, rs, panel, out)
        } else {
            avx2::<1, false, true>(kq, rows, rs, panel, out)
        }
    }
}
