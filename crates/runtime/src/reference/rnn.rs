//! Reference kernels of the rnn family.

use slimnet_ir::ops::RnnOp;
use slimnet_tensor::Tensor;

pub fn run(op: &RnnOp, _inputs: &[Option<&Tensor>], _num_outputs: usize) -> Result<Vec<Tensor>, String> {
    match *op {}
}
