//! Quantized kernels for post-training quantization: f32 → u8/s8 quantization, int8
//! GEMM with the weights on either side, int8 convolution, and int4 weight-only GEMM.
//!
//! Scheme: activations are u8 with a scalar zero point `xz` and scale `sx`
//! (`x = sx·(x_q − xz)`); weights are s8, symmetric, with one f32 scale per output
//! channel (or one for all). Products accumulate exactly in i32; the fused epilogue
//! then computes, for output channel `ch`,
//! `out = act(sx·sw[ch]·(acc − xz·wsum[ch]) + bias[ch])` where `wsum[ch]` is the sum
//! of the channel's weights (computed when packing). The epilogue is evaluated as
//! `((acc − xz·wsum) as f32) · (sx·sw) + bias` (i32 parts wrapping, no fused
//! multiply-add) in every tier, so tiers differ only in the vector activations.
//!
//! Kernels: AVX-512 VNNI (`vpdpbusd`), AVX2 (exact, see `x86.rs`) and portable; every
//! one gives the same i32 accumulators. The table picks VNNI on the AVX-512 tier when
//! the CPU has AVX-512 VNNI and AVX2 otherwise.

mod conv;
mod driver;
mod q4;
mod quantize;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

pub use conv::PackedQConvWeights;
pub use q4::{pack_q4_weights, PackedQ4Weights};

use crate::cpu::{CpuFeatures, Tier};
use crate::epilogue::Activation;
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;
use driver::{PanelSrc, QEpi, QJob, NR};
use quantize::QuantizeFn;

/// The int8 GEMM micro-kernel family a table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QKernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl QKernel {
    /// The kernel for `tier` on a CPU with features `f` (the tier being available).
    pub(crate) fn for_tier(tier: Tier, f: &CpuFeatures) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::Avx512 && f.avx512f && f.avx512vnni {
                return QKernel::Avx512Vnni;
            }
            if tier >= Tier::Avx2 && f.avx2 && f.fma {
                return QKernel::Avx2;
            }
        }
        let _ = (tier, f);
        QKernel::Portable
    }

    /// Every kernel this CPU can run (tests force each).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<QKernel> {
        let f = CpuFeatures::detect();
        let mut v = vec![QKernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if f.avx2 && f.fma {
                v.push(QKernel::Avx2);
            }
            if f.avx512f && f.avx512vnni {
                v.push(QKernel::Avx512Vnni);
            }
        }
        let _ = f;
        v
    }

    /// The name `slimnet kernels` prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            QKernel::Portable => "qgemm_portable",
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx2 => "qgemm_avx2",
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx512Vnni => "qgemm_avx512vnni",
        }
    }

    /// Rows per tile.
    pub(crate) fn mr(self) -> usize {
        match self {
            QKernel::Portable => 4,
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx2 => 4,
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx512Vnni => 8,
        }
    }

    /// One tile of `r <= mr()` rows; see [`driver::tile_portable`].
    ///
    /// # Safety
    /// As [`driver::tile_portable`], and the CPU supports the kernel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn tile(
        self,
        kq: usize,
        rows: *const u8,
        rs: usize,
        panel: *const u8,
        r: usize,
        rows_u8: bool,
        small: bool,
        out: *mut i32,
    ) {
        let _ = small;
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                QKernel::Portable => driver::tile_portable(kq, rows, rs, panel, r, rows_u8, out),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx2 => x86::tile_avx2(kq, rows, rs, panel, r, rows_u8, small, out),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx512Vnni => x86::tile_vnni(kq, rows, rs, panel, r, rows_u8, out),
            }
        }
    }

    /// The epilogue of one tile; see [`driver::epilogue_portable`].
    ///
    /// # Safety
    /// As [`driver::epilogue_portable`], and the CPU supports the kernel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn epilogue(
        self,
        tile: &[i32],
        r: usize,
        cols: usize,
        c: *mut f32,
        ldc: usize,
        e: &QEpi,
        i0: usize,
        j0: usize,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match self {
                QKernel::Portable => driver::epilogue_portable(tile, r, cols, c, ldc, e, i0, j0),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx2 => x86::epilogue_avx2(tile, r, cols, c, ldc, e, i0, j0),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx512Vnni => x86::epilogue_avx512(tile, r, cols, c, ldc, e, i0, j0),
            }
        }
    }
}

/// The quantized kernels of one table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuantKernels {
    pub(crate) q8: QKernel,
    quantize: QuantizeFn,
    quantize_name: &'static str,
    pub(crate) q4: q4::Q4Kernel,
}

impl QuantKernels {
    /// The kernels for `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(tier: Tier) -> Self {
        let f = CpuFeatures::detect();
        #[allow(unused_mut)]
        let mut k = QuantKernels {
            q8: QKernel::for_tier(tier, &f),
            quantize: quantize::portable,
            quantize_name: "quantize_portable",
            q4: q4::Q4Kernel::for_tier(tier),
        };
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::Avx2 {
                k.quantize = quantize::x86::avx2;
                k.quantize_name = "quantize_avx2";
            }
            if tier >= Tier::Avx512 {
                k.quantize = quantize::x86::avx512;
                k.quantize_name = "quantize_avx512f";
            }
        }
        k
    }

    /// Every slot with the name of the kernel installed in it.
    pub(crate) fn picks(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("quantize", self.quantize_name),
            ("qgemm", self.q8.name()),
            ("qconv", self.q8.name()),
            ("gemm_q4", self.q4.name()),
        ]
    }
}

/// What the int8 products apply to their i32 accumulators: the activations'
/// quantization, a bias per output channel and an activation.
#[derive(Clone, Copy, Debug)]
pub struct QEpilogue<'a> {
    /// Scale of the u8 activations (`sx`).
    pub x_scale: f32,
    /// Zero point of the u8 activations (`xz`).
    pub x_zero: u8,
    /// One value per output channel, added after scaling.
    pub bias: Option<&'a [f32]>,
    /// Applied after the bias, as in [`crate::Epilogue`].
    pub activation: Activation,
}

/// s8 weights `m×k` for products with the weights on the left ([`KernelTable::qgemm`]):
/// row `i` (an output channel) stored as `4·ceil(k/4)` bytes (zero padded), with its
/// scale and the sum of its weights. The layout is the same for every tier.
#[derive(Clone, Debug)]
pub struct PackedQWeights {
    m: usize,
    k: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    small: bool,
}

impl PackedQWeights {
    /// Rows (output channels).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns (depth).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The scale of every row.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The sum of every row's weights.
    pub fn row_sums(&self) -> &[i32] {
        &self.sums
    }
}

/// s8 weights `k×n` for products with the weights on the right
/// ([`KernelTable::qgemm_rhs`]), in the VNNI panel layout of [`qpanels_len`], with one
/// scale and the weight sum per column. The layout is the same for every tier.
#[derive(Clone, Debug)]
pub struct PackedQWeightsRhs {
    k: usize,
    n: usize,
    data: Vec<u8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    small: bool,
}

impl PackedQWeightsRhs {
    /// Rows (depth).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The scale of every column.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The sum of every column's weights.
    pub fn col_sums(&self) -> &[i32] {
        &self.sums
    }
}

fn bad<T>(s: String) -> Result<T, KernelError> {
    Err(KernelError::BadShape(s))
}

/// Checks that a row-major `rows×cols` matrix with leading dimension `ld` fits in
/// `len` values.
fn check_matrix(
    name: &str,
    rows: usize,
    cols: usize,
    ld: usize,
    len: usize,
) -> Result<(), KernelError> {
    crate::gemm::SgemmShape {
        m: rows,
        n: 0,
        k: cols,
        lda: ld,
        ldb: 0,
        ldc: 0,
    }
    .check(len, 0, 0)
    .map_err(|e| KernelError::BadShape(format!("{name}: {e}")))
}

/// The scales of `count` channels from one value per channel or one for all.
fn expand_scales(scales: &[f32], count: usize) -> Result<Vec<f32>, KernelError> {
    match scales.len() {
        1 => Ok(vec![scales[0]; count]),
        l if l == count => Ok(scales.to_vec()),
        l => bad(format!(
            "{l} weight scales for {count} channels (expected 1 or {count})"
        )),
    }
}

/// Packs s8 weights `w` (`m×k`, row-major, dense) with `scales` (one per row, or one
/// for all) for [`KernelTable::qgemm`] and [`KernelTable::qgemm_prepacked`]: pads `k`
/// to a multiple of 4 and computes each row's weight sum.
///
/// Fails with [`KernelError::BadShape`] when `w` holds fewer than `m·k` values or
/// `scales` has neither 1 nor `m` values.
pub fn pack_qweights(
    m: usize,
    k: usize,
    w: &[i8],
    scales: &[f32],
) -> Result<PackedQWeights, KernelError> {
    check_matrix("weights", m, k, k, w.len())?;
    let scales = expand_scales(scales, m)?;
    let k4 = k.div_ceil(4) * 4;
    let mut data = vec![0i8; m * k4];
    let mut sums = vec![0i32; m];
    let mut small = true;
    for i in 0..m {
        let src = &w[i * k..(i + 1) * k];
        data[i * k4..i * k4 + k].copy_from_slice(src);
        sums[i] = src.iter().map(|&v| v as i32).sum();
        small &= src.iter().all(|&v| (-64..=64).contains(&v));
    }
    Ok(PackedQWeights {
        m,
        k,
        data,
        scales,
        sums,
        small,
    })
}

/// Packs s8 weights `w` (`k×n`, row-major, dense) with `scales` (one per column, or
/// one for all) for [`KernelTable::qgemm_rhs`], computing each column's weight sum.
///
/// Fails with [`KernelError::BadShape`] when `w` holds fewer than `k·n` values or
/// `scales` has neither 1 nor `n` values.
pub fn pack_qweights_rhs(
    k: usize,
    n: usize,
    w: &[i8],
    scales: &[f32],
) -> Result<PackedQWeightsRhs, KernelError> {
    check_matrix("weights", k, n, n, w.len())?;
    let scales = expand_scales(scales, n)?;
    // SAFETY: i8 and u8 have the same size and alignment; any byte is a valid u8.
    let bytes = unsafe { std::slice::from_raw_parts(w.as_ptr() as *const u8, w.len()) };
    let mut data = vec![0u8; qpanels_len(k, n)];
    pack_panels_into(k, n, bytes, n, &mut data);
    let mut sums = vec![0i32; n];
    let mut small = true;
    for row in w.chunks_exact(n.max(1)).take(k) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v as i32;
            small &= (-64..=64).contains(&v);
        }
    }
    Ok(PackedQWeightsRhs {
        k,
        n,
        data,
        scales,
        sums,
        small,
    })
}

/// Bytes of a `k×n` matrix in the VNNI panel layout: panels of 32 columns (the last
/// padded with zero columns), each panel `4·ceil(k/4)·32` bytes, in which element
/// `(p, j)` of the panel sits at byte `(p/4)·128 + j·4 + p%4` (four consecutive `k`
/// values of a column are adjacent; rows past `k` are zero). Panel `j/32` starts at
/// byte `(j/32)·4·ceil(k/4)·32`.
pub fn qpanels_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * driver::panel_len(k)
}

fn pack_panels_into(k: usize, n: usize, b: &[u8], ldb: usize, out: &mut [u8]) {
    let plen = driver::panel_len(k);
    for (p, j0) in (0..n).step_by(NR).enumerate() {
        let cols = NR.min(n - j0);
        let src = if k == 0 { &[][..] } else { &b[j0..] };
        driver::pack_panel(k, cols, src, ldb, &mut out[p * plen..(p + 1) * plen]);
    }
}

/// Packs the u8 `k×n` row-major matrix `b` (leading dimension `ldb`) into the VNNI
/// panel layout of [`qpanels_len`] for [`KernelTable::qgemm_prepacked`].
///
/// Fails with [`KernelError::BadShape`] when `b` or `out` is too short or `ldb < n`.
pub fn pack_qpanels(
    k: usize,
    n: usize,
    b: &[u8],
    ldb: usize,
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_matrix("B", k, n, ldb, b.len())?;
    let need = qpanels_len(k, n);
    if out.len() < need {
        return bad(format!(
            "packed B needs {need} bytes, the slice holds {}",
            out.len()
        ));
    }
    pack_panels_into(k, n, b, ldb, out);
    Ok(())
}

impl QEpilogue<'_> {
    /// The driver's epilogue for `ch` channels with weight scales `sw` and sums `wsum`.
    fn raw(
        &self,
        channels: usize,
        sw: &[f32],
        wsum: &[i32],
        per_row: bool,
    ) -> Result<QEpi, KernelError> {
        if let Some(b) = self.bias {
            if b.len() < channels {
                return bad(format!(
                    "bias holds {} values for {channels} channels",
                    b.len()
                ));
            }
        }
        Ok(QEpi {
            xz: self.x_zero as i32,
            sx: self.x_scale,
            sw: sw.as_ptr(),
            wsum: wsum.as_ptr(),
            bias: self.bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            act: self.activation,
            per_row,
        })
    }
}

impl KernelTable {
    /// Quantizes `src` into `dst` as ONNX `QuantizeLinear` with a u8 output:
    /// `dst[i] = saturate(round_half_to_even(src[i] / scale) + zero)` (NaN gives 0).
    ///
    /// Fails with [`KernelError::BadShape`] when the slices differ in length.
    pub fn quantize_u8(
        &self,
        src: &[f32],
        scale: f32,
        zero: u8,
        dst: &mut [u8],
    ) -> Result<(), KernelError> {
        if src.len() != dst.len() {
            return bad(format!("quantize: {} values into {}", src.len(), dst.len()));
        }
        // SAFETY: both slices hold `len` values; the table's tier is supported.
        unsafe {
            (self.quant.quantize)(
                src.as_ptr(),
                scale,
                zero as f32,
                0.0,
                255.0,
                dst.as_mut_ptr(),
                src.len(),
            )
        };
        Ok(())
    }

    /// [`KernelTable::quantize_u8`] with an s8 output (saturating to `-128..=127`; NaN
    /// gives -128).
    pub fn quantize_i8(
        &self,
        src: &[f32],
        scale: f32,
        zero: i8,
        dst: &mut [i8],
    ) -> Result<(), KernelError> {
        if src.len() != dst.len() {
            return bad(format!("quantize: {} values into {}", src.len(), dst.len()));
        }
        // SAFETY: as above; i8 and u8 share their layout.
        unsafe {
            (self.quant.quantize)(
                src.as_ptr(),
                scale,
                zero as f32,
                -128.0,
                127.0,
                dst.as_mut_ptr() as *mut u8,
                src.len(),
            )
        };
        Ok(())
    }

    /// The name of the int8 GEMM kernel of this table.
    pub fn qgemm_kernel(&self) -> &'static str {
        self.quant.q8.name()
    }

    /// `C = epi(W·B)` with s8 weights `W` on the left (`w.m()×w.k()`, packed by
    /// [`pack_qweights`]; rows are output channels) and u8 activations `B`
    /// (`w.k()×n`, row-major, leading dimension `ldb`, e.g. im2col columns or the NCHW
    /// input of a 1x1 convolution), writing f32 `C` (`w.m()×n`, leading dimension
    /// `ldc`) through the epilogue of [`QEpilogue`] with channel = row. `B` is packed
    /// into VNNI panels on the fly, one panel at a time per thread. Work is split over
    /// `threads` (small products stay on the caller).
    ///
    /// Fails with [`KernelError::BadShape`] when a slice is too short, a leading
    /// dimension smaller than its row, or the bias shorter than `w.m()`; nothing is
    /// written then.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm(
        &self,
        w: &PackedQWeights,
        b: &[u8],
        ldb: usize,
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epi: &QEpilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        check_matrix("B", w.k, n, ldb, b.len())?;
        self.qgemm_left(
            w,
            PanelSrc::Raw {
                ptr: b.as_ptr(),
                ldb,
            },
            n,
            c,
            ldc,
            epi,
            threads,
        )
    }

    /// [`KernelTable::qgemm`] with `B` already in the VNNI panel layout of
    /// [`qpanels_len`] (`qpanels_len(w.k(), n)` bytes, e.g. from [`pack_qpanels`] or an
    /// im2col that writes the layout directly).
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm_prepacked(
        &self,
        w: &PackedQWeights,
        b_panels: &[u8],
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epi: &QEpilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let need = qpanels_len(w.k, n);
        if b_panels.len() < need {
            return bad(format!(
                "packed B needs {need} bytes, the slice holds {}",
                b_panels.len()
            ));
        }
        self.qgemm_left(
            w,
            PanelSrc::Packed(b_panels.as_ptr()),
            n,
            c,
            ldc,
            epi,
            threads,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn qgemm_left(
        &self,
        w: &PackedQWeights,
        panels: PanelSrc,
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epi: &QEpilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        // SAFETY: `c` is borrowed mutably for its whole length.
        unsafe { self.qgemm_left_raw(w, panels, n, c.as_mut_ptr(), c.len(), ldc, epi, threads) }
    }

    /// [`KernelTable::qgemm`] with `C` as a raw pointer to `c_len` values, so that
    /// threads can write disjoint columns of one output.
    ///
    /// # Safety
    /// `c` must be valid for reads and writes of `c_len` values, and no one else may
    /// access the `w.m()×n` window at stride `ldc` meanwhile. The panels must be valid
    /// as their [`PanelSrc`] says (checked by the public callers).
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn qgemm_left_raw(
        &self,
        w: &PackedQWeights,
        panels: PanelSrc,
        n: usize,
        c: *mut f32,
        c_len: usize,
        ldc: usize,
        epi: &QEpilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        check_matrix("C", w.m, n, ldc, c_len)?;
        let e = epi.raw(w.m, &w.scales, &w.sums, true)?;
        let job = QJob {
            m: w.m,
            n,
            k: w.k,
            rows: w.data.as_ptr() as *const u8,
            rs: w.k.div_ceil(4) * 4,
            panels,
            rows_u8: false,
            small: w.small,
            c,
            ldc,
            epi: e,
        };
        // SAFETY: the weights and epilogue were checked against the shape; the
        // caller vouches for `c` and the panels; the table's kernel runs on this CPU.
        unsafe { driver::run(&job, self.quant.q8, threads) };
        Ok(())
    }

    /// `C = epi(A·W)` with u8 activations `A` (`m×w.k()`, row-major, leading dimension
    /// `lda`) on the left and s8 weights `W` (`w.k()×w.n()`, packed by
    /// [`pack_qweights_rhs`]; columns are output channels) on the right, writing f32
    /// `C` (`m×w.n()`, leading dimension `ldc`) through the epilogue of [`QEpilogue`]
    /// with channel = column. For MatMul/Gemm; `m = 1` is a GEMV. When `k` is not a
    /// multiple of 4, `A` is first copied into rows padded to a multiple of 4 (an
    /// allocation of `m·k` bytes).
    ///
    /// Fails with [`KernelError::BadShape`] as [`KernelTable::qgemm`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm_rhs(
        &self,
        a: &[u8],
        lda: usize,
        m: usize,
        w: &PackedQWeightsRhs,
        c: &mut [f32],
        ldc: usize,
        epi: &QEpilogue,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let (k, n) = (w.k, w.n);
        check_matrix("A", m, k, lda, a.len())?;
        check_matrix("C", m, n, ldc, c.len())?;
        let e = epi.raw(n, &w.scales, &w.sums, false)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let k4 = k.div_ceil(4) * 4;
        let padded: Vec<u8>;
        let (rows, rs) = if k == k4 {
            (a.as_ptr(), lda)
        } else {
            let mut p = vec![0u8; m * k4];
            for i in 0..m {
                p[i * k4..i * k4 + k].copy_from_slice(&a[i * lda..i * lda + k]);
            }
            padded = p;
            (padded.as_ptr(), k4)
        };
        let job = QJob {
            m,
            n,
            k,
            rows,
            rs,
            panels: PanelSrc::Packed(w.data.as_ptr()),
            rows_u8: true,
            small: w.small,
            c: c.as_mut_ptr(),
            ldc,
            epi: e,
        };
        // SAFETY: every operand was checked against the shape (rows of `A` hold `k4`
        // bytes when `k` is a multiple of 4, else the padded copy does); `c` is
        // borrowed mutably; the table's kernel runs on this CPU.
        unsafe { driver::run(&job, self.quant.q8, threads) };
        Ok(())
    }
}
