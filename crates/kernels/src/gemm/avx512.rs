//! The AVX-512F sgemm: the blocked driver with an `MR`×32 micro-kernel (`2·MR` zmm
//! accumulators, two loads of `B` and `MR` broadcasts of `A` per step of `k`). The
//! 14-row tile is the default; shorter ones ([`IMPL_12`], [`IMPL_8`], [`IMPL_4`]) serve
//! products with few rows, where a 14-row tile would compute mostly padding.

use std::arch::x86_64::*;

use super::driver::{gemm_window, pack_a_full, pack_b_full, Blocking, Window};
use super::epilogue::x86::{act512, apply_avx512};
use super::epilogue::TileEpi;
use super::{GemmImpl, SgemmShape};

/// The kernel's name, as `slimnet kernels` prints it.
pub(crate) const NAME: &str = "sgemm_avx512f_14x32";

const MR: usize = 14;
const NR: usize = 32;
const BLOCKING: Blocking = blocking(MR);

/// The cache blocks for a tile of `mr` rows: about 112 rows of `A` per block.
const fn blocking(mr: usize) -> Blocking {
    Blocking {
        mc: 112 / mr * mr,
        kc: 512,
        nc: 128 * NR,
    }
}

/// `C = A·B + beta·C`; the contract is [`crate::KernelTable::sgemm`]'s, and `shape`
/// must have been checked against the slices.
///
/// Panics when the CPU lacks AVX-512F (the table installs it only when it was
/// detected, so this never fires through the table).
pub(crate) fn sgemm(shape: &SgemmShape, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    sgemm_with(shape, a, b, beta, c, BLOCKING);
}

/// [`sgemm`] with explicit cache blocks (tests use small ones to cross every edge).
pub(crate) fn sgemm_with(
    shape: &SgemmShape,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    blk: Blocking,
) {
    sgemm_with_rows::<MR>(shape, a, b, beta, c, blk);
}

/// [`sgemm_with`] with a tile of `R` rows (`blk.mc` a multiple of `R`).
pub(crate) fn sgemm_with_rows<const R: usize>(
    shape: &SgemmShape,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    blk: Blocking,
) {
    assert!(is_x86_feature_detected!("avx512f"));
    let w = Window::plain(shape, a, b, beta, c);
    // SAFETY: the feature was just checked; the caller checked the shape.
    unsafe { run::<R>(&w, blk) }
}

/// The driver with this tier's micro-kernel and epilogue.
///
/// # Safety
/// As [`gemm_window`], with the tier's features present.
unsafe fn run<const R: usize>(w: &Window, blk: Blocking) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_window::<R, NR>(w, blk, kernel::<R>, apply_avx512) }
}

/// The blocked sgemm with a tile of `R` rows.
const fn imp<const R: usize>(name: &'static str) -> GemmImpl {
    GemmImpl {
        name,
        mr: R,
        nr: NR,
        blocking: blocking(R),
        run: run::<R>,
        pack_a: pack_a_full::<R>,
        pack_b: pack_b_full::<NR>,
    }
}

/// This tier's blocked sgemm.
pub(crate) const IMPL: GemmImpl = imp::<MR>(NAME);
/// The same with a 12-row tile.
pub(crate) const IMPL_12: GemmImpl = imp::<12>("sgemm_avx512f_12x32");
/// The same with an 8-row tile.
pub(crate) const IMPL_8: GemmImpl = imp::<8>("sgemm_avx512f_8x32");
/// The same with a 4-row tile.
pub(crate) const IMPL_4: GemmImpl = imp::<4>("sgemm_avx512f_4x32");

/// The `R`×32 micro-kernel; see [`super::driver::MicroKernel`] for the contract.
///
/// # Safety
/// As [`super::driver::MicroKernel`]: AVX-512F present, pointers valid.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    unsafe {
        for i in 0..R {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16) as *const i8);
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(R);
            bp = bp.add(NR);
        }
        let bv = _mm512_set1_ps(beta);
        let (cb0, cb1) = match epi.as_ref() {
            Some(e) if !e.col_bias.is_null() => (
                _mm512_loadu_ps(e.col_bias),
                _mm512_loadu_ps(e.col_bias.add(16)),
            ),
            _ => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            let (mut c0, mut c1) = (row[0], row[1]);
            if beta != 0.0 {
                c0 = _mm512_fmadd_ps(bv, _mm512_loadu_ps(cp), c0);
                c1 = _mm512_fmadd_ps(bv, _mm512_loadu_ps(cp.add(16)), c1);
            }
            if let Some(e) = epi.as_ref() {
                let rb = if e.row_bias.is_null() {
                    _mm512_setzero_ps()
                } else {
                    _mm512_set1_ps(*e.row_bias.add(i))
                };
                c0 = act512(_mm512_add_ps(_mm512_add_ps(c0, rb), cb0), e.act);
                c1 = act512(_mm512_add_ps(_mm512_add_ps(c1, rb), cb1), e.act);
            }
            _mm512_storeu_ps(cp, c0);
            _mm512_storeu_ps(cp.add(16), c1);
        }
    }
}
