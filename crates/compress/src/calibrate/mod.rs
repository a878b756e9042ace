//! Calibration: observing the values a tensor takes on real data, and choosing the
//! range its 8-bit quantization covers.
//!
//! An [`Observer`] keeps the exact minimum and maximum, a histogram of magnitudes
//! (separately for negative and non-negative values, [`BINS`] bins each, widened by
//! merging neighbouring bins when a larger value arrives, so one pass suffices) and
//! per-channel means (axis 1) for bias correction. [`Observer::range`] turns that
//! into the clipping range of a [`CalibrationMethod`].

mod entropy;
mod params;

pub use params::{QuantParams, QuantScheme};

use std::fmt;
use std::str::FromStr;

/// Histogram bins on each side of zero.
pub const BINS: usize = 2048;

/// How the clipping range of an activation is chosen from what was observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibrationMethod {
    /// The observed minimum and maximum (extended to hold zero).
    MinMax,
    /// The given percentile of the values on each side of zero (e.g. 99.99).
    Percentile(f64),
    /// The threshold minimising the KL divergence between the histogram and its
    /// quantized version (the TensorRT method).
    Entropy,
    /// The range minimising the expected squared quantization error (rounding plus
    /// clipping), estimated from the histogram.
    Mse,
}

impl fmt::Display for CalibrationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalibrationMethod::MinMax => f.write_str("minmax"),
            CalibrationMethod::Percentile(p) => write!(f, "percentile:{p}"),
            CalibrationMethod::Entropy => f.write_str("entropy"),
            CalibrationMethod::Mse => f.write_str("mse"),
        }
    }
}

impl FromStr for CalibrationMethod {
    type Err = String;

    /// `minmax`, `percentile` (99.99), `percentile:P`, `entropy` (or `kl`), `mse`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "minmax" | "min-max" => Ok(CalibrationMethod::MinMax),
            "entropy" | "kl" => Ok(CalibrationMethod::Entropy),
            "mse" => Ok(CalibrationMethod::Mse),
            "percentile" => Ok(CalibrationMethod::Percentile(99.99)),
            _ => {
                let p = s
                    .strip_prefix("percentile:")
                    .and_then(|p| p.parse::<f64>().ok())
                    .filter(|p| *p > 50.0 && *p <= 100.0);
                p.map(CalibrationMethod::Percentile).ok_or_else(|| {
                    format!(
                        "unknown calibration method '{s}' (minmax, percentile, percentile:P with 50 < P <= 100, entropy, mse)"
                    )
                })
            }
        }
    }
}

/// What was seen of one tensor over the calibration data.
#[derive(Clone, Debug)]
pub struct Observer {
    min: f32,
    max: f32,
    /// `pos[i]` counts values in `[i·width, (i+1)·width)` (the last bin also holds
    /// anything larger), `neg[i]` the values in `(-(i+1)·width, -i·width]` below 0.
    pos: Vec<u64>,
    neg: Vec<u64>,
    width: f32,
    count: u64,
    channel_sums: Vec<f64>,
    channel_counts: u64,
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new()
    }
}

impl Observer {
    pub fn new() -> Self {
        Observer {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            pos: vec![0; BINS],
            neg: vec![0; BINS],
            width: 0.0,
            count: 0,
            channel_sums: Vec::new(),
            channel_counts: 0,
        }
    }

    /// Adds the values of one tensor of shape `shape` (NaNs are ignored).
    pub fn observe(&mut self, values: &[f32], shape: &[usize]) {
        let (mut lo, mut hi) = (self.min, self.max);
        for &x in values {
            if x < lo {
                lo = x;
            }
            if x > hi {
                hi = x;
            }
        }
        self.min = lo;
        self.max = hi;
        let magnitude = lo.abs().max(hi.abs());
        if !magnitude.is_finite() && magnitude != 0.0 {
            // infinities would make every bin infinitely wide; keep only min/max
        } else if magnitude > 0.0 {
            self.widen(magnitude);
            let inv = 1.0 / self.width;
            for &x in values {
                if x.is_nan() {
                    continue;
                }
                let bin = ((x.abs() * inv) as usize).min(BINS - 1);
                if x < 0.0 {
                    self.neg[bin] += 1;
                } else {
                    self.pos[bin] += 1;
                }
            }
        } else {
            self.pos[0] += values.len() as u64;
        }
        self.count += values.len() as u64;
        self.observe_channels(values, shape);
    }

    fn widen(&mut self, magnitude: f32) {
        if self.width == 0.0 {
            self.width = magnitude / BINS as f32 * (1.0 + 1e-6);
            return;
        }
        while magnitude >= self.width * BINS as f32 {
            for h in [&mut self.pos, &mut self.neg] {
                for i in 0..BINS / 2 {
                    h[i] = h[2 * i] + h[2 * i + 1];
                }
                h[BINS / 2..].fill(0);
            }
            self.width *= 2.0;
        }
    }

    fn observe_channels(&mut self, values: &[f32], shape: &[usize]) {
        if shape.len() < 2 || values.is_empty() {
            return;
        }
        let channels = shape[1];
        let inner: usize = shape[2..].iter().product();
        if self.channel_sums.len() != channels {
            if self.channel_counts > 0 {
                // shapes changed between samples along the channel axis: give up on means
                self.channel_sums.clear();
                self.channel_counts = u64::MAX;
                return;
            }
            self.channel_sums = vec![0.0; channels];
        }
        if self.channel_counts == u64::MAX {
            return;
        }
        for chunk in values.chunks_exact(channels * inner) {
            for (c, plane) in chunk.chunks_exact(inner).enumerate() {
                self.channel_sums[c] += plane.iter().map(|&x| x as f64).sum::<f64>();
            }
        }
        self.channel_counts += (values.len() / channels) as u64;
    }

    /// Values observed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The observed minimum and maximum (infinite when nothing was observed).
    pub fn min_max(&self) -> (f32, f32) {
        (self.min, self.max)
    }

    /// Mean of each channel (axis 1) over everything observed, when every tensor had
    /// the same number of channels.
    pub fn channel_means(&self) -> Option<Vec<f64>> {
        if self.channel_counts == 0 || self.channel_counts == u64::MAX {
            return None;
        }
        let n = self.channel_counts as f64;
        Some(self.channel_sums.iter().map(|s| s / n).collect())
    }

    /// The clipping range `[lo, hi]` (with `lo <= 0 <= hi`) that `method` picks for
    /// quantizing to `scheme`.
    pub fn range(&self, method: CalibrationMethod, scheme: QuantScheme) -> (f32, f32) {
        if self.count == 0 || !self.min.is_finite() || !self.max.is_finite() {
            return (self.min.clamp(-1.0, 0.0), self.max.clamp(0.0, 1.0));
        }
        let (lo, hi) = (self.min.min(0.0), self.max.max(0.0));
        if self.width == 0.0 {
            return (lo, hi);
        }
        match method {
            CalibrationMethod::MinMax => (lo, hi),
            CalibrationMethod::Percentile(p) => {
                let hi_p = percentile_edge(&self.pos, p, self.width).min(hi);
                let lo_p = -percentile_edge(&self.neg, p, self.width).min(-lo);
                (lo_p, hi_p)
            }
            CalibrationMethod::Entropy => {
                let magnitude: Vec<u64> =
                    self.pos.iter().zip(&self.neg).map(|(a, b)| a + b).collect();
                let one_sided = self.neg.iter().all(|&c| c == 0);
                let levels = if one_sided { 255 } else { 128 };
                let t = entropy::threshold(&magnitude, levels) as f32 * self.width;
                (lo.max(-t), hi.min(t))
            }
            CalibrationMethod::Mse => self.mse_range(lo, hi, scheme),
        }
    }

    /// Shrinks `[lo, hi]` by the factor with the least estimated squared error.
    fn mse_range(&self, lo: f32, hi: f32, scheme: QuantScheme) -> (f32, f32) {
        let mut best = (f64::INFINITY, lo, hi);
        for step in 0..=90 {
            let f = 1.0 - step as f32 * 0.01;
            let (l, h) = match scheme {
                QuantScheme::Asymmetric => (lo * f, hi * f),
                QuantScheme::Symmetric => {
                    let t = lo.abs().max(hi) * f;
                    (-t, t)
                }
            };
            let params = QuantParams::from_range(l, h, scheme);
            let (ql, qh) = params.representable();
            let rounding = (params.scale as f64).powi(2) / 12.0;
            let mut err = 0.0f64;
            for (side, hist) in [(1.0f64, &self.pos), (-1.0f64, &self.neg)] {
                for (i, &c) in hist.iter().enumerate() {
                    if c == 0 {
                        continue;
                    }
                    let x = side * (i as f64 + 0.5) * self.width as f64;
                    let e = if x > qh as f64 {
                        (x - qh as f64).powi(2)
                    } else if x < ql as f64 {
                        (ql as f64 - x).powi(2)
                    } else {
                        rounding
                    };
                    err += c as f64 * e;
                }
            }
            if err < best.0 {
                best = (err, l, h);
            }
        }
        (best.1, best.2)
    }
}

/// Upper edge of the bin where the cumulative count reaches `p` percent.
fn percentile_edge(hist: &[u64], p: f64, width: f32) -> f32 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * p / 100.0).ceil() as u64;
    let mut seen = 0;
    for (i, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            return (i + 1) as f32 * width;
        }
    }
    hist.len() as f32 * width
}

#[cfg(test)]
mod tests;
