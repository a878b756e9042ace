//! `RMSNormalization`.

use slimnet_tensor::{broadcast_shapes, BroadcastIndexer, Tensor};

use super::{floats, output};
use crate::reference::util::{normalize_axis, reason};

/// `x / sqrt(mean(x², axes axis..rank) + epsilon) * scale`, with `scale` broadcast
/// to `x`; the output has the dtype of `scale`.
pub fn rms_norm(x: &Tensor, scale: &Tensor, axis: i64, epsilon: f32) -> Result<Tensor, String> {
    let a = normalize_axis(axis, x.rank())?;
    let v = floats(x, "X")?;
    let w = floats(scale, "scale")?;
    let shape = x.shape();
    if broadcast_shapes(shape, scale.shape()).map_err(reason)? != shape {
        return Err(format!(
            "scale of shape {:?} does not broadcast to X of shape {shape:?}",
            scale.shape()
        ));
    }
    let map: Vec<usize> = BroadcastIndexer::new(scale.shape(), shape)
        .indices()
        .collect();
    let n: usize = shape[a..].iter().product();
    let eps = f64::from(epsilon);
    let mut y = Vec::with_capacity(v.len());
    for (r, row) in v.chunks(n.max(1)).enumerate() {
        let mean_square = row.iter().map(|e| e * e).sum::<f64>() / n as f64;
        let inv = 1.0 / (mean_square + eps).sqrt();
        for (j, e) in row.iter().enumerate() {
            y.push(e * inv * w[map[r * n + j]]);
        }
    }
    output(shape.to_vec(), y, scale.dtype())
}
