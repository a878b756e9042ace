//! Activations applied on their own: in place or from one buffer into another.

use super::math;
use super::simd::{map, simd_entries, Simd};
use super::{split_range, SharedPtr, PAR_MIN_CHUNK};
use crate::epilogue::Activation;
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// The signature of the activation slot: `n` values from `src` to `dst`, which are
/// either disjoint or equal.
pub(crate) type ActivationFn = unsafe fn(Activation, *const f32, *mut f32, usize);

/// `act` on one vector.
#[inline(always)]
fn activation_vec<S: Simd>(act: Activation, v: S::V) -> S::V {
    let zero = S::splat(0.0);
    let one = S::splat(1.0);
    match act {
        Activation::Identity => v,
        // `max`/`min` return their second operand when either is NaN.
        Activation::Relu => S::max(zero, v),
        Activation::LeakyRelu { alpha } => S::select(S::lt(v, zero), S::mul(v, S::splat(alpha)), v),
        Activation::Clip { min, max } => S::min(S::splat(max), S::max(S::splat(min), v)),
        Activation::Sigmoid => math::sigmoid::<S>(v),
        Activation::HardSigmoid { alpha, beta } => S::min(
            one,
            S::max(zero, S::mul_add(v, S::splat(alpha), S::splat(beta))),
        ),
        Activation::HardSwish => {
            let t = S::mul_add(v, S::splat(1.0 / 6.0), S::splat(0.5));
            S::mul(v, S::min(one, S::max(zero, t)))
        }
        Activation::Tanh => math::tanh::<S>(v),
    }
}

/// # Safety
/// `src` readable and `dst` writable for `n` values, disjoint or equal.
#[inline(always)]
unsafe fn activation_kernel<S: Simd>(act: Activation, src: *const f32, dst: *mut f32, n: usize) {
    unsafe {
        if act == Activation::Identity {
            if !std::ptr::eq(src, dst) {
                std::ptr::copy_nonoverlapping(src, dst, n);
            }
            return;
        }
        map!(S, src, dst, n, |v| activation_vec::<S>(act, v));
    }
}

simd_entries!(activation_kernel(act: Activation, src: *const f32, dst: *mut f32, n: usize));

/// `act` applied to one value, computed with the standard library's `exp` and `tanh`:
/// the reference the vectorized kernels are held to.
///
/// NaN in gives NaN out for every activation. A NaN `min` or `max` of `Clip` means no
/// bound on that side. `Relu` keeps the sign of `-0.0`.
pub fn activation_scalar(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha * x
            } else {
                x
            }
        }
        Activation::Clip { min, max } => {
            let y = if x < min { min } else { x };
            if y > max {
                max
            } else {
                y
            }
        }
        Activation::Sigmoid => {
            let e = (-x.abs()).exp();
            if x < 0.0 {
                e / (1.0 + e)
            } else {
                1.0 / (1.0 + e)
            }
        }
        Activation::HardSigmoid { alpha, beta } => clamp01(alpha * x + beta),
        Activation::HardSwish => x * clamp01(x / 6.0 + 0.5),
        Activation::Tanh => x.tanh(),
    }
}

/// `min(1, max(0, y))`, NaN staying NaN.
fn clamp01(y: f32) -> f32 {
    y.clamp(0.0, 1.0)
}

impl KernelTable {
    /// Applies `act` to every value of `x` in place.
    ///
    /// Follows ONNX: `Relu = max(x, 0)`, `LeakyRelu = x < 0 ? alpha·x : x`,
    /// `Clip = min(max(x, min), max)`, `HardSigmoid = max(0, min(1, alpha·x + beta))`,
    /// `HardSwish = x·max(0, min(1, x/6 + 1/2))`. NaN propagates through every
    /// activation; see [`activation_scalar`] for the edge cases.
    ///
    /// Error bounds against exact math: `Sigmoid` is within a relative `1e-6` of the
    /// true value (plus an absolute `3e-45` where the result is subnormal); `Tanh` is
    /// within a relative `1e-6` (plus `1e-38` absolute where it is below that); the
    /// others round as plain f32 arithmetic does (`HardSigmoid` and `HardSwish` use a
    /// fused multiply-add on the SIMD tiers).
    pub fn activate(&self, act: Activation, x: &mut [f32]) {
        let p = x.as_mut_ptr();
        // SAFETY: `p` is valid for `x.len()` values; source and destination are equal.
        unsafe { (self.eltwise.activation)(act, p, p, x.len()) }
    }

    /// Writes `act(src[i])` to `dst[i]`; the contract is [`KernelTable::activate`]'s.
    ///
    /// Fails with [`KernelError::BadShape`] when the lengths differ.
    pub fn activate_into(
        &self,
        act: Activation,
        src: &[f32],
        dst: &mut [f32],
    ) -> Result<(), KernelError> {
        check_same("activate_into", src.len(), dst.len())?;
        // SAFETY: both slices hold `src.len()` values and cannot overlap.
        unsafe { (self.eltwise.activation)(act, src.as_ptr(), dst.as_mut_ptr(), src.len()) }
        Ok(())
    }

    /// [`KernelTable::activate`] split over `threads` when `x` is long (at least
    /// 65,536 values per task); with one thread it is `activate`.
    pub fn activate_par(&self, act: Activation, x: &mut [f32], threads: &Threads) {
        let p = SharedPtr(x.as_mut_ptr());
        let f = self.eltwise.activation;
        split_range(Some(threads), x.len(), PAR_MIN_CHUNK, 16, |s, e| {
            // SAFETY: each task gets a disjoint range of `x`.
            unsafe {
                let q = p.get().add(s);
                f(act, q, q, e - s)
            }
        });
    }

    /// [`KernelTable::activate_into`] split over `threads` as
    /// [`KernelTable::activate_par`] is.
    pub fn activate_into_par(
        &self,
        act: Activation,
        src: &[f32],
        dst: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        check_same("activate_into_par", src.len(), dst.len())?;
        let sp = SharedPtr(src.as_ptr() as *mut f32);
        let dp = SharedPtr(dst.as_mut_ptr());
        let f = self.eltwise.activation;
        split_range(Some(threads), src.len(), PAR_MIN_CHUNK, 16, |s, e| {
            // SAFETY: each task gets a disjoint range of `dst`; `src` is only read.
            unsafe { f(act, sp.get().add(s), dp.get().add(s), e - s) }
        });
        Ok(())
    }
}

/// Fails unless the source and destination lengths are equal.
pub(crate) fn check_same(what: &str, src: usize, dst: usize) -> Result<(), KernelError> {
    if src == dst {
        Ok(())
    } else {
        Err(KernelError::BadShape(format!(
            "{what}: source has {src} elements, destination {dst}"
        )))
    }
}
