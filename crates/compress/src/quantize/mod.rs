//! Post-training quantization to int8 in ONNX QDQ form, with a fidelity target.
//!
//! [`quantize`] works on the model after slimnet's graph optimizations (BatchNorm and
//! scale folding and the like, so the quantized weights are the ones that run):
//!
//! 1. finds the Conv, MatMul and Gemm nodes with constant weights;
//! 2. runs the float model on the calibration samples and observes each of their
//!    activation inputs ([`crate::calibrate`]);
//!    (before that, cross-layer equalization rescales pairs of convolutions joined
//!    by Relu, LeakyRelu or MaxPool so their per-channel weight ranges match);
//! 3. quantizes weights to symmetric int8 (per output channel by default) and
//!    activations to uint8 (asymmetric by default) with the calibrated ranges, and
//!    corrects biases for the mean shift of the weight error;
//! 4. measures the whole model against the float one (mean cosine of every output);
//!    when it misses the target, measures each layer's own error (its output computed
//!    from float inputs with and without quantization, all layers in one run), and
//!    keeps the worst layers in float, finding the fewest that meet the target by
//!    bisection.
//!
//! The report says, for every candidate layer, whether it was quantized and, if
//! not, why.
//!
//! With `weight_bits: 4`, MatMul and Gemm weights are instead quantized weight-only
//! to blocked int4 (see [`int4`]).

mod equalize;
mod int4;
mod measure;
mod opset;
mod rewrite;
mod search;
mod targets;
mod weights;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use slimnet_ir::Model;
use slimnet_runtime::{optimize, OptimizeOptions};
use slimnet_tensor::Tensor;

pub use measure::Fidelity;

use crate::calibrate::{CalibrationMethod, QuantParams, QuantScheme};
use crate::CompressError;
use rewrite::{ActQuant, Quantized};
use targets::{find_targets, TargetKind};
use weights::QuantizedWeight;

/// Settings of [`quantize`]; the defaults need no tuning.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// How activation ranges are chosen.
    pub method: CalibrationMethod,
    /// One weight scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Activation scheme: uint8 with a zero point, or int8 symmetric.
    pub activations: QuantScheme,
    /// Quantize activations at run time from each tensor's own range instead of
    /// calibrated ranges.
    pub dynamic: bool,
    /// Node names or op types (e.g. `Gemm`) to leave in float.
    pub exclude: Vec<String>,
    /// Keep layers in float until every output's mean cosine against the float model
    /// reaches this; `None` quantizes every candidate.
    pub min_cosine: Option<f64>,
    /// With `min_cosine`: outputs that hold probability distributions over their last
    /// axis (Softmax outputs) must also keep the float model's argmax decision on at
    /// least this fraction of rows.
    pub min_agreement: Option<f64>,
    /// Correct biases for the mean shift caused by quantizing weights.
    pub bias_correction: bool,
    /// Cross-layer equalization of convolution pairs joined by Relu/LeakyRelu/MaxPool
    /// before quantizing. It evens out per-channel weight ranges, which is what
    /// per-tensor weights need; with per-channel weights it mostly moves range into
    /// the (per-tensor) activations, so it is off by default and worth trying with
    /// `per_channel: false`.
    pub equalize: bool,
    /// Also quantize depthwise convolutions (they run faster in float here).
    pub quantize_depthwise: bool,
    /// At most this many samples are used to measure fidelity (all are used to
    /// calibrate).
    pub search_samples: usize,
    /// Threads for running the model (0: one per physical core).
    pub threads: usize,
    /// 8: int8 QDQ of weights and activations; 4: int4 weight-only MatMul/Gemm.
    pub weight_bits: u32,
    /// Rows of K per int4 scale (power of two, 16 or more; used when
    /// `weight_bits == 4`).
    pub block_size: usize,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            method: CalibrationMethod::Mse,
            per_channel: true,
            activations: QuantScheme::Asymmetric,
            dynamic: false,
            exclude: Vec::new(),
            min_cosine: Some(0.99),
            min_agreement: Some(0.99),
            bias_correction: true,
            equalize: false,
            quantize_depthwise: false,
            search_samples: 16,
            threads: 0,
            weight_bits: 8,
            block_size: 32,
        }
    }
}

/// What happened to one candidate layer.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerStatus {
    Int8,
    /// Weight-only blocked int4 (`weight_bits == 4`).
    Int4,
    /// Left in float, with the reason.
    Float(String),
}

/// One candidate layer in the report.
#[derive(Clone, Debug)]
pub struct LayerReport {
    pub node: String,
    pub op_type: String,
    pub status: LayerStatus,
    /// Its own quantization error: SQNR (dB) of its output computed from float inputs
    /// with quantized input and weight, when it was measured.
    pub local_sqnr_db: Option<f64>,
    /// The calibrated range of its activation input.
    pub activation_range: Option<(f32, f32)>,
}

/// The phases [`quantize`] reports progress for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Running the float model on calibration samples.
    Calibrating,
    /// Measuring each layer's own quantization error.
    Measuring,
    /// Measuring candidate models' fidelity.
    Searching,
}

/// What [`quantize`] did.
#[derive(Clone, Debug)]
pub struct QuantizeReport {
    pub method: CalibrationMethod,
    /// Calibration samples used.
    pub samples: usize,
    /// Samples fidelity was measured on.
    pub search_samples: usize,
    /// Output names, in the order of the fidelity vectors.
    pub outputs: Vec<String>,
    pub layers: Vec<LayerReport>,
    /// With every candidate quantized.
    pub fidelity_all_int8: Option<Fidelity>,
    /// Of the returned model.
    pub fidelity: Option<Fidelity>,
    /// The targets (mean cosine, decision agreement), and whether the returned model
    /// meets them.
    pub target: Option<f64>,
    pub target_agreement: Option<f64>,
    pub met: bool,
    /// Quantized models measured during the search.
    pub evaluations: usize,
    /// Convolution pairs rescaled by cross-layer equalization.
    pub equalized_pairs: usize,
    pub calibration_time: Duration,
    pub search_time: Duration,
}

impl QuantizeReport {
    /// Layers left in float.
    pub fn float_layers(&self) -> impl Iterator<Item = &LayerReport> {
        self.layers
            .iter()
            .filter(|l| matches!(l.status, LayerStatus::Float(_)))
    }

    /// Layers quantized to int4 (weight-only).
    pub fn int4_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| l.status == LayerStatus::Int4)
            .count()
    }

    /// Layers quantized to int8.
    pub fn int8_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| l.status == LayerStatus::Int8)
            .count()
    }
}

/// A quantized model and its report.
pub struct QuantizedModel {
    pub model: Model,
    pub report: QuantizeReport,
}

/// Quantizes `model` with `samples` (named inputs, one entry per sample) as
/// calibration data. `progress(stage, done, total)` is called as work advances.
pub fn quantize(
    model: &Model,
    samples: Vec<Vec<(String, Tensor)>>,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<QuantizedModel, CompressError> {
    if samples.is_empty() {
        return Err(CompressError::Data("no samples".into()));
    }
    for (name, value) in [
        ("min-cosine", options.min_cosine),
        ("min-agreement", options.min_agreement),
    ] {
        if let Some(c) = value {
            if !(c > 0.0 && c <= 1.0) {
                return Err(CompressError::Option {
                    name: name.into(),
                    reason: format!("must be in (0, 1], got {c}"),
                });
            }
        }
    }
    match options.weight_bits {
        8 => {}
        4 => return int4::quantize_int4(model, samples, options, progress),
        b => {
            return Err(CompressError::Option {
                name: "weight-bits".into(),
                reason: format!("must be 8 or 4, got {b}"),
            })
        }
    }
    let mut float = model.clone();
    optimize(&mut float, &OptimizeOptions::default())?;
    let equalized = if options.equalize {
        equalize::equalize(&mut float.graph, 4)
    } else {
        0
    };
    let all = find_targets(&float.graph);
    let mut layers: Vec<LayerReport> = Vec::new();
    let mut candidates = Vec::new();
    for t in &all {
        let excluded = options
            .exclude
            .iter()
            .any(|e| *e == t.name || e == t.op_type);
        let reason = if excluded {
            Some("excluded by the user".to_string())
        } else if matches!(t.kind, TargetKind::Conv { depthwise: true })
            && !options.quantize_depthwise
        {
            Some("depthwise convolution: faster in float (--quantize-depthwise to include)".into())
        } else {
            None
        };
        layers.push(LayerReport {
            node: t.name.clone(),
            op_type: t.op_type.to_string(),
            status: reason.clone().map_or(LayerStatus::Int8, LayerStatus::Float),
            local_sqnr_db: None,
            activation_range: None,
        });
        if reason.is_none() {
            candidates.push(layers.len() - 1);
        }
    }
    let scheme = options.activations;
    let started = Instant::now();
    // calibration
    let mut acts: HashMap<usize, ActQuant> = HashMap::new();
    let mut means: HashMap<usize, Vec<f64>> = HashMap::new();
    if !options.dynamic && !candidates.is_empty() {
        let mut values: Vec<usize> = candidates.iter().map(|&i| all[i].act).collect();
        values.sort_unstable();
        values.dedup();
        let observers =
            measure::observe(&float, &values, &samples, options.threads, &mut |d, n| {
                progress(Stage::Calibrating, d, n)
            })?;
        for (v, o) in &observers {
            let (lo, hi) = o.range(options.method, scheme);
            acts.insert(
                *v,
                ActQuant::Static(QuantParams::from_range(lo, hi, scheme)),
            );
            if let Some(m) = o.channel_means() {
                means.insert(*v, m);
            }
        }
    }
    let calibration_time = started.elapsed();
    // weights
    let mut prepared: Vec<(usize, QuantizedWeight, Option<Vec<f32>>)> = Vec::new();
    for &i in &candidates {
        let t = &all[i];
        let w = float.graph.values[t.weight]
            .constant
            .as_deref()
            .expect("targets have constant weights");
        let q = QuantizedWeight::new(w, t.weight_axis(), options.per_channel);
        let bias = if options.bias_correction {
            match (rewrite::bias_of(&float.graph, t), means.get(&t.act)) {
                (Some(b), Some(m)) => {
                    let group = match &float.graph.nodes[t.node].op {
                        slimnet_ir::Op::Nn(slimnet_ir::ops::NnOp::Conv(c)) => c.group as usize,
                        _ => 1,
                    };
                    weights::corrected_bias(t, w, &q, b.as_deref(), m, group)
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(ActQuant::Static(p)) = acts.get(&t.act) {
            layers[i].activation_range = Some(p.representable());
        }
        prepared.push((i, q, bias));
    }
    let plan = Prepared {
        targets: &all,
        acts: &acts,
        layers: prepared,
    };
    let search_started = Instant::now();
    let outcome = search::search(&float, &candidates, &plan, samples, options, progress)?;
    for (&i, sqnr) in candidates.iter().zip(&outcome.local_sqnr) {
        layers[i].local_sqnr_db = *sqnr;
    }
    for (i, reason) in &outcome.kept_float {
        layers[*i].status = LayerStatus::Float(reason.clone());
    }
    let outputs = float
        .graph
        .outputs
        .iter()
        .map(|&v| float.graph.values[v].name.clone())
        .collect();
    Ok(QuantizedModel {
        model: outcome.model,
        report: QuantizeReport {
            method: options.method,
            samples: outcome.samples,
            search_samples: outcome.search_samples,
            outputs,
            layers,
            fidelity_all_int8: outcome.fidelity_all,
            fidelity: outcome.fidelity,
            target: options.min_cosine,
            target_agreement: options.min_cosine.and(options.min_agreement),
            met: outcome.met,
            evaluations: outcome.evaluations,
            equalized_pairs: equalized,
            calibration_time,
            search_time: search_started.elapsed(),
        },
    })
}

/// The quantization prepared for every candidate, from which the search builds
/// models with any subset of candidates quantized.
pub(crate) struct Prepared<'a> {
    pub targets: &'a [targets::Target],
    /// Per activation value.
    pub acts: &'a HashMap<usize, ActQuant>,
    /// Per candidate: its layer index, quantized weight and corrected bias.
    pub layers: Vec<(usize, QuantizedWeight, Option<Vec<f32>>)>,
}

impl Prepared<'_> {
    /// The candidates for which `keep(layer index)` holds, ready for rewriting.
    pub fn quantized(&self, keep: impl Fn(usize) -> bool) -> Vec<Quantized<'_>> {
        self.layers
            .iter()
            .filter(|(i, _, _)| keep(*i))
            .map(|(i, q, b)| Quantized {
                target: &self.targets[*i],
                act: self
                    .acts
                    .get(&self.targets[*i].act)
                    .copied()
                    .unwrap_or(ActQuant::Dynamic),
                weight: q,
                bias: b.clone(),
            })
            .collect()
    }
}
