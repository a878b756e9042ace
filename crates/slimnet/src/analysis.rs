//! Model analysis for `slimnet inspect`: parameters and bytes by dtype, an operator
//! census, MACs per node, and the peak activation memory of a simple schedule.

use std::collections::BTreeMap;

use crate::ir::{Graph, Model, Node, ValueInfo};
use crate::tensor::DType;

/// Parameters (constant elements) and their bytes for one element type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DTypeBytes {
    pub count: usize,
    pub bytes: usize,
}

/// One node of the main graph with its cost.
#[derive(Clone, Debug)]
pub struct NodeCost {
    pub name: String,
    pub op_type: String,
    /// Output shapes as text (`1x3x?`).
    pub outputs: Vec<String>,
    /// Multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul, LSTM, GRU and RNN
    /// (0 for other ops); `None` where shapes are unknown. Nodes inside subgraphs that
    /// can run are listed too; when an `If` condition is unknown both branches count.
    pub macs: Option<u64>,
}

/// What `inspect` reports about a model.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Operator counts, including nodes inside subgraphs.
    pub op_census: BTreeMap<String, usize>,
    pub params_by_dtype: BTreeMap<DType, DTypeBytes>,
    pub nodes: Vec<NodeCost>,
    pub total_macs: u64,
    /// `None` when some activation's shape or dtype is unknown.
    pub peak_activation_bytes: Option<u64>,
    /// Values (here and in subgraphs that can run) whose shape is not fully known.
    pub unknown_shapes: Vec<String>,
}

impl Analysis {
    pub fn param_count(&self) -> usize {
        self.params_by_dtype.values().map(|d| d.count).sum()
    }

    pub fn param_bytes(&self) -> usize {
        self.params_by_dtype.values().map(|d| d.bytes).sum()
    }
}

/// Analyses a model whose shapes have been inferred (see `ir::infer_shapes`).
pub fn analyse(model: &Model) -> Analysis {
    let mut op_census = BTreeMap::new();
    let mut params_by_dtype: BTreeMap<DType, DTypeBytes> = BTreeMap::new();
    let mut unknown_shapes = Vec::new();
    walk(
        &model.graph,
        true,
        &mut op_census,
        &mut params_by_dtype,
        &mut unknown_shapes,
    );
    let mut nodes = Vec::new();
    node_costs(&model.graph, "", &mut nodes);
    let total_macs = nodes.iter().filter_map(|n| n.macs).sum();
    Analysis {
        op_census,
        params_by_dtype,
        nodes,
        total_macs,
        peak_activation_bytes: peak_memory(&model.graph),
        unknown_shapes,
    }
}

/// Costs of the nodes of `g` and of the subgraphs that can run, subgraph nodes named
/// `parent/branch/node`.
fn node_costs(g: &Graph, prefix: &str, out: &mut Vec<NodeCost>) {
    for n in &g.nodes {
        let name = format!("{prefix}{}", n.display_name(g));
        out.push(NodeCost {
            name: name.clone(),
            op_type: n.op.op_type().to_string(),
            outputs: n
                .outputs
                .iter()
                .map(|o| o.map(|v| g.values[v].info.shape_text()).unwrap_or_default())
                .collect(),
            macs: macs(g, n),
        });
        for sub in n.op.subgraphs().into_iter().filter(|s| !s.unreachable) {
            node_costs(sub, &format!("{name}/{}/", sub.name), out);
        }
    }
}

fn walk(
    g: &Graph,
    reachable: bool,
    census: &mut BTreeMap<String, usize>,
    params: &mut BTreeMap<DType, DTypeBytes>,
    unknown: &mut Vec<String>,
) {
    let reachable = reachable && !g.unreachable;
    for v in &g.values {
        if let Some(c) = &v.constant {
            let e = params.entry(c.dtype()).or_default();
            e.count += c.len();
            e.bytes += c.byte_size();
        } else if reachable && !v.outer && v.info.concrete_shape().is_none() {
            unknown.push(v.name.clone());
        }
    }
    for n in &g.nodes {
        *census.entry(n.op.op_type().to_string()).or_default() += 1;
        for sub in n.op.subgraphs() {
            walk(sub, reachable, census, params, unknown);
        }
    }
}

fn dims(g: &Graph, v: Option<usize>) -> Option<Vec<u64>> {
    Some(
        g.values[v?]
            .info
            .concrete_shape()?
            .into_iter()
            .map(|d| d as u64)
            .collect(),
    )
}

fn input_dims(g: &Graph, n: &Node, i: usize) -> Option<Vec<u64>> {
    dims(g, *n.inputs.get(i)?)
}

fn product(d: &[u64]) -> u64 {
    d.iter().product()
}

/// Multiply-accumulates of one node, from shapes alone.
fn macs(g: &Graph, n: &Node) -> Option<u64> {
    let out = || dims(g, *n.outputs.first()?);
    match n.op.op_type() {
        "Conv" => {
            let w = input_dims(g, n, 1)?;
            Some(product(&out()?) * product(w.get(1..)?))
        }
        "ConvTranspose" => {
            let x = input_dims(g, n, 0)?;
            let w = input_dims(g, n, 1)?;
            Some(product(&x) * product(w.get(1..)?))
        }
        "Gemm" => {
            let a = input_dims(g, n, 0)?;
            let o = out()?;
            Some(product(&a) * o.get(1).copied()?)
        }
        "MatMul" => {
            let a = input_dims(g, n, 0)?;
            let k = *a.last()?;
            Some(product(&out()?) * k)
        }
        "LSTM" | "GRU" | "RNN" => {
            let gates = match n.op.op_type() {
                "LSTM" => 4,
                "GRU" => 3,
                _ => 1,
            };
            let x = input_dims(g, n, 0)?;
            let w = input_dims(g, n, 1)?;
            let r = input_dims(g, n, 2)?;
            // W: [dirs, gates*H, I], R: [dirs, gates*H, H]; X has seq*batch*I elements.
            let (dirs, input_size, hidden) = (w[0], w[2], r[2]);
            let steps = product(&x) / input_size.max(1);
            Some(steps * dirs * gates * hidden * (input_size + hidden))
        }
        _ => Some(0),
    }
}

fn bytes_of(info: &ValueInfo) -> Option<u64> {
    let shape = info.concrete_shape()?;
    let size = info.dtype?.size_of().max(1) as u64;
    Some(shape.iter().map(|&d| d as u64).product::<u64>() * size)
}

/// Peak bytes of live activations when nodes run in graph order and every value is
/// freed after its last reader (graph inputs count; constants do not; a subgraph's
/// own peak adds to what is live when its node runs).
fn peak_memory(g: &Graph) -> Option<u64> {
    let consumers = g.consumers();
    let mut last_use = vec![None; g.values.len()];
    for (k, node) in g.nodes.iter().enumerate() {
        for v in g.node_reads(node) {
            last_use[v] = Some(k);
        }
    }
    let mut live: u64 = 0;
    for &i in &g.inputs {
        live += bytes_of(&g.values[i].info)?;
    }
    let mut peak = live;
    for (k, node) in g.nodes.iter().enumerate() {
        for &o in node.outputs.iter().flatten() {
            live += bytes_of(&g.values[o].info)?;
        }
        let mut inner = 0;
        for sub in node.op.subgraphs().into_iter().filter(|s| !s.unreachable) {
            inner = inner.max(peak_memory(sub)?);
        }
        peak = peak.max(live + inner);
        for (v, value) in g.values.iter().enumerate() {
            if last_use[v] == Some(k)
                && value.constant.is_none()
                && !g.outputs.contains(&v)
                && !value.outer
            {
                live = live.saturating_sub(bytes_of(&value.info)?);
            }
        }
        for &o in node.outputs.iter().flatten() {
            if consumers[o].is_empty() && !g.outputs.contains(&o) {
                live = live.saturating_sub(bytes_of(&g.values[o].info)?);
            }
        }
    }
    Some(peak)
}
