//! Reference kernels of the nn family.

use slimnet_ir::ops::NnOp;
use slimnet_tensor::Tensor;

pub fn run(op: &NnOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
