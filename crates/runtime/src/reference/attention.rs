//! Reference kernels of the attention family.

use slimnet_ir::ops::AttentionOp;
use slimnet_tensor::Tensor;

pub fn run(op: &AttentionOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
