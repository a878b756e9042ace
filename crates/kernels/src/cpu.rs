//! CPU-feature detection and kernel tiers.

use std::fmt;
use std::str::FromStr;

use crate::error::KernelError;

/// The CPU features that kernels are chosen by, detected at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// x86-64 AVX2.
    pub avx2: bool,
    /// x86-64 FMA3.
    pub fma: bool,
    /// x86-64 AVX-512 Foundation.
    pub avx512f: bool,
    /// x86-64 AVX-512 BW (informational; no kernel uses it yet).
    pub avx512bw: bool,
    /// x86-64 AVX-512 VNNI (informational; no kernel uses it yet).
    pub avx512vnni: bool,
    /// x86-64 AVX-512 BF16 (informational; no kernel uses it yet).
    pub avx512bf16: bool,
    /// x86-64 F16C (informational; no kernel uses it yet).
    pub f16c: bool,
    /// aarch64 NEON (informational; no kernel uses it yet).
    pub neon: bool,
}

impl CpuFeatures {
    /// Detects the features of the CPU this process runs on.
    pub fn detect() -> Self {
        #[allow(unused_mut)]
        let mut f = CpuFeatures::default();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx2 = std::arch::is_x86_feature_detected!("avx2");
            f.fma = std::arch::is_x86_feature_detected!("fma");
            f.avx512f = std::arch::is_x86_feature_detected!("avx512f");
            f.avx512bw = std::arch::is_x86_feature_detected!("avx512bw");
            f.avx512vnni = std::arch::is_x86_feature_detected!("avx512vnni");
            f.avx512bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
            f.f16c = std::arch::is_x86_feature_detected!("f16c");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon = std::arch::is_aarch64_feature_detected!("neon");
        }
        f
    }

    /// Every feature this struct knows, by name, with whether it was found.
    pub fn list(&self) -> Vec<(&'static str, bool)> {
        if cfg!(target_arch = "aarch64") {
            return vec![("neon", self.neon)];
        }
        vec![
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vnni", self.avx512vnni),
            ("avx512bf16", self.avx512bf16),
            ("f16c", self.f16c),
        ]
    }
}

/// A set of kernel versions that share the CPU features they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Plain Rust, compiled for the baseline target; runs everywhere.
    Portable,
    /// aarch64 NEON (Advanced SIMD, part of the aarch64 baseline).
    Neon,
    /// x86-64 AVX2 with FMA3.
    Avx2,
    /// x86-64 AVX-512F (with AVX2 and FMA3 for the slots that have no AVX-512 version).
    Avx512,
}

impl Tier {
    /// Every tier, from the most portable to the most demanding.
    pub const ALL: [Tier; 4] = [Tier::Portable, Tier::Neon, Tier::Avx2, Tier::Avx512];

    /// The tier's name, as `SLIMNET_KERNEL_TIER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Portable => "portable",
            Tier::Neon => "neon",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// The CPU features this tier needs that `f` lacks (empty for `Portable`; a tier
    /// of another architecture is unavailable whatever this returns).
    pub fn missing(self, f: &CpuFeatures) -> Vec<&'static str> {
        let needs: &[(&'static str, bool)] = match self {
            Tier::Portable => &[],
            Tier::Neon => &[("neon", f.neon)],
            Tier::Avx2 => &[("avx2", f.avx2), ("fma", f.fma)],
            Tier::Avx512 => &[("avx2", f.avx2), ("fma", f.fma), ("avx512f", f.avx512f)],
        };
        needs
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Whether this tier can run here: compiled for this architecture and every
    /// feature it needs detected.
    pub fn is_available(self, f: &CpuFeatures) -> bool {
        match self {
            Tier::Portable => true,
            Tier::Neon => cfg!(target_arch = "aarch64") && self.missing(f).is_empty(),
            _ => cfg!(target_arch = "x86_64") && self.missing(f).is_empty(),
        }
    }

    /// The most demanding tier available with features `f`.
    pub fn best(f: &CpuFeatures) -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| t.is_available(f))
            .unwrap_or(Tier::Portable)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tier {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Tier::ALL
            .into_iter()
            .find(|t| t.name() == s || (s == "avx512f" && *t == Tier::Avx512))
            .ok_or(KernelError::UnknownTier(s))
    }
}
