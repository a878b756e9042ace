//! The blocked sgemm driver shared by the SIMD tiers.
//!
//! `C` is walked in blocks of `nc` columns, `k` in blocks of `kc`, and rows in blocks
//! of `mc`. For each `kc×nc` block, `B` is packed into panels of `NR` columns
//! (`panel[p*NR + j]`), and for each `mc×kc` block, `A` is packed into panels of `MR`
//! rows (`panel[p*MR + i]`), both padded with zeros to whole panels. A micro-kernel then
//! computes each `MR×NR` tile of `C` from one panel of each. Tiles at the right and
//! bottom edges are computed into a scratch tile and merged. The first `k` block applies
//! `beta`; the later ones accumulate.

use std::cell::RefCell;

use super::{scale_c, SgemmShape};

/// Cache-block sizes: rows of `A` (`mc`), depth (`kc`) and columns of `B` (`nc`)
/// packed at a time. `mc` should be a multiple of `MR` and `nc` of `NR`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

/// A micro-kernel: `C[i*ldc + j] = Σ_p a[p*MR + i]·b[p*NR + j] + beta·C[i*ldc + j]` for
/// `i < MR`, `j < NR`, `p < kc`, where `a` and `b` are packed panels. When `beta == 0`,
/// `C` is written without being read. No alignment is required.
///
/// # Safety
/// The CPU must support the kernel's target features; `a` must be valid for `kc*MR`
/// reads, `b` for `kc*NR` reads, and `c` for reads and writes over the `MR×NR` tile.
pub(crate) type MicroKernel =
    unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, beta: f32);

/// The largest `MR*NR` a micro-kernel may have (the size of the scratch tile).
const MAX_TILE: usize = 16 * 32;

thread_local! {
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C = A·B + beta·C` with the micro-kernel `uk` of tile `MR×NR`.
///
/// # Safety
/// `shape` must have been checked against the slices ([`SgemmShape::check`]), and the
/// CPU must support `uk`'s target features.
pub(crate) unsafe fn sgemm_blocked<const MR: usize, const NR: usize>(
    shape: &SgemmShape,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    blk: Blocking,
    uk: MicroKernel,
) {
    const { assert!(MR * NR <= MAX_TILE) };
    let &SgemmShape {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
    } = shape;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale_c(shape, beta, c);
        return;
    }
    let kc_max = blk.kc.min(k);
    let mc_max = blk.mc.min(m).div_ceil(MR) * MR;
    let nc_max = blk.nc.min(n).div_ceil(NR) * NR;
    PACK.with(|cell| {
        // A re-entrant call (none today) would find the buffers borrowed; it then
        // packs into buffers of its own.
        let mut own = (Vec::new(), Vec::new());
        let mut guard = cell.try_borrow_mut();
        let (pa, pb) = match guard.as_deref_mut() {
            Ok(bufs) => bufs,
            Err(_) => &mut own,
        };
        if pa.len() < mc_max * kc_max {
            pa.resize(mc_max * kc_max, 0.0);
        }
        if pb.len() < nc_max * kc_max {
            pb.resize(nc_max * kc_max, 0.0);
        }
        let mut scratch = [0.0f32; MAX_TILE];
        let c_ptr = c.as_mut_ptr();
        for jc in (0..n).step_by(blk.nc) {
            let nb = blk.nc.min(n - jc);
            for pc in (0..k).step_by(blk.kc) {
                let kb = blk.kc.min(k - pc);
                let beta_k = if pc == 0 { beta } else { 1.0 };
                pack_b::<NR>(kb, nb, &b[pc * ldb + jc..], ldb, pb);
                for ic in (0..m).step_by(blk.mc) {
                    let mb = blk.mc.min(m - ic);
                    pack_a::<MR>(mb, kb, &a[ic * lda + pc..], lda, pa);
                    for jr in (0..nb).step_by(NR) {
                        let nr = NR.min(nb - jr);
                        let bp = pb[(jr / NR) * NR * kb..].as_ptr();
                        for ir in (0..mb).step_by(MR) {
                            let mr = MR.min(mb - ir);
                            let ap = pa[(ir / MR) * MR * kb..].as_ptr();
                            let off = (ic + ir) * ldc + jc + jr;
                            if mr == MR && nr == NR {
                                // SAFETY: the checked shape puts the whole tile inside `c`;
                                // the panels hold `kb*MR` and `kb*NR` elements.
                                unsafe { uk(kb, ap, bp, c_ptr.add(off), ldc, beta_k) };
                            } else {
                                // SAFETY: the scratch tile is `NR` wide and `MR` tall.
                                unsafe { uk(kb, ap, bp, scratch.as_mut_ptr(), NR, 0.0) };
                                for i in 0..mr {
                                    let row = &mut c[off + i * ldc..off + i * ldc + nr];
                                    let t = &scratch[i * NR..i * NR + nr];
                                    if beta_k == 0.0 {
                                        row.copy_from_slice(t);
                                    } else {
                                        for (x, &y) in row.iter_mut().zip(t) {
                                            *x = y + beta_k * *x;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs the `mb×kb` block of `A` at the start of `a` (leading dimension `lda`) into
/// panels of `MR` rows, padding the last panel with zero rows.
fn pack_a<const MR: usize>(mb: usize, kb: usize, a: &[f32], lda: usize, out: &mut [f32]) {
    for (panel, r0) in (0..mb).step_by(MR).enumerate() {
        let dst = &mut out[panel * MR * kb..(panel + 1) * MR * kb];
        let rows = MR.min(mb - r0);
        if rows < MR {
            dst.fill(0.0);
        }
        for i in 0..rows {
            let src = &a[(r0 + i) * lda..(r0 + i) * lda + kb];
            for (p, &v) in src.iter().enumerate() {
                dst[p * MR + i] = v;
            }
        }
    }
}

/// Packs the `kb×nb` block of `B` at the start of `b` (leading dimension `ldb`) into
/// panels of `NR` columns, padding the last panel with zero columns.
fn pack_b<const NR: usize>(kb: usize, nb: usize, b: &[f32], ldb: usize, out: &mut [f32]) {
    for (panel, j0) in (0..nb).step_by(NR).enumerate() {
        let dst = &mut out[panel * NR * kb..(panel + 1) * NR * kb];
        let cols = NR.min(nb - j0);
        for p in 0..kb {
            let d = &mut dst[p * NR..(p + 1) * NR];
            d[..cols].copy_from_slice(&b[p * ldb + j0..p * ldb + j0 + cols]);
            d[cols..].fill(0.0);
        }
    }
}
