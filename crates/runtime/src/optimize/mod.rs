//! Graph optimizations run before execution: binding input shapes (and small input
//! values), then passes that fold, inline, remove and fuse nodes while keeping the
//! model's outputs the same (up to float rounding in the folded weights) and the
//! graph exportable as plain ONNX for the model's opset.
//!
//! Every pass works on the main graph (subgraphs of remaining `Loop`/`Scan`/`If`
//! nodes are left as they are), returns how many rewrites it made, and keeps graph
//! outputs' names and order. [`optimize`] runs the enabled passes, with shape
//! inference in between, until none changes anything.

mod affine;
mod batchnorm;
mod bias;
mod chain;
mod dead;
mod fold;
mod hardswish;
mod inline_if;
mod noop;
mod q4;
mod qdq;
mod scale;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_affine;
mod util;

use slimnet_ir::{infer_shapes, Dim, Graph, Model, ValueInfo};
use slimnet_tensor::Tensor;

pub use affine::fold_affine_into_conv;
pub use batchnorm::fold_batchnorm;
pub use bias::fold_bias;
pub use chain::compose_affine;
pub use dead::eliminate_dead;
pub use fold::{fold_constants, FOLD_MAX_BYTES};
pub use hardswish::{fuse_hardswish, HARDSWISH_OPSET};
pub use inline_if::inline_ifs;
pub use noop::remove_noops;
pub use q4::{fuse_weight_only_int4, Q4_BLOCK_SIZES};
pub use qdq::{fold_into_quantized, fuse_qdq};
pub use scale::fold_scale;

use crate::{ReferenceFolder, RuntimeError};

/// A concrete shape (and optionally a fixed value) for one graph input.
#[derive(Clone, Debug)]
pub struct InputBinding {
    pub name: String,
    pub shape: Vec<usize>,
    /// When set, the model is specialized to this value: see [`specialize`].
    pub value: Option<Tensor>,
}

/// Fixes graph inputs to concrete shapes, and optionally to values, then re-runs
/// shape inference.
///
/// Each binding's shape must agree with the input's declared rank and known
/// dimensions; symbolic and unknown dimensions take the bound sizes. A binding with
/// a `value` (meant for small scalars such as a sample rate) makes every read of the
/// input a read of a new constant holding that value. The input stays declared, so
/// callers still pass it, but the specialized model ignores what they pass: it
/// computes as if the bound value had been given. The value's shape must equal the
/// binding's shape and its dtype the input's declared dtype.
pub fn specialize(model: &mut Model, inputs: &[InputBinding]) -> Result<(), RuntimeError> {
    let graph = &mut model.graph;
    let mut names = util::Names::of(graph);
    for b in inputs {
        let err = |reason: String| RuntimeError::Input {
            name: b.name.clone(),
            reason,
        };
        let Some(&id) = graph
            .inputs
            .iter()
            .find(|&&v| graph.values[v].name == b.name)
        else {
            return Err(err("the model has no such input".into()));
        };
        let info = &graph.values[id].info;
        if let Some(shape) = &info.shape {
            if shape.len() != b.shape.len() {
                return Err(err(format!(
                    "bound shape {:?} has rank {}, the input {} ({})",
                    b.shape,
                    b.shape.len(),
                    shape.len(),
                    info.shape_text()
                )));
            }
            for (axis, (d, &s)) in shape.iter().zip(&b.shape).enumerate() {
                if matches!(d, Dim::Known(k) if *k != s) {
                    return Err(err(format!(
                        "bound shape {:?}: dimension {axis} must be {d}",
                        b.shape
                    )));
                }
            }
        }
        let Some(dtype) = info.dtype else {
            return Err(err("the input's dtype is not declared".into()));
        };
        if let Some(v) = &b.value {
            if v.shape() != b.shape.as_slice() || v.dtype() != dtype {
                return Err(err(format!(
                    "bound value is {} {:?}, expected {dtype} {:?}",
                    v.dtype(),
                    v.shape(),
                    b.shape
                )));
            }
        }
        graph.values[id].info = ValueInfo::known(dtype, &b.shape);
        if let Some(v) = &b.value {
            let c = util::add_constant(graph, &mut names, &format!("{}_bound", b.name), v.clone());
            // Graph outputs that are the input itself stay the input.
            util::redirect(graph, id, c);
        }
    }
    infer(graph, "specialize")
}

fn infer(graph: &mut Graph, pass: &str) -> Result<(), RuntimeError> {
    infer_shapes(graph, &ReferenceFolder).map_err(|e| RuntimeError::Optimize {
        pass: pass.into(),
        reason: format!("shape inference failed: {e}"),
    })
}

/// Which passes [`optimize`] runs (all by default).
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    pub fold_constants: bool,
    pub inline_ifs: bool,
    pub remove_noops: bool,
    pub fold_batchnorm: bool,
    /// [`compose_affine`]: chains of `Mul`/`Add` by constants.
    pub compose_affine: bool,
    /// [`fold_scale`]: `Mul` by a constant into the producing Conv/Gemm/MatMul.
    pub fold_scale: bool,
    pub fold_bias: bool,
    pub fuse_hardswish: bool,
    /// [`fold_affine_into_conv`]: `x * s + b` into the `Conv` reading it.
    pub fold_affine_into_conv: bool,
    pub eliminate_dead: bool,
    /// [`fuse_qdq`]: QDQ-quantized Conv/MatMul/Gemm into slimnet-internal fused ops;
    /// [`fuse_weight_only_int4`]: MatMul/Gemm with a blocked int4 weight likewise.
    /// Off by default, because the result is no longer standard ONNX; sessions turn
    /// it on.
    pub fuse_quantized: bool,
    /// Most rounds of all passes before stopping (each round runs every pass once).
    pub max_rounds: usize,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            fold_constants: true,
            inline_ifs: true,
            remove_noops: true,
            fold_batchnorm: true,
            compose_affine: true,
            fold_scale: true,
            fold_bias: true,
            fuse_hardswish: true,
            fold_affine_into_conv: true,
            eliminate_dead: true,
            fuse_quantized: false,
            max_rounds: 32,
        }
    }
}

/// What [`optimize`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizeReport {
    /// Per pass, in run order: its name and how many rewrites it made in all rounds.
    pub passes: Vec<(&'static str, usize)>,
    /// Nodes of the main graph before and after.
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Nodes including those inside subgraphs, before and after.
    pub nodes_deep_before: usize,
    pub nodes_deep_after: usize,
    /// Rounds run (the last one changed nothing unless `max_rounds` was reached).
    pub rounds: usize,
}

impl OptimizeReport {
    /// Rewrites made by the pass of this name (0 if it did not run).
    pub fn changed(&self, pass: &str) -> usize {
        self.passes
            .iter()
            .find(|(n, _)| *n == pass)
            .map_or(0, |(_, c)| *c)
    }
}

type PassFn = fn(&mut Graph, i64) -> Result<usize, RuntimeError>;

/// Runs the enabled passes over `model` until none changes anything (or
/// `max_rounds`), inferring shapes before each pass, then drops values nothing
/// refers to. Shapes should have been bound with [`specialize`] first: the passes
/// that compare shapes only act on fully known ones.
///
/// On error the model may be partly optimized, but every completed pass left it valid.
pub fn optimize(
    model: &mut Model,
    options: &OptimizeOptions,
) -> Result<OptimizeReport, RuntimeError> {
    let opset = model.opset();
    let graph = &mut model.graph;
    let passes: [(&'static str, bool, PassFn); 13] = [
        ("fuse_qdq", options.fuse_quantized, |g, _| fuse_qdq(g)),
        ("fuse_weight_only_int4", options.fuse_quantized, |g, _| {
            fuse_weight_only_int4(g)
        }),
        ("fold_into_quantized", options.fuse_quantized, |g, _| {
            fold_into_quantized(g)
        }),
        ("fold_constants", options.fold_constants, |g, _| {
            fold_constants(g)
        }),
        ("inline_ifs", options.inline_ifs, |g, _| inline_ifs(g)),
        ("remove_noops", options.remove_noops, |g, _| remove_noops(g)),
        ("fold_batchnorm", options.fold_batchnorm, |g, _| {
            fold_batchnorm(g)
        }),
        ("compose_affine", options.compose_affine, |g, _| {
            compose_affine(g)
        }),
        ("fold_scale", options.fold_scale, |g, _| fold_scale(g)),
        ("fold_bias", options.fold_bias, |g, _| fold_bias(g)),
        ("fuse_hardswish", options.fuse_hardswish, fuse_hardswish),
        (
            "fold_affine_into_conv",
            options.fold_affine_into_conv,
            |g, _| fold_affine_into_conv(g),
        ),
        ("eliminate_dead", options.eliminate_dead, |g, _| {
            eliminate_dead(g)
        }),
    ];
    let mut report = OptimizeReport {
        passes: passes.iter().filter(|p| p.1).map(|p| (p.0, 0)).collect(),
        nodes_before: graph.nodes.len(),
        nodes_deep_before: graph.node_count_deep(),
        ..Default::default()
    };
    infer(graph, "optimize")?;
    let mut stale = false;
    while report.rounds < options.max_rounds {
        report.rounds += 1;
        let mut changed = 0;
        for (name, enabled, pass) in passes {
            if !enabled {
                continue;
            }
            if stale {
                infer(graph, name)?;
                stale = false;
            }
            let n = pass(graph, opset)?;
            if n > 0 {
                stale = true;
                changed += n;
                if let Some(entry) = report.passes.iter_mut().find(|(p, _)| *p == name) {
                    entry.1 += n;
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    util::compact(graph);
    infer(graph, "optimize")?;
    report.nodes_after = graph.nodes.len();
    report.nodes_deep_after = graph.node_count_deep();
    Ok(report)
}
