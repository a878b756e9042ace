//! The portable sgemm: an i-k-j loop whose inner loop runs along rows of `B` and `C`,
//! so that the compiler vectorizes it for the baseline target.

use super::driver::{gemm_window, pack_a_full, pack_b_full, Blocking, Window};
use super::epilogue::{apply_portable, TileEpi};
use super::{scale_c, GemmImpl, SgemmShape};

/// `C = A·B + beta·C`; the contract is [`crate::KernelTable::sgemm`]'s, and `shape`
/// must have been checked against the slices.
pub(crate) fn sgemm(shape: &SgemmShape, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let &SgemmShape {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    } = shape;
    scale_c(shape, beta, c);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    for i in 0..m {
        let c_row = &mut c[i * ldc..i * ldc + n];
        let a_row = &a[i * lda..i * lda + k];
        for (p, &aip) in a_row.iter().enumerate() {
            let b_row = &b[p * ldb..p * ldb + n];
            for (cj, &bj) in c_row.iter_mut().zip(b_row) {
                *cj += aip * bj;
            }
        }
    }
}

/// The name of the portable blocked sgemm behind the fused entry points.
pub(crate) const BLOCKED_NAME: &str = "sgemm_portable_blocked_4x16";

const MR: usize = 4;
const NR: usize = 16;
const BLOCKING: Blocking = Blocking {
    mc: 32 * MR,
    kc: 256,
    nc: 128 * NR,
};

/// A plain-Rust micro-kernel of tile `MR×NR` that the compiler vectorizes for the
/// baseline target; see [`MicroKernel`](super::driver::MicroKernel) for the contract.
///
/// # Safety
/// As [`MicroKernel`](super::driver::MicroKernel).
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: the caller guarantees `kc` panels of `a` and `b` and the tile of `c`.
    unsafe {
        let a = std::slice::from_raw_parts(a, kc * MR);
        let b = std::slice::from_raw_parts(b, kc * NR);
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &ai) in acc.iter_mut().zip(ap) {
                for (x, &bj) in row.iter_mut().zip(bp) {
                    *x += ai * bj;
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let cr = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
            if beta == 0.0 {
                cr.copy_from_slice(row);
            } else {
                for (x, &y) in cr.iter_mut().zip(row) {
                    *x = y + beta * *x;
                }
            }
        }
        if let Some(e) = epi.as_ref() {
            apply_portable(c, ldc, MR, NR, e);
        }
    }
}

/// The driver with the portable micro-kernel and epilogue.
///
/// # Safety
/// As [`gemm_window`].
unsafe fn run(w: &Window, blk: Blocking) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_window::<MR, NR>(w, blk, kernel, apply_portable) }
}

/// The portable blocked sgemm.
pub(crate) const IMPL: GemmImpl = GemmImpl {
    name: BLOCKED_NAME,
    mr: MR,
    nr: NR,
    blocking: BLOCKING,
    run,
    pack_a: pack_a_full::<MR>,
    pack_b: pack_b_full::<NR>,
};
