//! Unary math on f32 buffers: `exp`, `ln`, `sqrt`, `erf`, GELU and friends.

use super::activation::check_same;
use super::math;
use super::simd::{map, simd_entries, Simd};
use super::{split_range, SharedPtr, PAR_MIN_CHUNK};
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// A unary operation on f32 values.
///
/// Error bounds against exact math (checked against f64 in the tests; "relative"
/// means `|got - want| <= bound·|want|`):
///
/// | op | result |
/// |---|---|
/// | `Exp` | relative `3e-7`; `+inf` above about 88.72, subnormal or 0 below about -87.3 (absolute `3e-45` there) |
/// | `Log` | relative `3e-7` or absolute `1e-7`, whichever is larger; `ln 0 = -inf`, `ln(x < 0) = NaN` |
/// | `Erf` | absolute `5e-7`; relative `1e-6` below `\|x\| = 0.5` |
/// | `Gelu` | absolute `5e-7·max(1, \|x\|)` |
/// | others | exact (correctly rounded), as plain f32 arithmetic |
///
/// Relative bounds hold for normal results; a subnormal result may be off by one
/// subnormal step (`1.4e-45`). NaN in gives NaN out for every op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root (`NaN` for negative values).
    Sqrt,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `1/x`.
    Reciprocal,
    /// `x²`.
    Square,
    /// The error function.
    Erf,
    /// `x·(1 + erf(x/√2))/2` (the exact GELU, not the tanh approximation).
    Gelu,
    /// Rounds towards -inf.
    Floor,
    /// Rounds towards +inf.
    Ceil,
    /// Rounds to the nearest integer, ties to even (ONNX `Round`).
    Round,
}

impl UnaryOp {
    /// Every op, for tests and listings.
    pub const ALL: [UnaryOp; 12] = [
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Square,
        UnaryOp::Erf,
        UnaryOp::Gelu,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ];
}

/// The signature of the unary slot: `n` values from `src` to `dst`, which are either
/// disjoint or equal.
pub(crate) type UnaryFn = unsafe fn(UnaryOp, *const f32, *mut f32, usize);

/// `op` on one vector.
#[inline(always)]
fn unary_vec<S: Simd>(op: UnaryOp, v: S::V) -> S::V {
    match op {
        UnaryOp::Exp => math::exp::<S>(v),
        UnaryOp::Log => math::ln::<S>(v),
        UnaryOp::Sqrt => S::sqrt(v),
        UnaryOp::Neg => S::neg(v),
        UnaryOp::Abs => S::abs(v),
        UnaryOp::Reciprocal => S::div(S::splat(1.0), v),
        UnaryOp::Square => S::mul(v, v),
        UnaryOp::Erf => math::erf::<S>(v),
        UnaryOp::Gelu => {
            let e = math::erf::<S>(S::mul(v, S::splat(std::f32::consts::FRAC_1_SQRT_2)));
            let hv = S::mul(v, S::splat(0.5));
            S::mul_add(hv, e, hv)
        }
        UnaryOp::Floor => S::floor(v),
        UnaryOp::Ceil => S::ceil(v),
        UnaryOp::Round => S::round(v),
    }
}

/// # Safety
/// `src` readable and `dst` writable for `n` values, disjoint or equal.
#[inline(always)]
unsafe fn unary_kernel<S: Simd>(op: UnaryOp, src: *const f32, dst: *mut f32, n: usize) {
    unsafe { map!(S, src, dst, n, |v| unary_vec::<S>(op, v)) }
}

simd_entries!(unary_kernel(op: UnaryOp, src: *const f32, dst: *mut f32, n: usize));

impl KernelTable {
    /// Writes `op(src[i])` to `dst[i]`; see [`UnaryOp`] for the error bounds.
    ///
    /// Fails with [`KernelError::BadShape`] when the lengths differ.
    pub fn unary(&self, op: UnaryOp, src: &[f32], dst: &mut [f32]) -> Result<(), KernelError> {
        check_same("unary", src.len(), dst.len())?;
        // SAFETY: both slices hold `src.len()` values and cannot overlap.
        unsafe { (self.eltwise.unary)(op, src.as_ptr(), dst.as_mut_ptr(), src.len()) }
        Ok(())
    }

    /// Replaces every `x[i]` with `op(x[i])`; see [`UnaryOp`].
    pub fn unary_inplace(&self, op: UnaryOp, x: &mut [f32]) {
        let p = x.as_mut_ptr();
        // SAFETY: `p` is valid for `x.len()` values; source and destination are equal.
        unsafe { (self.eltwise.unary)(op, p, p, x.len()) }
    }

    /// [`KernelTable::unary`] split over `threads` when the buffers are long (at least
    /// 65,536 values per task).
    pub fn unary_par(
        &self,
        op: UnaryOp,
        src: &[f32],
        dst: &mut [f32],
        threads: &Threads,
    ) -> Result<(), KernelError> {
        check_same("unary_par", src.len(), dst.len())?;
        let sp = SharedPtr(src.as_ptr() as *mut f32);
        let dp = SharedPtr(dst.as_mut_ptr());
        let f = self.eltwise.unary;
        split_range(Some(threads), src.len(), PAR_MIN_CHUNK, 16, |s, e| {
            // SAFETY: each task gets a disjoint range of `dst`; `src` is only read.
            unsafe { f(op, sp.get().add(s), dp.get().add(s), e - s) }
        });
        Ok(())
    }

    /// [`KernelTable::unary_inplace`] split over `threads` as
    /// [`KernelTable::unary_par`] is.
    pub fn unary_inplace_par(&self, op: UnaryOp, x: &mut [f32], threads: &Threads) {
        let p = SharedPtr(x.as_mut_ptr());
        let f = self.eltwise.unary;
        split_range(Some(threads), x.len(), PAR_MIN_CHUNK, 16, |s, e| {
            // SAFETY: each task gets a disjoint range of `x`.
            unsafe {
                let q = p.get().add(s);
                f(op, q, q, e - s)
            }
        });
    }
}
