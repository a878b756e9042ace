//! The kernel table: one function per slot, chosen once from the CPU's features.

use std::sync::OnceLock;

use crate::conv::ConvKernels;
use crate::cpu::{CpuFeatures, Tier};
use crate::eltwise::EltwiseKernels;
use crate::error::KernelError;
use crate::gemm::{self, SgemmFn, SgemmShape};
use crate::qgemm::QuantKernels;

/// The environment variable that forces a tier: `portable`, `neon`, `avx2` or `avx512`.
pub const TIER_ENV: &str = "SLIMNET_KERNEL_TIER";

/// One function per kernel slot, with the name of the version installed in each.
///
/// A table is built for one [`Tier`] and only after checking that the CPU has every
/// feature the tier needs, so calling through it is always sound.
#[derive(Clone, Copy, Debug)]
pub struct KernelTable {
    tier: Tier,
    sgemm: SgemmFn,
    sgemm_name: &'static str,
    pub(crate) conv: ConvKernels,
    pub(crate) eltwise: EltwiseKernels,
    pub(crate) quant: QuantKernels,
}

impl KernelTable {
    /// The table of portable kernels; runs on any CPU.
    pub fn portable() -> Self {
        KernelTable {
            tier: Tier::Portable,
            sgemm: gemm::portable::sgemm,
            sgemm_name: "sgemm_portable_ikj",
            conv: ConvKernels::for_tier(Tier::Portable),
            eltwise: EltwiseKernels::for_tier(Tier::Portable),
            quant: QuantKernels::for_tier(Tier::Portable),
        }
    }

    /// The table for `tier`: the portable table overlaid with the tier's versions.
    ///
    /// Fails with [`KernelError::TierUnavailable`] when this CPU lacks a feature the
    /// tier needs.
    pub fn for_tier(tier: Tier) -> Result<Self, KernelError> {
        let features = CpuFeatures::detect();
        if !tier.is_available(&features) {
            return Err(KernelError::TierUnavailable {
                tier,
                missing: tier.missing(&features),
            });
        }
        #[allow(unused_mut)]
        let mut t = KernelTable::portable();
        t.tier = tier;
        t.conv = ConvKernels::for_tier(tier);
        t.eltwise = EltwiseKernels::for_tier(tier);
        t.quant = QuantKernels::for_tier(tier);
        #[cfg(target_arch = "aarch64")]
        if tier == Tier::Neon {
            t.sgemm = gemm::neon::sgemm;
            t.sgemm_name = gemm::neon::NAME;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if tier >= Tier::Avx2 {
                t.sgemm = gemm::avx2::sgemm;
                t.sgemm_name = gemm::avx2::NAME;
            }
            if tier >= Tier::Avx512 {
                t.sgemm = gemm::avx512::sgemm;
                t.sgemm_name = gemm::avx512::NAME;
            }
        }
        Ok(t)
    }

    /// The table for the best tier this CPU supports.
    pub fn detect() -> Self {
        let tier = Tier::best(&CpuFeatures::detect());
        KernelTable::for_tier(tier).unwrap_or_else(|_| KernelTable::portable())
    }

    /// The table that `SLIMNET_KERNEL_TIER` asks for, or the best one when it is unset
    /// or empty. Fails when the variable names an unknown tier or one the CPU lacks.
    pub fn from_env() -> Result<Self, KernelError> {
        match std::env::var(TIER_ENV) {
            Ok(v) if !v.trim().is_empty() => KernelTable::for_tier(v.parse()?),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(KernelTable::detect()),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(KernelError::UnknownTier(v.to_string_lossy().into_owned()))
            }
        }
    }

    /// The tier this table was built for.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Every slot with the name of the kernel installed in it.
    pub fn picks(&self) -> Vec<(&'static str, &'static str)> {
        let mut picks = vec![("sgemm", self.sgemm_name)];
        picks.extend(self.conv.picks());
        picks.extend(self.eltwise.picks());
        picks.extend(self.quant.picks());
        picks
    }

    /// `C = A·B + beta·C` in f32, for row-major matrices with leading dimensions.
    ///
    /// `A` is `m×k` (`a[i*lda + p]`), `B` is `k×n` (`b[p*ldb + j]`), `C` is `m×n`
    /// (`c[i*ldc + j]`). When `beta == 0`, `C` is only written (NaN or infinity already
    /// in it does not propagate); otherwise it is scaled by `beta` and accumulated into.
    /// Any of `m`, `n`, `k` may be zero (`k == 0` leaves `C = beta·C`). No alignment is
    /// required; `C` cannot alias `A` or `B` (the borrows forbid it). Elements of `C`
    /// outside the `m×n` window (the gaps of `ldc > n`) are never touched.
    ///
    /// Fails with [`KernelError::BadShape`] when a leading dimension is smaller than its
    /// row length or a slice is too short for the shape; nothing is written then.
    pub fn sgemm(
        &self,
        shape: &SgemmShape,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) -> Result<(), KernelError> {
        shape.check(a.len(), b.len(), c.len())?;
        (self.sgemm)(shape, a, b, beta, c);
        Ok(())
    }
}

/// The process-wide table, built on first use from `SLIMNET_KERNEL_TIER` and the
/// CPU's features (see [`KernelTable::from_env`]); the same result on every call.
pub fn global() -> Result<&'static KernelTable, KernelError> {
    static GLOBAL: OnceLock<Result<KernelTable, KernelError>> = OnceLock::new();
    GLOBAL
        .get_or_init(KernelTable::from_env)
        .as_ref()
        .map_err(Clone::clone)
}

/// What `slimnet kernels` prints: the CPU's features, the tier chosen and the kernel
/// picked for each slot.
#[derive(Clone, Debug)]
pub struct KernelReport {
    /// The architecture this binary was built for.
    pub arch: &'static str,
    /// Every known CPU feature with whether it was detected.
    pub features: Vec<(&'static str, bool)>,
    /// Every tier with whether it can run here.
    pub tiers: Vec<(Tier, bool)>,
    /// The tier of the process-wide table.
    pub tier: Tier,
    /// Whether the tier was forced by `SLIMNET_KERNEL_TIER`.
    pub forced: bool,
    /// Every slot with the kernel picked for it.
    pub picks: Vec<(&'static str, &'static str)>,
}

/// Builds the [`KernelReport`] for the process-wide table; fails as [`global`] does.
pub fn report() -> Result<KernelReport, KernelError> {
    let f = CpuFeatures::detect();
    let table = global()?;
    Ok(KernelReport {
        arch: std::env::consts::ARCH,
        features: f.list(),
        tiers: Tier::ALL.map(|t| (t, t.is_available(&f))).to_vec(),
        tier: table.tier(),
        forced: std::env::var(TIER_ENV).is_ok_and(|v| !v.trim().is_empty()),
        picks: table.picks(),
    })
}
