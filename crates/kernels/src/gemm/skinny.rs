//! Products too thin for the blocked driver, whose tiles would compute mostly padding
//! and whose packing would cost as much as the arithmetic:
//!
//! - few rows (`m <= ROWS_MAX`, e.g. a vector times a weight matrix): each row of `C`
//!   is accumulated from the rows of `B` read in place, with no packing;
//! - few columns (`n <= COLS_MAX`, e.g. a convolution with few output positions) with
//!   `A` packed ahead: each panel of packed `A` is multiplied by a handful of columns of
//!   `B` at a time, the whole depth accumulated in registers (AVX-512 only).

#[cfg(target_arch = "x86_64")]
use super::epilogue::EpiFn;
use super::epilogue::TileEpi;
use crate::cpu::Tier;

/// Products with at most this many rows take the row path.
pub(crate) const ROWS_MAX: usize = 2;
/// Products with packed `A` and at most this many columns take the column path.
pub(crate) const COLS_MAX: usize = 12;

/// Columns of `C` one pass of the row path keeps in registers.
const STRIP: usize = 64;

/// `C[i][j] = Σ_p a[i*lda + p]·b[p*ldb + j]` for `i < m`, `j < n`, then `epi`.
///
/// # Safety
/// `a`, `b` and `c` must be valid for the matrices (`c` for writes, by no one else
/// meanwhile); the CPU must support the functions `tier` selects.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn rows(
    tier: Tier,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &TileEpi,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match tier {
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => rows_avx512(m, n, k, a, lda, b, ldb, c, ldc, epi),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => rows_avx2(m, n, k, a, lda, b, ldb, c, ldc, epi),
            _ => {
                rows_body::<false>(m, n, k, a, lda, b, ldb, c, ldc);
                super::epilogue::apply_portable(c, ldc, m, n, epi);
            }
        }
    }
}

/// The row path for one tier; `FMA` fuses each multiply-add (only where the CPU has
/// the instruction, as `mul_add` is a library call otherwise).
///
/// # Safety
/// As [`rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_body<const FMA: bool>(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    for i in 0..m {
        // SAFETY: the caller vouches for row `i` of `A` and `C`.
        let (ar, cr) = unsafe {
            (
                std::slice::from_raw_parts(a.add(i * lda), k),
                std::slice::from_raw_parts_mut(c.add(i * ldc), n),
            )
        };
        for j0 in (0..n).step_by(STRIP) {
            let w = STRIP.min(n - j0);
            let mut acc = [0.0f32; STRIP];
            for (p, &av) in ar.iter().enumerate() {
                // SAFETY: row `p` of `B` holds columns `j0..j0 + w`.
                let br = unsafe { std::slice::from_raw_parts(b.add(p * ldb + j0), w) };
                if w == STRIP {
                    let br: &[f32; STRIP] = br.try_into().unwrap_or_else(|_| unreachable!());
                    for (x, &bv) in acc.iter_mut().zip(br) {
                        *x = if FMA {
                            av.mul_add(bv, *x)
                        } else {
                            *x + av * bv
                        };
                    }
                } else {
                    for (x, &bv) in acc.iter_mut().zip(br) {
                        *x = if FMA {
                            av.mul_add(bv, *x)
                        } else {
                            *x + av * bv
                        };
                    }
                }
            }
            cr[j0..j0 + w].copy_from_slice(&acc[..w]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &TileEpi,
) {
    // SAFETY: forwarded from the caller; the feature is enabled.
    unsafe {
        rows_body::<true>(m, n, k, a, lda, b, ldb, c, ldc);
        super::epilogue::x86::apply_avx512(c, ldc, m, n, epi);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &TileEpi,
) {
    // SAFETY: forwarded from the caller; the features are enabled.
    unsafe {
        rows_body::<true>(m, n, k, a, lda, b, ldb, c, ldc);
        super::epilogue::x86::apply_avx2(c, ldc, m, n, epi);
    }
}

/// `A` packed by `pack_a_full` for a kernel of `mr` rows and depth blocks of `kc`:
/// `rows` is the padded row count of the whole packed matrix.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct PackedRows {
    pub ptr: *const f32,
    pub rows: usize,
    pub mr: usize,
    pub kc: usize,
}

/// Whether the column path serves a packed `A` with tiles of `mr` rows on `tier`.
pub(crate) fn cols_supported(tier: Tier, mr: usize) -> bool {
    cfg!(target_arch = "x86_64") && tier == Tier::Avx512 && mr <= 16
}

/// `C[i][j] = Σ_p A[row0 + i][p]·b[p*ldb + j]` for `i < m`, `j < n <= COLS_MAX`, then
/// `epi`, with `A` packed (`row0` a multiple of `a.mr`).
///
/// # Safety
/// [`cols_supported`] must hold for the tier in use, which the CPU supports; `a` must
/// hold rows `row0..row0 + m` of `k` columns; `b` and `c` must be valid for the
/// matrices (`c` for writes, by no one else meanwhile).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn cols_avx512(
    a: PackedRows,
    row0: usize,
    m: usize,
    n: usize,
    k: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    epi: &TileEpi,
) {
    use std::arch::x86_64::*;
    const G: usize = 4;
    let epi_fn: EpiFn = super::epilogue::x86::apply_avx512;
    for ir in (0..m).step_by(a.mr) {
        let mr = a.mr.min(m - ir);
        for j0 in (0..n).step_by(G) {
            let g = G.min(n - j0);
            // SAFETY: forwarded from the caller, for rows `row0 + ir..` and columns
            // `j0..j0 + g`.
            let (acc, g) = unsafe {
                let bj = b.add(j0);
                match g {
                    4 => (panel::<4>(a, row0 + ir, k, bj, ldb), 4),
                    3 => {
                        let v = panel::<3>(a, row0 + ir, k, bj, ldb);
                        ([v[0], v[1], v[2], v[2]], 3)
                    }
                    2 => {
                        let v = panel::<2>(a, row0 + ir, k, bj, ldb);
                        ([v[0], v[1], v[1], v[1]], 2)
                    }
                    _ => ([panel::<1>(a, row0 + ir, k, bj, ldb)[0]; 4], 1),
                }
            };
            let mut t = [0.0f32; 16];
            for (jj, x) in acc.iter().enumerate().take(g) {
                // SAFETY: `t` holds 16 values; rows `ir..ir + mr` of column `j0 + jj` lie
                // inside `C`.
                unsafe {
                    _mm512_storeu_ps(t.as_mut_ptr(), *x);
                    for (i, &v) in t.iter().enumerate().take(mr) {
                        *c.add((ir + i) * ldc + j0 + jj) = v;
                    }
                }
            }
            if !epi.is_noop() {
                // SAFETY: the tile lies inside `C` and the offsets inside the biases.
                unsafe { epi_fn(c.add(ir * ldc + j0), ldc, mr, g, &epi.offset(ir, j0)) };
            }
        }
    }
}

/// One panel of packed `A` (rows `row0..row0 + a.mr`) times `J` columns of `B` over the
/// whole depth: column `j` of the product in lane `i` of vector `j`.
///
/// # Safety
/// As [`cols_avx512`] for the panel and the columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn panel<const J: usize>(
    a: PackedRows,
    row0: usize,
    k: usize,
    b: *const f32,
    ldb: usize,
) -> [std::arch::x86_64::__m512; J] {
    use std::arch::x86_64::*;
    let mask: __mmask16 = ((1u32 << a.mr) - 1) as __mmask16;
    let mut acc = [_mm512_setzero_ps(); J];
    for pc in (0..k).step_by(a.kc) {
        let kb = a.kc.min(k - pc);
        // SAFETY: block `pc` of the packed matrix holds the panel of rows `row0..`, `kb`
        // steps of `mr` values; `B` holds rows `pc..pc + kb` of `J` columns.
        unsafe {
            let mut ap = a.ptr.add(pc * a.rows + row0 * kb);
            let mut bp = b.add(pc * ldb);
            for _ in 0..kb {
                let av = _mm512_maskz_loadu_ps(mask, ap);
                for (jj, x) in acc.iter_mut().enumerate() {
                    *x = _mm512_fmadd_ps(av, _mm512_set1_ps(*bp.add(jj)), *x);
                }
                ap = ap.add(a.mr);
                bp = bp.add(ldb);
            }
        }
    }
    acc
}
