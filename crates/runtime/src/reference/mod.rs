//! Reference kernels: straightforward implementations of each operator family,
//! written for exactness, not speed. Each family's `run` takes the typed op and its
//! inputs (`None` for omitted optional inputs) and returns all of the op's outputs
//! or a one-line reason.

pub mod attention;
pub mod elementwise;
pub mod nn;
pub mod quant;
pub mod reduce;
pub mod rnn;
pub mod shape;
pub mod signal;
pub mod util;
pub mod vision;

use slimnet_ir::Op;
use slimnet_tensor::Tensor;

/// Runs one non-control operator. `num_outputs` is how many outputs the node has.
pub fn run_op(
    op: &Op,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    match op {
        Op::Elementwise(o) => elementwise::run(o, inputs),
        Op::Reduce(o) => reduce::run(o, inputs, num_outputs),
        Op::Nn(o) => nn::run(o, inputs, num_outputs),
        Op::Rnn(o) => rnn::run(o, inputs, num_outputs),
        Op::Shape(o) => shape::run(o, inputs, num_outputs),
        Op::Attention(o) => attention::run(o, inputs, num_outputs),
        Op::Signal(o) => signal::run(o, inputs, num_outputs),
        Op::Vision(o) => vision::run(o, inputs, num_outputs),
        Op::Quant(o) => quant::run(o, inputs, num_outputs),
        Op::Control(_) => Err("control-flow operators are run by the interpreter".into()),
    }
}
