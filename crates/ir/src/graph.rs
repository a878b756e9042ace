use std::collections::HashMap;

use crate::{IrError, Op, Value, ValueId};

/// Index of a node in its graph's node list.
pub type NodeId = usize;

/// One operator application.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// `None` for an omitted optional output.
    pub outputs: Vec<Option<ValueId>>,
}

impl Node {
    /// Name for messages: the node's name, or its first output's.
    pub fn display_name(&self, graph: &Graph) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        self.outputs
            .iter()
            .flatten()
            .next()
            .map(|&v| format!("<producer of {}>", graph.values[v].name))
            .unwrap_or_else(|| format!("<{}>", self.op.op_type()))
    }
}

/// A dataflow graph. Nodes are kept in topological order (see [`Graph::sort`]).
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Set by shape inference on an `If` branch that the known condition excludes:
    /// its shapes were not inferred, and it cannot run for the inputs given.
    pub unreachable: bool,
}

/// A model: the main graph plus the metadata an exporter wrote.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub graph: Graph,
    pub ir_version: i64,
    /// Operator sets by domain (`""` is the default ONNX domain).
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub metadata: Vec<(String, String)>,
}

impl Model {
    /// Version of the default ONNX operator set.
    pub fn opset(&self) -> i64 {
        self.opsets
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map(|(_, v)| *v)
            .unwrap_or(1)
    }
}

impl Graph {
    pub fn add_value(&mut self, value: Value) -> ValueId {
        self.values.push(value);
        self.values.len() - 1
    }

    /// Ids of values by name.
    pub fn value_index(&self) -> HashMap<&str, ValueId> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), i))
            .collect()
    }

    pub fn find_value(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name)
    }

    /// For each value, the node producing it (if any).
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.values.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            for &o in node.outputs.iter().flatten() {
                p[o] = Some(n);
            }
        }
        p
    }

    /// For each value, the nodes reading it (including reads from inside subgraphs).
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            for v in self.node_reads(node) {
                if !c[v].contains(&n) {
                    c[v].push(n);
                }
            }
        }
        c
    }

    /// Values a node reads: its inputs plus what its subgraphs capture from this graph.
    pub fn node_reads(&self, node: &Node) -> Vec<ValueId> {
        let mut reads: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
        let index = self.value_index();
        for sub in node.op.subgraphs() {
            for name in sub.captured_names() {
                if let Some(&v) = index.get(name.as_str()) {
                    reads.push(v);
                }
            }
        }
        reads
    }

    /// Names this graph (and its nested subgraphs) read from enclosing scopes.
    pub fn captured_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .values
            .iter()
            .filter(|v| v.outer)
            .map(|v| v.name.clone())
            .collect();
        for node in &self.nodes {
            for sub in node.op.subgraphs() {
                for n in sub.captured_names() {
                    if self.find_value(&n).is_none() && !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        names
    }

    /// Reorders nodes topologically (stable for already sorted graphs), or reports a
    /// cycle or a value with two producers.
    pub fn sort(&mut self) -> Result<(), IrError> {
        let mut producer = vec![None; self.values.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            for &o in node.outputs.iter().flatten() {
                if producer[o].is_some() {
                    return Err(IrError::Graph(format!(
                        "value '{}' is produced by two nodes",
                        self.values[o].name
                    )));
                }
                producer[o] = Some(n);
            }
        }
        let deps: Vec<Vec<NodeId>> = self
            .nodes
            .iter()
            .map(|node| {
                self.node_reads(node)
                    .into_iter()
                    .filter_map(|v| producer[v])
                    .collect()
            })
            .collect();
        let mut state = vec![0u8; self.nodes.len()]; // 0 new, 1 visiting, 2 done
        let mut order = Vec::with_capacity(self.nodes.len());
        for start in 0..self.nodes.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some((n, i)) = stack.pop() {
                if i < deps[n].len() {
                    stack.push((n, i + 1));
                    let d = deps[n][i];
                    match state[d] {
                        0 => {
                            state[d] = 1;
                            stack.push((d, 0));
                        }
                        1 => {
                            let name = self.nodes[d].display_name(self);
                            return Err(IrError::Graph(format!(
                                "the graph has a cycle through node '{name}'"
                            )));
                        }
                        _ => {}
                    }
                } else {
                    state[n] = 2;
                    order.push(n);
                }
            }
        }
        let mut old: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        self.nodes = order
            .into_iter()
            .map(|n| old[n].take().expect("each node once"))
            .collect();
        Ok(())
    }

    /// Number of nodes here and in all nested subgraphs.
    pub fn node_count_deep(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                1 + n
                    .op
                    .subgraphs()
                    .iter()
                    .map(|g| g.node_count_deep())
                    .sum::<usize>()
            })
            .sum()
    }
}
