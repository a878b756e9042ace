//! Dead-node elimination.

use slimnet_ir::Graph;

use super::util::{finish, Uses};
use crate::RuntimeError;

/// Removes nodes of `graph` none of whose outputs is read (by a node, a subgraph
/// capture or as a graph output), transitively, and returns how many it removed.
/// Every operator here is free of side effects, so control flow is removed too.
pub fn eliminate_dead(graph: &mut Graph) -> Result<usize, RuntimeError> {
    let mut uses = Uses::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in (0..graph.nodes.len()).rev() {
        let node = &graph.nodes[i];
        if node.outputs.iter().flatten().any(|&o| uses.count[o] > 0) {
            continue;
        }
        for v in graph.node_reads(node) {
            uses.count[v] -= 1;
        }
        removed[i] = true;
        count += 1;
    }
    if count > 0 {
        finish(graph, "eliminate_dead", &removed, Vec::new())?;
    }
    Ok(count)
}
