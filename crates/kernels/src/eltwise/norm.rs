//! Reductions and normalization over the last axis: layer normalization, row means,
//! and the global average pool (a row mean per channel plane).

use super::simd::{simd_entries, Simd};
use super::{check_matrix, split_range, SharedPtr};
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// The signature of the layer-norm slot: `x` and `out` hold whole rows of `cols`
/// values (`cols > 0`); `scale` and `bias`, when given, hold `cols` values.
pub(crate) type LayerNormFn =
    unsafe fn(&[f32], usize, Option<&[f32]>, Option<&[f32]>, f32, &mut [f32]);

/// The signature of the row-mean slot: `out[r]` is the mean of row `r` of `x`, whose
/// rows hold `cols` values; `x.len() == out.len()·cols`.
pub(crate) type MeanRowsFn = unsafe fn(&[f32], usize, &mut [f32]);

/// `v - c`, squared when `SQUARE`.
#[inline(always)]
fn dev<S: Simd, const SQUARE: bool>(c: S::V, v: S::V) -> S::V {
    let d = S::sub(v, c);
    if SQUARE {
        S::mul(d, d)
    } else {
        d
    }
}

/// `k` values at `p + i` (a whole vector when `k == LANES`), or `default` when there
/// is no `p`.
///
/// # Safety
/// `p`, when given, is readable at `i..i + k`.
#[inline(always)]
unsafe fn load_or<S: Simd>(p: Option<&[f32]>, i: usize, k: usize, default: S::V) -> S::V {
    match p {
        None => default,
        Some(s) if k == S::LANES => unsafe { S::load(s.as_ptr().add(i)) },
        Some(s) => unsafe { S::load_part(s.as_ptr().add(i), k) },
    }
}

/// `sum((x[i] - c)^p)` over `n` values for `p` 1 (`SQUARE == false`) or 2, in f32
/// with two partial sums per lane.
#[inline(always)]
unsafe fn sum_dev<S: Simd, const SQUARE: bool>(p: *const f32, n: usize, c: f32) -> f32 {
    let l = S::LANES;
    let full = n - n % l;
    let cv = S::splat(c);
    let (mut s0, mut s1) = (S::splat(0.0), S::splat(0.0));
    let mut i = 0;
    unsafe {
        while i + 2 * l <= full {
            s0 = S::add(s0, dev::<S, SQUARE>(cv, S::load(p.add(i))));
            s1 = S::add(s1, dev::<S, SQUARE>(cv, S::load(p.add(i + l))));
            i += 2 * l;
        }
        if i < full {
            s0 = S::add(s0, dev::<S, SQUARE>(cv, S::load(p.add(i))));
        }
        let mut s = S::reduce_add(S::add(s0, s1));
        for j in full..n {
            let d = *p.add(j) - c;
            s += if SQUARE { d * d } else { d };
        }
        s
    }
}

/// # Safety
/// As [`LayerNormFn`].
#[inline(always)]
unsafe fn layer_norm_kernel<S: Simd>(
    x: &[f32],
    cols: usize,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) {
    let l = S::LANES;
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let (xp, op) = (xr.as_ptr(), or.as_mut_ptr());
        unsafe {
            let mean = sum_dev::<S, false>(xp, cols, 0.0) / cols as f32;
            let ss = sum_dev::<S, true>(xp, cols, mean);
            let mv = S::splat(mean);
            let rstd = S::splat(1.0 / (ss / cols as f32 + eps).sqrt());
            let one = S::splat(1.0);
            let zero = S::splat(0.0);
            let mut i = 0;
            while i < cols {
                let k = (cols - i).min(l);
                let t = load_or::<S>(Some(xr), i, k, zero);
                let s = load_or::<S>(scale, i, k, one);
                let b = load_or::<S>(bias, i, k, zero);
                let y = S::mul_add(S::mul(S::sub(t, mv), rstd), s, b);
                if k == l {
                    S::store(op.add(i), y);
                } else {
                    S::store_part(op.add(i), k, y);
                }
                i += l;
            }
        }
    }
}

simd_entries!(layer_norm_kernel(
    x: &[f32],
    cols: usize,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
));

/// # Safety
/// As [`MeanRowsFn`].
#[inline(always)]
unsafe fn mean_rows_kernel<S: Simd>(x: &[f32], cols: usize, out: &mut [f32]) {
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row `r` lies inside `x` (`x.len() == out.len()·cols`).
        let s = unsafe { sum_dev::<S, false>(x.as_ptr().add(r * cols), cols, 0.0) };
        *o = s / cols as f32;
    }
}

simd_entries!(mean_rows_kernel(x: &[f32], cols: usize, out: &mut [f32]));

/// The fewest values a task of [`KernelTable::global_avg_pool`] reads.
const MEAN_MIN_CHUNK: usize = 1 << 15;

impl KernelTable {
    /// Layer normalization over the last axis of the `[rows, cols]` buffer `x`:
    /// `out = (x - mean)/sqrt(var + eps)·scale + bias` per row, with the population
    /// variance. A missing `scale` is 1, a missing `bias` 0.
    ///
    /// Mean and variance are accumulated in f32 (one partial sum per vector lane) in
    /// two passes: the mean, then the mean of squared deviations from it (no
    /// `E[x²] - E[x]²` cancellation). With `x̂ = (x - mean)/sqrt(var + eps)` in exact
    /// math, each output is within `|scale|·((1 + |x̂|)·(1e-6 + cols·1.2e-7) +
    /// |mean|·cols·1.2e-7/sqrt(var + eps)) + |bias|·1.2e-7` of it (the middle term is
    /// what a mean large against the spread costs). Rows with NaN give NaN.
    ///
    /// Fails with
    /// [`KernelError::BadShape`] when `rows·cols` differs from `x.len()` or
    /// `out.len()`, or `scale`/`bias` do not hold `cols` values.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm(
        &self,
        x: &[f32],
        rows: usize,
        cols: usize,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        eps: f32,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        check_matrix("layer_norm input", x.len(), rows, cols)?;
        check_matrix("layer_norm output", out.len(), rows, cols)?;
        for (name, v) in [("scale", scale), ("bias", bias)] {
            if let Some(v) = v {
                if v.len() != cols {
                    return Err(KernelError::BadShape(format!(
                        "layer_norm: {name} holds {} values for {cols} columns",
                        v.len()
                    )));
                }
            }
        }
        if cols == 0 {
            return Ok(());
        }
        // SAFETY: the lengths were checked above.
        unsafe { (self.eltwise.layer_norm)(x, cols, scale, bias, eps, out) }
        Ok(())
    }

    /// `out[r]` = the mean of row `r` of the `[rows, cols]` buffer `x` (ONNX
    /// `ReduceMean` over the last axis), summed in f32 with one partial sum per vector
    /// lane: within a relative `cols·1.2e-7` of `sum|x|/cols`. A row of no values
    /// gives NaN. Fails with [`KernelError::BadShape`] when `rows·cols != x.len()` or
    /// `out.len() != rows`.
    pub fn reduce_mean_last(
        &self,
        x: &[f32],
        rows: usize,
        cols: usize,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        check_matrix("reduce_mean_last input", x.len(), rows, cols)?;
        check_matrix("reduce_mean_last output", out.len(), rows, 1)?;
        // SAFETY: the lengths were checked above.
        unsafe { (self.eltwise.mean_rows)(x, cols, out) }
        Ok(())
    }

    /// Global average pooling: `out[c]` = the mean of the `spatial` values of plane `c`
    /// of `x` (NCHW with `channels_total = N·C` planes of `spatial = H·W` values), as
    /// [`KernelTable::reduce_mean_last`], split over `threads` by planes when there
    /// is enough work. Fails with [`KernelError::BadShape`] when
    /// `channels_total·spatial != x.len()` or `out.len() != channels_total`.
    pub fn global_avg_pool(
        &self,
        x: &[f32],
        channels_total: usize,
        spatial: usize,
        out: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        check_matrix("global_avg_pool input", x.len(), channels_total, spatial)?;
        check_matrix("global_avg_pool output", out.len(), channels_total, 1)?;
        let f = self.eltwise.mean_rows;
        let op = SharedPtr(out.as_mut_ptr());
        let min_planes = (MEAN_MIN_CHUNK / spatial.max(1)).max(1);
        split_range(Some(threads), channels_total, min_planes, 1, |s, e| {
            // SAFETY: tasks write disjoint ranges of `out`; `x` is only read.
            unsafe {
                let o = std::slice::from_raw_parts_mut(op.get().add(s), e - s);
                f(&x[s * spatial..e * spatial], spatial, o)
            }
        });
        Ok(())
    }
}
