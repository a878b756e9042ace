//! Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019): for two
//! convolutions in a row with only positively homogeneous ops between them (Relu,
//! LeakyRelu, MaxPool), output channel `i` of the first is divided by `s_i` and input
//! channel `i` of the second multiplied by it, with `s_i = sqrt(r1_i / r2_i)` from the
//! channel's weight ranges in each. The float model computes the same function, but
//! both layers' per-channel ranges become equal, so per-tensor and per-channel int8
//! weights lose less; it matters most for depthwise convolutions, whose channels'
//! ranges differ widely.

use std::sync::Arc;

use slimnet_ir::ops::{ElementwiseOp, NnOp};
use slimnet_ir::{Graph, NodeId, Op, Value, ValueId, ValueInfo};
use slimnet_tensor::{DType, Tensor};

/// Largest factor applied to a channel (and smallest, its inverse).
const MAX_FACTOR: f32 = 1e3;

/// Equalizes every eligible pair of convolutions in `graph` (main graph only), in
/// `rounds` passes, and returns how many pairs it rescaled in all.
pub(crate) fn equalize(graph: &mut Graph, rounds: usize) -> usize {
    let mut total = 0;
    for _ in 0..rounds {
        let pairs = find_pairs(graph);
        if pairs.is_empty() {
            break;
        }
        for (first, second) in pairs {
            if rescale(graph, first, second) {
                total += 1;
            }
        }
    }
    total
}

/// Readers of each value (nodes; graph outputs count as a reader that blocks).
fn readers(graph: &Graph) -> Vec<Vec<NodeId>> {
    let mut r = vec![Vec::new(); graph.values.len()];
    for (n, node) in graph.nodes.iter().enumerate() {
        for v in graph.node_reads(node) {
            r[v].push(n);
        }
    }
    for &o in &graph.outputs {
        r[o].push(usize::MAX);
    }
    r
}

fn conv_weights(graph: &Graph, n: NodeId) -> Option<(&Tensor, usize)> {
    let node = &graph.nodes[n];
    let Op::Nn(NnOp::Conv(c)) = &node.op else {
        return None;
    };
    let w = graph.values[(*node.inputs.get(1)?)?].constant.as_deref()?;
    if w.dtype() != DType::F32 || !(3..=4).contains(&w.rank()) {
        return None;
    }
    if let Some(Some(b)) = node.inputs.get(2) {
        let b = graph.values[*b].constant.as_deref()?;
        if b.dtype() != DType::F32 || b.len() != w.shape()[0] {
            return None;
        }
    }
    Some((w, usize::try_from(c.group).ok()?))
}

/// Pairs `(first, second)` of convolutions joined by a chain of single-reader,
/// positively homogeneous ops, where the second reads the chain as its input 0 and
/// is a plain (one group) or depthwise convolution over the first's channels.
fn find_pairs(graph: &Graph) -> Vec<(NodeId, NodeId)> {
    let readers = readers(graph);
    let mut pairs = Vec::new();
    let mut used = vec![false; graph.nodes.len()];
    for first in 0..graph.nodes.len() {
        let Some((w1, _)) = conv_weights(graph, first) else {
            continue;
        };
        let channels = w1.shape()[0];
        let Some(Some(mut v)) = graph.nodes[first].outputs.first().copied() else {
            continue;
        };
        let second = loop {
            let [next] = readers[v][..] else {
                break None;
            };
            if next == usize::MAX {
                break None;
            }
            let node = &graph.nodes[next];
            let homogeneous = match &node.op {
                Op::Elementwise(ElementwiseOp::Relu | ElementwiseOp::LeakyRelu { .. }) => true,
                Op::Nn(NnOp::MaxPool(_)) => node.outputs.iter().flatten().count() == 1,
                Op::Nn(NnOp::Conv(_)) => {
                    break (node.inputs.first() == Some(&Some(v))).then_some(next)
                }
                _ => false,
            };
            if !homogeneous {
                break None;
            }
            match node.outputs.first().copied().flatten() {
                Some(o) => v = o,
                None => break None,
            }
        };
        let Some(second) = second else {
            continue;
        };
        let Some((w2, g2)) = conv_weights(graph, second) else {
            continue;
        };
        let fits = (g2 == 1 && w2.shape()[1] == channels)
            || (g2 == channels && w2.shape()[0] == channels && w2.shape()[1] == 1);
        if fits && !used[first] && !used[second] {
            used[first] = true;
            used[second] = true;
            pairs.push((first, second));
        }
    }
    pairs
}

fn add_constant(graph: &mut Graph, name: String, t: Tensor) -> ValueId {
    let mut v = Value::new(name);
    v.info = ValueInfo::of_tensor(&t);
    v.constant = Some(Arc::new(t));
    graph.add_value(v)
}

/// Rescales one pair; false when nothing needed changing.
fn rescale(graph: &mut Graph, first: NodeId, second: NodeId) -> bool {
    let (Some((w1, _)), Some((w2, g2))) = (conv_weights(graph, first), conv_weights(graph, second))
    else {
        return false;
    };
    let channels = w1.shape()[0];
    let per1 = w1.len() / channels;
    let d1 = w1.as_slice::<f32>().expect("f32");
    let d2 = w2.as_slice::<f32>().expect("f32");
    let depthwise = g2 != 1;
    let per2 = w2.len() / w2.shape()[0];
    let window2: usize = w2.shape()[2..].iter().product();
    let r1: Vec<f32> = (0..channels)
        .map(|i| {
            d1[i * per1..(i + 1) * per1]
                .iter()
                .fold(0f32, |m, x| m.max(x.abs()))
        })
        .collect();
    let mut r2 = vec![0f32; channels];
    for (idx, x) in d2.iter().enumerate() {
        let i = if depthwise {
            idx / per2
        } else {
            (idx % per2) / window2
        };
        r2[i] = r2[i].max(x.abs());
    }
    let s: Vec<f32> = r1
        .iter()
        .zip(&r2)
        .map(|(&a, &b)| {
            if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
                (a / b).sqrt().clamp(1.0 / MAX_FACTOR, MAX_FACTOR)
            } else {
                1.0
            }
        })
        .collect();
    if s.iter().all(|&x| (x - 1.0).abs() < 1e-3) {
        return false;
    }
    let new1: Vec<f32> = d1
        .iter()
        .enumerate()
        .map(|(k, x)| x / s[k / per1])
        .collect();
    let new2: Vec<f32> = d2
        .iter()
        .enumerate()
        .map(|(idx, x)| {
            let i = if depthwise {
                idx / per2
            } else {
                (idx % per2) / window2
            };
            x * s[i]
        })
        .collect();
    let (shape1, shape2) = (w1.shape().to_vec(), w2.shape().to_vec());
    let bias1 = graph.nodes[first]
        .inputs
        .get(2)
        .copied()
        .flatten()
        .map(|b| {
            let t = graph.values[b].constant.as_deref().expect("checked");
            let v: Vec<f32> = t
                .as_slice::<f32>()
                .expect("f32")
                .iter()
                .zip(&s)
                .map(|(b, s)| b / s)
                .collect();
            v
        });
    let name1 = graph.values[graph.nodes[first].inputs[1].expect("weight")]
        .name
        .clone();
    let name2 = graph.values[graph.nodes[second].inputs[1].expect("weight")]
        .name
        .clone();
    let w1v = add_constant(
        graph,
        format!("{name1}_equalized"),
        Tensor::from_vec(shape1, new1).expect("same size"),
    );
    let w2v = add_constant(
        graph,
        format!("{name2}_equalized"),
        Tensor::from_vec(shape2, new2).expect("same size"),
    );
    graph.nodes[first].inputs[1] = Some(w1v);
    graph.nodes[second].inputs[1] = Some(w2v);
    if let Some(b) = bias1 {
        let bname = graph.values[graph.nodes[first].inputs[2].expect("bias")]
            .name
            .clone();
        let n = b.len();
        let bv = add_constant(
            graph,
            format!("{bname}_equalized"),
            Tensor::from_vec(vec![n], b).expect("same size"),
        );
        graph.nodes[first].inputs[2] = Some(bv);
    }
    true
}
