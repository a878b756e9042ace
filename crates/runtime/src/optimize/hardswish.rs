//! HardSwish and HardSigmoid recognition.

use slimnet_ir::ops::ElementwiseOp;
use slimnet_ir::{Graph, Node, Op, ValueId};

use super::util::{add_value, finish, scalar_constant, Names, Uses};
use crate::RuntimeError;

/// First default-domain opset with `HardSwish`.
pub const HARDSWISH_OPSET: i64 = 14;

const SIXTH: f64 = 1.0 / 6.0;

/// Recognizes hard-swish and hard-sigmoid written out of elementary ops in `graph`
/// (not its subgraphs), and returns how many patterns it rewrote. `opset` is the
/// model's default-domain opset.
///
/// With `g(x)` any of `Clip(x + 3, 0, 6) / 6`, `Clip(x + 3, 0, 6) * (1/6)` (operands
/// of `Add` and `Mul` in either order, `Clip` bounds as attributes or constant
/// inputs):
/// - `g(x)` becomes `HardSigmoid(x)` with `alpha = 1/6`, `beta = 0.5`;
/// - `x * HardSigmoid(x)` (that alpha and beta), `x * g(x)`,
///   `(x * Clip(x + 3, 0, 6)) / 6` and `(x * Clip(x + 3, 0, 6)) * (1/6)` become
///   `HardSwish(x)` when `opset >= 14`; below that (where ONNX has no HardSwish) the
///   last two forms become `x * HardSigmoid(x)`.
///
/// The final node of a pattern is replaced in place (its output value stays); the
/// intermediate nodes are left for dead-node elimination, so intermediates read
/// elsewhere stay valid. Rewrites require the result's known shape to equal `x`'s
/// (constants of one element only, so broadcasting cannot change the shape).
pub fn fuse_hardswish(graph: &mut Graph, opset: i64) -> Result<usize, RuntimeError> {
    let uses = Uses::of(graph);
    let mut names = Names::of(graph);
    let mut added = Vec::new();
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        let Some(out) = node.outputs.first().copied().flatten() else {
            continue;
        };
        let matcher = Matcher { graph, uses: &uses };
        let rewrite = if let Some(x) = matcher.hard_sigmoid_form(node) {
            Some((x, Rewrite::HardSigmoid))
        } else if let Some(x) = matcher.hard_swish_of_mul(node) {
            (opset >= HARDSWISH_OPSET).then_some((x, Rewrite::HardSwish))
        } else {
            matcher.hard_swish_scaled(node).map(|x| {
                if opset >= HARDSWISH_OPSET {
                    (x, Rewrite::HardSwish)
                } else {
                    (x, Rewrite::MulHardSigmoid)
                }
            })
        };
        let Some((x, rewrite)) = rewrite else {
            continue;
        };
        let x_info = &graph.values[x].info;
        let out_info = &graph.values[out].info;
        if x_info.shape.is_none() || x_info.shape != out_info.shape {
            continue;
        }
        let name = graph.nodes[i].display_name(graph);
        let hsig = Op::Elementwise(ElementwiseOp::HardSigmoid {
            alpha: SIXTH as f32,
            beta: 0.5,
        });
        match rewrite {
            Rewrite::HardSigmoid => {
                let n = &mut graph.nodes[i];
                n.op = hsig;
                n.inputs = vec![Some(x)];
            }
            Rewrite::HardSwish => {
                let n = &mut graph.nodes[i];
                n.op = Op::Elementwise(ElementwiseOp::HardSwish);
                n.inputs = vec![Some(x)];
            }
            Rewrite::MulHardSigmoid => {
                let info = graph.values[x].info.clone();
                let h = add_value(graph, &mut names, &format!("{name}_hardsigmoid"), info);
                added.push(Node {
                    name: format!("{name}_hardsigmoid"),
                    op: hsig,
                    inputs: vec![Some(x)],
                    outputs: vec![Some(h)],
                });
                let n = &mut graph.nodes[i];
                n.op = Op::Elementwise(ElementwiseOp::Mul);
                n.inputs = vec![Some(x), Some(h)];
            }
        }
        count += 1;
    }
    if count > 0 {
        let removed = vec![false; graph.nodes.len()];
        finish(graph, "fuse_hardswish", &removed, added)?;
    }
    Ok(count)
}

enum Rewrite {
    HardSigmoid,
    HardSwish,
    MulHardSigmoid,
}

struct Matcher<'a> {
    graph: &'a Graph,
    uses: &'a Uses,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn elementwise(node: &Node) -> Option<&ElementwiseOp> {
    match &node.op {
        Op::Elementwise(e) => Some(e),
        _ => None,
    }
}

impl Matcher<'_> {
    fn producer(&self, v: ValueId) -> Option<&Node> {
        self.uses.producer[v].map(|(n, _)| &self.graph.nodes[n])
    }

    fn binary(&self, node: &Node) -> Option<(ValueId, ValueId)> {
        match node.inputs.as_slice() {
            [Some(a), Some(b)] => Some((*a, *b)),
            _ => None,
        }
    }

    /// `(a, k)` for `a * k` or `k * a` with `k` a one-element constant.
    fn times_constant(&self, node: &Node) -> Option<(ValueId, f64)> {
        let (a, b) = self.binary(node)?;
        if let Some(k) = scalar_constant(self.graph, b) {
            return Some((a, k));
        }
        scalar_constant(self.graph, a).map(|k| (b, k))
    }

    /// `v / 6` or `v * (1/6)`: returns `v`.
    fn over_six(&self, node: &Node) -> Option<ValueId> {
        match elementwise(node)? {
            ElementwiseOp::Div => {
                let (a, b) = self.binary(node)?;
                close(scalar_constant(self.graph, b)?, 6.0).then_some(a)
            }
            ElementwiseOp::Mul => {
                let (a, k) = self.times_constant(node)?;
                close(k, SIXTH).then_some(a)
            }
            _ => None,
        }
    }

    /// `Clip(x + 3, 0, 6)` producing `v`: returns `x`.
    fn relu6_shifted(&self, v: ValueId) -> Option<ValueId> {
        let clip = self.producer(v)?;
        let ElementwiseOp::Clip { min, max } = elementwise(clip)? else {
            return None;
        };
        let bound = |attr: &Option<f32>, k: usize| -> Option<f64> {
            match attr {
                Some(b) => Some(*b as f64),
                None => scalar_constant(self.graph, clip.inputs.get(k).copied().flatten()?),
            }
        };
        if bound(min, 1)? != 0.0 || bound(max, 2)? != 6.0 {
            return None;
        }
        let add = self.producer(clip.inputs.first().copied().flatten()?)?;
        if !matches!(elementwise(add)?, ElementwiseOp::Add) {
            return None;
        }
        let (x, k) = self.times_constant(add)?;
        (k == 3.0).then_some(x)
    }

    /// `Clip(x + 3, 0, 6) / 6` (or `* 1/6`): returns `x`.
    fn hard_sigmoid_form(&self, node: &Node) -> Option<ValueId> {
        self.relu6_shifted(self.over_six(node)?)
    }

    /// `x` when `v` is `HardSigmoid(x)` with alpha 1/6 and beta 0.5, or
    /// `Clip(x + 3, 0, 6) / 6`.
    fn hard_sigmoid_of(&self, v: ValueId) -> Option<ValueId> {
        let p = self.producer(v)?;
        if let ElementwiseOp::HardSigmoid { alpha, beta } = elementwise(p)? {
            if close(*alpha as f64, SIXTH) && close(*beta as f64, 0.5) {
                return p.inputs.first().copied().flatten();
            }
            return None;
        }
        self.hard_sigmoid_form(p)
    }

    /// `x * h(x)` or `h(x) * x` with `h` a hard sigmoid: returns `x`.
    fn hard_swish_of_mul(&self, node: &Node) -> Option<ValueId> {
        if !matches!(elementwise(node)?, ElementwiseOp::Mul) {
            return None;
        }
        let (a, b) = self.binary(node)?;
        if self.hard_sigmoid_of(b) == Some(a) {
            return Some(a);
        }
        (self.hard_sigmoid_of(a) == Some(b)).then_some(b)
    }

    /// `(x * Clip(x + 3, 0, 6)) / 6` (or `* 1/6`, any operand order): returns `x`.
    fn hard_swish_scaled(&self, node: &Node) -> Option<ValueId> {
        let m = self.over_six(node)?;
        let mul = self.producer(m)?;
        if !matches!(elementwise(mul)?, ElementwiseOp::Mul) {
            return None;
        }
        let (a, b) = self.binary(mul)?;
        if self.relu6_shifted(b) == Some(a) {
            return Some(a);
        }
        (self.relu6_shifted(a) == Some(b)).then_some(b)
    }
}
