//! `GridSample` and `AffineGrid`.

use slimnet_ir::ops::vision::{GridPadding, GridSample, GridSampleMode};
use slimnet_tensor::{DType, Tensor};

use super::{floats, from_f64, ints, out_len};
use crate::reference::util::reason;

/// Most combinations of taps (one per spatial axis) a sample may read.
const MAX_TAPS: usize = 1 << 16;

/// Keys' cubic convolution weights (alpha -0.75) of the taps at offsets -1, 0, 1, 2
/// from the floor of a coordinate whose fractional part is `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Reflects `x` at the borders `lo` and `hi` until it lies between them.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let span = hi - lo;
    if span <= 0.0 {
        return lo;
    }
    let (dx, from_lo) = if x < lo {
        (lo - x, true)
    } else if x > hi {
        (x - hi, false)
    } else {
        return x;
    };
    let n = (dx / span).trunc();
    let r = dx - n * span;
    let even = n % 2.0 == 0.0;
    if from_lo == even {
        lo + r
    } else {
        hi - r
    }
}

/// One axis of the input as GridSample sees it.
struct Axis {
    size: usize,
    /// The coordinate range that counts as inside (pixel edges or centers).
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(size: usize, align_corners: bool) -> Axis {
        let d = size as f64;
        let (lo, hi) = if align_corners {
            (0.0, d - 1.0)
        } else {
            (-0.5, d - 0.5)
        };
        Axis { size, lo, hi }
    }

    /// The pixel coordinate of the normalized coordinate `v`.
    fn denormalize(&self, v: f64, align_corners: bool) -> f64 {
        let d = self.size as f64;
        if align_corners {
            (v + 1.0) / 2.0 * (d - 1.0)
        } else {
            ((v + 1.0) * d - 1.0) / 2.0
        }
    }

    /// The element index read for tap `i` (`None`: a zero).
    fn pixel(&self, i: i64, padding: GridPadding) -> Option<usize> {
        let last = self.size as i64 - 1;
        match padding {
            GridPadding::Zeros => (0..=last).contains(&i).then_some(i as usize),
            GridPadding::Border => Some(i.clamp(0, last) as usize),
            GridPadding::Reflection => {
                let r = reflect(i as f64, self.lo, self.hi).trunc() as i64;
                Some(r.clamp(0, last) as usize)
            }
        }
    }
}

/// The taps (element index or `None` for a zero, and weight) of one axis for the
/// normalized coordinate `v`; `None` when the coordinate is not finite.
///
/// Nearest and linear sampling first move an outside coordinate inside (clamped
/// for `border`, reflected for `reflection`), then pad each tap; cubic sampling
/// pads each of its four taps only, as PyTorch and ONNX Runtime do.
fn taps(g: &GridSample, axis: &Axis, v: f64) -> Option<Vec<(Option<usize>, f64)>> {
    let mut x = axis.denormalize(v, g.align_corners);
    if !x.is_finite() {
        return None;
    }
    if g.mode == GridSampleMode::Nearest {
        x = x.round_ties_even();
    }
    // Past these bounds every tap is padded the same way: keeps indices small.
    let (far_lo, far_hi) = (-4.0, axis.size as f64 + 3.0);
    let period = 2.0 * (axis.hi - axis.lo);
    if g.mode == GridSampleMode::Cubic {
        if g.padding_mode == GridPadding::Reflection
            && period > 0.0
            && !(far_lo..=far_hi).contains(&x)
        {
            // Reflection repeats every `period` (a whole number of pixels).
            x = axis.lo + (x - axis.lo).rem_euclid(period);
        } else {
            x = x.clamp(far_lo, far_hi);
        }
    } else if x < axis.lo || x > axis.hi {
        x = match g.padding_mode {
            GridPadding::Border => x.clamp(0.0, axis.size as f64 - 1.0),
            GridPadding::Reflection => reflect(x, axis.lo, axis.hi),
            GridPadding::Zeros => x.clamp(far_lo, far_hi),
        };
    }
    let pad = g.padding_mode;
    Some(match g.mode {
        GridSampleMode::Nearest => vec![(axis.pixel(x.trunc() as i64, pad), 1.0)],
        GridSampleMode::Linear => {
            let x0 = x.floor();
            let t = x - x0;
            let i = x0 as i64;
            vec![(axis.pixel(i, pad), 1.0 - t), (axis.pixel(i + 1, pad), t)]
        }
        GridSampleMode::Cubic => {
            let x0 = x.floor();
            let i = x0 as i64;
            let w = cubic_weights(x - x0);
            (0..4)
                .map(|k| (axis.pixel(i - 1 + k as i64, pad), w[k]))
                .collect()
        }
    })
}

/// GridSample over any number of spatial axes (4-D input only for `legacy` ops).
pub fn grid_sample(g: &GridSample, x: &Tensor, grid: &Tensor) -> Result<Tensor, String> {
    let coords = floats(grid, "grid")?;
    if x.dtype() == DType::String {
        return Err("GridSample does not support string tensors".into());
    }
    let (xs, gs) = (x.shape(), grid.shape());
    if xs.len() < 3 || (g.legacy && xs.len() != 4) {
        return Err(format!(
            "X must have rank {}, got shape {xs:?}",
            if g.legacy { "4" } else { "3 or more" }
        ));
    }
    let r = xs.len() - 2;
    if gs.len() != xs.len() || gs[0] != xs[0] || gs[gs.len() - 1] != r {
        return Err(format!(
            "grid of shape {gs:?} does not fit X of shape {xs:?}"
        ));
    }
    let (n, c) = (xs[0], xs[1]);
    let mut out_shape = vec![n, c];
    out_shape.extend_from_slice(&gs[1..gs.len() - 1]);
    let total = out_len(&out_shape)?;
    if total == 0 {
        return from_f64(out_shape, Vec::new(), x.dtype());
    }
    if xs[2..].contains(&0) {
        return Err(format!("X of shape {xs:?} has nothing to sample"));
    }
    let taps_per_axis: usize = match g.mode {
        GridSampleMode::Nearest => 1,
        GridSampleMode::Linear => 2,
        GridSampleMode::Cubic => 4,
    };
    if taps_per_axis
        .checked_pow(r as u32)
        .is_none_or(|n| n > MAX_TAPS)
    {
        return Err(format!("{r} spatial axes need too many taps per sample"));
    }
    // Both fit: the output and X hold them without zero dims.
    let positions: usize = gs[1..gs.len() - 1].iter().product();
    let plane: usize = xs[2..].iter().product();
    let axes: Vec<Axis> = xs[2..]
        .iter()
        .map(|&d| Axis::new(d, g.align_corners))
        .collect();
    let mut strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * xs[i + 3];
    }
    let values = x.to_vec::<f64>().map_err(reason)?;
    let mut out = vec![0f64; total];
    // Every combination of one tap per axis: (offset in the plane, weight).
    let mut combos: Vec<(usize, f64)> = Vec::new();
    for b in 0..n {
        for p in 0..positions {
            let at = (b * positions + p) * r;
            let per_axis: Option<Vec<_>> = (0..r)
                .map(|i| taps(g, &axes[i], coords[at + r - 1 - i]))
                .collect();
            combos.clear();
            let Some(per_axis) = per_axis else {
                for ch in 0..c {
                    out[(b * c + ch) * positions + p] = f64::NAN;
                }
                continue;
            };
            combos.push((0, 1.0));
            for (i, t) in per_axis.iter().enumerate() {
                let prev = std::mem::take(&mut combos);
                for &(off, w) in &prev {
                    for &(idx, tw) in t {
                        // A padded tap reads a zero: it adds nothing.
                        if let Some(k) = idx {
                            combos.push((off + k * strides[i], w * tw));
                        }
                    }
                }
            }
            for ch in 0..c {
                let base = (b * c + ch) * plane;
                out[(b * c + ch) * positions + p] =
                    combos.iter().map(|&(off, w)| w * values[base + off]).sum();
            }
        }
    }
    from_f64(out_shape, out, x.dtype())
}

/// Normalized base coordinates of the `size` pixels of one axis.
fn base_coords(size: usize, align_corners: bool) -> Vec<f64> {
    let d = size as f64;
    (0..size)
        .map(|j| {
            let j = j as f64;
            match (align_corners, size) {
                (_, 1) => 0.0,
                (true, _) => -1.0 + 2.0 * j / (d - 1.0),
                (false, _) => (2.0 * j + 1.0) / d - 1.0,
            }
        })
        .collect()
}

/// AffineGrid: `theta` (N, 2, 3) or (N, 3, 4) applied to the base grid of `size`.
pub fn affine_grid(theta: &Tensor, size: &Tensor, align_corners: bool) -> Result<Tensor, String> {
    let t = floats(theta, "theta")?;
    let size = ints(size, "size")?;
    let ts = theta.shape();
    let r = match size.len() {
        4 => 2,
        5 => 3,
        n => return Err(format!("size must hold 4 or 5 values, got {n}")),
    };
    if size.iter().any(|&d| d < 0) {
        return Err(format!("size {size:?} holds a negative dimension"));
    }
    if ts != [size[0] as usize, r, r + 1] {
        return Err(format!("theta of shape {ts:?} does not fit size {size:?}"));
    }
    let n = size[0] as usize;
    let dims: Vec<usize> = size[2..].iter().map(|&d| d as usize).collect();
    let mut out_shape = vec![n];
    out_shape.extend_from_slice(&dims);
    out_shape.push(r);
    let total = out_len(&out_shape)?;
    if total == 0 {
        return from_f64(out_shape, Vec::new(), theta.dtype());
    }
    // Base coordinates per axis; the homogeneous point lists them innermost first.
    let base: Vec<Vec<f64>> = dims
        .iter()
        .map(|&d| base_coords(d, align_corners))
        .collect();
    let points: usize = dims.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut point = vec![1.0; r + 1];
    for b in 0..n {
        let m = &t[b * r * (r + 1)..(b + 1) * r * (r + 1)];
        for p in 0..points {
            let mut rest = p;
            for i in (0..r).rev() {
                point[r - 1 - i] = base[i][rest % dims[i]];
                rest /= dims[i];
            }
            for row in 0..r {
                out.push(
                    (0..=r)
                        .map(|k| m[row * (r + 1) + k] * point[k])
                        .sum::<f64>(),
                );
            }
        }
    }
    from_f64(out_shape, out, theta.dtype())
}
