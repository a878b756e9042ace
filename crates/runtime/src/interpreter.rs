//! The reference interpreter: runs a graph node by node in topological order.

use std::borrow::Cow;
use std::collections::HashMap;

use slimnet_ir::ops::ControlOp;
use slimnet_ir::{Dim, Graph, Model, Node, Op};
use slimnet_tensor::{Tensor, TensorData};

use crate::reference::run_op;
use crate::RuntimeError;

/// Values visible to a subgraph from its enclosing graphs, by name.
type Captures<'a> = HashMap<String, Cow<'a, Tensor>>;

/// Runs a model on named inputs and returns its outputs by name, in graph order.
///
/// Inputs are checked first (see [`check_inputs`]).
pub fn run_model(
    model: &Model,
    inputs: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, RuntimeError> {
    let graph = &model.graph;
    check_inputs(graph, &inputs)?;
    let mut by_name: HashMap<String, Tensor> = inputs.into_iter().collect();
    let ordered: Vec<Tensor> = graph
        .inputs
        .iter()
        .map(|&v| by_name.remove(&graph.values[v].name).expect("checked"))
        .collect();
    let outputs = run_graph(graph, ordered, &HashMap::new())?;
    Ok(graph
        .outputs
        .iter()
        .map(|&v| graph.values[v].name.clone())
        .zip(outputs)
        .collect())
}

/// Checks named inputs against a graph's declared inputs: every input present and
/// no unknown names, the declared dtype and rank, every known dimension, and each
/// symbolic dimension bound to one size across all inputs.
pub fn check_inputs(graph: &Graph, inputs: &[(String, Tensor)]) -> Result<(), RuntimeError> {
    for (name, _) in inputs {
        if !graph.inputs.iter().any(|&v| &graph.values[v].name == name) {
            let expected: Vec<&str> = graph
                .inputs
                .iter()
                .map(|&v| graph.values[v].name.as_str())
                .collect();
            return Err(RuntimeError::Input {
                name: name.clone(),
                reason: format!(
                    "the model has no such input (its inputs: {})",
                    expected.join(", ")
                ),
            });
        }
    }
    let mut symbols: HashMap<&str, usize> = HashMap::new();
    for &v in &graph.inputs {
        let value = &graph.values[v];
        let err = |reason: String| RuntimeError::Input {
            name: value.name.clone(),
            reason,
        };
        let Some((_, t)) = inputs.iter().find(|(n, _)| n == &value.name) else {
            return Err(err(format!(
                "missing (expected {} {})",
                value.info.dtype.map(|d| d.name()).unwrap_or("tensor"),
                value.info.shape_text()
            )));
        };
        if let Some(d) = value.info.dtype {
            if d != t.dtype() {
                return Err(err(format!("expected dtype {d}, got {}", t.dtype())));
            }
        }
        if let Some(shape) = &value.info.shape {
            if shape.len() != t.rank() {
                return Err(err(format!(
                    "expected shape {} (rank {}), got {:?}",
                    value.info.shape_text(),
                    shape.len(),
                    t.shape()
                )));
            }
            for (axis, (dim, &got)) in shape.iter().zip(t.shape()).enumerate() {
                match dim {
                    Dim::Known(want) if *want != got => {
                        return Err(err(format!(
                            "expected shape {}, got {:?} (dimension {axis} must be {want})",
                            value.info.shape_text(),
                            t.shape()
                        )));
                    }
                    Dim::Symbol(s) => {
                        let bound = *symbols.entry(s.as_str()).or_insert(got);
                        if bound != got {
                            return Err(err(format!(
                                "dimension '{s}' is {got} here but {bound} in another input"
                            )));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Runs a graph on its inputs (in declared order) and returns its outputs in order.
/// `captures` holds the enclosing graphs' values that a subgraph reads by name.
pub fn run_graph<'a>(
    graph: &'a Graph,
    inputs: Vec<Tensor>,
    captures: &'a Captures<'a>,
) -> Result<Vec<Tensor>, RuntimeError> {
    if inputs.len() != graph.inputs.len() {
        return Err(RuntimeError::Graph(format!(
            "graph '{}' takes {} inputs, got {}",
            graph.name,
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let mut env: Vec<Option<Cow<'a, Tensor>>> = vec![None; graph.values.len()];
    for (i, v) in graph.values.iter().enumerate() {
        if let Some(c) = &v.constant {
            env[i] = Some(Cow::Borrowed(c.as_ref()));
        } else if v.outer {
            let t = captures.get(&v.name).ok_or_else(|| {
                RuntimeError::Graph(format!("subgraph reads '{}', which is not defined", v.name))
            })?;
            env[i] = Some(Cow::Borrowed(t.as_ref()));
        }
    }
    for (&v, t) in graph.inputs.iter().zip(inputs) {
        env[v] = Some(Cow::Owned(t));
    }
    let mut remaining_uses = vec![0usize; graph.values.len()];
    for node in &graph.nodes {
        for v in graph.node_reads(node) {
            remaining_uses[v] += 1;
        }
    }
    for &o in &graph.outputs {
        remaining_uses[o] += 1;
    }
    for node in &graph.nodes {
        let node_err = |reason: String| RuntimeError::Node {
            node: node.display_name(graph),
            op_type: node.op.op_type().to_string(),
            reason,
        };
        let outputs = {
            let ins: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|i| match i {
                    None => Ok(None),
                    Some(v) => env[*v].as_deref().map(Some).ok_or_else(|| {
                        node_err(format!("input '{}' has no value", graph.values[*v].name))
                    }),
                })
                .collect::<Result<_, _>>()?;
            match &node.op {
                Op::Control(c) => {
                    let lookup = |name: &str| -> Option<&Tensor> {
                        graph
                            .find_value(name)
                            .and_then(|v| env[v].as_deref())
                            .or_else(|| captures.get(name).map(|c| c.as_ref()))
                    };
                    run_control(graph, node, c, &ins, &lookup)?
                }
                op => run_op(op, &ins, node.outputs.len()).map_err(node_err)?,
            }
        };
        if outputs.len()
            < node
                .outputs
                .iter()
                .rposition(Option::is_some)
                .map_or(0, |p| p + 1)
        {
            return Err(node_err(format!(
                "produced {} outputs, {} expected",
                outputs.len(),
                node.outputs.len()
            )));
        }
        for (slot, t) in node.outputs.iter().zip(outputs) {
            if let Some(v) = slot {
                env[*v] = Some(Cow::Owned(t));
            }
        }
        for v in graph.node_reads(node) {
            remaining_uses[v] -= 1;
            if remaining_uses[v] == 0 {
                env[v] = None;
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|&o| {
            env[o].take().map(Cow::into_owned).ok_or_else(|| {
                RuntimeError::Graph(format!(
                    "graph output '{}' was never computed",
                    graph.values[o].name
                ))
            })
        })
        .collect()
}

/// Reads an enclosing graph's value by name, for the subgraphs of control-flow nodes.
pub(crate) type Lookup<'a> = dyn Fn(&str) -> Option<&'a Tensor> + 'a;

fn scope_for<'a>(lookup: &Lookup<'a>, sub: &Graph) -> Captures<'a> {
    let mut scope: Captures = HashMap::new();
    for name in sub.captured_names() {
        if let Some(t) = lookup(&name) {
            scope.insert(name, Cow::Borrowed(t));
        }
    }
    scope
}

/// Runs a control-flow node of `graph`; its subgraphs read enclosing values through
/// `lookup`.
pub(crate) fn run_control<'a>(
    graph: &Graph,
    node: &Node,
    op: &ControlOp,
    inputs: &[Option<&Tensor>],
    lookup: &Lookup<'a>,
) -> Result<Vec<Tensor>, RuntimeError> {
    let node_err = |reason: String| RuntimeError::Node {
        node: node.display_name(graph),
        op_type: node.op.op_type().to_string(),
        reason,
    };
    match op {
        ControlOp::If {
            then_branch,
            else_branch,
        } => {
            let cond = inputs
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| node_err("condition is missing".into()))?;
            let value = truthy(cond).map_err(node_err)?;
            let branch = if value { then_branch } else { else_branch };
            let scope = scope_for(lookup, branch);
            run_graph(branch, Vec::new(), &scope)
        }
        ControlOp::Scan(scan) => run_scan(lookup, scan, inputs).map_err(node_err),
        ControlOp::Loop { body } => {
            let max_trips = match inputs.first().copied().flatten() {
                Some(m) => Some(
                    m.to_i64_vec()
                        .map_err(|e| node_err(e.to_string()))?
                        .first()
                        .copied()
                        .unwrap_or(0),
                ),
                None => None,
            };
            let mut cond = match inputs.get(1).copied().flatten() {
                Some(c) => truthy(c).map_err(node_err)?,
                None => true,
            };
            let mut carried: Vec<Tensor> = inputs[2.min(inputs.len())..]
                .iter()
                .map(|t| {
                    t.cloned()
                        .ok_or_else(|| node_err("loop-carried input is missing".into()))
                })
                .collect::<Result<_, _>>()?;
            let n_carried = carried.len();
            let n_scan = body.outputs.len() - 1 - n_carried;
            let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); n_scan];
            let scope = scope_for(lookup, body);
            let mut i: i64 = 0;
            while cond && max_trips.is_none_or(|m| i < m) {
                let mut body_inputs = vec![Tensor::scalar(i), Tensor::scalar(cond)];
                body_inputs.extend(carried.iter().cloned());
                let mut outs = run_graph(body, body_inputs, &scope)?.into_iter();
                cond = truthy(&outs.next().expect("condition output")).map_err(node_err)?;
                carried = outs.by_ref().take(n_carried).collect();
                for (s, t) in scans.iter_mut().zip(outs) {
                    s.push(t);
                }
                i += 1;
                if i > 100_000_000 {
                    return Err(node_err("loop ran for more than 10^8 iterations".into()));
                }
            }
            let mut result = carried;
            for (k, s) in scans.into_iter().enumerate() {
                result.push(stack(s).map_err(|e| node_err(format!("scan output {k}: {e}")))?);
            }
            Ok(result)
        }
    }
}

fn run_scan<'a>(
    lookup: &Lookup<'a>,
    scan: &slimnet_ir::ops::control::Scan,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let m = scan.num_scan_inputs;
    let n = inputs.len() - m;
    let all: Vec<&Tensor> = inputs
        .iter()
        .map(|t| t.ok_or("Scan inputs cannot be omitted"))
        .collect::<Result<_, _>>()?;
    let (states, scanned) = all.split_at(n);
    let mut axes = Vec::with_capacity(m);
    let mut length = None;
    for (j, t) in scanned.iter().enumerate() {
        let axis = crate::reference::util::normalize_axis(scan.scan_input_axes[j], t.rank())?;
        let len = t.shape()[axis];
        if length.is_some_and(|l| l != len) {
            return Err(format!(
                "scan input {j} has {len} steps, another has {}",
                length.unwrap_or(0)
            ));
        }
        length = Some(len);
        axes.push(axis);
    }
    let steps = length.unwrap_or(0);
    let mut state: Vec<Tensor> = states.iter().map(|t| (*t).clone()).collect();
    let k = scan.body.outputs.len() - n;
    let mut collected: Vec<Vec<Tensor>> = vec![Vec::new(); k];
    let scope = scope_for(lookup, &scan.body);
    for t in 0..steps {
        let mut body_inputs = state.clone();
        for (j, x) in scanned.iter().enumerate() {
            let i = if scan.scan_input_directions[j] == 1 {
                steps - 1 - t
            } else {
                t
            };
            body_inputs.push(take_along(x, axes[j], i)?);
        }
        let outs = run_graph(&scan.body, body_inputs, &scope).map_err(|e| e.to_string())?;
        let mut outs = outs.into_iter();
        state = outs.by_ref().take(n).collect();
        for (c, o) in collected.iter_mut().zip(outs) {
            c.push(o);
        }
    }
    let mut result = state;
    for (j, mut items) in collected.into_iter().enumerate() {
        if scan.scan_output_directions[j] == 1 {
            items.reverse();
        }
        let stacked = stack(items)?;
        let axis =
            crate::reference::util::normalize_axis(scan.scan_output_axes[j], stacked.rank())?;
        result.push(move_axis_from_front(stacked, axis)?);
    }
    Ok(result)
}

/// The slice at `index` along `axis`, with that axis removed.
fn take_along(t: &Tensor, axis: usize, index: usize) -> Result<Tensor, String> {
    let shape = t.shape();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let len = shape[axis];
    let idx = (0..outer).flat_map(move |o| (0..inner).map(move |i| (o * len + index) * inner + i));
    let mut out_shape = shape.to_vec();
    out_shape.remove(axis);
    Tensor::new(out_shape, t.data().gather(idx)).map_err(|e| e.to_string())
}

/// Moves axis 0 to position `axis`.
fn move_axis_from_front(t: Tensor, axis: usize) -> Result<Tensor, String> {
    if axis == 0 {
        return Ok(t);
    }
    let shape = t.shape().to_vec();
    let (steps, rest) = (shape[0], &shape[1..]);
    let outer: usize = rest[..axis].iter().product();
    let inner: usize = rest[axis..].iter().product();
    let idx = (0..outer).flat_map(move |o| {
        (0..steps).flat_map(move |s| (0..inner).map(move |i| (s * outer + o) * inner + i))
    });
    let mut out_shape = rest[..axis].to_vec();
    out_shape.push(steps);
    out_shape.extend_from_slice(&rest[axis..]);
    Tensor::new(out_shape, t.data().gather(idx)).map_err(|e| e.to_string())
}

fn truthy(t: &Tensor) -> Result<bool, String> {
    if t.len() != 1 {
        return Err(format!(
            "condition must hold one element, got shape {:?}",
            t.shape()
        ));
    }
    Ok(t.to_vec::<f64>().map_err(|e| e.to_string())?[0] != 0.0)
}

/// Stacks same-shaped tensors along a new leading axis.
fn stack(items: Vec<Tensor>) -> Result<Tensor, String> {
    let Some(first) = items.first() else {
        return Err("no iterations ran, so the scan output's shape is unknown".into());
    };
    let inner = first.shape().to_vec();
    if items.iter().any(|t| t.shape() != inner.as_slice()) {
        return Err("iterations produced different shapes".into());
    }
    let datas: Vec<&TensorData> = items.iter().map(|t| t.data()).collect();
    let data = TensorData::concat(&datas).ok_or("iterations produced different dtypes")?;
    let mut shape = vec![items.len()];
    shape.extend(inner);
    Tensor::new(shape, data).map_err(|e| e.to_string())
}
