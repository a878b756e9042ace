//! The error type of the kernels crate.

use std::fmt;

use crate::cpu::Tier;

/// What can go wrong when choosing or calling a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// `SLIMNET_KERNEL_TIER` (or a tier name) is not one this build knows.
    UnknownTier(String),
    /// A tier was requested that this CPU (or this architecture) cannot run.
    TierUnavailable {
        /// The tier asked for.
        tier: Tier,
        /// The CPU features it needs that were not detected.
        missing: Vec<&'static str>,
    },
    /// Matrix dimensions, leading dimensions and slice lengths do not fit together.
    BadShape(String),
    /// The worker threads could not be started.
    Threads(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::UnknownTier(s) => write!(
                f,
                "unknown kernel tier {s:?} (expected one of: {})",
                Tier::ALL.map(|t| t.name()).join(", ")
            ),
            KernelError::TierUnavailable { tier, missing } if missing.is_empty() => write!(
                f,
                "kernel tier {} is not available on this architecture",
                tier.name()
            ),
            KernelError::TierUnavailable { tier, missing } => write!(
                f,
                "kernel tier {} needs CPU features this CPU lacks: {}",
                tier.name(),
                missing.join(", ")
            ),
            KernelError::BadShape(s) => write!(f, "bad matrix shape: {s}"),
            KernelError::Threads(s) => write!(f, "cannot start worker threads: {s}"),
        }
    }
}

impl std::error::Error for KernelError {}
