//! Reference kernels of the shape family.

use slimnet_ir::ops::ShapeOp;
use slimnet_tensor::Tensor;

pub fn run(op: &ShapeOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
