//! f32 convolution kernels (NCHW): 1x1 as GEMM, im2col + GEMM, and direct depthwise.

use crate::cpu::Tier;
use crate::gemm::GemmImpl;

/// The convolution kernels of one tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvKernels {
    tier: Tier,
}

impl ConvKernels {
    /// The kernels for `tier`, which the caller has checked the CPU supports.
    pub(crate) fn for_tier(tier: Tier) -> Self {
        ConvKernels { tier }
    }

    /// Every slot with the name of the kernel installed in it.
    pub(crate) fn picks(&self) -> Vec<(&'static str, &'static str)> {
        vec![("sgemm_fused", GemmImpl::for_tier(self.tier).name)]
    }
}
