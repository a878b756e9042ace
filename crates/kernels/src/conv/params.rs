//! The geometry of a 2-D convolution and its checks.

use crate::error::KernelError;

/// A 2-D convolution over NCHW f32 tensors: input `batch×in_channels×in_h×in_w`,
/// weights `out_channels×(in_channels/groups)×kernel_h×kernel_w` (OIHW), output
/// `batch×out_channels×out_h()×out_w()`. Zero padding; a 1-D convolution is `in_h = 1`,
/// `kernel_h = 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Images in the batch (may be zero).
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Filter height.
    pub kernel_h: usize,
    /// Filter width.
    pub kernel_w: usize,
    /// Vertical stride (at least 1).
    pub stride_h: usize,
    /// Horizontal stride (at least 1).
    pub stride_w: usize,
    /// Vertical dilation (at least 1).
    pub dilation_h: usize,
    /// Horizontal dilation (at least 1).
    pub dilation_w: usize,
    /// Zero rows above the input.
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
    /// Zero rows below the input.
    pub pad_bottom: usize,
    /// Zero columns right of the input.
    pub pad_right: usize,
    /// Groups; both channel counts are multiples of it.
    pub groups: usize,
}

fn out_dim(
    size: usize,
    pad0: usize,
    pad1: usize,
    kernel: usize,
    stride: usize,
    dil: usize,
) -> Option<usize> {
    let padded = size.checked_add(pad0)?.checked_add(pad1)?;
    let span = kernel.checked_sub(1)?.checked_mul(dil)?.checked_add(1)?;
    if stride == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

impl Conv2dParams {
    /// Whether weights packed for `other` fit these parameters: everything but the
    /// batch and the input size is equal.
    pub(crate) fn same_filter(&self, other: &Conv2dParams) -> bool {
        let key = |p: &Conv2dParams| {
            (
                p.in_channels,
                p.out_channels,
                p.kernel_h,
                p.kernel_w,
                p.stride_h,
                p.stride_w,
                p.dilation_h,
                p.dilation_w,
                (p.pad_top, p.pad_left, p.pad_bottom, p.pad_right),
                p.groups,
            )
        };
        key(self) == key(other)
    }

    /// Output height; 0 when the parameters are invalid ([`Conv2dParams::check`]).
    pub fn out_h(&self) -> usize {
        out_dim(
            self.in_h,
            self.pad_top,
            self.pad_bottom,
            self.kernel_h,
            self.stride_h,
            self.dilation_h,
        )
        .unwrap_or(0)
    }

    /// Output width; 0 when the parameters are invalid ([`Conv2dParams::check`]).
    pub fn out_w(&self) -> usize {
        out_dim(
            self.in_w,
            self.pad_left,
            self.pad_right,
            self.kernel_w,
            self.stride_w,
            self.dilation_w,
        )
        .unwrap_or(0)
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Elements of the OIHW weights.
    pub fn weights_len(&self) -> usize {
        self.out_channels * self.group_k()
    }

    /// Input channels per group times the kernel's area: the depth of each group's GEMM.
    pub(crate) fn group_k(&self) -> usize {
        self.in_channels / self.groups.max(1) * self.kernel_h * self.kernel_w
    }

    /// Checks that the parameters describe a convolution: positive kernel, strides,
    /// dilations and groups, channels divisible by `groups`, a kernel no larger than the
    /// padded input, and tensor sizes that fit in memory. `batch` and the spatial input
    /// sizes may be zero only where the output stays well defined (zero `batch` is fine).
    pub fn check(&self) -> Result<(), KernelError> {
        let bad = |s: String| Err(KernelError::BadShape(s));
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return bad(format!(
                "kernel {}x{} is empty",
                self.kernel_h, self.kernel_w
            ));
        }
        if self.stride_h == 0 || self.stride_w == 0 || self.dilation_h == 0 || self.dilation_w == 0
        {
            return bad("strides and dilations must be at least 1".into());
        }
        if self.groups == 0
            || !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return bad(format!(
                "{} groups do not divide {} input and {} output channels",
                self.groups, self.in_channels, self.out_channels
            ));
        }
        if out_dim(
            self.in_h,
            self.pad_top,
            self.pad_bottom,
            self.kernel_h,
            self.stride_h,
            self.dilation_h,
        )
        .is_none()
            || out_dim(
                self.in_w,
                self.pad_left,
                self.pad_right,
                self.kernel_w,
                self.stride_w,
                self.dilation_w,
            )
            .is_none()
        {
            return bad(format!(
                "kernel {}x{} (dilation {}x{}) is larger than the padded {}x{} input",
                self.kernel_h,
                self.kernel_w,
                self.dilation_h,
                self.dilation_w,
                self.in_h,
                self.in_w
            ));
        }
        let prod = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
        let sizes = [
            prod(&[self.batch, self.in_channels, self.in_h, self.in_w]),
            prod(&[self.batch, self.out_channels, self.out_h(), self.out_w()]),
            prod(&[
                self.out_channels,
                self.in_channels,
                self.kernel_h,
                self.kernel_w,
            ]),
            prod(&[
                self.in_channels,
                self.kernel_h,
                self.kernel_w,
                self.out_h(),
                self.out_w(),
            ]),
        ];
        if sizes
            .iter()
            .any(|s| s.is_none_or(|s| s > isize::MAX as usize / 4))
        {
            return bad("tensors are too large".into());
        }
        Ok(())
    }

    /// Whether it is a depthwise convolution (one input and one output channel per group).
    pub(crate) fn is_depthwise(&self) -> bool {
        self.groups == self.in_channels && self.groups == self.out_channels
    }

    /// Whether it is a pointwise convolution whose GEMM reads the input directly.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.pad_bottom == 0
            && self.pad_right == 0
    }
}
