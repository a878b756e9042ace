//! f32 elementwise kernels: activations, binary ops with broadcasting, softmax, pooling.

use crate::cpu::Tier;

/// The elementwise kernels of one tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EltwiseKernels {}

impl EltwiseKernels {
    /// The kernels for `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(_tier: Tier) -> Self {
        EltwiseKernels {}
    }

    /// Every slot with the name of the kernel installed in it.
    pub(crate) fn picks(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}
