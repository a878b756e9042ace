use std::collections::HashMap;
use std::sync::Arc;

use slimnet_tensor::Tensor;

use crate::{Graph, IrError, Node, ValueInfo};

/// What inference knows of one input of a node.
#[derive(Clone, Copy, Debug)]
pub struct InferInput<'a> {
    pub info: &'a ValueInfo,
    /// The value itself, when it is a constant or was folded from constants
    /// (shape computations such as `Shape -> Gather -> Concat -> Reshape`).
    pub value: Option<&'a Tensor>,
}

/// Evaluates a node on constant inputs during inference. The runtime provides it, so
/// inference can follow shape computations without the IR depending on kernels.
pub trait ConstantFolder {
    /// Outputs of `node` for these inputs, or `None` if it cannot be evaluated.
    fn fold(&self, node: &Node, inputs: &[Option<&Tensor>]) -> Option<Vec<Tensor>>;
}

/// Largest input, in elements, that inference folds to follow shape computations.
const FOLD_LIMIT: usize = 1 << 16;

/// Infers the dtype and shape of every value in `graph` (and its subgraphs) from the
/// infos of its inputs and constants, following shape computations through `folder`.
///
/// An inferred shape replaces a declared one; where inference knows nothing, the
/// declared `value_info` stays. Conflicts (such as a MatMul of 3x4 by 5x6) are errors
/// naming the node.
pub fn infer_shapes(graph: &mut Graph, folder: &dyn ConstantFolder) -> Result<(), IrError> {
    infer_scope(graph, folder, &HashMap::new())
}

type Scope = HashMap<String, (ValueInfo, Option<Arc<Tensor>>)>;

fn infer_scope(
    graph: &mut Graph,
    folder: &dyn ConstantFolder,
    outer: &Scope,
) -> Result<(), IrError> {
    let mut known: Vec<Option<Arc<Tensor>>> =
        graph.values.iter().map(|v| v.constant.clone()).collect();
    for (i, v) in graph.values.iter_mut().enumerate() {
        if let Some(c) = &v.constant {
            v.info = ValueInfo::of_tensor(c);
        } else if v.outer {
            if let Some((info, value)) = outer.get(&v.name) {
                v.info = info.clone();
                known[i] = value.clone();
            }
        }
    }
    for n in 0..graph.nodes.len() {
        if !graph.nodes[n].op.subgraphs().is_empty() {
            let mut scope: Scope = outer.clone();
            for (i, v) in graph.values.iter().enumerate() {
                scope.insert(v.name.clone(), (v.info.clone(), known[i].clone()));
            }
            let taken = taken_branch(&graph.nodes[n], &known);
            let is_if = taken.is_some()
                || matches!(
                    graph.nodes[n].op,
                    crate::Op::Control(crate::ops::ControlOp::If { .. })
                );
            let mut failures = Vec::new();
            let subs = graph.nodes[n].op.subgraphs_mut();
            let count = subs.len();
            for (k, sub) in subs.into_iter().enumerate() {
                // A branch that cannot run for these inputs is not inferred: its
                // shapes may legitimately conflict (e.g. the other sample rate's path).
                sub.unreachable = taken.is_some_and(|t| t != k);
                if sub.unreachable {
                    continue;
                }
                if let Err(e) = infer_scope(sub, folder, &scope) {
                    if !is_if {
                        return Err(e);
                    }
                    // With an unknown condition, a branch whose shapes conflict for
                    // these inputs cannot be the one that runs.
                    sub.unreachable = true;
                    failures.push(e);
                }
            }
            if is_if && taken.is_none() && failures.len() == count {
                return Err(failures.remove(0));
            }
        }
        let node = &graph.nodes[n];
        let infos: Vec<Option<ValueInfo>> = node
            .inputs
            .iter()
            .map(|i| i.map(|v| graph.values[v].info.clone()))
            .collect();
        let inputs: Vec<Option<crate::InferInput>> = node
            .inputs
            .iter()
            .zip(&infos)
            .map(|(i, info)| {
                i.map(|v| crate::InferInput {
                    info: info.as_ref().expect("present"),
                    value: known[v].as_deref(),
                })
            })
            .collect();
        let foldable = node.op.subgraphs().is_empty()
            && inputs
                .iter()
                .flatten()
                .all(|i| i.value.is_some_and(|t| t.len() <= FOLD_LIMIT));
        let folded = if foldable {
            let values: Vec<Option<&Tensor>> =
                inputs.iter().map(|i| i.and_then(|x| x.value)).collect();
            folder.fold(node, &values)
        } else {
            None
        };
        let (outputs, folded) = match folded {
            Some(ts) => (ts.iter().map(ValueInfo::of_tensor).collect(), Some(ts)),
            None => {
                let outs = node.op.infer(&inputs).map_err(|reason| IrError::Node {
                    node: node.display_name(graph),
                    op_type: node.op.op_type().to_string(),
                    reason,
                })?;
                // `Shape` of a value with a known shape is known without its data.
                let values = match &node.op {
                    crate::Op::Shape(s) => s.infer_value(&inputs),
                    _ => None,
                };
                (outs, values)
            }
        };
        let out_ids: Vec<Option<usize>> = node.outputs.clone();
        let mut folded = folded.map(|v| v.into_iter());
        for (k, out) in out_ids.iter().enumerate() {
            let tensor = folded.as_mut().and_then(|f| f.next());
            let Some(id) = *out else { continue };
            if let Some(info) = outputs.get(k) {
                merge(&mut graph.values[id].info, info.clone());
            }
            known[id] = tensor.map(Arc::new);
        }
    }
    Ok(())
}

/// For an `If` whose condition is known: 0 for the then branch, 1 for the else branch.
pub fn taken_branch(node: &Node, known: &[Option<Arc<Tensor>>]) -> Option<usize> {
    if !matches!(
        node.op,
        crate::Op::Control(crate::ops::ControlOp::If { .. })
    ) {
        return None;
    }
    let cond = known.get((*node.inputs.first()?)?)?.as_ref()?;
    let value = cond.to_vec::<f64>().ok()?.first().copied()?;
    Some(if value != 0.0 { 0 } else { 1 })
}

/// Keeps declared facts where inference has none.
fn merge(declared: &mut ValueInfo, inferred: ValueInfo) {
    if inferred.dtype.is_some() {
        declared.dtype = inferred.dtype;
    }
    match (&declared.shape, inferred.shape) {
        (_, None) => {}
        (Some(d), Some(i)) if d.len() == i.len() => {
            let merged = d
                .iter()
                .zip(i)
                .map(|(d, i)| match i {
                    crate::Dim::Known(_) => i,
                    crate::Dim::Symbol(_) if !matches!(d, crate::Dim::Known(_)) => i,
                    _ if *d != crate::Dim::Unknown => d.clone(),
                    _ => i,
                })
                .collect();
            declared.shape = Some(merged);
        }
        (_, Some(i)) => declared.shape = Some(i),
    }
}
