//! f32 elementwise kernels on contiguous row-major buffers: activations, unary math,
//! binary ops with broadcasting, softmax, normalization and 2-D pooling.
//!
//! Each kernel is written once over a small vector interface and compiled for every
//! tier (portable, AVX2+FMA, AVX-512F); the [`crate::KernelTable`] holds the entry
//! points of its tier. The public operations are methods of the table:
//!
//! - [`KernelTable::activate`](crate::KernelTable::activate) and
//!   [`activate_into`](crate::KernelTable::activate_into), with
//!   [`activation_scalar`] as the one-value reference;
//! - [`KernelTable::unary`](crate::KernelTable::unary) with [`UnaryOp`];
//! - [`KernelTable::binary`](crate::KernelTable::binary) and
//!   [`binary_inplace`](crate::KernelTable::binary_inplace) with [`BinaryOp`] and
//!   [`BinaryLayout`];
//! - [`KernelTable::softmax`](crate::KernelTable::softmax) and
//!   [`log_softmax`](crate::KernelTable::log_softmax);
//! - [`KernelTable::layer_norm`](crate::KernelTable::layer_norm) and
//!   [`reduce_mean_last`](crate::KernelTable::reduce_mean_last);
//! - [`KernelTable::max_pool2d`](crate::KernelTable::max_pool2d),
//!   [`avg_pool2d`](crate::KernelTable::avg_pool2d) with [`Pool2dParams`], and
//!   [`global_avg_pool`](crate::KernelTable::global_avg_pool).
//!
//! The streaming operations have `_par` versions that split long buffers over a
//! [`Threads`]; every operation checks lengths and returns
//! [`KernelError::BadShape`](crate::KernelError::BadShape) instead of panicking.

mod activation;
mod binary;
mod math;
mod norm;
mod pool;
pub(crate) mod simd;
mod softmax;
mod unary;

#[cfg(test)]
mod tests;

pub use activation::activation_scalar;
pub use binary::{BinaryLayout, BinaryOp};
pub use pool::Pool2dParams;
pub use unary::UnaryOp;

use crate::cpu::Tier;
use crate::parallel::Threads;

/// The elementwise kernels of one tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EltwiseKernels {
    tier: Tier,
    pub(crate) activation: activation::ActivationFn,
    pub(crate) unary: unary::UnaryFn,
    pub(crate) binary: binary::BinaryFn,
    pub(crate) softmax: softmax::SoftmaxFn,
    pub(crate) layer_norm: norm::LayerNormFn,
    pub(crate) mean_rows: norm::MeanRowsFn,
    pub(crate) pool: pool::PoolFn,
}

impl EltwiseKernels {
    /// The kernels for `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(tier: Tier) -> Self {
        EltwiseKernels {
            tier,
            activation: simd::pick!(activation::activation_kernel, tier),
            unary: simd::pick!(unary::unary_kernel, tier),
            binary: simd::pick!(binary::binary_kernel, tier),
            softmax: simd::pick!(softmax::softmax_kernel, tier),
            layer_norm: simd::pick!(norm::layer_norm_kernel, tier),
            mean_rows: simd::pick!(norm::mean_rows_kernel, tier),
            pool: simd::pick!(pool::pool_kernel, tier),
        }
    }

    /// Every slot with the name of the kernel installed in it.
    pub(crate) fn picks(&self) -> Vec<(&'static str, &'static str)> {
        // The NEON tier has no elementwise versions of its own yet: it keeps the
        // portable ones.
        let suffix = match self.tier {
            Tier::Portable | Tier::Neon => 0,
            Tier::Avx2 => 1,
            Tier::Avx512 => 2,
        };
        const SLOTS: [(&str, [&str; 3]); 7] = [
            (
                "activation",
                [
                    "activation_portable",
                    "activation_avx2_fma",
                    "activation_avx512f",
                ],
            ),
            (
                "unary",
                ["unary_portable", "unary_avx2_fma", "unary_avx512f"],
            ),
            (
                "binary",
                ["binary_portable", "binary_avx2_fma", "binary_avx512f"],
            ),
            (
                "softmax",
                ["softmax_portable", "softmax_avx2_fma", "softmax_avx512f"],
            ),
            (
                "layer_norm",
                [
                    "layer_norm_portable",
                    "layer_norm_avx2_fma",
                    "layer_norm_avx512f",
                ],
            ),
            (
                "reduce_mean",
                [
                    "reduce_mean_portable",
                    "reduce_mean_avx2_fma",
                    "reduce_mean_avx512f",
                ],
            ),
            (
                "pool2d",
                ["pool2d_portable", "pool2d_avx2_fma", "pool2d_avx512f"],
            ),
        ];
        SLOTS.iter().map(|(s, n)| (*s, n[suffix])).collect()
    }
}

/// The fewest elements a task of a `_par` operation gets.
pub(crate) const PAR_MIN_CHUNK: usize = 1 << 16;

/// Calls `f(start, end)` over consecutive ranges covering `0..n`, in parallel over
/// `threads` when `n` is large enough to give each task at least `min_chunk` items.
/// Range boundaries are multiples of `align` (except `n`).
pub(crate) fn split_range(
    threads: Option<&Threads>,
    n: usize,
    min_chunk: usize,
    align: usize,
    f: impl Fn(usize, usize) + Sync + Send,
) {
    let tasks = match threads {
        Some(t) => t.count().min(n / min_chunk.max(1)).max(1),
        None => 1,
    };
    if tasks <= 1 {
        if n > 0 {
            f(0, n);
        }
        return;
    }
    let chunk = n.div_ceil(tasks).next_multiple_of(align.max(1));
    if let Some(t) = threads {
        t.for_each(tasks, |i| {
            let start = (i * chunk).min(n);
            let end = (start + chunk).min(n);
            if start < end {
                f(start, end);
            }
        });
    }
}

/// A raw pointer that tasks on other threads may use; each task touches a disjoint
/// part of what it points to.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub(crate) *mut T);

// SAFETY: the tasks that share one write disjoint elements, and the borrow it was made
// from outlives every task (`Threads::for_each` returns after all have finished).
unsafe impl<T> Send for SharedPtr<T> {}
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SharedPtr`).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Checks that `rows·cols` does not overflow and equals `len`.
pub(crate) fn check_matrix(
    what: &str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), crate::KernelError> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(crate::KernelError::BadShape(format!(
            "{what}: {rows}x{cols} does not match a buffer of {len} elements"
        ))),
    }
}
