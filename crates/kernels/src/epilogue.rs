//! What a kernel applies to its results before storing them: a bias and an
//! activation, fused so that the output is written once.

/// An elementwise activation on f32 values, fused into kernels' epilogues or applied
/// on its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` if `x >= 0`, else `alpha·x`.
    LeakyRelu { alpha: f32 },
    /// `min(max(x, min), max)`.
    Clip { min: f32, max: f32 },
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x · max(0, min(1, x/6 + 1/2))`.
    HardSwish,
    /// `tanh(x)`.
    Tanh,
}

/// A bias added before the activation: one value per row or per column of the output
/// matrix (for a convolution in NCHW, a row is an output channel).
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    /// No bias.
    #[default]
    None,
    /// `out[i][j] += bias[i]`; the slice holds at least one value per row.
    PerRow(&'a [f32]),
    /// `out[i][j] += bias[j]`; the slice holds at least one value per column.
    PerColumn(&'a [f32]),
}

/// The bias and activation a kernel applies to each result before storing it.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Added first.
    pub bias: Bias<'a>,
    /// Applied after the bias.
    pub activation: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            bias: Bias::None,
            activation: Activation::Identity,
        }
    }
}
