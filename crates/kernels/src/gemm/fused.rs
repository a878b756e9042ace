//! The fused sgemm entry points of [`KernelTable`]: `C = act(A·B + bias)` split over
//! threads, with `A` packed on the fly or once ahead ([`PackedA`]).

use super::driver::{ASrc, BSrc, Window};
use super::epilogue::TileEpi;
use super::skinny::{self, PackedRows};
use super::{GemmImpl, SgemmShape};
use crate::cpu::Tier;
use crate::epilogue::{Bias, Epilogue};
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// Below this many multiply-adds a product is not split over threads.
const MIN_SPLIT_WORK: usize = 1 << 19;

/// A matrix `A` packed once for one [`KernelTable`] (the layout depends on its tier),
/// for repeated products with [`KernelTable::sgemm_packed`]; typically constant
/// weights.
#[derive(Clone, Debug)]
pub struct PackedA {
    tier: Tier,
    imp: &'static GemmImpl,
    m: usize,
    k: usize,
    rows: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Rows of the matrix.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of the matrix.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The tier whose kernels it was packed for.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The blocked kernel it was packed for.
    pub(crate) fn kernel(&self) -> &'static GemmImpl {
        self.imp
    }
}

/// A `B` operand of [`KernelTable::sgemm_packed_raw`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum BArg {
    /// Row-major with leading dimension `ldb`, `len` values readable.
    Raw {
        ptr: *const f32,
        len: usize,
        ldb: usize,
    },
    /// In the layout of [`super::driver::pack_b_full`] for the kernel of the packed `A`
    /// (its `NR` and `kc`), `len` values readable.
    Packed { ptr: *const f32, len: usize },
}

/// A matrix `B` packed once for one [`KernelTable`] (the layout depends on its tier),
/// for repeated products with [`KernelTable::sgemm_packed_b`]; typically constant
/// weights on the right.
#[derive(Clone, Debug)]
pub struct PackedB {
    tier: Tier,
    imp: &'static GemmImpl,
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Rows of the matrix.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The tier whose kernels it was packed for.
    pub fn tier(&self) -> Tier {
        self.tier
    }
}

/// Checks that the biases of `epi` hold a value per row (`m`) or column (`n`) and turns
/// it into the driver's form.
pub(crate) fn tile_epi(epi: &Epilogue, m: usize, n: usize) -> Result<TileEpi, KernelError> {
    let mut t = TileEpi {
        row_bias: std::ptr::null(),
        col_bias: std::ptr::null(),
        act: epi.activation,
    };
    match epi.bias {
        Bias::None => {}
        Bias::PerRow(b) if b.len() >= m => t.row_bias = b.as_ptr(),
        Bias::PerColumn(b) if b.len() >= n => t.col_bias = b.as_ptr(),
        Bias::PerRow(b) => {
            return Err(KernelError::BadShape(format!(
                "per-row bias holds {} values for {m} rows",
                b.len()
            )))
        }
        Bias::PerColumn(b) => {
            return Err(KernelError::BadShape(format!(
                "per-column bias holds {} values for {n} columns",
                b.len()
            )))
        }
    }
    Ok(t)
}

/// Raw pointers that the tasks of one product share, each touching its own part.
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: the tasks of a product read the operands and write disjoint parts of `C`.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The value (a method, so that closures capture the whole `Sync` wrapper).
    fn get(&self) -> T {
        self.0
    }
}

/// Runs `f(j0, cols)` over `n` columns in chunks of a multiple of `step`, split over
/// `threads` when the product (`per_col` multiply-adds per column) is large enough.
fn split_cols(
    per_col: usize,
    n: usize,
    step: usize,
    threads: &Threads,
    f: impl Fn(usize, usize) + Sync,
) {
    let t = threads.count();
    if t <= 1 || per_col.saturating_mul(n) < MIN_SPLIT_WORK || n < 2 * step {
        return f(0, n);
    }
    let chunk = n.div_ceil(t).div_ceil(step) * step;
    threads.for_each(n.div_ceil(chunk), |i| {
        f(i * chunk, chunk.min(n - i * chunk))
    });
}

/// [`split_cols`] over `m` rows.
fn split_rows(
    per_row: usize,
    m: usize,
    step: usize,
    threads: &Threads,
    f: impl Fn(usize, usize) + Sync,
) {
    split_cols(per_row, m, step, threads, f)
}

/// Computes `w` with `g`, split over `threads` by blocks of columns or of rows,
/// whichever leaves each thread less of the operands to read (every thread reads all
/// of `A` when columns are split, all of `B` when rows are), as long as there are
/// enough blocks; one thread (or little work) runs inline.
///
/// # Safety
/// As [`super::driver::gemm_window`] for `g`'s driver.
pub(crate) unsafe fn run_window(g: &GemmImpl, w: &Window, threads: &Threads) {
    let t = threads.count();
    let work = w.m.saturating_mul(w.n).saturating_mul(w.k.max(1));
    let run = |sub: &Window| {
        // SAFETY: forwarded from the caller; windows of a split are disjoint in `C`.
        unsafe { (g.run)(sub, g.blocking) }
    };
    if t <= 1 || work < MIN_SPLIT_WORK {
        return run(w);
    }
    let cols_ok = w.n >= t * g.nr * 2;
    let rows_ok = w.m >= t * g.mr * 2;
    if cols_ok && (!rows_ok || w.n >= w.m) {
        let chunk = w.n.div_ceil(t).div_ceil(g.nr) * g.nr;
        let tasks = w.n.div_ceil(chunk);
        threads.for_each(tasks, |i| {
            let j0 = i * chunk;
            let mut sub = *w;
            sub.n = chunk.min(w.n - j0);
            // SAFETY: `j0 < n`, so the offsets stay inside `B`, `C` and the biases;
            // `j0` is a multiple of `NR` as packed columns need.
            unsafe {
                sub.b = match w.b {
                    BSrc::Raw { ptr, ldb } => BSrc::Raw {
                        ptr: ptr.add(j0),
                        ldb,
                    },
                    BSrc::Packed { ptr, cols, col0 } => BSrc::Packed {
                        ptr,
                        cols,
                        col0: col0 + j0,
                    },
                };
                sub.c = w.c.add(j0);
                sub.epi = w.epi.offset(0, j0);
            }
            run(&sub)
        });
    } else if rows_ok {
        let chunk = w.m.div_ceil(t).div_ceil(g.mr) * g.mr;
        let tasks = w.m.div_ceil(chunk);
        threads.for_each(tasks, |i| {
            let i0 = i * chunk;
            let mut sub = *w;
            sub.m = chunk.min(w.m - i0);
            // SAFETY: `i0 < m`, so the offsets stay inside `A`, `C` and the biases;
            // `i0` is a multiple of `MR` as packed rows need.
            unsafe {
                sub.a = match w.a {
                    ASrc::Raw { ptr, lda } => ASrc::Raw {
                        ptr: ptr.add(i0 * lda),
                        lda,
                    },
                    ASrc::Packed { ptr, rows, row0 } => ASrc::Packed {
                        ptr,
                        rows,
                        row0: row0 + i0,
                    },
                };
                sub.c = w.c.add(i0 * w.ldc);
                sub.epi = w.epi.offset(i0, 0);
            }
            run(&sub)
        });
    } else {
        run(w)
    }
}

impl KernelTable {
    /// `C = act(A·B + bias)` in f32 for row-major matrices with leading dimensions (the
    /// layout of [`KernelTable::sgemm`], with `beta = 0`: `C` is only written).
    ///
    /// The bias and activation of `epilogue` are applied to each tile of `C` right after
    /// it is computed. Work is split over `threads` (disjoint blocks of `C`); with one
    /// thread it runs on the caller with no synchronisation. Steady-state calls do not
    /// allocate: each thread's packing buffers grow once.
    ///
    /// Fails with [`KernelError::BadShape`] when the shape does not fit the slices (as
    /// [`KernelTable::sgemm`]) or a bias holds fewer values than rows (per-row) or
    /// columns (per-column); nothing is written then.
    pub fn sgemm_fused(
        &self,
        shape: &SgemmShape,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        shape.check(a.len(), b.len(), c.len())?;
        let epi = tile_epi(epilogue, shape.m, shape.n)?;
        if shape.m <= skinny::ROWS_MAX {
            let tier = self.tier();
            let ptrs = Shared((a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), epi));
            split_cols(shape.m * shape.k, shape.n, 64, threads, |j0, n| {
                let (a, b, c, epi) = ptrs.get();
                // SAFETY: the shape and biases were checked; `c` is borrowed mutably and
                // each task writes its own columns; the table's tier is supported.
                unsafe {
                    skinny::rows(
                        tier,
                        shape.m,
                        n,
                        shape.k,
                        a,
                        shape.lda,
                        b.add(j0),
                        shape.ldb,
                        c.add(j0),
                        shape.ldc,
                        &epi.offset(0, j0),
                    )
                }
            });
            return Ok(());
        }
        let g = GemmImpl::for_rows(self.tier(), shape.m);
        let w = Window {
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
            beta: 0.0,
            epi,
        };
        // SAFETY: the shape and biases were checked; `c` is borrowed mutably; the
        // table's tier is supported by this CPU.
        unsafe { run_window(g, &w, threads) };
        Ok(())
    }

    /// Packs the `m×k` row-major matrix `a` (leading dimension `lda`) for this table's
    /// [`KernelTable::sgemm_packed`].
    ///
    /// Fails with [`KernelError::BadShape`] when `lda < k` or `a` is too short.
    pub fn pack_a(
        &self,
        m: usize,
        k: usize,
        a: &[f32],
        lda: usize,
    ) -> Result<PackedA, KernelError> {
        SgemmShape {
            m,
            n: 0,
            k,
            lda,
            ldb: 0,
            ldc: 0,
        }
        .check(a.len(), 0, 0)?;
        let g = GemmImpl::for_rows(self.tier(), m);
        let rows = m.div_ceil(g.mr) * g.mr;
        let len = rows
            .checked_mul(k)
            .ok_or_else(|| KernelError::BadShape(format!("A of {m}x{k} is too large to pack")))?;
        let mut data = vec![0.0f32; len];
        (g.pack_a)(m, k, a, lda, g.blocking.kc, &mut data);
        Ok(PackedA {
            tier: self.tier(),
            imp: g,
            m,
            k,
            rows,
            data,
        })
    }

    /// `C = act(A·B + bias)` as [`KernelTable::sgemm_fused`], with `A` packed ahead by
    /// [`KernelTable::pack_a`] of a table of the same tier. `B` is `a.k()×n` with leading
    /// dimension `ldb`; `C` is `a.m()×n` with leading dimension `ldc`.
    ///
    /// Fails with [`KernelError::BadShape`] when `a` was packed for another tier, or as
    /// [`KernelTable::sgemm_fused`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_packed(
        &self,
        a: &PackedA,
        b: &[f32],
        ldb: usize,
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        // SAFETY: checked inside.
        unsafe {
            self.sgemm_packed_raw(
                a,
                0,
                a.m,
                BArg::Raw {
                    ptr: b.as_ptr(),
                    len: b.len(),
                    ldb,
                },
                n,
                c.as_mut_ptr(),
                c.len(),
                ldc,
                epilogue,
                threads,
            )
        }
    }

    /// [`KernelTable::sgemm_packed`] on rows `row0..row0 + m` of `a` (`row0` a multiple
    /// of the tile height, checked) with `B` raw or in the packed layout of `a`'s
    /// kernel, and `C` raw, their lengths given.
    ///
    /// # Safety
    /// `b` must be valid for its `len` reads and `c` for `c_len` reads and writes that
    /// no one else makes meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn sgemm_packed_raw(
        &self,
        a: &PackedA,
        row0: usize,
        m: usize,
        b: BArg,
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        if a.tier != self.tier() {
            return Err(KernelError::BadShape(format!(
                "A was packed for tier {}, not {}",
                a.tier,
                self.tier()
            )));
        }
        let g = a.imp;
        if !row0.is_multiple_of(g.mr) || row0 + m > a.m {
            return Err(KernelError::BadShape(format!(
                "rows {row0}..{} are not a tile-aligned range of packed A",
                row0 + m
            )));
        }
        let (b_src, ldb, b_len) = match b {
            BArg::Raw { ptr, len, ldb } => (BSrc::Raw { ptr, ldb }, ldb, len),
            BArg::Packed { ptr, len } => {
                let cols = n.div_ceil(g.nr) * g.nr;
                let need = cols.saturating_mul(a.k);
                if len < need {
                    return Err(KernelError::BadShape(format!(
                        "packed B holds {len} values, needs {need}"
                    )));
                }
                (BSrc::Packed { ptr, cols, col0: 0 }, n, a.k * n)
            }
        };
        let shape = SgemmShape {
            m,
            n,
            k: a.k,
            lda: a.k,
            ldb,
            ldc,
        };
        shape.check(a.m * a.k, b_len, c_len)?;
        let epi = tile_epi(epilogue, m, n)?;
        if n <= skinny::COLS_MAX && skinny::cols_supported(self.tier(), g.mr) {
            #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
            let ldb = match b_src {
                BSrc::Raw { ldb, .. } => ldb,
                // One panel: row `p` at `p*NR`.
                BSrc::Packed { .. } => g.nr,
            };
            let b = match b_src {
                BSrc::Raw { ptr, .. } | BSrc::Packed { ptr, .. } => ptr,
            };
            let packed = PackedRows {
                ptr: a.data.as_ptr(),
                rows: a.rows,
                mr: g.mr,
                kc: g.blocking.kc,
            };
            let k = a.k;
            let ptrs = Shared((packed, b, c, epi));
            split_rows(n * k, m, g.mr, threads, |i0, rows| {
                let (packed, b, c, epi) = ptrs.get();
                // SAFETY: checked above; each task writes its own rows of `C`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    skinny::cols_avx512(
                        packed,
                        row0 + i0,
                        rows,
                        n,
                        k,
                        b,
                        ldb,
                        c.add(i0 * ldc),
                        ldc,
                        &epi.offset(i0, 0),
                    )
                }
                let _ = (i0, rows, packed, b, c, epi);
            });
            return Ok(());
        }
        let w = Window {
            m,
            n,
            k: a.k,
            a: ASrc::Packed {
                ptr: a.data.as_ptr(),
                rows: a.rows,
                row0,
            },
            b: b_src,
            c,
            ldc,
            beta: 0.0,
            epi,
        };
        // SAFETY: the shape, the biases and the packing were checked; the caller
        // vouches for `b` and `c`.
        unsafe { run_window(g, &w, threads) };
        Ok(())
    }

    /// Packs the `k×n` row-major matrix `b` (leading dimension `ldb`) for this table's
    /// [`KernelTable::sgemm_packed_b`].
    ///
    /// Fails with [`KernelError::BadShape`] when `ldb < n` or `b` is too short.
    pub fn pack_b(
        &self,
        k: usize,
        n: usize,
        b: &[f32],
        ldb: usize,
    ) -> Result<PackedB, KernelError> {
        SgemmShape {
            m: 0,
            n,
            k,
            lda: 0,
            ldb,
            ldc: 0,
        }
        .check(0, b.len(), 0)?;
        let g = GemmImpl::for_tier(self.tier());
        let len = n
            .div_ceil(g.nr)
            .checked_mul(g.nr * k)
            .ok_or_else(|| KernelError::BadShape(format!("B of {k}x{n} is too large to pack")))?;
        let mut data = vec![0.0f32; len];
        (g.pack_b)(k, n, b, ldb, g.blocking.kc, &mut data);
        Ok(PackedB {
            tier: self.tier(),
            imp: g,
            k,
            n,
            data,
        })
    }

    /// `C = act(A·B + bias)` as [`KernelTable::sgemm_fused`], with `B` packed ahead by
    /// [`KernelTable::pack_b`] of a table of the same tier. `A` is `m×b.k()` with
    /// leading dimension `lda`; `C` is `m×b.n()` with leading dimension `ldc`.
    ///
    /// Fails with [`KernelError::BadShape`] when `b` was packed for another tier, or as
    /// [`KernelTable::sgemm_fused`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_packed_b(
        &self,
        a: &[f32],
        lda: usize,
        m: usize,
        b: &PackedB,
        c: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        if b.tier != self.tier() {
            return Err(KernelError::BadShape(format!(
                "B was packed for tier {}, not {}",
                b.tier,
                self.tier()
            )));
        }
        let (k, n) = (b.k, b.n);
        let shape = SgemmShape {
            m,
            n,
            k,
            lda,
            ldb: n,
            ldc,
        };
        shape.check(a.len(), k * n, c.len())?;
        let epi = tile_epi(epilogue, m, n)?;
        // Any kernel with the packing's panel width and depth blocks reads it.
        let rows = GemmImpl::for_rows(self.tier(), m);
        let g = if rows.nr == b.imp.nr && rows.blocking.kc == b.imp.blocking.kc {
            rows
        } else {
            b.imp
        };
        let w = Window {
            m,
            n,
            k,
            a: ASrc::Raw {
                ptr: a.as_ptr(),
                lda,
            },
            b: BSrc::Packed {
                ptr: b.data.as_ptr(),
                cols: n.div_ceil(g.nr) * g.nr,
                col0: 0,
            },
            c: c.as_mut_ptr(),
            ldc,
            beta: 0.0,
            epi,
        };
        // SAFETY: the shape, the biases and the packing were checked; `c` is borrowed
        // mutably; the table's tier is supported by this CPU.
        unsafe { run_window(g, &w, threads) };
        Ok(())
    }
}
