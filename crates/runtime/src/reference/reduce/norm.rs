//! `LayerNormalization`, `LpNormalization` and `MeanVarianceNormalization`.

use slimnet_tensor::{broadcast_shapes, BroadcastIndexer, DType, Tensor};

use super::{around_axis, axis_mask, for_each_reduced, reduced_shapes, tensor};
use crate::reference::elementwise::num::Float;
use crate::reference::util::{normalize_axis, reason};

/// A `Scale` or `B` input as `f64`, broadcast to `x`.
struct Param {
    values: Vec<f64>,
    /// `None`: element `j` of each normalized row reads `values[j % len]` (the input
    /// spans a suffix of the normalized axes); otherwise the index per element of `x`.
    map: Option<Vec<usize>>,
}

impl Param {
    fn new(p: &Tensor, x_shape: &[usize], axis: usize, what: &str) -> Result<Param, String> {
        if !p.dtype().is_float() {
            return Err(format!("{what} must be a float tensor, got {}", p.dtype()));
        }
        let out = broadcast_shapes(x_shape, p.shape()).map_err(reason)?;
        if out != x_shape {
            return Err(format!(
                "{what} of shape {:?} does not broadcast to {:?}",
                p.shape(),
                x_shape
            ));
        }
        let values = p.to_vec::<f64>().map_err(reason)?;
        let first = p.shape().iter().position(|&d| d != 1).unwrap_or(p.rank());
        let core = &p.shape()[first..];
        let suffix =
            core.len() <= x_shape.len() - axis && core == &x_shape[x_shape.len() - core.len()..];
        let map = if suffix {
            None
        } else {
            Some(
                BroadcastIndexer::new(p.shape(), x_shape)
                    .indices()
                    .collect(),
            )
        };
        Ok(Param { values, map })
    }

    /// The value for element `j` of row `r` (rows of `n` elements).
    #[inline]
    fn at(&self, r: usize, n: usize, j: usize) -> f64 {
        match &self.map {
            None => self.values[j % self.values.len()],
            Some(map) => self.values[map[r * n + j]],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn layer_norm_typed<T: Float>(
    x: &Tensor,
    v: &[T],
    axis: usize,
    epsilon: f64,
    scale: &Param,
    bias: Option<&Param>,
    stash: DType,
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let rows: usize = x.shape()[..axis].iter().product();
    let n: usize = x.shape()[axis..].iter().product();
    let mut y = Vec::with_capacity(v.len());
    let mut means = Vec::with_capacity(rows);
    let mut inv_stds = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &v[r * n..(r + 1) * n];
        let mean = row.iter().map(|a| a.to_f64()).sum::<f64>() / n as f64;
        let var = row.iter().map(|a| (a.to_f64() - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + epsilon).sqrt();
        for (j, a) in row.iter().enumerate() {
            let b = bias.map_or(0.0, |b| b.at(r, n, j));
            y.push(T::round_from(
                (a.to_f64() - mean) * inv * scale.at(r, n, j) + b,
            ));
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let mut outputs = vec![tensor(x.shape().to_vec(), y)?];
    if num_outputs > 1 {
        let stat_shape: Vec<usize> = x
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &d)| if i < axis { d } else { 1 })
            .collect();
        for stat in [means, inv_stds] {
            outputs.push(
                tensor(stat_shape.clone(), stat)?
                    .cast(stash)
                    .map_err(reason)?,
            );
        }
    }
    Ok(outputs)
}

/// Normalizes over axes `axis..rank` to zero mean and unit variance, then scales
/// and shifts (`Scale` and `B` broadcast to `x`). Mean and InvStdDev are returned
/// when the node has more than one output, in the `stash_type` dtype.
pub fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    epsilon: f32,
    stash_type: i64,
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let a = normalize_axis(axis, x.rank())?;
    let stash = i32::try_from(stash_type)
        .ok()
        .and_then(DType::from_onnx_code)
        .filter(|d| d.is_float())
        .ok_or_else(|| format!("stash_type {stash_type} is not a float type"))?;
    let scale = Param::new(scale, x.shape(), a, "Scale")?;
    let bias = bias.map(|b| Param::new(b, x.shape(), a, "B")).transpose()?;
    let eps = epsilon as f64;
    float_dispatch!(x, "LayerNormalization", v => layer_norm_typed(x, v, a, eps, &scale, bias.as_ref(), stash, num_outputs))
}

fn lp_typed<T: Float>(x: &Tensor, v: &[T], axis: usize, p: i64) -> Result<Tensor, String> {
    let (outer, n, inner) = around_axis(x.shape(), axis);
    let mut out = vec![T::zero(); v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            let norm = if p == 1 {
                (0..n).map(|j| v[at(j)].to_f64().abs()).sum::<f64>()
            } else {
                (0..n)
                    .map(|j| v[at(j)].to_f64().powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            for j in 0..n {
                out[at(j)] = if norm == 0.0 {
                    T::zero()
                } else {
                    T::round_from(v[at(j)].to_f64() / norm)
                };
            }
        }
    }
    tensor(x.shape().to_vec(), out)
}

/// Divides by the L1 or L2 norm along `axis` (a zero norm gives zeros).
pub fn lp_norm(x: &Tensor, axis: i64, p: i64) -> Result<Tensor, String> {
    if p != 1 && p != 2 {
        return Err(format!("p must be 1 or 2, got {p}"));
    }
    let a = normalize_axis(axis, x.rank())?;
    float_dispatch!(x, "LpNormalization", v => lp_typed(x, v, a, p))
}

fn mvn_typed<T: Float>(x: &Tensor, v: &[T], mask: &[bool]) -> Result<Tensor, String> {
    let (keep, _) = reduced_shapes(x.shape(), mask);
    let groups: usize = keep.iter().product();
    let count: usize = x
        .shape()
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&d, _)| d)
        .product();
    let mut mean = vec![0.0f64; groups];
    for_each_reduced(v, x.shape(), &keep, |o, a| mean[o] += a.to_f64())?;
    mean.iter_mut().for_each(|m| *m /= count as f64);
    let mut var = vec![0.0f64; groups];
    for_each_reduced(v, x.shape(), &keep, |o, a| {
        var[o] += (a.to_f64() - mean[o]).powi(2)
    })?;
    let std: Vec<f64> = var.iter().map(|s| (s / count as f64).sqrt()).collect();
    let mut out = Vec::with_capacity(v.len());
    for_each_reduced(v, x.shape(), &keep, |o, a| {
        out.push(T::round_from((a.to_f64() - mean[o]) / (std[o] + 1e-9)))
    })?;
    tensor(x.shape().to_vec(), out)
}

/// `(x - mean) / (std + 1e-9)` with mean and (population) standard deviation over
/// `axes`.
pub fn mean_variance(x: &Tensor, axes: &[i64]) -> Result<Tensor, String> {
    let mask = axis_mask(axes, x.rank())?;
    float_dispatch!(x, "MeanVarianceNormalization", v => mvn_typed(x, v, &mask))
}
