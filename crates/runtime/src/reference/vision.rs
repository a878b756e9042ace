//! Reference kernels of the vision family.

use slimnet_ir::ops::VisionOp;
use slimnet_tensor::Tensor;

pub fn run(op: &VisionOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
