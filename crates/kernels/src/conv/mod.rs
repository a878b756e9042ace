//! f32 2-D convolution (NCHW) with the bias and activation fused: pointwise convolutions
//! as a GEMM on the input, depthwise ones by a direct SIMD kernel, and every other one
//! as im2col (in column blocks, into caller-provided scratch) followed by a GEMM, per
//! group. Weights are packed once ([`PackedConvWeights`]).

mod depthwise;
mod im2col;
mod params;

pub use params::Conv2dParams;

use crate::cpu::Tier;
use crate::epilogue::{Activation, Bias, Epilogue};
use crate::error::KernelError;
use crate::gemm::{BArg, GemmImpl, PackedA};
use crate::parallel::Threads;
use crate::table::KernelTable;
use depthwise::DwFn;

/// Target size, in values, of one im2col column block (it stays in the L2 cache
/// while the GEMM reads it).
const IM2COL_BLOCK: usize = 1 << 16;

/// Images with fewer output positions than this (and than a block) have their im2col
/// columns folded across the batch into shared blocks.
const FOLD_BELOW: usize = 512;

/// Multiply-adds below which an im2col convolution runs on the calling thread alone
/// (waking other threads would cost more than they save).
const TINY_MACS: usize = 1 << 19;

/// Multiply-adds below which a depthwise convolution runs on the calling thread alone.
const TINY_DEPTHWISE_MACS: usize = 1 << 19;

/// The convolution kernels of one tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvKernels {
    tier: Tier,
    depthwise: DwFn,
    depthwise_name: &'static str,
}

impl ConvKernels {
    /// The kernels for `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(tier: Tier) -> Self {
        #[allow(unused_mut)]
        let mut k = ConvKernels {
            tier,
            depthwise: depthwise::portable,
            depthwise_name: "conv_depthwise_portable",
        };
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::Avx2 {
                k.depthwise = depthwise::x86::avx2;
                k.depthwise_name = "conv_depthwise_avx2_fma";
            }
            if tier >= Tier::Avx512 {
                k.depthwise = depthwise::x86::avx512;
                k.depthwise_name = "conv_depthwise_avx512f";
            }
        }
        k
    }

    /// Every slot with the name of the kernel installed in it.
    pub(crate) fn picks(&self) -> Vec<(&'static str, &'static str)> {
        let gemm = GemmImpl::for_tier(self.tier).name;
        vec![
            ("sgemm_fused", gemm),
            ("conv_pointwise", gemm),
            ("conv_im2col", gemm),
            ("conv_depthwise", self.depthwise_name),
        ]
    }
}

/// Convolution weights packed once for one [`KernelTable`]'s tier and one
/// [`Conv2dParams`] (batch and input size aside, which may change between calls).
#[derive(Clone, Debug)]
pub struct PackedConvWeights {
    params: Conv2dParams,
    tier: Tier,
    kind: Packed,
}

#[derive(Clone, Debug)]
enum Packed {
    /// One packed `A` per group: `out_channels/groups × group_k`.
    Gemm(Vec<PackedA>),
    /// The OIHW weights as they are: one filter per channel.
    Depthwise(Vec<f32>),
}

impl PackedConvWeights {
    /// The parameters the weights were packed for.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }
}

/// A raw output pointer that threads write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes its own channels or columns of the output.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Splits `items` over `threads` in contiguous, nearly equal ranges and runs
/// `f(task, range)` for each; one thread runs inline.
fn split(threads: &Threads, items: usize, f: impl Fn(usize, std::ops::Range<usize>) + Sync + Send) {
    let tasks = threads.count().min(items).max(1);
    threads.for_each(tasks, |t| f(t, t * items / tasks..(t + 1) * items / tasks));
}

impl KernelTable {
    /// The path [`KernelTable::conv2d`] takes for `p`, for profiling: `depthwise_3x3_s1`,
    /// `depthwise_3x3_s2`, `depthwise_5x5_s1`, `depthwise_5x5_s2`, `depthwise_generic`,
    /// `pointwise_gemm` or `im2col_gemm`.
    pub fn conv2d_path(&self, p: &Conv2dParams) -> &'static str {
        if p.is_depthwise() {
            let plain = p.dilation_h == 1 && p.dilation_w == 1 && p.stride_h == p.stride_w;
            match (plain, p.kernel_h, p.kernel_w, p.stride_h) {
                (true, 3, 3, 1) => "depthwise_3x3_s1",
                (true, 3, 3, 2) => "depthwise_3x3_s2",
                (true, 5, 5, 1) => "depthwise_5x5_s1",
                (true, 5, 5, 2) => "depthwise_5x5_s2",
                _ => "depthwise_generic",
            }
        } else if p.is_pointwise() {
            "pointwise_gemm"
        } else {
            "im2col_gemm"
        }
    }

    /// Packs OIHW `weights_oihw` (`p.weights_len()` values) for [`KernelTable::conv2d`]
    /// with this table.
    ///
    /// Fails with [`KernelError::BadShape`] when `p` is invalid
    /// ([`Conv2dParams::check`]) or the weights are too short.
    pub fn pack_conv_weights(
        &self,
        p: &Conv2dParams,
        weights_oihw: &[f32],
    ) -> Result<PackedConvWeights, KernelError> {
        p.check()?;
        if weights_oihw.len() < p.weights_len() {
            return Err(KernelError::BadShape(format!(
                "weights hold {} values, the convolution needs {}",
                weights_oihw.len(),
                p.weights_len()
            )));
        }
        let kind = if p.is_depthwise() {
            Packed::Depthwise(weights_oihw[..p.weights_len()].to_vec())
        } else {
            let (mg, kg) = (p.out_channels / p.groups, p.group_k());
            let packs = (0..p.groups)
                .map(|g| self.pack_a(mg, kg, &weights_oihw[g * mg * kg..(g + 1) * mg * kg], kg))
                .collect::<Result<_, _>>()?;
            Packed::Gemm(packs)
        };
        Ok(PackedConvWeights {
            params: *p,
            tier: self.tier(),
            kind,
        })
    }

    /// The scratch, in f32 values, that [`KernelTable::conv2d`] needs for `p` with
    /// `threads` (zero for the pointwise and depthwise paths): per thread, one block of
    /// im2col columns of bounded size whatever the image size, and, when small images
    /// are folded into one GEMM, the block's output.
    pub fn conv2d_scratch_len(&self, p: &Conv2dParams, threads: &Threads) -> usize {
        if p.check().is_err() || p.is_depthwise() || p.is_pointwise() {
            return 0;
        }
        let plan = self.im2col_plan(p);
        let g = self.conv_gemm(p);
        plan.slot_len(p.group_k(), g.nr, p.out_channels / p.groups) * threads.count()
    }

    /// The GEMM kernel the weights of `p` are packed for.
    fn conv_gemm(&self, p: &Conv2dParams) -> &'static GemmImpl {
        GemmImpl::for_rows(self.tier(), p.out_channels / p.groups.max(1))
    }

    /// How [`KernelTable::conv2d`] splits the im2col columns of `p` into blocks.
    fn im2col_plan(&self, p: &Conv2dParams) -> Im2colPlan {
        let kg = p.group_k();
        let n = p.out_h() * p.out_w();
        let nr = GemmImpl::for_tier(self.tier()).nr;
        let cap = (IM2COL_BLOCK / kg.max(1)).div_ceil(nr).max(1) * nr;
        let fold = p.batch > 1 && n < FOLD_BELOW.min(cap);
        let span = if fold { p.batch * n } else { n };
        Im2colPlan {
            fold,
            block: cap.min(span.max(1)),
        }
    }

    /// `output = act(conv(input, weights) + bias)` for NCHW f32 tensors of `p`'s sizes
    /// (`p.input_len()` and `p.output_len()` values); `bias` holds one value per output
    /// channel. `scratch` holds at least [`KernelTable::conv2d_scratch_len`] values for
    /// the same `p` and `threads`; its contents are irrelevant. Work is split over
    /// `threads`; with one thread it runs on the caller. Steady-state calls do not
    /// allocate.
    ///
    /// Fails with [`KernelError::BadShape`] when `p` is invalid, the weights were packed
    /// for other parameters (batch and input size aside) or another tier, or a slice is
    /// too short; nothing is written then.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &self,
        p: &Conv2dParams,
        input: &[f32],
        weights: &PackedConvWeights,
        bias: Option<&[f32]>,
        activation: Activation,
        output: &mut [f32],
        scratch: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        p.check()?;
        let bad = |s: String| Err(KernelError::BadShape(s));
        if !p.same_filter(&weights.params) || weights.tier != self.tier() {
            return bad(
                "the weights were packed for other convolution parameters or another tier".into(),
            );
        }
        if input.len() < p.input_len() {
            return bad(format!(
                "input holds {} values, needs {}",
                input.len(),
                p.input_len()
            ));
        }
        if output.len() < p.output_len() {
            return bad(format!(
                "output holds {} values, needs {}",
                output.len(),
                p.output_len()
            ));
        }
        if let Some(b) = bias {
            if b.len() < p.out_channels {
                return bad(format!(
                    "bias holds {} values for {} channels",
                    b.len(),
                    p.out_channels
                ));
            }
        }
        let need = self.conv2d_scratch_len(p, threads);
        if scratch.len() < need {
            return bad(format!(
                "scratch holds {} values, needs {need}",
                scratch.len()
            ));
        }
        if p.output_len() == 0 {
            return Ok(());
        }
        match &weights.kind {
            Packed::Depthwise(w) => {
                self.conv_depthwise(p, input, w, bias, activation, output, threads)
            }
            Packed::Gemm(packs) if p.is_pointwise() => {
                self.conv_pointwise(p, input, packs, bias, activation, output, threads)
            }
            Packed::Gemm(packs) => {
                self.conv_im2col(p, input, packs, bias, activation, output, scratch, threads)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_depthwise(
        &self,
        p: &Conv2dParams,
        input: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let (in_plane, out_plane, taps) = (
            p.in_h * p.in_w,
            p.out_h() * p.out_w(),
            p.kernel_h * p.kernel_w,
        );
        let planes = p.batch * p.in_channels;
        let out = OutPtr(output.as_mut_ptr());
        let f = self.conv.depthwise;
        let single = Threads::single();
        let threads = if planes * out_plane * taps < TINY_DEPTHWISE_MACS {
            &single
        } else {
            threads
        };
        split(threads, planes, |_, range| {
            for i in range {
                let c = i % p.in_channels;
                // SAFETY: plane `i` of the output is written by this task only; the
                // lengths were checked.
                let o = unsafe {
                    std::slice::from_raw_parts_mut(out.get().add(i * out_plane), out_plane)
                };
                let b = bias.map_or(0.0, |b| b[c]);
                // SAFETY: the table's tier is supported; the slices have the sizes of `p`.
                unsafe {
                    f(
                        p,
                        &input[i * in_plane..(i + 1) * in_plane],
                        &w[c * taps..(c + 1) * taps],
                        b,
                        act,
                        o,
                    )
                };
            }
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_pointwise(
        &self,
        p: &Conv2dParams,
        input: &[f32],
        packs: &[PackedA],
        bias: Option<&[f32]>,
        act: Activation,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let n = p.in_h * p.in_w;
        let (mg, kg) = (p.out_channels / p.groups, p.in_channels / p.groups);
        for b in 0..p.batch {
            for (g, a) in packs.iter().enumerate() {
                let epi = group_epilogue(bias, g * mg, act);
                let src = &input[(b * p.in_channels + g * kg) * n..][..kg * n];
                let dst = &mut output[(b * p.out_channels + g * mg) * n..][..mg * n];
                self.sgemm_packed(a, src, n, n, dst, n, &epi, threads)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_im2col(
        &self,
        p: &Conv2dParams,
        input: &[f32],
        packs: &[PackedA],
        bias: Option<&[f32]>,
        act: Activation,
        output: &mut [f32],
        scratch: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        let n = p.out_h() * p.out_w();
        let kg = p.group_k();
        let mg = p.out_channels / p.groups;
        let plan = self.im2col_plan(p);
        let nb = plan.block;
        let g = packs[0].kernel();
        let lay = im2col::PanelLayout {
            k: kg,
            cols: nb.div_ceil(g.nr) * g.nr,
            nr: g.nr,
            kc: g.blocking.kc,
        };
        let slot = plan.slot_len(kg, g.nr, mg);
        // Columns are numbered across the batch (`b*n + j`); without folding, each
        // image's columns are blocked on their own.
        let (units, span) = if plan.fold {
            (1, p.batch * n)
        } else {
            (p.batch, n)
        };
        let blocks = span.div_ceil(nb);
        let items = units * p.groups * blocks;
        let out = OutPtr(output.as_mut_ptr());
        let scr = OutPtr(scratch.as_mut_ptr());
        let single = Threads::single();
        let macs = (p.batch * n)
            .saturating_mul(kg)
            .saturating_mul(p.out_channels);
        let threads = if macs < TINY_MACS { &single } else { threads };
        let failed = std::sync::atomic::AtomicBool::new(false);
        split(threads, items, |t, range| {
            // SAFETY: task `t` owns scratch slot `t` (`slot` values; the length was
            // checked).
            let mine = unsafe { std::slice::from_raw_parts_mut(scr.get().add(t * slot), slot) };
            let (col, cbuf) = mine.split_at_mut(lay.len());
            for item in range {
                let (ug, blk) = (item / blocks, item % blocks);
                let (u, g) = (ug / p.groups, ug % p.groups);
                let c0 = u * n + blk * nb;
                let cols = nb.min(span - blk * nb);
                let lay = im2col::PanelLayout {
                    cols: cols.div_ceil(lay.nr) * lay.nr,
                    ..lay
                };
                im2col::im2col_columns(p, input, g, c0, cols, &lay, col);
                let epi = group_epilogue(bias, g * mg, act);
                let (b0, j0) = (c0 / n, c0 % n);
                let b = BArg::Packed {
                    ptr: col.as_ptr(),
                    len: lay.len(),
                };
                let r = if j0 + cols <= n {
                    let at = (b0 * p.out_channels + g * mg) * n + j0;
                    // SAFETY: this task alone writes columns `j0..j0 + cols` of image
                    // `b0`'s group rows, which lie inside the checked output.
                    unsafe {
                        self.sgemm_packed_raw(
                            &packs[g],
                            0,
                            mg,
                            b,
                            cols,
                            out.get().add(at),
                            (mg - 1) * n + cols,
                            n,
                            &epi,
                            &single,
                        )
                    }
                } else {
                    // SAFETY: `cbuf` holds `mg*nb` values (the slot's layout).
                    let r = unsafe {
                        self.sgemm_packed_raw(
                            &packs[g],
                            0,
                            mg,
                            b,
                            cols,
                            cbuf.as_mut_ptr(),
                            cbuf.len(),
                            cols,
                            &epi,
                            &single,
                        )
                    };
                    let mut c = c0;
                    while c < c0 + cols {
                        let (b, j) = (c / n, c % n);
                        let len = (n - j).min(c0 + cols - c);
                        for i in 0..mg {
                            let src = &cbuf[i * cols + c - c0..][..len];
                            let at = (b * p.out_channels + g * mg + i) * n + j;
                            // SAFETY: this task alone writes these columns of image
                            // `b`'s row, inside the checked output.
                            unsafe {
                                std::ptr::copy_nonoverlapping(src.as_ptr(), out.get().add(at), len)
                            };
                        }
                        c += len;
                    }
                    r
                };
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        if failed.into_inner() {
            return Err(KernelError::BadShape(
                "internal im2col GEMM shape mismatch".into(),
            ));
        }
        Ok(())
    }
}

/// How the im2col columns of one convolution are blocked.
#[derive(Clone, Copy, Debug)]
struct Im2colPlan {
    /// Whether the images' columns are folded into one column space (images smaller
    /// than a block), so that a block may span several images.
    fold: bool,
    /// Columns per block.
    block: usize,
}

impl Im2colPlan {
    /// Scratch values per thread for a group GEMM of depth `kg` and `mg` rows with
    /// panels of `nr` columns: the packed block, and its output when folding.
    fn slot_len(&self, kg: usize, nr: usize, mg: usize) -> usize {
        let packed = self.block.div_ceil(nr) * nr * kg;
        packed + if self.fold { mg * self.block } else { 0 }
    }
}

/// The epilogue of the group whose first output channel is `c0`.
fn group_epilogue(bias: Option<&[f32]>, c0: usize, act: Activation) -> Epilogue<'_> {
    Epilogue {
        bias: bias.map_or(Bias::None, |b| Bias::PerRow(&b[c0..])),
        activation: act,
    }
}
