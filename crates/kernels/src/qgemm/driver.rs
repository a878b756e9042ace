//! The int8 GEMM driver shared by every tier: the VNNI panel layout and its packing,
//! the walk over tiles, the split over threads, and the portable tile kernel and
//! epilogue.
//!
//! A product is `C[m×n] = epi(R·P)` where `R` ("rows") is `m×k` with each row stored
//! as `k4 = 4·ceil(k/4)` bytes (padding zero), read as 32-bit groups of 4 consecutive
//! `k` values that the micro-kernel broadcasts, and `P` ("panels") is `k×n` in the VNNI
//! panel layout (see [`super::qpanels_len`]). One operand is u8 (activations), the
//! other s8 (weights): with weights on the left, `R` is s8 and `P` u8; with weights on
//! the right, `R` is u8 and `P` s8. Accumulation is exact in i32 (wrapping only when
//! the exact sum leaves the i32 range, which needs `k > 66 000`).

use std::cell::RefCell;

use super::QKernel;
use crate::epilogue::Activation;
use crate::gemm::epilogue::act_scalar;
use crate::parallel::Threads;

/// Columns per panel.
pub(crate) const NR: usize = 32;
/// The largest tile height of any tier.
pub(crate) const MR_MAX: usize = 8;
/// Below this many multiply-adds a product is not split over threads.
const MIN_SPLIT_WORK: usize = 1 << 20;

/// Bytes of one packed panel of depth `k`.
pub(crate) fn panel_len(k: usize) -> usize {
    k.div_ceil(4) * 4 * NR
}

/// Packs columns `0..cols` (`cols <= NR`) of the `k×cols` u8 block `b` (row `p` at
/// `b[p*ldb..]`) into one panel: byte `(p/4)*128 + j*4 + p%4` holds `b[p][j]`; the
/// padding (columns `cols..NR`, rows `k..k4`) is zero. `out` holds
/// [`panel_len`]`(k)` bytes; `b` holds `(k-1)*ldb + cols` bytes when `k, cols > 0`.
pub(crate) fn pack_panel(k: usize, cols: usize, b: &[u8], ldb: usize, out: &mut [u8]) {
    let kq = k.div_ceil(4);
    let out = &mut out[..kq * 4 * NR];
    let full_q = k / 4;
    #[allow(unused_mut)]
    let mut j0 = 0;
    #[cfg(target_arch = "x86_64")]
    while j0 + 16 <= cols {
        for q in 0..full_q {
            let rows: [&[u8]; 4] = std::array::from_fn(|r| &b[(4 * q + r) * ldb + j0..][..16]);
            interleave16(rows, &mut out[q * 128 + j0 * 4..][..64]);
        }
        j0 += 16;
    }
    for q in 0..kq {
        let js = if q < full_q { j0 } else { 0 };
        for j in js..NR {
            for r in 0..4 {
                let p = 4 * q + r;
                out[q * 128 + j * 4 + r] = if j < cols && p < k { b[p * ldb + j] } else { 0 };
            }
        }
    }
}

/// Interleaves 16 columns of 4 rows into 16 groups of 4 bytes (SSE2, part of the
/// x86-64 baseline).
#[cfg(target_arch = "x86_64")]
#[inline]
fn interleave16(rows: [&[u8]; 4], out: &mut [u8]) {
    use std::arch::x86_64::*;
    assert!(out.len() >= 64 && rows.iter().all(|r| r.len() >= 16));
    // SAFETY: every row holds 16 readable bytes and `out` 64 writable ones (checked).
    unsafe {
        let l = |r: &[u8]| _mm_loadu_si128(r.as_ptr() as *const __m128i);
        let (r0, r1, r2, r3) = (l(rows[0]), l(rows[1]), l(rows[2]), l(rows[3]));
        let a = _mm_unpacklo_epi8(r0, r1);
        let b = _mm_unpackhi_epi8(r0, r1);
        let c = _mm_unpacklo_epi8(r2, r3);
        let d = _mm_unpackhi_epi8(r2, r3);
        let o = out.as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(o, _mm_unpacklo_epi16(a, c));
        _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(a, c));
        _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(b, d));
        _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(b, d));
    }
}

/// The fused int8 epilogue as raw pointers: for channel `ch` (the row when `per_row`,
/// else the column), `out = act(sx·sw[ch]·(acc − xz·wsum[ch]) + bias[ch])`, computed
/// as `((acc − xz·wsum) as f32) · (sx·sw) + bias` with the i32 parts wrapping and no
/// fused multiply-add, so that every tier rounds the same way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QEpi {
    pub xz: i32,
    pub sx: f32,
    pub sw: *const f32,
    pub wsum: *const i32,
    /// Null for no bias.
    pub bias: *const f32,
    pub act: Activation,
    pub per_row: bool,
}

/// Where the panels of a product come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PanelSrc {
    /// Already packed: panel `j/NR` at `ptr + (j/NR)·panel_len(k)`.
    Packed(*const u8),
    /// Row-major u8 `k×n` with leading dimension `ldb`, packed one panel at a time.
    Raw { ptr: *const u8, ldb: usize },
}

/// One product in raw pointers, so that threads can compute disjoint parts of `C`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QJob {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Row `i` of `R` at `rows + i·rs`, `4·ceil(k/4)` readable bytes each.
    pub rows: *const u8,
    pub rs: usize,
    pub panels: PanelSrc,
    /// Whether `R` is the u8 operand (weights on the right).
    pub rows_u8: bool,
    /// Whether every weight is in `[-64, 64]` (AVX2's `maddubs` cannot saturate then).
    pub small: bool,
    pub c: *mut f32,
    pub ldc: usize,
    pub epi: QEpi,
}

// SAFETY: a job describes memory that its builder guarantees is valid and, for `c`,
// written by one thread per disjoint part.
unsafe impl Send for QJob {}
// SAFETY: as above.
unsafe impl Sync for QJob {}

thread_local! {
    static PANEL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Computes rows `r0..r1` and columns `j0..j1` (`j0` a multiple of [`NR`]) of `job`
/// with kernel `kern`.
///
/// # Safety
/// The job's pointers must be valid, the window written by no one else meanwhile, and
/// the CPU must support `kern`.
unsafe fn run_part(job: &QJob, kern: QKernel, r0: usize, r1: usize, j0: usize, j1: usize) {
    let kq = job.k.div_ceil(4);
    let plen = panel_len(job.k);
    let mr = kern.mr();
    PANEL.with(|cell| {
        let mut own = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let buf = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut own,
        };
        if matches!(job.panels, PanelSrc::Raw { .. }) && buf.len() < plen {
            buf.resize(plen, 0);
        }
        let mut tile = [0i32; MR_MAX * NR];
        for pj in (j0..j1).step_by(NR) {
            let cols = NR.min(j1 - pj);
            let panel = match job.panels {
                // SAFETY: the packed panels cover every column of the job.
                PanelSrc::Packed(p) => unsafe { p.add(pj / NR * plen) },
                PanelSrc::Raw { ptr, ldb } => {
                    if job.k > 0 {
                        // SAFETY: the job's `B` holds `k` rows of `n` columns.
                        let b = unsafe {
                            std::slice::from_raw_parts(ptr.add(pj), (job.k - 1) * ldb + cols)
                        };
                        pack_panel(job.k, cols, b, ldb, buf);
                    }
                    buf.as_ptr()
                }
            };
            for i0 in (r0..r1).step_by(mr) {
                let r = mr.min(r1 - i0);
                // SAFETY: rows `i0..i0 + r` of `R` and the panel hold `kq` groups; the
                // tile lies inside the job's `C`; the caller vouches for the CPU.
                unsafe {
                    kern.tile(
                        kq,
                        job.rows.add(i0 * job.rs),
                        job.rs,
                        panel,
                        r,
                        job.rows_u8,
                        job.small,
                        tile.as_mut_ptr(),
                    );
                    kern.epilogue(
                        &tile,
                        r,
                        cols,
                        job.c.add(i0 * job.ldc + pj),
                        job.ldc,
                        &job.epi,
                        i0,
                        pj,
                    );
                }
            }
        }
    });
}

/// Computes `job` with `kern`, split over `threads` by blocks of panels, or of rows
/// when there are too few panels; small products run on the caller.
///
/// # Safety
/// As [`run_part`] for the whole job.
pub(crate) unsafe fn run(job: &QJob, kern: QKernel, threads: &Threads) {
    if job.m == 0 || job.n == 0 {
        return;
    }
    let t = threads.count();
    let work = job.m.saturating_mul(job.n).saturating_mul(job.k.max(1));
    let mr = kern.mr();
    let panels = job.n.div_ceil(NR);
    // SAFETY (all three calls): forwarded from the caller; the parts are disjoint.
    if t <= 1 || work < MIN_SPLIT_WORK {
        return unsafe { run_part(job, kern, 0, job.m, 0, job.n) };
    }
    if panels >= 2 * t || job.m < 2 * t * mr {
        let per = panels.div_ceil(t);
        let tasks = panels.div_ceil(per);
        threads.for_each(tasks, |i| {
            let j0 = i * per * NR;
            let j1 = ((i + 1) * per * NR).min(job.n);
            unsafe { run_part(job, kern, 0, job.m, j0, j1) }
        });
    } else {
        let per = job.m.div_ceil(t).div_ceil(mr) * mr;
        let tasks = job.m.div_ceil(per);
        threads.for_each(tasks, |i| {
            let r0 = i * per;
            let r1 = ((i + 1) * per).min(job.m);
            unsafe { run_part(job, kern, r0, r1, 0, job.n) }
        });
    }
}

/// The portable tile kernel: `out[i*NR + j] = Σ R[i][p]·P[p][j]` for `i < r`.
///
/// # Safety
/// `rows` must hold `r` rows of `4·kq` bytes at stride `rs`, `panel` `128·kq` bytes,
/// `out` `r·NR` values.
pub(crate) unsafe fn tile_portable(
    kq: usize,
    rows: *const u8,
    rs: usize,
    panel: *const u8,
    r: usize,
    rows_u8: bool,
    out: *mut i32,
) {
    // SAFETY: forwarded from the caller.
    let (panel, out) = unsafe {
        (
            std::slice::from_raw_parts(panel, kq * 4 * NR),
            std::slice::from_raw_parts_mut(out, r * NR),
        )
    };
    let rows: Vec<&[u8]> = (0..r)
        // SAFETY: forwarded from the caller.
        .map(|i| unsafe { std::slice::from_raw_parts(rows.add(i * rs), kq * 4) })
        .collect();
    out.fill(0);
    // The panel's group `q` as four contiguous rows of 32 columns, widened once and
    // shared by the tile's rows, so that the inner loop runs over contiguous columns.
    let mut pq = [[0i16; NR]; 4];
    for q in 0..kq {
        let src = &panel[q * 128..(q + 1) * 128];
        for (j, g) in src.chunks_exact(4).enumerate() {
            for t in 0..4 {
                pq[t][j] = if rows_u8 {
                    g[t] as i8 as i16
                } else {
                    g[t] as i16
                };
            }
        }
        for (i, row) in rows.iter().enumerate() {
            let acc: &mut [i32; NR] = (&mut out[i * NR..(i + 1) * NR])
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            for (t, col) in pq.iter().enumerate() {
                let x = row[4 * q + t];
                let a = if rows_u8 { x as i32 } else { x as i8 as i32 };
                for (s, &y) in acc.iter_mut().zip(col) {
                    let y = y as i32;
                    // Exact: |a·y| < 2^15, and the sum of `k` such terms fits in i32
                    // for `k < 66 000` (beyond, it wraps like the SIMD kernels).
                    *s = s.wrapping_add(a * y);
                }
            }
        }
    }
}

/// The epilogue of one output value of channel `ch`: the definition every tier
/// follows.
///
/// # Safety
/// The epilogue's pointers must hold channel `ch`.
#[inline]
pub(crate) unsafe fn epi_one(acc: i32, e: &QEpi, ch: usize) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        let s = e.sx * *e.sw.add(ch);
        let corr = e.xz.wrapping_mul(*e.wsum.add(ch));
        let b = if e.bias.is_null() {
            0.0
        } else {
            *e.bias.add(ch)
        };
        act_scalar(acc.wrapping_sub(corr) as f32 * s + b, e.act)
    }
}

/// The portable epilogue of a `r×cols` tile (rows of `tile` at stride [`NR`]) whose
/// first value is row `i0`, column `j0` of the product, stored at `c`.
///
/// # Safety
/// `c` must be valid for the tile's writes at stride `ldc`; the epilogue's pointers
/// must hold the tile's channels.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn epilogue_portable(
    tile: &[i32],
    r: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    e: &QEpi,
    i0: usize,
    j0: usize,
) {
    for i in 0..r {
        for j in 0..cols {
            let ch = if e.per_row { i0 + i } else { j0 + j };
            // SAFETY: forwarded from the caller.
            unsafe { *c.add(i * ldc + j) = epi_one(tile[i * NR + j], e, ch) };
        }
    }
}
