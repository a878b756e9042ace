//! Running models on the calibration samples: observing activations, measuring each
//! layer's own quantization error, and the fidelity of a whole quantized model.

use std::collections::HashMap;

use slimnet_ir::{Model, ValueId};
use slimnet_runtime::{Session, SessionOptions};
use slimnet_tensor::{DType, Tensor};

use crate::calibrate::Observer;
use crate::CompressError;

/// Named inputs of one sample.
pub(crate) type Sample = Vec<(String, Tensor)>;

/// A session over `model` with `threads` threads.
pub(crate) fn session(model: Model, threads: usize) -> Result<Session, CompressError> {
    Ok(Session::new(
        model,
        SessionOptions {
            threads,
            optimize: true,
            profile: false,
        },
    )?)
}

/// `model` with `extra` values added to its outputs (those already outputs are kept
/// once); returns the model and, for each extra value, its output position.
pub(crate) fn with_outputs(model: &Model, extra: &[ValueId]) -> (Model, Vec<usize>) {
    let mut m = model.clone();
    let mut positions = Vec::with_capacity(extra.len());
    for &v in extra {
        let p = match m.graph.outputs.iter().position(|&o| o == v) {
            Some(p) => p,
            None => {
                m.graph.outputs.push(v);
                m.graph.outputs.len() - 1
            }
        };
        positions.push(p);
    }
    (m, positions)
}

fn f32_data(t: &Tensor) -> Option<&[f32]> {
    (t.dtype() == DType::F32)
        .then(|| t.as_slice::<f32>().ok())
        .flatten()
}

/// Runs `model` on every sample and feeds each of `values` to its observer.
pub(crate) fn observe(
    model: &Model,
    values: &[ValueId],
    samples: &[Sample],
    threads: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<HashMap<ValueId, Observer>, CompressError> {
    let (m, positions) = with_outputs(model, values);
    let mut s = session(m, threads)?;
    let mut observers: HashMap<ValueId, Observer> =
        values.iter().map(|&v| (v, Observer::new())).collect();
    for (i, sample) in samples.iter().enumerate() {
        let outputs = s.run(sample.clone())?;
        for (&v, &p) in values.iter().zip(&positions) {
            let t = &outputs[p].1;
            if let Some(data) = f32_data(t) {
                observers
                    .get_mut(&v)
                    .expect("one per value")
                    .observe(data, t.shape());
            }
        }
        progress(i + 1, samples.len());
    }
    Ok(observers)
}

/// Signal-to-noise ratio of pairs `(reference, test)` of values over every sample:
/// runs `model` once per sample and compares output `pairs[i].0` with `pairs[i].1`.
/// Also returns the element count of each reference value over all samples.
pub(crate) fn pair_sqnr(
    model: &Model,
    pairs: &[(ValueId, ValueId)],
    samples: &[Sample],
    threads: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<f64>, Vec<usize>), CompressError> {
    let flat: Vec<ValueId> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    let (m, positions) = with_outputs(model, &flat);
    let mut s = session(m, threads)?;
    let mut signal = vec![0f64; pairs.len()];
    let mut noise = vec![0f64; pairs.len()];
    let mut elements = vec![0usize; pairs.len()];
    for (i, sample) in samples.iter().enumerate() {
        let outputs = s.run(sample.clone())?;
        for k in 0..pairs.len() {
            let (a, b) = (
                &outputs[positions[2 * k]].1,
                &outputs[positions[2 * k + 1]].1,
            );
            elements[k] += a.len();
            if let (Some(a), Some(b)) = (f32_data(a), f32_data(b)) {
                for (&x, &y) in a.iter().zip(b) {
                    signal[k] += (x as f64) * (x as f64);
                    noise[k] += ((x - y) as f64) * ((x - y) as f64);
                }
            }
        }
        progress(i + 1, samples.len());
    }
    let sqnr = signal
        .iter()
        .zip(&noise)
        .map(|(&s, &n)| sqnr_db(s, n))
        .collect();
    Ok((sqnr, elements))
}

fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else if signal == 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// How close a model's outputs are to the float model's on the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Fidelity {
    /// Per model output: the mean over samples of the cosine similarity with the
    /// float output.
    pub mean_cosine: Vec<f64>,
    /// Per model output: the smallest cosine over samples.
    pub min_cosine: Vec<f64>,
    /// Per model output: SQNR in dB over all samples.
    pub sqnr_db: Vec<f64>,
    /// Per model output that holds probability distributions over its last axis (as
    /// a Softmax writes them): the fraction of rows whose argmax, the decision read
    /// from it, equals the float model's.
    pub agreement: Vec<Option<f64>>,
}

impl Fidelity {
    /// The worst output's mean cosine (1 for a model without f32 outputs).
    pub fn score(&self) -> f64 {
        self.mean_cosine.iter().copied().fold(1.0, f64::min)
    }

    /// The worst decision agreement over the outputs that hold distributions.
    pub fn agreement_score(&self) -> Option<f64> {
        self.agreement.iter().flatten().copied().reduce(f64::min)
    }

    /// Whether every output reaches `min_cosine` and every distribution output
    /// `min_agreement` (when given).
    pub fn meets(&self, min_cosine: f64, min_agreement: Option<f64>) -> bool {
        self.score() >= min_cosine
            && match (min_agreement, self.agreement_score()) {
                (Some(want), Some(got)) => got >= want,
                _ => true,
            }
    }
}

/// Whether every row along the last axis of `t` (at least 2 wide) is a probability
/// distribution: non-negative values summing to 1.
fn is_distribution(t: &Tensor) -> bool {
    let Some(data) = f32_data(t) else {
        return false;
    };
    let classes = t.shape().last().copied().unwrap_or(0);
    classes >= 2
        && !data.is_empty()
        && data.chunks(classes).all(|row| {
            row.iter().all(|&x| x >= 0.0)
                && (row.iter().map(|&x| x as f64).sum::<f64>() - 1.0).abs() < 1e-3
        })
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// The float model's outputs on the samples, to compare quantized models against.
pub(crate) struct Oracle {
    pub samples: Vec<Sample>,
    pub outputs: Vec<Vec<Tensor>>,
    /// Per output: whether it holds probability distributions on every sample.
    pub distributions: Vec<bool>,
    pub threads: usize,
}

impl Oracle {
    pub fn new(
        model: &Model,
        samples: Vec<Sample>,
        threads: usize,
    ) -> Result<Oracle, CompressError> {
        let mut s = session(model.clone(), threads)?;
        let mut outputs = Vec::with_capacity(samples.len());
        for sample in &samples {
            outputs.push(s.run(sample.clone())?.into_iter().map(|(_, t)| t).collect());
        }
        let count = outputs.first().map_or(0, Vec::len);
        let distributions = (0..count)
            .map(|k| outputs.iter().all(|o| is_distribution(&o[k])))
            .collect();
        Ok(Oracle {
            samples,
            outputs,
            distributions,
            threads,
        })
    }

    /// Runs `model` on the samples and compares its outputs with the float ones.
    pub fn fidelity(&self, model: &Model) -> Result<Fidelity, CompressError> {
        let mut s = session(model.clone(), self.threads)?;
        let count = self.outputs.first().map_or(0, Vec::len);
        let mut sum = vec![0f64; count];
        let mut min = vec![1f64; count];
        let (mut signal, mut noise) = (vec![0f64; count], vec![0f64; count]);
        let (mut agree, mut rows) = (vec![0usize; count], vec![0usize; count]);
        for (sample, expected) in self.samples.iter().zip(&self.outputs) {
            let got = s.run(sample.clone())?;
            for k in 0..count {
                let (Some(r), Some(t)) = (f32_data(&expected[k]), f32_data(&got[k].1)) else {
                    sum[k] += 1.0;
                    continue;
                };
                if self.distributions[k] {
                    let classes = expected[k].shape().last().copied().unwrap_or(1);
                    for (a, b) in r.chunks(classes).zip(t.chunks(classes)) {
                        agree[k] += usize::from(argmax(a) == argmax(b));
                        rows[k] += 1;
                    }
                }
                let c = cosine(r, t);
                sum[k] += c;
                min[k] = min[k].min(c);
                for (&x, &y) in r.iter().zip(t) {
                    signal[k] += (x as f64) * (x as f64);
                    noise[k] += ((x - y) as f64) * ((x - y) as f64);
                }
            }
        }
        let n = self.samples.len().max(1) as f64;
        Ok(Fidelity {
            mean_cosine: sum.iter().map(|s| s / n).collect(),
            min_cosine: min,
            sqnr_db: signal
                .iter()
                .zip(&noise)
                .map(|(&s, &n)| sqnr_db(s, n))
                .collect(),
            agreement: (0..count)
                .map(|k| {
                    (self.distributions[k] && rows[k] > 0).then(|| agree[k] as f64 / rows[k] as f64)
                })
                .collect(),
        })
    }
}

/// Cosine similarity; 1 for two all-zero vectors, 0 when only one is zero.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0)
    }
}
