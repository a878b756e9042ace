//! If inlining: an `If` whose condition is a constant is replaced by the nodes of
//! the branch it takes.

use std::collections::HashMap;

use slimnet_ir::ops::{ControlOp, ElementwiseOp};
use slimnet_ir::{Graph, Node, Op, Value, ValueId};

use super::util::{redirect, rename_captures, Names, Uses};
use crate::RuntimeError;

/// Inlines every `If` of `graph` (not of its subgraphs) whose condition is a
/// constant, and returns how many it inlined.
///
/// The taken branch's values move into `graph` under their own names when those are
/// free, else under fresh ones; subgraphs inside the branch that read a renamed
/// value by name are updated to the new name. The branch's captures of enclosing
/// values become reads of `graph`'s values of those names. The `If`'s outputs are
/// redirected to the branch outputs; an output that is a graph output keeps its
/// name through an `Identity` (which no-op removal may later fold away).
///
/// A branch that reads a name `graph` does not define, or that declares inputs, is
/// an error (the model is invalid); the graph is left unchanged then.
pub fn inline_ifs(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let mut count = 0;
    while let Some(idx) = graph.nodes.iter().position(|n| taken(graph, n).is_some()) {
        inline_one(graph, idx)?;
        count += 1;
    }
    Ok(count)
}

/// The branch a constant condition selects: 0 then, 1 else.
fn taken(graph: &Graph, node: &Node) -> Option<usize> {
    if !matches!(node.op, Op::Control(ControlOp::If { .. })) {
        return None;
    }
    let cond = graph.values[(*node.inputs.first()?)?].constant.as_ref()?;
    if cond.len() != 1 {
        return None;
    }
    let v = cond.to_vec::<f64>().ok()?[0];
    Some(if v != 0.0 { 0 } else { 1 })
}

fn inline_one(graph: &mut Graph, idx: usize) -> Result<(), RuntimeError> {
    let err = |reason: String| RuntimeError::Optimize {
        pass: "inline_ifs".into(),
        reason,
    };
    let node = &graph.nodes[idx];
    let which = taken(graph, node).expect("caller checked");
    let branch: Graph = match &node.op {
        Op::Control(ControlOp::If {
            then_branch,
            else_branch,
        }) => {
            if which == 0 {
                (**then_branch).clone()
            } else {
                (**else_branch).clone()
            }
        }
        _ => unreachable!("caller checked"),
    };
    let node_name = node.display_name(graph);
    if !branch.inputs.is_empty() {
        return Err(err(format!("If '{node_name}': a branch declares inputs")));
    }
    if branch.outputs.len() < node.outputs.len() {
        return Err(err(format!(
            "If '{node_name}': the branch has {} outputs, the node {}",
            branch.outputs.len(),
            node.outputs.len()
        )));
    }
    let if_outputs = node.outputs.clone();
    // Resolve captures before changing anything.
    let index: HashMap<String, ValueId> = graph
        .value_index()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for v in branch.values.iter().filter(|v| v.outer) {
        if !index.contains_key(&v.name) {
            return Err(err(format!(
                "If '{node_name}': the branch reads '{}', which the graph does not define",
                v.name
            )));
        }
    }
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut map: Vec<ValueId> = Vec::with_capacity(branch.values.len());
    let mut renames: HashMap<String, String> = HashMap::new();
    for v in &branch.values {
        if v.outer {
            map.push(index[&v.name]);
            continue;
        }
        let name = names.fresh(&v.name);
        if name != v.name {
            renames.insert(v.name.clone(), name.clone());
        }
        map.push(graph.add_value(Value {
            name,
            info: v.info.clone(),
            constant: v.constant.clone(),
            outer: false,
        }));
    }
    let mut added: Vec<Node> = Vec::with_capacity(branch.nodes.len() + if_outputs.len());
    for mut n in branch.nodes {
        for v in n.inputs.iter_mut().chain(n.outputs.iter_mut()).flatten() {
            *v = map[*v];
        }
        if !renames.is_empty() {
            for sub in n.op.subgraphs_mut() {
                rename_captures(sub, &renames);
            }
        }
        added.push(n);
    }
    for (k, slot) in if_outputs.iter().enumerate() {
        let Some(old) = *slot else { continue };
        let new = map[branch.outputs[k]];
        if uses.is_output[old] {
            added.push(Node {
                name: names.fresh(&format!("{node_name}_out{k}")),
                op: Op::Elementwise(ElementwiseOp::Identity),
                inputs: vec![Some(new)],
                outputs: vec![Some(old)],
            });
        } else {
            redirect(graph, old, new);
        }
    }
    graph.nodes.remove(idx);
    graph.nodes.extend(added);
    graph.sort().map_err(|e| err(e.to_string()))
}
