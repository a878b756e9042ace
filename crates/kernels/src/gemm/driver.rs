//! The blocked sgemm driver shared by every tier's fused path.
//!
//! `C` is walked in blocks of `nc` columns, `k` in blocks of `kc`, and rows in blocks
//! of `mc`. For each `kc×nc` block, `B` is packed into panels of `NR` columns
//! (`panel[p*NR + j]`), and for each `mc×kc` block, `A` is packed into panels of `MR`
//! rows (`panel[p*MR + i]`), both padded with zeros to whole panels; a pre-packed `A`
//! ([`ASrc::Packed`]) skips the packing of `A`. A micro-kernel then computes each
//! `MR×NR` tile of `C` from one panel of each. Tiles at the right and bottom edges are
//! computed into a scratch tile and merged. The first `k` block applies `beta`; after
//! the last one, the micro-kernel applies the epilogue in registers before storing a
//! whole tile, and edge tiles get it right after their merge, while still in cache.

use std::cell::RefCell;

use super::epilogue::{EpiFn, TileEpi};

/// Cache-block sizes: rows of `A` (`mc`), depth (`kc`) and columns of `B` (`nc`)
/// packed at a time. `mc` must be a multiple of `MR` and `nc` of `NR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

/// A micro-kernel: `C[i*ldc + j] = Σ_p a[p*MR + i]·b[p*NR + j] + beta·C[i*ldc + j]` for
/// `i < MR`, `j < NR`, `p < kc`, where `a` and `b` are packed panels, followed, when
/// `epi` is not null, by the tile's bias and activation before the store. When
/// `beta == 0`, `C` is written without being read. No alignment is required.
///
/// # Safety
/// The CPU must support the kernel's target features; `a` must be valid for `kc*MR`
/// reads, `b` for `kc*NR` reads, `c` for reads and writes over the `MR×NR` tile, and
/// `epi`, when not null, must point at an epilogue whose biases cover the tile.
pub(crate) type MicroKernel = unsafe fn(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
);

/// The largest `MR*NR` a micro-kernel may have (the size of the scratch tile).
const MAX_TILE: usize = 16 * 32;

/// Where the driver reads `A` from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ASrc {
    /// Row-major, `a[i*lda + p]`.
    Raw { ptr: *const f32, lda: usize },
    /// Packed by [`pack_a_full`] with the driver's `MR` and `kc`: `rows` is the padded
    /// row count of the whole packed matrix and `row0` (a multiple of `MR`) the first
    /// of its rows this window uses.
    Packed {
        ptr: *const f32,
        rows: usize,
        row0: usize,
    },
}

/// Where the driver reads `B` from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BSrc {
    /// Row-major, `b[p*ldb + j]`.
    Raw { ptr: *const f32, ldb: usize },
    /// Packed by [`pack_b_full`] (or written in its layout) with the driver's `NR` and
    /// `kc`: `cols` is the padded column count of the whole packed matrix and `col0` (a
    /// multiple of `NR`) the first of its columns this window uses.
    Packed {
        ptr: *const f32,
        cols: usize,
        col0: usize,
    },
}

/// One `C[m×n] = epi(A·B + beta·C)` problem in raw pointers, so that threads can work
/// on disjoint windows of one `C`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: ASrc,
    pub b: BSrc,
    pub c: *mut f32,
    pub ldc: usize,
    pub beta: f32,
    pub epi: TileEpi,
}

impl Window {
    /// The window of a plain `C = A·B + beta·C` over raw row-major slices, with no
    /// epilogue; `shape` must have been checked against the slices.
    pub(crate) fn plain(
        shape: &super::SgemmShape,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) -> Self {
        Window {
            m: shape.m,
            n: shape.n,
            k: shape.k,
            a: ASrc::Raw {
                ptr: a.as_ptr(),
                lda: shape.lda,
            },
            b: BSrc::Raw {
                ptr: b.as_ptr(),
                ldb: shape.ldb,
            },
            c: c.as_mut_ptr(),
            ldc: shape.ldc,
            beta,
            epi: TileEpi {
                row_bias: std::ptr::null(),
                col_bias: std::ptr::null(),
                act: crate::epilogue::Activation::Identity,
            },
        }
    }
}

// SAFETY: a window is a description of memory that the code building it guarantees is
// valid and, for `c`, written by one thread only.
unsafe impl Send for Window {}
// SAFETY: as above.
unsafe impl Sync for Window {}

thread_local! {
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Computes the window with the micro-kernel `uk` of tile `MR×NR` and the epilogue
/// `epi_fn`. Grows this thread's packing buffers at most once per size.
///
/// # Safety
/// Every pointer of `w` must be valid for its matrix (and biases for one value per row
/// or column), `c` must not be written by anyone else meanwhile, a packed `A` must have
/// been packed with `MR` and `blk.kc`, and the CPU must support `uk`'s and `epi_fn`'s
/// target features.
pub(crate) unsafe fn gemm_window<const MR: usize, const NR: usize>(
    w: &Window,
    blk: Blocking,
    uk: MicroKernel,
    epi_fn: EpiFn,
) {
    const { assert!(MR * NR <= MAX_TILE) };
    let Window {
        m,
        n,
        k,
        a,
        b,
        c,
        ldc,
        beta,
        epi,
    } = *w;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // SAFETY: the window is valid for `C` and the biases.
        unsafe {
            for i in 0..m {
                let row = std::slice::from_raw_parts_mut(c.add(i * ldc), n);
                if beta == 0.0 {
                    row.fill(0.0);
                } else if beta != 1.0 {
                    row.iter_mut().for_each(|x| *x *= beta);
                }
            }
            epi_fn(c, ldc, m, n, &epi);
        }
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
        if matches!(a, ASrc::Raw { .. }) && pa.len() < mc_max * kc_max {
            pa.resize(mc_max * kc_max, 0.0);
        }
        if matches!(b, BSrc::Raw { .. }) && pb.len() < nc_max * kc_max {
            pb.resize(nc_max * kc_max, 0.0);
        }
        let mut scratch = [0.0f32; MAX_TILE];
        for jc in (0..n).step_by(blk.nc) {
            let nb = blk.nc.min(n - jc);
            for pc in (0..k).step_by(blk.kc) {
                let kb = blk.kc.min(k - pc);
                let beta_k = if pc == 0 { beta } else { 1.0 };
                let last = pc + kb == k;
                let b_blk: *const f32 = match b {
                    BSrc::Raw { ptr, ldb } => {
                        // SAFETY: the window's `B` holds `k` rows of `n` columns.
                        unsafe { pack_b::<NR>(kb, nb, ptr.add(pc * ldb + jc), ldb, pb) };
                        pb.as_ptr()
                    }
                    // SAFETY: the packed matrix holds block `pc` for columns `col0 + jc..`.
                    BSrc::Packed { ptr, cols, col0 } => unsafe {
                        ptr.add(pc * cols + (col0 + jc) * kb)
                    },
                };
                for ic in (0..m).step_by(blk.mc) {
                    let mb = blk.mc.min(m - ic);
                    let a_blk: *const f32 = match a {
                        ASrc::Raw { ptr, lda } => {
                            // SAFETY: the window's `A` holds `m` rows of `k` columns.
                            unsafe { pack_a::<MR>(mb, kb, ptr.add(ic * lda + pc), lda, pa) };
                            pa.as_ptr()
                        }
                        // SAFETY: the packed matrix holds block `pc` for rows `row0 + ic..`.
                        ASrc::Packed { ptr, rows, row0 } => unsafe {
                            ptr.add(pc * rows + (row0 + ic) * kb)
                        },
                    };
                    for jr in (0..nb).step_by(NR) {
                        let nr = NR.min(nb - jr);
                        // SAFETY: panel `jr / NR` of the block holds `kb*NR` values.
                        let bp = unsafe { b_blk.add(jr * kb) };
                        for ir in (0..mb).step_by(MR) {
                            let mr = MR.min(mb - ir);
                            // SAFETY: the panels hold `kb*MR` and `kb*NR` elements; the
                            // tile lies inside the window; the epilogue offsets stay in
                            // the biases.
                            unsafe {
                                let ap = a_blk.add(ir * kb);
                                let cp = c.add((ic + ir) * ldc + jc + jr);
                                if mr == MR && nr == NR {
                                    let tile_epi;
                                    let ep: *const TileEpi = if last && !epi.is_noop() {
                                        tile_epi = epi.offset(ic + ir, jc + jr);
                                        &tile_epi
                                    } else {
                                        std::ptr::null()
                                    };
                                    uk(kb, ap, bp, cp, ldc, beta_k, ep);
                                    continue;
                                } else {
                                    uk(kb, ap, bp, scratch.as_mut_ptr(), NR, 0.0, std::ptr::null());
                                    for i in 0..mr {
                                        let row =
                                            std::slice::from_raw_parts_mut(cp.add(i * ldc), nr);
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
                                if last && !epi.is_noop() {
                                    epi_fn(cp, ldc, mr, nr, &epi.offset(ic + ir, jc + jr));
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs the `mb×kb` block of `A` at `a` (leading dimension `lda`) into panels of `MR`
/// rows, padding the last panel with zero rows.
///
/// # Safety
/// `a` must be valid for the block's reads.
unsafe fn pack_a<const MR: usize>(
    mb: usize,
    kb: usize,
    a: *const f32,
    lda: usize,
    out: &mut [f32],
) {
    for (panel, r0) in (0..mb).step_by(MR).enumerate() {
        let dst = &mut out[panel * MR * kb..(panel + 1) * MR * kb];
        let rows = MR.min(mb - r0);
        if rows < MR {
            dst.fill(0.0);
        }
        for i in 0..rows {
            // SAFETY: row `r0 + i` of the block is readable.
            let src = unsafe { std::slice::from_raw_parts(a.add((r0 + i) * lda), kb) };
            for (p, &v) in src.iter().enumerate() {
                dst[p * MR + i] = v;
            }
        }
    }
}

/// Packs the whole `m×k` matrix `A` for [`ASrc::Packed`]: for each block of `kc`
/// columns (in order), the panels of `MR` rows of every row, the rows padded to a
/// multiple of `MR`. `out` holds `m.div_ceil(MR) * MR * k` values.
pub(crate) fn pack_a_full<const MR: usize>(
    m: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    kc: usize,
    out: &mut [f32],
) {
    let rows = m.div_ceil(MR) * MR;
    for pc in (0..k).step_by(kc) {
        let kb = kc.min(k - pc);
        if m > 0 {
            debug_assert!(a.len() > (m - 1) * lda + pc + kb - 1);
        }
        // SAFETY: `a` holds `m` rows of `k` columns with leading dimension `lda`.
        unsafe {
            pack_a::<MR>(
                m,
                kb,
                a.as_ptr().add(pc),
                lda,
                &mut out[pc * rows..pc * rows + rows * kb],
            )
        };
    }
}

/// Packs the `kb×nb` block of `B` at `b` (leading dimension `ldb`) into panels of `NR`
/// columns, padding the last panel with zero columns.
///
/// # Safety
/// `b` must be valid for the block's reads.
unsafe fn pack_b<const NR: usize>(
    kb: usize,
    nb: usize,
    b: *const f32,
    ldb: usize,
    out: &mut [f32],
) {
    for (panel, j0) in (0..nb).step_by(NR).enumerate() {
        let dst = &mut out[panel * NR * kb..(panel + 1) * NR * kb];
        let cols = NR.min(nb - j0);
        for p in 0..kb {
            let d = &mut dst[p * NR..(p + 1) * NR];
            // SAFETY: row `p` of the block is readable over its `nb` columns.
            let src = unsafe { std::slice::from_raw_parts(b.add(p * ldb + j0), cols) };
            if cols == NR {
                // A copy of constant length, which the compiler inlines.
                let d: &mut [f32; NR] = d.try_into().unwrap_or_else(|_| unreachable!());
                d.copy_from_slice(src);
            } else {
                d[..cols].copy_from_slice(src);
                d[cols..].fill(0.0);
            }
        }
    }
}

/// Packs the whole `k×n` matrix `B` for [`BSrc::Packed`]: for each block of `kc` rows
/// (in order), the panels of `NR` columns of every column, the columns padded to a
/// multiple of `NR`. `out` holds `n.div_ceil(NR) * NR * k` values.
pub(crate) fn pack_b_full<const NR: usize>(
    k: usize,
    n: usize,
    b: &[f32],
    ldb: usize,
    kc: usize,
    out: &mut [f32],
) {
    let cols = n.div_ceil(NR) * NR;
    for pc in (0..k).step_by(kc) {
        let kb = kc.min(k - pc);
        if n > 0 {
            assert!(b.len() >= (pc + kb - 1) * ldb + n);
        }
        // SAFETY: just checked that `b` holds the block's rows.
        unsafe {
            pack_b::<NR>(
                kb,
                n,
                b.as_ptr().add(pc * ldb),
                ldb,
                &mut out[pc * cols..pc * cols + cols * kb],
            )
        };
    }
}
