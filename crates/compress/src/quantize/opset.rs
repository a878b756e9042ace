//! Raising a model's default-domain opset (for blocked `DequantizeLinear`, which
//! needs 21), only where every node means the same at the new opset.
//!
//! slimnet keeps each node in the form it was imported in, so a node whose
//! attributes moved to inputs (or whose semantics changed) between the model's opset
//! and the target must be converted or refused:
//!
//! - converted exactly: Reduce* `axes`, Squeeze/Unsqueeze `axes` and Split `split`
//!   attributes become constant int64 inputs (an even Split gets `num_outputs`
//!   from opset 18); Softmax, LogSoftmax and Hardmax of
//!   opsets before 13 over the last axis (where the old 2-D coercion changes
//!   nothing) lose their coercion flag;
//! - refused, naming the node: the other changes (attribute forms of Slice, Pad,
//!   Clip, Dropout and TopK, the old coercion over another axis, Resize before 11,
//!   Upsample, GroupNormalization before 21, DFT before 20), and models below
//!   opset 10.
//!
//! Subgraphs (If, Loop, Scan bodies) are converted the same way.

use std::collections::HashSet;
use std::sync::Arc;

use slimnet_ir::ops::{ReduceOp, ShapeOp};
use slimnet_ir::{Graph, Model, Op, Value, ValueId, ValueInfo};
use slimnet_tensor::Tensor;

use crate::CompressError;

/// The ONNX IR version that goes with opset 21.
const IR_VERSION_21: i64 = 10;

/// Raises the default-domain opset of `model` to `target` (no change when it is
/// already there or above), converting nodes as the module documentation says.
///
/// On error the model may be partly converted; callers discard it.
pub(crate) fn upgrade(model: &mut Model, target: i64) -> Result<(), CompressError> {
    let from = model.opset();
    if from >= target {
        return Ok(());
    }
    if from < 10 {
        return Err(CompressError::Unsupported(format!(
            "the model's opset {from} is too old to raise to {target} (needs 10 or later)"
        )));
    }
    upgrade_graph(&mut model.graph, from, target)?;
    let mut found = false;
    for (domain, version) in &mut model.opsets {
        if domain.is_empty() || domain == "ai.onnx" {
            *version = target;
            found = true;
        }
    }
    if !found {
        model.opsets.push((String::new(), target));
    }
    if target >= 21 {
        model.ir_version = model.ir_version.max(IR_VERSION_21);
    }
    Ok(())
}

fn refuse(graph: &Graph, node: usize, from: i64, target: i64, what: &str) -> CompressError {
    let n = &graph.nodes[node];
    CompressError::Unsupported(format!(
        "cannot raise the opset from {from} to {target}: node '{}' ({}) {what}; \
         re-export the model at opset {target} or keep weight-bits 8",
        n.display_name(graph),
        n.op.op_type()
    ))
}

fn upgrade_graph(graph: &mut Graph, from: i64, target: i64) -> Result<(), CompressError> {
    let mut names: HashSet<String> = graph.values.iter().map(|v| v.name.clone()).collect();
    for i in 0..graph.nodes.len() {
        for sub in graph.nodes[i].op.subgraphs_mut() {
            upgrade_graph(sub, from, target)?;
        }
        let op_type = graph.nodes[i].op.op_type();
        let before = |v: i64| from < v && target >= v;
        let refused = match op_type {
            "Slice" if before(10) => Some("takes starts/ends as attributes"),
            "TopK" if before(10) => Some("takes k as an attribute"),
            "Pad" if before(11) => Some("takes pads as an attribute"),
            "Clip" if before(11) => Some("takes min/max as attributes"),
            "Resize" if before(11) => Some("has opset-10 Resize semantics"),
            "Upsample" => Some("is deprecated at the target opset"),
            "Dropout" if before(12) => Some("takes ratio as an attribute"),
            "DFT" if before(20) => Some("has pre-20 DFT inputs"),
            "GroupNormalization" if before(21) => {
                Some("has per-group scale and bias (changed in opset 21)")
            }
            _ => None,
        };
        if let Some(why) = refused {
            return Err(refuse(graph, i, from, target, why));
        }
        // An attribute that becomes a constant int64 input at slot 1.
        let mut axes_input: Option<Vec<i64>> = None;
        let rank = graph.nodes[i]
            .inputs
            .first()
            .copied()
            .flatten()
            .and_then(|v| graph.values[v].info.shape.as_ref().map(Vec::len));
        let has_input_1 = graph.nodes[i].inputs.get(1).copied().flatten().is_some();
        match &mut graph.nodes[i].op {
            Op::Reduce(ReduceOp::Reduce { kind, axes, .. }) if before(kind.axes_input_since()) => {
                if let Some(a) = axes.take() {
                    if !a.is_empty() {
                        axes_input = Some(a);
                    }
                }
            }
            Op::Reduce(
                ReduceOp::Softmax { axis, coerce_2d }
                | ReduceOp::LogSoftmax { axis, coerce_2d }
                | ReduceOp::Hardmax { axis, coerce_2d },
            ) if *coerce_2d => {
                let last = *axis == -1 || rank.is_some_and(|r| *axis == r as i64 - 1);
                if !last {
                    return Err(refuse(
                        graph,
                        i,
                        from,
                        target,
                        "coerces its input to 2-D around a non-last axis (changed in opset 13)",
                    ));
                }
                *coerce_2d = false;
            }
            Op::Shape(ShapeOp::Squeeze { axes } | ShapeOp::Unsqueeze { axes }) => {
                if let Some(a) = axes.take() {
                    if !a.is_empty() {
                        axes_input = Some(a);
                    }
                }
            }
            Op::Shape(ShapeOp::Split {
                split,
                num_outputs,
                outputs,
                ..
            }) => {
                if let Some(s) = split.take() {
                    axes_input = Some(s);
                } else if before(18) && num_outputs.is_none() && !has_input_1 {
                    // From 18, an even split names its number of outputs.
                    *num_outputs = Some(*outputs as i64);
                }
            }
            _ => {}
        }
        if let Some(values) = axes_input {
            let base = format!("{}_{}", graph.nodes[i].display_name(graph), "axes");
            let name = fresh(&mut names, &base);
            let t = Tensor::from_vec(vec![values.len()], values)
                .map_err(|e| CompressError::Unsupported(e.to_string()))?;
            let v = constant(graph, name, t);
            let inputs = &mut graph.nodes[i].inputs;
            if inputs.len() < 2 {
                inputs.resize(2, None);
            }
            inputs[1] = Some(v);
        }
    }
    Ok(())
}

fn fresh(names: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while names.contains(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    names.insert(name.clone());
    name
}

fn constant(graph: &mut Graph, name: String, t: Tensor) -> ValueId {
    let mut v = Value::new(name);
    v.info = ValueInfo::of_tensor(&t);
    v.constant = Some(Arc::new(t));
    graph.add_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_ir::{Attr, Attributes, Node, NodeContext};
    use slimnet_tensor::DType;

    /// A one-node model at `opset`: `y = op(x)` with x f32 `[2, 3]`.
    fn model(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> Model {
        let mut g = Graph::default();
        let mut x = Value::new("x");
        x.info = ValueInfo::known(DType::F32, &[2, 3]);
        let x = g.add_value(x);
        g.inputs.push(x);
        let y = g.add_value(Value::new("y"));
        let ctx = NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 1,
            num_outputs: 1,
        };
        let mut a = Attributes::new(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect());
        let op = Op::parse(&ctx, &mut a).unwrap();
        g.nodes.push(Node {
            name: "n".into(),
            op,
            inputs: vec![Some(x)],
            outputs: vec![Some(y)],
        });
        g.outputs.push(y);
        Model {
            graph: g,
            ir_version: 8,
            opsets: vec![(String::new(), opset)],
            ..Default::default()
        }
    }

    #[test]
    fn reduce_axes_attribute_becomes_an_input() {
        let mut m = model("ReduceMean", 13, vec![("axes", Attr::Ints(vec![-1]))]);
        upgrade(&mut m, 21).unwrap();
        assert_eq!(m.opset(), 21);
        assert_eq!(m.ir_version, 10);
        let node = &m.graph.nodes[0];
        assert!(matches!(
            node.op,
            Op::Reduce(ReduceOp::Reduce { axes: None, .. })
        ));
        let axes = m.graph.values[node.inputs[1].unwrap()].constant.as_deref();
        assert_eq!(axes.unwrap().as_slice::<i64>().unwrap(), &[-1]);
    }

    #[test]
    fn softmax_coercion_converts_on_the_last_axis_only() {
        let mut m = model("Softmax", 11, vec![("axis", Attr::Int(1))]);
        upgrade(&mut m, 21).unwrap();
        assert!(matches!(
            m.graph.nodes[0].op,
            Op::Reduce(ReduceOp::Softmax {
                coerce_2d: false,
                ..
            })
        ));
        let mut m = model("Softmax", 11, vec![("axis", Attr::Int(0))]);
        let e = upgrade(&mut m, 21).unwrap_err().to_string();
        assert!(e.contains("'n' (Softmax)"), "{e}");
    }

    #[test]
    fn changed_ops_are_refused_by_name() {
        let mut m = model("Clip", 10, vec![("min", Attr::Float(0.0))]);
        let e = upgrade(&mut m, 21).unwrap_err().to_string();
        assert!(e.contains("Clip") && e.contains("attributes"), "{e}");
        let mut old = model("Relu", 9, vec![]);
        assert!(upgrade(&mut old, 21).is_err());
        let mut new = model("Relu", 21, vec![]);
        upgrade(&mut new, 21).unwrap();
        assert_eq!(new.ir_version, 8);
    }
}
