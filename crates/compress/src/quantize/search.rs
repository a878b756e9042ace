//! Choosing which layers stay in float so the model meets the fidelity target.

use slimnet_ir::{Model, Node, Value};

use super::measure::{self, Fidelity, Oracle, Sample};
use super::rewrite::{rewrite, Quantized};
use super::targets::Target;
use super::{Prepared, QuantizeOptions, Stage};
use crate::CompressError;

/// What the search decided.
pub(crate) struct Outcome {
    pub model: Model,
    /// Per candidate (in candidate order): its own quantization SQNR, when measured.
    pub local_sqnr: Vec<Option<f64>>,
    /// Layers (indices into the report's list) kept in float, with the reason.
    pub kept_float: Vec<(usize, String)>,
    pub fidelity_all: Option<Fidelity>,
    pub fidelity: Option<Fidelity>,
    pub met: bool,
    pub evaluations: usize,
    pub samples: usize,
    pub search_samples: usize,
}

/// Builds the fully quantized model, measures it, and when it misses
/// `options.min_cosine`, keeps layers in float: the shortest prefix that meets the
/// target, found by bisection, of the layers ordered by their own quantization noise
/// per multiply-add (relative noise power `10^(-SQNR/10)` divided by the layer's
/// multiply-adds), so that cheap, noisy layers go back to float before the large
/// layers where int8 saves the most time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search(
    float: &Model,
    candidates: &[usize],
    plan: &Prepared,
    samples: Vec<Sample>,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<Outcome, CompressError> {
    let total = samples.len();
    let subset: Vec<Sample> = samples
        .iter()
        .take(options.search_samples.max(1))
        .cloned()
        .collect();
    let search_samples = subset.len();
    let mut outcome = Outcome {
        model: rewrite(float, &plan.quantized(|_| true))?,
        local_sqnr: vec![None; candidates.len()],
        kept_float: Vec::new(),
        fidelity_all: None,
        fidelity: None,
        met: true,
        evaluations: 0,
        samples: total,
        search_samples,
    };
    if candidates.is_empty() {
        return Ok(outcome);
    }
    let oracle = Oracle::new(float, subset.clone(), options.threads)?;
    progress(Stage::Searching, 0, 1);
    let all_int8 = oracle.fidelity(&outcome.model)?;
    outcome.evaluations = 1;
    outcome.fidelity_all = Some(all_int8.clone());
    outcome.fidelity = Some(all_int8.clone());
    let Some(target) = options.min_cosine else {
        return Ok(outcome);
    };
    let agreement = options.min_agreement;
    if all_int8.meets(target, agreement) {
        return Ok(outcome);
    }
    // each candidate's own error, all in one model
    let (probe, pairs) = probe_model(float, candidates, plan)?;
    let (sqnr, elements) =
        measure::pair_sqnr(&probe, &pairs, &subset, options.threads, &mut |d, n| {
            progress(Stage::Measuring, d, n)
        })?;
    outcome.local_sqnr = sqnr.iter().map(|&s| Some(s)).collect();
    let priority: Vec<f64> = candidates
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let t = &plan.targets[i];
            let w = float.graph.values[t.weight].constant.as_deref();
            let per_output = w.map_or(1, |w| w.len() / w.shape()[t.weight_axis()].max(1));
            let macs = (elements[k] * per_output).max(1) as f64;
            10f64.powf(-sqnr[k] / 10.0) / macs
        })
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| priority[b].total_cmp(&priority[a]));
    // bisection on how many of the worst stay float: `lo` fails, `hi` meets
    let (mut lo, mut hi) = (0usize, candidates.len());
    let mut best: Option<(Model, Fidelity)> = None;
    let steps = (candidates.len() as f64).log2().ceil() as usize + 1;
    let mut step = 0;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let float_set: Vec<usize> = order[..mid].iter().map(|&k| candidates[k]).collect();
        let model = rewrite(float, &plan.quantized(|i| !float_set.contains(&i)))?;
        step += 1;
        progress(Stage::Searching, step, steps);
        let f = oracle.fidelity(&model)?;
        outcome.evaluations += 1;
        if f.meets(target, agreement) {
            hi = mid;
            best = Some((model, f));
        } else {
            lo = mid;
        }
    }
    let (model, fidelity) = match best {
        Some(b) => b,
        None => {
            let f = oracle.fidelity(float)?;
            outcome.evaluations += 1;
            (float.clone(), f)
        }
    };
    outcome.met = fidelity.meets(target, agreement);
    outcome.model = model;
    outcome.fidelity = Some(fidelity);
    for (rank, &k) in order[..hi].iter().enumerate() {
        outcome.kept_float.push((
            candidates[k],
            format!(
                "kept float for the fidelity target: rank {} of {} by own noise per multiply-add (SQNR {:.1} dB)",
                rank + 1,
                candidates.len(),
                sqnr[k]
            ),
        ));
    }
    Ok(outcome)
}

/// The float model plus, for each candidate, a copy of its node reading the same
/// float inputs through quantization; returns the model and the (float output,
/// quantized copy's output) pairs.
fn probe_model(
    float: &Model,
    candidates: &[usize],
    plan: &Prepared,
) -> Result<(Model, Vec<(usize, usize)>), CompressError> {
    let all = plan.targets;
    let mut m = float.clone();
    let mut copies: Vec<Target> = Vec::with_capacity(candidates.len());
    for &i in candidates {
        let t = &all[i];
        let original = m.graph.nodes[t.node].clone();
        let mut value = Value::new(format!("{}__probe", m.graph.values[t.output].name));
        value.info = m.graph.values[t.output].info.clone();
        let out = m.graph.add_value(value);
        let mut outputs = vec![None; original.outputs.len()];
        outputs[0] = Some(out);
        let copy = Node {
            name: format!("{}__probe", original.name),
            op: original.op.clone(),
            inputs: original.inputs.clone(),
            outputs,
        };
        m.graph.nodes.push(copy);
        copies.push(Target {
            node: m.graph.nodes.len() - 1,
            output: out,
            ..t.clone()
        });
    }
    let originals = plan.quantized(|_| true);
    let quantized: Vec<Quantized> = originals
        .into_iter()
        .zip(&copies)
        .map(|(q, copy)| Quantized {
            target: copy,
            act: q.act,
            weight: q.weight,
            bias: q.bias,
        })
        .collect();
    let probe = rewrite(&m, &quantized)?;
    let pairs = candidates
        .iter()
        .zip(&copies)
        .map(|(&i, c)| (all[i].output, c.output))
        .collect();
    Ok((probe, pairs))
}
