//! Int4 weight-only GEMM/GEMV for MatMul/Gemm with f32 activations: weights `k×n`
//! quantized in blocks of `block_size` rows along `k`, with one f32 scale and an
//! optional 4-bit zero point per (block, column): `w[p][j] = scale[b][j]·(q[p][j] −
//! zero[b][j])`, `b = p / block_size`, `q` in `[-8, 7]`.
//!
//! Packed layout ([`PackedQ4Weights`]): panels of 32 columns (the last padded with
//! zero columns); in a panel, each row `p` of `k` takes 16 bytes, byte `t` holding
//! column `t` in its low nibble and column `t + 16` in its high nibble, as 4-bit
//! two's complement. (ONNX's packed int4 — two values per byte, low nibble first,
//! along the flattened tensor — must be unpacked into `q` before packing.) Scales are
//! stored per panel and block as 32 f32, and zero points as `−scale·zero`, likewise.
//!
//! The kernels unpack nibbles in registers and accumulate each block in f32 before
//! scaling: `out[i][j] = Σ_b scale·Σ_{p∈b} x[i][p]·q[p][j] − scale·zero·Σ_{p∈b} x[i][p]`,
//! for up to 4 rows of `x` at a time (so a panel is unpacked once per 4 rows). From 32
//! rows on, blocks of 256 columns are instead dequantized to f32 and multiplied by the
//! f32 sgemm.

use crate::cpu::Tier;
use crate::epilogue::{Bias, Epilogue};
use crate::error::KernelError;
use crate::gemm::epilogue::act_scalar;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// Columns per panel.
const NR: usize = 32;
/// Rows of `x` computed together.
const ROWS: usize = 4;
/// Below this many multiply-adds a product is not split over threads.
const MIN_SPLIT_WORK: usize = 1 << 18;
/// From this many rows on, blocks of columns are dequantized to f32 and multiplied by
/// the f32 sgemm (the dequantization then costs little per row).
const DEQUANT_ROWS: usize = 32;
/// Columns dequantized at a time by that path.
const DEQUANT_COLS: usize = 256;

/// The int4 kernel family of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Q4Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Q4Kernel {
    /// The kernel for `tier` (available on this CPU).
    pub(crate) fn for_tier(tier: Tier) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::Avx512 {
                return Q4Kernel::Avx512;
            }
            if tier >= Tier::Avx2 {
                return Q4Kernel::Avx2;
            }
        }
        let _ = tier;
        Q4Kernel::Portable
    }

    /// The name `slimnet kernels` prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Q4Kernel::Portable => "gemm_q4_portable",
            #[cfg(target_arch = "x86_64")]
            Q4Kernel::Avx2 => "gemm_q4_avx2_fma",
            #[cfg(target_arch = "x86_64")]
            Q4Kernel::Avx512 => "gemm_q4_avx512f",
        }
    }
}

/// Int4 weights `k×n` packed by [`pack_q4_weights`]; see the module documentation for
/// the layout, which is the same for every tier.
#[derive(Clone, Debug)]
pub struct PackedQ4Weights {
    k: usize,
    n: usize,
    block_size: usize,
    data: Vec<u8>,
    scales: Vec<f32>,
    /// `−scale·zero` per panel, block and column; `None` without zero points.
    zs: Option<Vec<f32>>,
}

impl PackedQ4Weights {
    /// Rows (depth).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (output features).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Rows per quantization block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    fn blocks(&self) -> usize {
        self.k.div_ceil(self.block_size)
    }
}

/// Packs int4 weights: `q` holds `k×n` values in `[-8, 7]` (row-major), `scales` and
/// `zeros` (when given, values in `[-8, 7]`) one per (block, column), row-major
/// `ceil(k/block_size)×n`. `block_size` is 16, 32, 64 or 128.
///
/// Fails with [`KernelError::BadShape`] when a slice is too short, a value is out of
/// range, or the block size is not supported.
pub fn pack_q4_weights(
    k: usize,
    n: usize,
    block_size: usize,
    q: &[i8],
    scales: &[f32],
    zeros: Option<&[i8]>,
) -> Result<PackedQ4Weights, KernelError> {
    let bad = |s: String| Err(KernelError::BadShape(s));
    if ![16, 32, 64, 128].contains(&block_size) {
        return bad(format!(
            "int4 block size {block_size} (expected 16, 32, 64 or 128)"
        ));
    }
    let Some(kn) = k.checked_mul(n) else {
        return bad("int4 weights are too large".into());
    };
    let blocks = k.div_ceil(block_size);
    if q.len() < kn {
        return bad(format!("int4 weights hold {} values, need {kn}", q.len()));
    }
    if scales.len() < blocks * n {
        return bad(format!("{} int4 scales, need {}", scales.len(), blocks * n));
    }
    if zeros.is_some_and(|z| z.len() < blocks * n) {
        return bad(format!("too few int4 zero points, need {}", blocks * n));
    }
    let in_range = |v: &i8| (-8..=7).contains(v);
    if !q[..kn].iter().all(in_range) || !zeros.is_none_or(|z| z[..blocks * n].iter().all(in_range))
    {
        return bad("int4 value outside [-8, 7]".into());
    }
    let panels = n.div_ceil(NR);
    let mut data = vec![0u8; panels * k * 16];
    let mut sc = vec![0.0f32; panels * blocks * NR];
    let mut zs = zeros.map(|_| vec![0.0f32; panels * blocks * NR]);
    for pn in 0..panels {
        for p in 0..k {
            for t in 0..16 {
                let nib = |j: usize| {
                    let j = pn * NR + j;
                    if j < n {
                        q[p * n + j] as u8 & 0xf
                    } else {
                        0
                    }
                };
                data[(pn * k + p) * 16 + t] = nib(t) | nib(t + 16) << 4;
            }
        }
        for b in 0..blocks {
            for j in 0..NR.min(n - pn * NR) {
                let at = (pn * blocks + b) * NR + j;
                let s = scales[b * n + pn * NR + j];
                sc[at] = s;
                if let (Some(zs), Some(z)) = (zs.as_mut(), zeros) {
                    zs[at] = -s * z[b * n + pn * NR + j] as f32;
                }
            }
        }
    }
    Ok(PackedQ4Weights {
        k,
        n,
        block_size,
        data,
        scales: sc,
        zs,
    })
}

/// One panel for up to [`ROWS`] rows, before the epilogue: `out[i][j]` for `i < r`.
struct PanelArgs<'a> {
    w: &'a PackedQ4Weights,
    panel: usize,
    x: &'a [f32],
    lda: usize,
    i0: usize,
    r: usize,
    /// With zero points, `Σ x[i][p]` over each block `b` at `i*blocks + b` (summed in
    /// order of `p`), for every row; otherwise empty.
    xsum: &'a [f32],
}

/// The portable kernel.
#[allow(clippy::needless_range_loop)]
fn panel_portable(a: &PanelArgs, out: &mut [[f32; NR]; ROWS]) {
    let w = a.w;
    let (k, bs, blocks) = (w.k, w.block_size, w.blocks());
    for (i, o) in out.iter_mut().enumerate().take(a.r) {
        let x = &a.x[(a.i0 + i) * a.lda..][..k];
        o.fill(0.0);
        for b in 0..blocks {
            let mut acc = [0.0f32; NR];
            for p in b * bs..((b + 1) * bs).min(k) {
                let bytes = &w.data[(a.panel * k + p) * 16..][..16];
                for t in 0..16 {
                    let lo = ((bytes[t] << 4) as i8 >> 4) as f32;
                    let hi = (bytes[t] as i8 >> 4) as f32;
                    acc[t] += x[p] * lo;
                    acc[t + 16] += x[p] * hi;
                }
            }
            let at = (a.panel * blocks + b) * NR;
            for j in 0..NR {
                o[j] += acc[j] * w.scales[at + j];
                if let Some(zs) = &w.zs {
                    o[j] += a.xsum[(a.i0 + i) * blocks + b] * zs[at + j];
                }
            }
        }
    }
}

/// The AVX-512F kernel: dispatches on the number of rows.
///
/// # Safety
/// AVX-512F present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn panel_avx512(a: &PanelArgs, out: &mut [[f32; NR]; ROWS]) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match a.r {
            1 => panel_avx512_r::<1>(a, out),
            2 => panel_avx512_r::<2>(a, out),
            3 => panel_avx512_r::<3>(a, out),
            _ => panel_avx512_r::<4>(a, out),
        }
    }
}

/// The AVX-512F kernel for `R` rows: nibbles unpacked by a `vpermps` table, two
/// accumulator chains per row and half-panel (even and odd `p`) to hide the FMA
/// latency.
///
/// # Safety
/// AVX-512F present; `a.r == R`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn panel_avx512_r<const R: usize>(a: &PanelArgs, out: &mut [[f32; NR]; ROWS]) {
    use std::arch::x86_64::*;
    let w = a.w;
    let (k, bs, blocks) = (w.k, w.block_size, w.blocks());
    // `vpermps` reads the low 4 bits of each index: the nibble's value from a table.
    let table = _mm512_setr_ps(
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0,
    );
    let xr: [&[f32]; R] = std::array::from_fn(|i| &a.x[(a.i0 + i) * a.lda..][..k]);
    let data = &w.data[a.panel * k * 16..(a.panel + 1) * k * 16];
    let unpack = |p: usize| {
        // SAFETY: row `p < k` of the panel holds 16 bytes.
        let v = _mm512_cvtepu8_epi32(unsafe {
            _mm_loadu_si128(data.as_ptr().add(p * 16) as *const __m128i)
        });
        (
            _mm512_permutexvar_ps(v, table),
            _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(v), table),
        )
    };
    let z = _mm512_setzero_ps();
    let mut tot = [[z; 2]; R];
    for b in 0..blocks {
        let mut acc = [[z; 2]; R];
        let mut acc2 = [[z; 2]; R];
        let (p0, p1) = (b * bs, ((b + 1) * bs).min(k));
        let mut p = p0;
        while p + 2 <= p1 {
            let (lo, hi) = unpack(p);
            let (lo2, hi2) = unpack(p + 1);
            for i in 0..R {
                let xb = _mm512_set1_ps(xr[i][p]);
                acc[i][0] = _mm512_fmadd_ps(xb, lo, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(xb, hi, acc[i][1]);
                let xb = _mm512_set1_ps(xr[i][p + 1]);
                acc2[i][0] = _mm512_fmadd_ps(xb, lo2, acc2[i][0]);
                acc2[i][1] = _mm512_fmadd_ps(xb, hi2, acc2[i][1]);
            }
            p += 2;
        }
        if p < p1 {
            let (lo, hi) = unpack(p);
            for i in 0..R {
                let xb = _mm512_set1_ps(xr[i][p]);
                acc[i][0] = _mm512_fmadd_ps(xb, lo, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(xb, hi, acc[i][1]);
            }
        }
        let at = (a.panel * blocks + b) * NR;
        let s = &w.scales[at..at + NR];
        // SAFETY: `s` holds 32 values.
        let (s0, s1) = unsafe {
            (
                _mm512_loadu_ps(s.as_ptr()),
                _mm512_loadu_ps(s.as_ptr().add(16)),
            )
        };
        let zp = w.zs.as_ref().map(|zs| {
            // SAFETY: as above.
            unsafe {
                (
                    _mm512_loadu_ps(zs.as_ptr().add(at)),
                    _mm512_loadu_ps(zs.as_ptr().add(at + 16)),
                )
            }
        });
        for i in 0..R {
            let a0 = _mm512_add_ps(acc[i][0], acc2[i][0]);
            let a1 = _mm512_add_ps(acc[i][1], acc2[i][1]);
            tot[i][0] = _mm512_fmadd_ps(a0, s0, tot[i][0]);
            tot[i][1] = _mm512_fmadd_ps(a1, s1, tot[i][1]);
            if let Some((z0, z1)) = zp {
                let xb = _mm512_set1_ps(a.xsum[(a.i0 + i) * blocks + b]);
                tot[i][0] = _mm512_fmadd_ps(xb, z0, tot[i][0]);
                tot[i][1] = _mm512_fmadd_ps(xb, z1, tot[i][1]);
            }
        }
    }
    for i in 0..R {
        // SAFETY: each row of `out` holds 32 values.
        unsafe {
            _mm512_storeu_ps(out[i].as_mut_ptr(), tot[i][0]);
            _mm512_storeu_ps(out[i].as_mut_ptr().add(16), tot[i][1]);
        }
    }
}

/// The AVX2+FMA kernel: rows two at a time (8 accumulators of 8 lanes each).
///
/// # Safety
/// AVX2 and FMA present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn panel_avx2(a: &PanelArgs, out: &mut [[f32; NR]; ROWS]) {
    use std::arch::x86_64::*;
    let w = a.w;
    let (k, bs, blocks) = (w.k, w.block_size, w.blocks());
    for o in out.iter_mut() {
        o.fill(0.0);
    }
    for i0 in (0..a.r).step_by(2) {
        let rr = 2.min(a.r - i0);
        let xr: [&[f32]; 2] = std::array::from_fn(|i| {
            if i < rr {
                &a.x[(a.i0 + i0 + i) * a.lda..][..k]
            } else {
                &[]
            }
        });
        for b in 0..blocks {
            // Columns 0-7, 8-15, 16-23, 24-31 of each row.
            let mut acc = [[_mm256_setzero_ps(); 4]; 2];
            for p in b * bs..((b + 1) * bs).min(k) {
                let bytes = &w.data[(a.panel * k + p) * 16..][..16];
                // SAFETY: `bytes` holds 16 readable bytes.
                let (v0, v1) = unsafe {
                    (
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.as_ptr() as *const __m128i)),
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                            bytes.as_ptr().add(8) as *const __m128i
                        )),
                    )
                };
                // Sign-extended nibbles: shift to the top, then arithmetically down.
                let lo =
                    |v| _mm256_cvtepi32_ps(_mm256_srai_epi32::<28>(_mm256_slli_epi32::<28>(v)));
                let hi =
                    |v| _mm256_cvtepi32_ps(_mm256_srai_epi32::<28>(_mm256_slli_epi32::<24>(v)));
                let q = [lo(v0), lo(v1), hi(v0), hi(v1)];
                for i in 0..rr {
                    let xv = xr[i][p];
                    let xb = _mm256_set1_ps(xv);
                    for h in 0..4 {
                        acc[i][h] = _mm256_fmadd_ps(xb, q[h], acc[i][h]);
                    }
                }
            }
            let at = (a.panel * blocks + b) * NR;
            for i in 0..rr {
                let o = &mut out[i0 + i];
                for h in 0..4 {
                    // SAFETY: the scales, zero terms and row hold 32 values from `at`/0.
                    unsafe {
                        let op = o.as_mut_ptr().add(h * 8);
                        let mut t = _mm256_loadu_ps(op);
                        t = _mm256_fmadd_ps(
                            acc[i][h],
                            _mm256_loadu_ps(w.scales.as_ptr().add(at + h * 8)),
                            t,
                        );
                        if let Some(zs) = &w.zs {
                            t = _mm256_fmadd_ps(
                                _mm256_set1_ps(a.xsum[(a.i0 + i0 + i) * blocks + b]),
                                _mm256_loadu_ps(zs.as_ptr().add(at + h * 8)),
                                t,
                            );
                        }
                        _mm256_storeu_ps(op, t);
                    }
                }
            }
        }
    }
}

/// Writes columns `j0..j0 + nb` of the dequantized weights into `out` (`k×nb`,
/// row-major).
fn dequantize_cols(w: &PackedQ4Weights, j0: usize, nb: usize, out: &mut [f32]) {
    let (k, bs, blocks) = (w.k, w.block_size, w.blocks());
    debug_assert!(j0.is_multiple_of(NR));
    for pn in j0 / NR..(j0 + nb).div_ceil(NR) {
        let c0 = pn * NR - j0;
        let cols = NR.min(j0 + nb - pn * NR);
        for p in 0..k {
            let at = (pn * blocks + p / bs) * NR;
            let sc = &w.scales[at..at + NR];
            let bytes = &w.data[(pn * k + p) * 16..][..16];
            let mut v = [0.0f32; NR];
            for t in 0..16 {
                v[t] = ((bytes[t] << 4) as i8 >> 4) as f32 * sc[t];
                v[t + 16] = (bytes[t] as i8 >> 4) as f32 * sc[t + 16];
            }
            if let Some(zs) = &w.zs {
                for (x, z) in v.iter_mut().zip(&zs[at..at + NR]) {
                    *x += z;
                }
            }
            out[p * nb + c0..p * nb + c0 + cols].copy_from_slice(&v[..cols]);
        }
    }
}

/// A raw output pointer that threads write disjoint columns of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes its own panels' columns.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl KernelTable {
    /// `out = act(x·W + bias)` with f32 activations `x` (`m×w.k()`, row-major, leading
    /// dimension `lda`), int4 weights `W` packed by [`pack_q4_weights`], and f32 `out`
    /// (`m×w.n()`, leading dimension `ldc`). The bias of `epilogue` may be per column
    /// (the usual Gemm bias), per row, or none; the activation follows it. Rows are
    /// computed four at a time; panels of 32 columns are split over `threads`.
    ///
    /// Fails with [`KernelError::BadShape`] when a slice is too short, a leading
    /// dimension smaller than its row, or the bias too short; nothing is written then.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_q4(
        &self,
        m: usize,
        x: &[f32],
        lda: usize,
        w: &PackedQ4Weights,
        out: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let (k, n) = (w.k, w.n);
        super::check_matrix("x", m, k, lda, x.len())?;
        super::check_matrix("out", m, n, ldc, out.len())?;
        match epilogue.bias {
            Bias::PerRow(b) if b.len() < m => {
                return Err(KernelError::BadShape(format!(
                    "per-row bias holds {} values for {m} rows",
                    b.len()
                )))
            }
            Bias::PerColumn(b) if b.len() < n => {
                return Err(KernelError::BadShape(format!(
                    "per-column bias holds {} values for {n} columns",
                    b.len()
                )))
            }
            _ => {}
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if m >= DEQUANT_ROWS {
            return self.gemm_q4_dequant(m, x, lda, w, out, ldc, epilogue, threads);
        }
        let kern = self.quant.q4;
        let panels = n.div_ceil(NR);
        let blocks = w.blocks();
        let xsum: Vec<f32> = if w.zs.is_some() {
            (0..m * blocks)
                .map(|ib| {
                    let (i, b) = (ib / blocks, ib % blocks);
                    let p1 = ((b + 1) * w.block_size).min(k);
                    x[i * lda + b * w.block_size..i * lda + p1].iter().sum()
                })
                .collect()
        } else {
            Vec::new()
        };
        let o = OutPtr(out.as_mut_ptr());
        let act = epilogue.activation;
        let bias = epilogue.bias;
        let task = |pn0: usize, pn1: usize| {
            let mut tile = [[0.0f32; NR]; ROWS];
            for panel in pn0..pn1 {
                let cols = NR.min(n - panel * NR);
                for i0 in (0..m).step_by(ROWS) {
                    let a = PanelArgs {
                        w,
                        panel,
                        x,
                        lda,
                        i0,
                        r: ROWS.min(m - i0),
                        xsum: &xsum,
                    };
                    match kern {
                        Q4Kernel::Portable => panel_portable(&a, &mut tile),
                        // SAFETY: the table's tier is supported by this CPU.
                        #[cfg(target_arch = "x86_64")]
                        Q4Kernel::Avx512 => unsafe { panel_avx512(&a, &mut tile) },
                        // SAFETY: as above.
                        #[cfg(target_arch = "x86_64")]
                        Q4Kernel::Avx2 => unsafe { panel_avx2(&a, &mut tile) },
                    }
                    for (i, row) in tile.iter().enumerate().take(a.r) {
                        for (j, &v) in row.iter().enumerate().take(cols) {
                            let (ii, jj) = (i0 + i, panel * NR + j);
                            let b = match bias {
                                Bias::None => 0.0,
                                Bias::PerRow(b) => b[ii],
                                Bias::PerColumn(b) => b[jj],
                            };
                            // SAFETY: `(ii, jj)` lies in the checked output, and only
                            // this task writes the panel's columns.
                            unsafe { *o.get().add(ii * ldc + jj) = act_scalar(v + b, act) };
                        }
                    }
                }
            }
        };
        let t = threads.count();
        if t <= 1 || m.saturating_mul(n).saturating_mul(k) < MIN_SPLIT_WORK || panels < 2 {
            task(0, panels);
        } else {
            let per = panels.div_ceil(t);
            threads.for_each(panels.div_ceil(per), |i| {
                task(i * per, ((i + 1) * per).min(panels))
            });
        }
        Ok(())
    }

    /// [`KernelTable::gemm_q4`] for many rows: blocks of columns dequantized to f32,
    /// then the f32 sgemm with the epilogue fused. Arguments were checked.
    #[allow(clippy::too_many_arguments)]
    fn gemm_q4_dequant(
        &self,
        m: usize,
        x: &[f32],
        lda: usize,
        w: &PackedQ4Weights,
        out: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let (k, n) = (w.k, w.n);
        let mut buf = vec![0.0f32; k * DEQUANT_COLS.min(n)];
        for j0 in (0..n).step_by(DEQUANT_COLS) {
            let nb = DEQUANT_COLS.min(n - j0);
            dequantize_cols(w, j0, nb, &mut buf);
            let epi = Epilogue {
                bias: match epilogue.bias {
                    Bias::PerColumn(b) => Bias::PerColumn(&b[j0..]),
                    b => b,
                },
                activation: epilogue.activation,
            };
            let shape = crate::gemm::SgemmShape {
                m,
                n: nb,
                k,
                lda,
                ldb: nb,
                ldc,
            };
            self.sgemm_fused(&shape, x, &buf, &mut out[j0..], &epi, threads)?;
        }
        Ok(())
    }
}
