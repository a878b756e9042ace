//! Constant folding: nodes whose inputs are all constants are evaluated once with
//! the reference kernels, and `Shape`/`Size` of values whose shape is known become
//! constants.

use std::sync::Arc;

use slimnet_ir::ops::ShapeOp;
use slimnet_ir::{Graph, InferInput, Op, ValueInfo};
use slimnet_tensor::Tensor;

use super::util::{finish, Uses};
use crate::reference::run_op;
use crate::RuntimeError;

/// Largest folded result, in bytes. Larger results stay computed at run time so the
/// model (and the optimizer's memory) does not grow by more than this per node.
pub const FOLD_MAX_BYTES: usize = 64 << 20;

/// Replaces every foldable node of `graph` (not its subgraphs) by constants and
/// returns how many nodes it folded.
///
/// A node folds when it is not control flow, none of its outputs is a graph output
/// (those keep a producer so the exported interface stays plain), and either all
/// its inputs are constants or it is a `Shape`/`Size` of a value whose shape is
/// fully known. Nodes the reference kernels cannot evaluate, and results whose
/// known shape (or actual size) exceeds [`FOLD_MAX_BYTES`], are left as they are.
/// Each output value keeps its id and name and gains the constant. Shapes must have
/// been inferred for the `Shape`/`Size` rule and the size check to apply.
#[allow(clippy::needless_range_loop)] // nodes are read by index while values change
pub fn fold_constants(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        if matches!(node.op, Op::Control(_))
            || node.outputs.iter().flatten().any(|&o| uses.is_output[o])
            || node.outputs.iter().all(Option::is_none)
        {
            continue;
        }
        let too_big = node.outputs.iter().flatten().any(|&o| {
            let info = &graph.values[o].info;
            match (info.concrete_shape(), info.dtype) {
                (Some(s), Some(d)) => s
                    .iter()
                    .try_fold(d.size_of().max(1), |a, &b| a.checked_mul(b))
                    .is_none_or(|bytes| bytes > FOLD_MAX_BYTES),
                _ => false,
            }
        });
        if too_big {
            continue;
        }
        let inputs: Vec<Option<Arc<Tensor>>> = node
            .inputs
            .iter()
            .map(|i| i.and_then(|v| graph.values[v].constant.clone()))
            .collect();
        let all_constant = node
            .inputs
            .iter()
            .zip(&inputs)
            .all(|(i, c)| i.is_none() || c.is_some());
        let results = if all_constant {
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(|c| c.as_deref()).collect();
            match run_op(&node.op, &refs, node.outputs.len()) {
                Ok(r) => r,
                Err(_) => continue,
            }
        } else if let Op::Shape(s @ (ShapeOp::Shape { .. } | ShapeOp::Size)) = &node.op {
            let Some(Some(x)) = node.inputs.first() else {
                continue;
            };
            let info: &ValueInfo = &graph.values[*x].info;
            let ins = [Some(InferInput { info, value: None })];
            match s.infer_value(&ins) {
                Some(r) => r,
                None => continue,
            }
        } else {
            continue;
        };
        let needed = node
            .outputs
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |p| p + 1);
        if results.len() < needed || results.iter().any(|t| t.byte_size() > FOLD_MAX_BYTES) {
            continue;
        }
        let outputs = node.outputs.clone();
        for (slot, t) in outputs.iter().zip(results) {
            if let Some(v) = *slot {
                let value = &mut graph.values[v];
                value.info = ValueInfo::of_tensor(&t);
                value.constant = Some(Arc::new(t));
            }
        }
        removed[i] = true;
        count += 1;
    }
    if count > 0 {
        finish(graph, "fold_constants", &removed, Vec::new())?;
    }
    Ok(count)
}
