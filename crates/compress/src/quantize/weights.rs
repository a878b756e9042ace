//! Weight quantization (symmetric int8, per output channel or per tensor) and bias
//! correction.

use slimnet_tensor::Tensor;

use super::targets::{Target, TargetKind};

/// A weight quantized to int8 with zero point 0: `w ≈ values · scales[channel]`.
#[derive(Clone, Debug)]
pub(crate) struct QuantizedWeight {
    pub shape: Vec<usize>,
    pub values: Vec<i8>,
    /// One per channel along `axis`, or a single one for the whole tensor.
    pub scales: Vec<f32>,
    pub axis: usize,
}

impl QuantizedWeight {
    /// Quantizes `w` with `max|w| / 127` per channel along `axis` (or over the whole
    /// tensor). Values are rounded half to even into `-127..=127`.
    pub fn new(w: &Tensor, axis: usize, per_channel: bool) -> QuantizedWeight {
        let data = w.as_slice::<f32>().expect("targets have f32 weights");
        let shape = w.shape().to_vec();
        let channels = if per_channel { shape[axis] } else { 1 };
        let inner: usize = shape[axis + 1..].iter().product();
        let channel_of = |i: usize| {
            if per_channel {
                (i / inner) % channels
            } else {
                0
            }
        };
        let mut max = vec![0f32; channels];
        for (i, &x) in data.iter().enumerate() {
            let c = channel_of(i);
            max[c] = max[c].max(x.abs());
        }
        let scales: Vec<f32> = max
            .iter()
            .map(|&m| {
                if m > 0.0 && m.is_finite() {
                    m / 127.0
                } else {
                    1.0
                }
            })
            .collect();
        let values = data
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                (x / scales[channel_of(i)])
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8
            })
            .collect();
        QuantizedWeight {
            shape,
            values,
            scales,
            axis,
        }
    }

    /// The dequantized value of element `i`.
    fn dequantized(&self, i: usize) -> f32 {
        let channel = if self.scales.len() == 1 {
            0
        } else {
            let inner: usize = self.shape[self.axis + 1..].iter().product();
            (i / inner) % self.scales.len()
        };
        self.values[i] as f32 * self.scales[channel]
    }
}

/// The bias that cancels the mean shift quantizing the weight causes:
/// `bias[o] - Σ (ŵ - w)[o, c, ..] · mean(x[c])`, from the per-channel means of the
/// activation. `None` when the shapes do not line up (then nothing is corrected).
pub(crate) fn corrected_bias(
    target: &Target,
    w: &Tensor,
    q: &QuantizedWeight,
    bias: Option<&[f32]>,
    means: &[f64],
    group: usize,
) -> Option<Vec<f32>> {
    let data = w.as_slice::<f32>().ok()?;
    let shape = w.shape();
    let outputs = shape[target.weight_axis()];
    let mut delta = vec![0f64; outputs];
    match target.kind {
        TargetKind::Conv { .. } => {
            let (m, cg) = (shape[0], shape[1]);
            let window: usize = shape[2..].iter().product();
            if group == 0 || m % group != 0 || means.len() != cg * group {
                return None;
            }
            let per_group = m / group;
            for (o, d) in delta.iter_mut().enumerate() {
                let g = o / per_group;
                for c in 0..cg {
                    let mean = means[g * cg + c];
                    let base = (o * cg + c) * window;
                    let err: f64 = (base..base + window)
                        .map(|i| (q.dequantized(i) - data[i]) as f64)
                        .sum();
                    *d += err * mean;
                }
            }
        }
        TargetKind::Gemm { trans_b } => {
            let k = if trans_b { shape[1] } else { shape[0] };
            if means.len() != k {
                return None;
            }
            for (o, d) in delta.iter_mut().enumerate() {
                for (kk, &mean) in means.iter().enumerate() {
                    let i = if trans_b {
                        o * k + kk
                    } else {
                        kk * outputs + o
                    };
                    *d += (q.dequantized(i) - data[i]) as f64 * mean;
                }
            }
        }
        TargetKind::MatMul => return None,
    }
    if bias.is_some_and(|b| b.len() != outputs) {
        return None;
    }
    Some(
        (0..outputs)
            .map(|o| (bias.map_or(0.0, |b| b[o] as f64) - delta[o]) as f32)
            .collect(),
    )
}
