//! The int4 weight-only product (made by the int4 fusion pass) on the int4 kernel:
//! the weights are unpacked from slimnet's one-value-per-byte int4 (or uint4, shifted
//! by 8 together with its zero point, which leaves every difference the same) and
//! packed once; each run multiplies the f32 activation by them, with the bias and a
//! following activation in the epilogue.

use slimnet_ir::NodeId;
use slimnet_kernels::qgemm::{pack_q4_weights, PackedQ4Weights};
use slimnet_kernels::{Activation, Bias, Epilogue, KernelTable, Threads};
use slimnet_tensor::{DType, Tensor, TensorData};

use super::{constant_f32, fusable_activation, is_f32, Context, Lowered, Lowering};

/// A `[..., K] × [K, N]` product with int4 weights ready to run.
pub(crate) struct Q4MatMulStep {
    m: usize,
    weights: PackedQ4Weights,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

impl Q4MatMulStep {
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<(), String> {
        let (k, n) = (self.weights.k(), self.weights.n());
        let epi = Epilogue {
            bias: self.bias.as_deref().map_or(Bias::None, Bias::PerColumn),
            activation: self.activation,
        };
        table
            .gemm_q4(self.m, input, k, &self.weights, output, n, &epi, threads)
            .map_err(|e| e.to_string())
    }
}

/// Values of an int4 or uint4 tensor as the kernel's `[-8, 7]` (uint4 shifted by
/// −8); `None` for other types.
fn centered(t: &Tensor) -> Option<Vec<i8>> {
    match t.data() {
        TensorData::I4(v) => Some(v.clone()),
        TensorData::U4(v) => Some(v.iter().map(|&x| x as i8 - 8).collect()),
        _ => None,
    }
}

/// Lowers a `WeightOnlyMatMul` whose shapes are known.
pub(crate) fn lower_q4_matmul(
    ctx: &Context,
    n: NodeId,
    block_size: i64,
) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let at = |k: usize| node.inputs.get(k).copied().flatten();
    let (Some(x), Some(w_v), Some(s_v), Some(Some(y))) =
        (at(0), at(1), at(2), node.outputs.first().copied())
    else {
        return Ok(None);
    };
    if !is_f32(ctx, x) || !is_f32(ctx, y) {
        return Ok(None);
    }
    let (Some(w), Some(scales)) = (
        ctx.graph.values[w_v].constant.as_deref(),
        constant_f32(ctx, s_v),
    ) else {
        return Ok(None);
    };
    let Ok(block) = usize::try_from(block_size) else {
        return Ok(None);
    };
    let xs = ctx.shapes[x].as_ref().expect("checked by is_f32");
    if w.rank() != 2 || xs.is_empty() || xs[xs.len() - 1] != w.shape()[0] {
        return Ok(None);
    }
    let (k, cols) = (w.shape()[0], w.shape()[1]);
    let m: usize = xs[..xs.len() - 1].iter().product();
    let out_len: usize = ctx.shapes[y].as_ref().map_or(0, |s| s.iter().product());
    if out_len != m * cols || scales.len() != k.div_ceil(block.max(1)) * cols {
        return Ok(None);
    }
    let Some(q) = centered(w) else {
        return Ok(None);
    };
    let zeros = match at(3) {
        None if w.dtype() == DType::U4 => Some(vec![-8i8; scales.len()]),
        None => None,
        Some(z_v) => {
            let Some(z) = ctx.graph.values[z_v].constant.as_deref() else {
                return Ok(None);
            };
            if z.dtype() != w.dtype() {
                return Ok(None);
            }
            match centered(z) {
                Some(z) if z.len() == scales.len() => Some(z),
                _ => return Ok(None),
            }
        }
    };
    let bias = match at(4) {
        None => None,
        Some(b) => match constant_f32(ctx, b) {
            Some(b) if b.len() == cols => Some(b.to_vec()),
            _ => return Ok(None),
        },
    };
    let weights = match pack_q4_weights(k, cols, block, &q, scales, zeros.as_deref()) {
        Ok(w) => w,
        // A block size the kernel does not take: the reference runs it.
        Err(_) => return Ok(None),
    };
    let (fused, activation) =
        fusable_activation(ctx, y).unwrap_or((Vec::new(), Activation::Identity));
    Ok(Some(Lowering {
        kernel: Lowered::Q4MatMul(Box::new(Q4MatMulStep {
            m,
            weights,
            bias,
            activation,
        })),
        fused,
        scratch_len: 0,
    }))
}
