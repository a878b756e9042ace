//! Reference kernels of the attention family: `Attention`, `RMSNormalization` and
//! `RotaryEmbedding`.
//!
//! Every kernel reads its float inputs as `f64`, computes in `f64` and rounds once
//! to the output dtype (float32, float16, bfloat16 or float64).

mod norm;
mod rotary;
mod sdpa;

#[cfg(test)]
mod tests;

use slimnet_ir::ops::AttentionOp;
use slimnet_tensor::{DType, Tensor};

use super::util::{input, optional, reason};

/// Runs an attention-family op; `num_outputs` is how many outputs the node has.
pub fn run(
    op: &AttentionOp,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    match op {
        AttentionOp::Attention {
            is_causal,
            q_num_heads,
            kv_num_heads,
            qk_matmul_output_mode,
            scale,
            softcap,
            softmax_precision,
            left_window_size,
            right_window_size,
        } => {
            if let Some(p) = softmax_precision {
                slimnet_ir::ops::attention::float_dtype(*p)
                    .map_err(|r| format!("softmax_precision: {r}"))?;
            }
            let params = sdpa::Params {
                is_causal: *is_causal,
                q_num_heads: *q_num_heads,
                kv_num_heads: *kv_num_heads,
                qk_matmul_output_mode: *qk_matmul_output_mode,
                scale: *scale,
                softcap: *softcap,
                left_window_size: *left_window_size,
                right_window_size: *right_window_size,
            };
            let inputs = sdpa::Inputs {
                q: input(inputs, 0)?,
                k: input(inputs, 1)?,
                v: input(inputs, 2)?,
                attn_mask: optional(inputs, 3),
                past_key: optional(inputs, 4),
                past_value: optional(inputs, 5),
                nonpad_kv_seqlen: optional(inputs, 6),
            };
            sdpa::attention(&params, &inputs, num_outputs)
        }
        AttentionOp::RmsNormalization {
            axis,
            epsilon,
            stash_type,
        } => {
            slimnet_ir::ops::attention::float_dtype(*stash_type)
                .map_err(|r| format!("stash_type: {r}"))?;
            Ok(vec![norm::rms_norm(
                input(inputs, 0)?,
                input(inputs, 1)?,
                *axis,
                *epsilon,
            )?])
        }
        AttentionOp::RotaryEmbedding {
            interleaved,
            num_heads,
            rotary_embedding_dim,
        } => Ok(vec![rotary::rotary(
            input(inputs, 0)?,
            input(inputs, 1)?,
            input(inputs, 2)?,
            optional(inputs, 3),
            *interleaved,
            *num_heads,
            *rotary_embedding_dim,
        )?]),
    }
}

/// The elements of a float tensor as `f64`, or an error naming the input.
fn floats(t: &Tensor, what: &str) -> Result<Vec<f64>, String> {
    if !t.dtype().is_float() {
        return Err(format!("{what} must be a float tensor, got {}", t.dtype()));
    }
    t.to_vec::<f64>().map_err(reason)
}

/// A tensor of `dtype` holding `values` rounded once from `f64`.
fn output(shape: Vec<usize>, values: Vec<f64>, dtype: DType) -> Result<Tensor, String> {
    Tensor::from_vec(shape, values)
        .map_err(reason)?
        .cast(dtype)
        .map_err(reason)
}
