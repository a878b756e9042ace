use slimnet_ir::{ConstantFolder, Node};
use slimnet_tensor::Tensor;

/// Folds constant nodes with the reference kernels (used by shape inference).
pub struct ReferenceFolder;

impl ConstantFolder for ReferenceFolder {
    fn fold(&self, node: &Node, inputs: &[Option<&Tensor>]) -> Option<Vec<Tensor>> {
        crate::reference::run_op(&node.op, inputs, node.outputs.len()).ok()
    }
}
