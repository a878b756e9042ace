//! The AVX2+FMA sgemm: the blocked driver with a 6×16 micro-kernel (12 ymm
//! accumulators, two loads of `B` and six broadcasts of `A` per step of `k`).

use std::arch::x86_64::*;

use super::driver::{gemm_window, pack_a_full, pack_b_full, Blocking, Window};
use super::epilogue::x86::{act256, apply_avx2};
use super::epilogue::TileEpi;
use super::{GemmImpl, SgemmShape};

/// The kernel's name, as `slimnet kernels` prints it.
pub(crate) const NAME: &str = "sgemm_avx2_fma_6x16";

const MR: usize = 6;
const NR: usize = 16;
const BLOCKING: Blocking = Blocking {
    mc: 16 * MR,
    kc: 256,
    nc: 256 * NR,
};

/// `C = A·B + beta·C`; the contract is [`crate::KernelTable::sgemm`]'s, and `shape`
/// must have been checked against the slices.
///
/// Panics when the CPU lacks AVX2 or FMA (the table installs it only when both were
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
    assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
    let w = Window::plain(shape, a, b, beta, c);
    // SAFETY: the feature was just checked; the caller checked the shape.
    unsafe { run(&w, blk) }
}

/// The driver with this tier's micro-kernel and epilogue.
///
/// # Safety
/// As [`gemm_window`], with the tier's features present.
unsafe fn run(w: &Window, blk: Blocking) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_window::<MR, NR>(w, blk, kernel_6x16, apply_avx2) }
}

/// This tier's blocked sgemm.
pub(crate) const IMPL: GemmImpl = GemmImpl {
    name: NAME,
    mr: MR,
    nr: NR,
    blocking: BLOCKING,
    run,
    pack_a: pack_a_full::<MR>,
    pack_b: pack_b_full::<NR>,
};

/// The 6×16 micro-kernel; see [`super::driver::MicroKernel`] for the contract.
///
/// # Safety
/// As [`super::driver::MicroKernel`]: AVX2 and FMA present, pointers valid.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*ap.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        let bv = _mm256_set1_ps(beta);
        let (cb0, cb1) = match epi.as_ref() {
            Some(e) if !e.col_bias.is_null() => (
                _mm256_loadu_ps(e.col_bias),
                _mm256_loadu_ps(e.col_bias.add(8)),
            ),
            _ => (_mm256_setzero_ps(), _mm256_setzero_ps()),
        };
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            let (mut c0, mut c1) = (row[0], row[1]);
            if beta != 0.0 {
                c0 = _mm256_fmadd_ps(bv, _mm256_loadu_ps(cp), c0);
                c1 = _mm256_fmadd_ps(bv, _mm256_loadu_ps(cp.add(8)), c1);
            }
            if let Some(e) = epi.as_ref() {
                let rb = if e.row_bias.is_null() {
                    _mm256_setzero_ps()
                } else {
                    _mm256_set1_ps(*e.row_bias.add(i))
                };
                c0 = act256(_mm256_add_ps(_mm256_add_ps(c0, rb), cb0), e.act);
                c1 = act256(_mm256_add_ps(_mm256_add_ps(c1, rb), cb1), e.act);
            }
            _mm256_storeu_ps(cp, c0);
            _mm256_storeu_ps(cp.add(8), c1);
        }
    }
}
