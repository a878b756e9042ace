//! Reference kernels of the signal family.

use slimnet_ir::ops::SignalOp;
use slimnet_tensor::Tensor;

pub fn run(op: &SignalOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
