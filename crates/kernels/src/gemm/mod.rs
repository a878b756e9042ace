//! f32 matrix multiply (`sgemm`): the shape contract, the portable version, and the
//! blocked driver (packing and cache blocking) that the SIMD micro-kernels plug into.

pub(crate) mod driver;
pub(crate) mod epilogue;
mod fused;
pub(crate) mod neon;
pub(crate) mod portable;
mod skinny;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

#[cfg(test)]
mod tests;

use crate::cpu::Tier;
use crate::error::KernelError;
use driver::{Blocking, Window};

pub(crate) use fused::BArg;
pub use fused::{PackedA, PackedB};

/// The signature of an sgemm slot. Callers must have checked `shape` against the slice
/// lengths with [`SgemmShape::check`] first; [`crate::KernelTable::sgemm`] does.
pub(crate) type SgemmFn = fn(&SgemmShape, &[f32], &[f32], f32, &mut [f32]);

/// Dimensions and leading dimensions of `C[m×n] = A[m×k]·B[k×n] (+ beta·C)`, all
/// row-major: element `(i, j)` of a matrix with leading dimension `ld` is at `i*ld + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgemmShape {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Distance between rows of `A`; at least `k`.
    pub lda: usize,
    /// Distance between rows of `B`; at least `n`.
    pub ldb: usize,
    /// Distance between rows of `C`; at least `n`.
    pub ldc: usize,
}

impl SgemmShape {
    /// The shape of densely stored matrices: `lda = k`, `ldb = n`, `ldc = n`.
    pub fn dense(m: usize, n: usize, k: usize) -> Self {
        SgemmShape {
            m,
            n,
            k,
            lda: k,
            ldb: n,
            ldc: n,
        }
    }

    /// Checks the leading dimensions and that slices of these lengths hold the
    /// matrices. A matrix with no elements needs no storage.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<(), KernelError> {
        fn need(
            name: &str,
            rows: usize,
            cols: usize,
            ld: usize,
            len: usize,
        ) -> Result<(), KernelError> {
            if rows == 0 || cols == 0 {
                return Ok(());
            }
            if ld < cols {
                return Err(KernelError::BadShape(format!(
                    "leading dimension of {name} is {ld}, less than its {cols} columns"
                )));
            }
            let needed = (rows - 1)
                .checked_mul(ld)
                .and_then(|x| x.checked_add(cols))
                .ok_or_else(|| KernelError::BadShape(format!("{name} is too large")))?;
            if len < needed {
                return Err(KernelError::BadShape(format!(
                    "{name} is {rows}x{cols} with leading dimension {ld}, needing {needed} \
                     elements, but its slice holds {len}"
                )));
            }
            Ok(())
        }
        need("A", self.m, self.k, self.lda, a_len)?;
        need("B", self.k, self.n, self.ldb, b_len)?;
        need("C", self.m, self.n, self.ldc, c_len)
    }
}

/// One tier's blocked sgemm: the micro-kernel's tile, the cache blocks, and the driver
/// monomorphized for them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmImpl {
    /// The kernel's name, as `slimnet kernels` prints it.
    pub name: &'static str,
    /// Rows of the micro-kernel's tile.
    pub mr: usize,
    /// Columns of the micro-kernel's tile.
    pub nr: usize,
    /// The cache blocks the table uses.
    pub blocking: Blocking,
    /// Computes a window; see [`driver::gemm_window`] for the contract.
    pub run: unsafe fn(&Window, Blocking),
    /// Packs a whole `A` for [`driver::ASrc::Packed`]; see [`driver::pack_a_full`].
    pub pack_a: fn(m: usize, k: usize, a: &[f32], lda: usize, kc: usize, out: &mut [f32]),
    /// Packs a whole `B` for [`driver::BSrc::Packed`]; see [`driver::pack_b_full`].
    pub pack_b: fn(k: usize, n: usize, b: &[f32], ldb: usize, kc: usize, out: &mut [f32]),
}

impl GemmImpl {
    /// The blocked sgemm of `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(tier: Tier) -> &'static GemmImpl {
        match tier {
            Tier::Portable => &portable::IMPL,
            #[cfg(target_arch = "aarch64")]
            Tier::Neon => &neon::IMPL,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => &avx2::IMPL,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => &avx512::IMPL,
            #[allow(unreachable_patterns)]
            _ => &portable::IMPL,
        }
    }

    /// The blocked sgemm of `tier` for products with `m` rows: on the AVX-512 tier, the
    /// tile height that wastes least of the last row panel, weighed against the cost
    /// per row of shorter tiles.
    pub(crate) fn for_rows(tier: Tier, m: usize) -> &'static GemmImpl {
        let best = GemmImpl::for_tier(tier);
        #[cfg(target_arch = "x86_64")]
        if tier == Tier::Avx512 && m > 0 {
            // Rows computed, padding included, with each row of a tile of `mr` rows
            // costing `1 + 2/mr` (the loads of `B` shared by fewer rows).
            let cost = |g: &GemmImpl| (m.div_ceil(g.mr) * g.mr) as f64 * (1.0 + 2.0 / g.mr as f64);
            return [
                &avx512::IMPL,
                &avx512::IMPL_12,
                &avx512::IMPL_8,
                &avx512::IMPL_4,
            ]
            .into_iter()
            .min_by(|a, b| cost(a).total_cmp(&cost(b)))
            .unwrap_or(best);
        }
        let _ = m;
        best
    }
}

/// `C = beta·C` over the `m×n` window (`beta == 0` writes zeros without reading).
pub(crate) fn scale_c(shape: &SgemmShape, beta: f32, c: &mut [f32]) {
    if shape.n == 0 {
        return;
    }
    for i in 0..shape.m {
        let row = &mut c[i * shape.ldc..i * shape.ldc + shape.n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|x| *x *= beta);
        }
    }
}
