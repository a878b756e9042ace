//! Building an execution plan: lowering nodes to steps (fast kernels where a node's
//! shapes and dtypes allow, the reference kernels otherwise), then placing every
//! planned f32 activation in one arena by liveness.

use std::collections::HashMap;
use std::sync::Arc;

use slimnet_ir::{Graph, NodeId, ValueId};
use slimnet_kernels::KernelTable;
use slimnet_tensor::{DType, Tensor};

use super::lower::{self, Lowered};
use super::memory::{self, Lifetime};
use crate::RuntimeError;

/// Where a value lives while a plan runs.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    /// A constant of the graph.
    Constant(Arc<Tensor>),
    /// f32 elements `offset..offset + len` of the arena.
    Arena { offset: usize, len: usize },
    /// A tensor held on its own (non-f32 values and values of unknown shape).
    Dynamic,
    /// Never computed (intermediates of fused steps, omitted outputs).
    Absent,
}

/// One step of a plan: a node, or a group of fused nodes, run by one kernel.
pub(crate) struct Step {
    /// The node whose name and inputs the step reports (the first of a fused group).
    pub node: NodeId,
    /// The op types of the nodes this step runs, joined by `+` (e.g. `Conv+Relu`).
    pub op_types: String,
    pub kernel: Lowered,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Option<ValueId>>,
    /// Dynamic values whose last reader is this step, dropped after it.
    pub release: Vec<ValueId>,
}

/// An execution plan for one binding of input shapes.
pub(crate) struct Plan {
    /// The specialized, optimized graph the steps refer to.
    pub graph: Graph,
    pub steps: Vec<Step>,
    pub slots: Vec<Slot>,
    /// The concrete shape of every arena value.
    pub shapes: Vec<Option<Vec<usize>>>,
    /// Arena length in f32 elements.
    pub arena_len: usize,
    /// Scratch length in f32 elements (the largest any step needs).
    pub scratch_len: usize,
    /// For control-flow steps: the values their subgraphs read from this graph, by name.
    pub captures: HashMap<NodeId, Vec<(String, ValueId)>>,
}

impl Plan {
    /// Lowers every node of `graph` (already specialized: inputs have concrete shapes)
    /// and lays out the arena.
    pub(crate) fn build(
        graph: Graph,
        table: &KernelTable,
        threads: &slimnet_kernels::Threads,
    ) -> Result<Plan, RuntimeError> {
        let shapes: Vec<Option<Vec<usize>>> = graph
            .values
            .iter()
            .map(|v| v.info.concrete_shape())
            .collect();
        let mut consumers: Vec<Vec<NodeId>> = graph.consumers();
        for &o in &graph.outputs {
            // A graph output counts as one more reader, so it is never fused away.
            consumers[o].push(usize::MAX);
        }
        let mut fused = vec![false; graph.nodes.len()];
        let mut steps = Vec::with_capacity(graph.nodes.len());
        let mut scratch_len = 0usize;
        let ctx = lower::Context {
            graph: &graph,
            shapes: &shapes,
            consumers: &consumers,
            table,
            threads,
        };
        for (n, node) in graph.nodes.iter().enumerate() {
            if fused[n] {
                continue;
            }
            let lowering = lower::lower(&ctx, n).map_err(|reason| RuntimeError::Node {
                node: node.display_name(&graph),
                op_type: node.op.op_type().to_string(),
                reason,
            })?;
            let mut op_types = node.op.op_type().to_string();
            let mut outputs = node.outputs.clone();
            for &f in &lowering.fused {
                fused[f] = true;
                op_types.push('+');
                op_types.push_str(graph.nodes[f].op.op_type());
                outputs = graph.nodes[f].outputs.clone();
            }
            scratch_len = scratch_len.max(lowering.scratch_len);
            steps.push(Step {
                node: n,
                op_types,
                kernel: lowering.kernel,
                inputs: node.inputs.clone(),
                outputs,
                release: Vec::new(),
            });
        }
        let captures = control_captures(&graph);
        let mut plan = Plan {
            graph,
            steps,
            slots: Vec::new(),
            shapes,
            arena_len: 0,
            scratch_len,
            captures,
        };
        plan.assign_slots();
        Ok(plan)
    }

    /// Values a step reads: its inputs and, for control flow, its captures.
    fn step_reads(&self, s: &Step) -> Vec<ValueId> {
        let mut reads: Vec<ValueId> = s.inputs.iter().flatten().copied().collect();
        if let Some(c) = self.captures.get(&s.node) {
            reads.extend(c.iter().map(|(_, v)| *v));
        }
        reads
    }

    /// Decides every value's slot and the arena layout.
    fn assign_slots(&mut self) {
        let g = &self.graph;
        let count = g.values.len();
        let mut slots: Vec<Slot> = vec![Slot::Absent; count];
        let arena_ok = |v: ValueId| {
            let value = &g.values[v];
            value.info.dtype == Some(DType::F32) && self.shapes[v].is_some()
        };
        // Buffers: a root per produced value; alias steps share their input's root.
        let mut root: Vec<usize> = (0..count).collect();
        let mut first = vec![usize::MAX; count];
        let mut last = vec![0usize; count];
        for (i, v) in g.values.iter().enumerate() {
            if let Some(c) = &v.constant {
                slots[i] = Slot::Constant(c.clone());
            }
        }
        for &v in &g.inputs {
            slots[v] = if arena_ok(v) {
                Slot::Arena { offset: 0, len: 0 }
            } else {
                Slot::Dynamic
            };
            first[v] = 0;
        }
        for (t, s) in self.steps.iter().enumerate() {
            let time = t + 1;
            for &o in s.outputs.iter().flatten() {
                let aliased = matches!(s.kernel, Lowered::Alias)
                    .then(|| s.inputs.first().copied().flatten())
                    .flatten()
                    .filter(|&i| matches!(slots[i], Slot::Arena { .. }) && arena_ok(o));
                if let Some(i) = aliased {
                    root[o] = root[i];
                    slots[o] = Slot::Arena { offset: 0, len: 0 };
                } else {
                    slots[o] = if arena_ok(o) {
                        Slot::Arena { offset: 0, len: 0 }
                    } else {
                        Slot::Dynamic
                    };
                    first[o] = time;
                }
            }
            for v in self.step_reads(s) {
                let r = root[v];
                last[r] = last[r].max(time);
            }
        }
        let end = self.steps.len() + 1;
        for &o in &g.outputs {
            let r = root[o];
            last[r] = end;
        }
        // Arena buffers: roots in the arena.
        let roots: Vec<usize> = (0..count)
            .filter(|&v| root[v] == v && matches!(slots[v], Slot::Arena { .. }))
            .collect();
        let lifetimes: Vec<Lifetime> = roots
            .iter()
            .map(|&r| Lifetime {
                len: self.shapes[r].as_ref().map_or(0, |s| s.iter().product()),
                first: first[r],
                last: last[r].max(first[r]),
            })
            .collect();
        let (offsets, total) = memory::place(&lifetimes);
        let offset_of: HashMap<usize, usize> = roots.iter().copied().zip(offsets).collect();
        for v in 0..count {
            if let Slot::Arena { .. } = slots[v] {
                let len = self.shapes[v].as_ref().map_or(0, |s| s.iter().product());
                slots[v] = Slot::Arena {
                    offset: offset_of[&root[v]],
                    len,
                };
            }
        }
        // Dynamic values are dropped after their last reader.
        let mut last_dynamic = vec![None; count];
        for (t, s) in self.steps.iter().enumerate() {
            for v in self.step_reads(s) {
                if matches!(slots[v], Slot::Dynamic) {
                    last_dynamic[v] = Some(t);
                }
            }
        }
        for &o in &g.outputs {
            last_dynamic[o] = None;
        }
        for (v, t) in last_dynamic.into_iter().enumerate() {
            if let Some(t) = t {
                self.steps[t].release.push(v);
            }
        }
        self.slots = slots;
        self.arena_len = total;
    }

    /// Bytes of the arena: the planned peak of activation memory.
    pub(crate) fn arena_bytes(&self) -> usize {
        self.arena_len * std::mem::size_of::<f32>()
    }
}

/// For each control-flow node, the values of `graph` its subgraphs read by name.
fn control_captures(graph: &Graph) -> HashMap<NodeId, Vec<(String, ValueId)>> {
    let index = graph.value_index();
    let mut out = HashMap::new();
    for (n, node) in graph.nodes.iter().enumerate() {
        let subs = node.op.subgraphs();
        if subs.is_empty() {
            continue;
        }
        let mut list: Vec<(String, ValueId)> = Vec::new();
        for sub in subs {
            for name in sub.captured_names() {
                if let Some(&v) = index.get(name.as_str()) {
                    if !list.iter().any(|(n, _)| *n == name) {
                        list.push((name, v));
                    }
                }
            }
        }
        out.insert(n, list);
    }
    out
}
