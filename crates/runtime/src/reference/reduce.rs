//! Reference kernels of the reduce family.

use slimnet_ir::ops::ReduceOp;
use slimnet_tensor::Tensor;

pub fn run(op: &ReduceOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
