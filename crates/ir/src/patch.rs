use crate::{Graph, IrError, Node, NodeId, ValueId};

/// A rewrite of a graph, built by a pass and applied at once: nodes to remove, nodes
/// to add, and uses of values to redirect to other values.
///
/// Applying a patch keeps the graph's outputs (a redirected graph output is renamed
/// onto its replacement so the model's interface does not change), re-sorts the
/// nodes and fails if the result has a cycle.
#[derive(Debug, Default)]
pub struct Patch {
    pub remove: Vec<NodeId>,
    pub add: Vec<Node>,
    /// `(old, new)`: every read of `old` becomes a read of `new`.
    pub redirect: Vec<(ValueId, ValueId)>,
}

impl Patch {
    pub fn apply(self, graph: &mut Graph) -> Result<(), IrError> {
        let mut remove = self.remove;
        remove.sort_unstable();
        remove.dedup();
        for &n in remove.iter().rev() {
            if n >= graph.nodes.len() {
                return Err(IrError::Graph(format!(
                    "patch removes node {n}, which does not exist"
                )));
            }
            graph.nodes.remove(n);
        }
        graph.nodes.extend(self.add);
        for (old, new) in self.redirect {
            for node in &mut graph.nodes {
                for input in node.inputs.iter_mut().flatten() {
                    if *input == old {
                        *input = new;
                    }
                }
            }
            for out in graph.outputs.iter_mut() {
                if *out == old {
                    *out = new;
                    let name = std::mem::take(&mut graph.values[old].name);
                    graph.values[old].name = format!("{name}__replaced");
                    graph.values[new].name = name;
                }
            }
        }
        graph.sort()
    }
}
