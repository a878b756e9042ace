//! Graph helpers shared by the passes: use counts, redirecting reads (including
//! reads by name from subgraphs), fresh names, rebuilding the node list, the sweep
//! that folds nodes into a neighbour, and per-output-channel weight rewriting.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, Node, NodeId, Op, Value, ValueId};
use slimnet_tensor::{DType, Tensor};

use crate::RuntimeError;

/// Who produces and who reads each value of a graph, computed once per sweep.
pub(crate) struct Uses {
    /// Reads per value: node inputs, captures by subgraphs, and graph outputs.
    pub count: Vec<usize>,
    /// For each value, its producing node and output slot.
    pub producer: Vec<Option<(NodeId, usize)>>,
    pub is_output: Vec<bool>,
    pub is_input: Vec<bool>,
}

impl Uses {
    pub fn of(graph: &Graph) -> Uses {
        let n = graph.values.len();
        let mut count = vec![0; n];
        let mut producer = vec![None; n];
        let mut is_output = vec![false; n];
        let mut is_input = vec![false; n];
        let index = graph.value_index();
        for (i, node) in graph.nodes.iter().enumerate() {
            for &v in node.inputs.iter().flatten() {
                count[v] += 1;
            }
            for sub in node.op.subgraphs() {
                for name in sub.captured_names() {
                    if let Some(&v) = index.get(name.as_str()) {
                        count[v] += 1;
                    }
                }
            }
            for (k, o) in node.outputs.iter().enumerate() {
                if let Some(o) = *o {
                    producer[o] = Some((i, k));
                }
            }
        }
        for &o in &graph.outputs {
            count[o] += 1;
            is_output[o] = true;
        }
        for &i in &graph.inputs {
            is_input[i] = true;
        }
        Uses {
            count,
            producer,
            is_output,
            is_input,
        }
    }

    /// The node producing `v`, when `v` is read exactly once (by the node that asks)
    /// and is not a graph output: such a producer can be rewritten freely.
    pub fn sole_producer(&self, v: ValueId) -> Option<NodeId> {
        if self.count[v] != 1 || self.is_output[v] {
            return None;
        }
        self.producer[v].map(|(n, _)| n)
    }
}

/// The constant held by a value, if any.
pub(crate) fn constant(graph: &Graph, v: ValueId) -> Option<&Tensor> {
    graph.values.get(v)?.constant.as_deref()
}

/// The single value of a constant whose elements are all equal (and that has at
/// most one element, so it cannot change the shape it is broadcast against more
/// than a scalar would).
pub(crate) fn scalar_constant(graph: &Graph, v: ValueId) -> Option<f64> {
    let t = constant(graph, v)?;
    if t.len() != 1 {
        return None;
    }
    t.to_vec::<f64>().ok()?.first().copied()
}

/// True when every element of the constant `v` equals `x` (and it has any).
pub(crate) fn constant_all(graph: &Graph, v: ValueId, x: f64) -> bool {
    constant(graph, v)
        .and_then(|t| t.to_vec::<f64>().ok())
        .is_some_and(|e| !e.is_empty() && e.iter().all(|&y| y == x))
}

/// Makes every read of `old` a read of `new`: node inputs, and captures by name in
/// subgraphs. Graph outputs are left alone; callers handle them.
pub(crate) fn redirect(graph: &mut Graph, old: ValueId, new: ValueId) {
    let from = graph.values[old].name.clone();
    let to = graph.values[new].name.clone();
    let mut renames = HashMap::new();
    if from != to {
        renames.insert(from, to);
    }
    for node in &mut graph.nodes {
        for input in node.inputs.iter_mut().flatten() {
            if *input == old {
                *input = new;
            }
        }
        if !renames.is_empty() {
            for sub in node.op.subgraphs_mut() {
                rename_captures(sub, &renames);
            }
        }
    }
}

/// Renames what `sub` (and the subgraphs inside it) read by name from enclosing
/// scopes, except names `sub` defines itself.
pub(crate) fn rename_captures(sub: &mut Graph, renames: &HashMap<String, String>) {
    let local: HashSet<&str> = sub
        .values
        .iter()
        .filter(|v| !v.outer)
        .map(|v| v.name.as_str())
        .collect();
    let inner: HashMap<String, String> = renames
        .iter()
        .filter(|(k, _)| !local.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if inner.is_empty() {
        return;
    }
    for v in &mut sub.values {
        if v.outer {
            if let Some(n) = inner.get(&v.name) {
                v.name = n.clone();
            }
        }
    }
    for node in &mut sub.nodes {
        for s in node.op.subgraphs_mut() {
            rename_captures(s, &inner);
        }
    }
}

/// Value names in use in a graph, to hand out fresh ones.
pub(crate) struct Names(HashSet<String>);

impl Names {
    pub fn of(graph: &Graph) -> Names {
        Names(graph.values.iter().map(|v| v.name.clone()).collect())
    }

    /// `base` if unused, else `base_1`, `base_2`, ...; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// Adds a constant value with a fresh name derived from `base`.
pub(crate) fn add_constant(graph: &mut Graph, names: &mut Names, base: &str, t: Tensor) -> ValueId {
    let mut v = Value::new(names.fresh(base));
    v.info = slimnet_ir::ValueInfo::of_tensor(&t);
    v.constant = Some(Arc::new(t));
    graph.add_value(v)
}

/// Adds a value without a producer yet (for a new node's output).
pub(crate) fn add_value(
    graph: &mut Graph,
    names: &mut Names,
    base: &str,
    info: slimnet_ir::ValueInfo,
) -> ValueId {
    let mut v = Value::new(names.fresh(base));
    v.info = info;
    graph.add_value(v)
}

/// Drops the nodes flagged in `removed`, appends `added` and re-sorts.
pub(crate) fn finish(
    graph: &mut Graph,
    pass: &str,
    removed: &[bool],
    added: Vec<Node>,
) -> Result<(), RuntimeError> {
    let mut k = 0;
    graph.nodes.retain(|_| {
        let keep = !removed.get(k).copied().unwrap_or(false);
        k += 1;
        keep
    });
    graph.nodes.extend(added);
    graph.sort().map_err(|e| RuntimeError::Optimize {
        pass: pass.into(),
        reason: e.to_string(),
    })
}

/// Removes values nothing refers to (not an input, output, node operand, or a name
/// a subgraph captures) and renumbers the rest.
pub(crate) fn compact(graph: &mut Graph) {
    let mut keep = vec![false; graph.values.len()];
    for &v in graph.inputs.iter().chain(&graph.outputs) {
        keep[v] = true;
    }
    let index = graph.value_index();
    for node in &graph.nodes {
        for &v in node.inputs.iter().chain(&node.outputs).flatten() {
            keep[v] = true;
        }
        for sub in node.op.subgraphs() {
            for name in sub.captured_names() {
                if let Some(&v) = index.get(name.as_str()) {
                    keep[v] = true;
                }
            }
        }
    }
    let mut map = vec![usize::MAX; graph.values.len()];
    let old = std::mem::take(&mut graph.values);
    for (i, v) in old.into_iter().enumerate() {
        if keep[i] {
            map[i] = graph.values.len();
            graph.values.push(v);
        }
    }
    for v in graph.inputs.iter_mut().chain(graph.outputs.iter_mut()) {
        *v = map[*v];
    }
    for node in &mut graph.nodes {
        for v in node
            .inputs
            .iter_mut()
            .chain(node.outputs.iter_mut())
            .flatten()
        {
            *v = map[*v];
        }
    }
}

/// A float32 constant's shape and values (as f64).
pub(crate) fn f32_constant(graph: &Graph, v: ValueId) -> Option<(Vec<usize>, Vec<f64>)> {
    let t = constant(graph, v)?;
    if t.dtype() != slimnet_tensor::DType::F32 {
        return None;
    }
    Some((t.shape().to_vec(), t.to_vec::<f64>().ok()?))
}

/// The `n` per-channel values of a constant that, broadcast against a tensor of
/// rank `rank`, varies along `axis` only: its rank is at most `rank` and each of
/// its dimensions is 1, except the one aligned with `axis`, which may be `n`. A
/// single element is repeated `n` times. `None` for other shapes or non-f32 data.
pub(crate) fn per_axis(t: &Tensor, rank: usize, axis: usize, n: usize) -> Option<Vec<f64>> {
    if t.dtype() != slimnet_tensor::DType::F32 || t.rank() > rank || axis >= rank {
        return None;
    }
    let offset = rank - t.rank();
    let fits = t
        .shape()
        .iter()
        .enumerate()
        .all(|(j, &d)| d == 1 || (offset + j == axis && d == n));
    if !fits {
        return None;
    }
    let v = t.to_vec::<f64>().ok()?;
    match v.len() {
        1 => Some(vec![v[0]; n]),
        l if l == n => Some(v),
        _ => None,
    }
}

/// One fold found by a pass: the node `kept` is rewritten (by the pass's `apply`)
/// and the nodes in `removed` are dropped.
pub(crate) struct Fold<P> {
    pub kept: NodeId,
    pub removed: Vec<NodeId>,
    pub plan: P,
}

/// Runs `plan` on every node of one sweep and applies each fold whose nodes no
/// earlier fold of the sweep has touched; drops the removed nodes, re-sorts, and
/// returns how many folds it applied. `apply` gets the kept node, the removed nodes
/// and the plan.
pub(crate) fn fold_nodes<P>(
    graph: &mut Graph,
    pass: &str,
    plan: impl Fn(&Graph, &Uses, NodeId) -> Option<Fold<P>>,
    mut apply: impl FnMut(&mut Graph, &mut Names, NodeId, &[NodeId], P),
) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut removed = vec![false; graph.nodes.len()];
    let mut touched = vec![false; graph.nodes.len()];
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let Some(fold) = plan(graph, &uses, i) else {
            continue;
        };
        if touched[fold.kept] || fold.removed.iter().any(|&n| touched[n]) {
            continue;
        }
        apply(graph, &mut names, fold.kept, &fold.removed, fold.plan);
        touched[fold.kept] = true;
        for n in fold.removed {
            removed[n] = true;
            touched[n] = true;
        }
        count += 1;
    }
    if count > 0 {
        finish(graph, pass, &removed, Vec::new())?;
    }
    Ok(count)
}

/// [`fold_nodes`] for passes where node `i` folds into the node producing its
/// input: `plan` gives that producer, `apply` rewrites it, and the producer then
/// writes node `i`'s first output in its place.
pub(crate) fn fold_into_producer<P>(
    graph: &mut Graph,
    pass: &str,
    plan: impl Fn(&Graph, &Uses, NodeId) -> Option<(NodeId, P)>,
    mut apply: impl FnMut(&mut Graph, &mut Names, NodeId, P),
) -> Result<usize, RuntimeError> {
    fold_nodes(
        graph,
        pass,
        |graph, uses, i| {
            let (kept, plan) = plan(graph, uses, i)?;
            Some(Fold {
                kept,
                removed: vec![i],
                plan,
            })
        },
        |graph, names, producer, removed, plan| {
            apply(graph, names, producer, plan);
            graph.nodes[producer].outputs[0] = graph.nodes[removed[0]].outputs[0];
        },
    )
}

/// The producer of `v` when it can be rewritten freely ([`Uses::sole_producer`])
/// and `v` is its only output.
pub(crate) fn sole_output_producer(graph: &Graph, uses: &Uses, v: ValueId) -> Option<NodeId> {
    let producer = uses.sole_producer(v)?;
    let p = &graph.nodes[producer];
    (p.outputs.len() == 1 && p.outputs[0] == Some(v)).then_some(producer)
}

/// The non-constant operand and the float32 constant operand of a binary node.
pub(crate) fn split_constant(
    graph: &Graph,
    inputs: &[Option<ValueId>],
) -> Option<(ValueId, ValueId)> {
    if inputs.len() != 2 {
        return None;
    }
    let (a, b) = (inputs[0]?, inputs[1]?);
    let (y, c) = if constant(graph, b).is_some() {
        (a, b)
    } else {
        (b, a)
    };
    if constant(graph, y).is_some() || constant(graph, c)?.dtype() != DType::F32 {
        return None;
    }
    Some((y, c))
}

/// A binary node `op(y, c)` that its producer may absorb (see [`follower`]).
pub(crate) struct Follower {
    /// The node producing `y`.
    pub producer: NodeId,
    /// The float32 constant operand.
    pub constant: ValueId,
    /// The shape of `y` and of the node's output.
    pub shape: Vec<usize>,
}

/// Node `i` when it is `want(y, c)` (either operand order) with `c` a float32
/// constant, `y` float32 with a known shape, produced as the only output of a node
/// that can be rewritten freely, and the node's output of `y`'s shape.
pub(crate) fn follower(
    graph: &Graph,
    uses: &Uses,
    i: NodeId,
    want: ElementwiseOp,
) -> Option<Follower> {
    let node = &graph.nodes[i];
    if !matches!(&node.op, Op::Elementwise(op) if *op == want) {
        return None;
    }
    let (y, c) = split_constant(graph, &node.inputs)?;
    let producer = sole_output_producer(graph, uses, y)?;
    let info = &graph.values[y].info;
    let shape = info.concrete_shape()?;
    let out_shape = graph.values[(*node.outputs.first()?)?]
        .info
        .concrete_shape()?;
    if info.dtype != Some(DType::F32) || out_shape != shape {
        return None;
    }
    Some(Follower {
        producer,
        constant: c,
        shape,
    })
}

/// `w[k] * s[channel_of(k)]`, rounded to f32 once.
pub(crate) fn scaled(w: &[f64], s: &[f64], channel_of: impl Fn(usize) -> usize) -> Vec<f32> {
    w.iter()
        .enumerate()
        .map(|(k, &v)| (v * s[channel_of(k)]) as f32)
        .collect()
}

/// The output channel of each element of the weight of `op`, when its `shape` fits
/// `m` output channels: a `Conv` weight `[M, C/group, ...]` or a `ConvTranspose`
/// weight `[C, M/group, ...]` (`m` not 0), or a 2-D `Gemm` `B` (`[M, K]` when
/// `trans_b`, else `[K, M]`). `None` for other ops and shapes.
pub(crate) fn out_channel(
    op: &Op,
    shape: &[usize],
    m: usize,
) -> Option<Box<dyn Fn(usize) -> usize>> {
    if let Op::Nn(NnOp::Gemm(gemm)) = op {
        if shape.len() != 2 {
            return None;
        }
        return if gemm.trans_b {
            let k_dim = shape[1];
            (shape[0] == m).then(|| Box::new(move |k| k / k_dim) as Box<dyn Fn(usize) -> usize>)
        } else {
            (shape[1] == m).then(|| Box::new(move |k| k % m) as Box<dyn Fn(usize) -> usize>)
        };
    }
    if shape.len() < 2 || m == 0 {
        return None;
    }
    let inner: usize = shape[2..].iter().product();
    match op {
        Op::Nn(NnOp::Conv(_)) => {
            if shape[0] != m {
                return None;
            }
            let per = shape[1] * inner;
            Some(Box::new(move |k| k / per))
        }
        Op::Nn(NnOp::ConvTranspose(ct)) => {
            let g = usize::try_from(ct.group).ok()?;
            if g == 0 || !shape[0].is_multiple_of(g) || shape[1] * g != m {
                return None;
            }
            let (cin_g, m_g) = (shape[0] / g, shape[1]);
            Some(Box::new(move |k| {
                let ci = k / (m_g * inner);
                let j = (k / inner) % m_g;
                (ci / cin_g) * m_g + j
            }))
        }
        _ => None,
    }
}
