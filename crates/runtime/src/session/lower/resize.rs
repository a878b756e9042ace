//! Resize and Upsample on f32 where only the last two axes change (NCHW images,
//! and 2-D inputs). Per-axis tables of input indices and weights are built at plan
//! time by the reference kernel's own coordinate mapping, so nearest picks exactly
//! the pixels the reference picks. Interpolation sums in f64 in the reference's
//! order (rows first, then columns) and rounds once, so results equal the
//! reference's; the one difference is that nearest copies a `-0.0` as it is where
//! the reference writes `+0.0`.

use slimnet_ir::ops::nn::{Resize, ResizeMode};
use slimnet_ir::ops::NnOp;
use slimnet_ir::{NodeId, Op, ValueId};
use slimnet_kernels::Threads;
use slimnet_tensor::{DType, Tensor};

use super::movement::SharedMut;
use super::{is_f32, Context, Lowered, Lowering};
use crate::reference::nn::resize::{axis_taps, is_identity};

/// Below this many output elements a resize runs on the calling thread.
const MIN_SPLIT: usize = 1 << 14;

/// The taps of one axis: `k` input indices and weights per output position.
struct AxisTaps {
    k: usize,
    index: Vec<usize>,
    weight: Vec<f64>,
    /// Positions outside the input (tf_crop_and_resize): the fill value instead.
    outside: Vec<bool>,
    /// Every position reads one input element with weight 1.
    picks: bool,
}

impl AxisTaps {
    fn identity(len: usize) -> Self {
        AxisTaps {
            k: 1,
            index: (0..len).collect(),
            weight: vec![1.0; len],
            outside: vec![false; len],
            picks: true,
        }
    }

    /// The reference's taps, when every position has the same count of them.
    fn build(
        op: &Resize,
        in_len: usize,
        out_len: usize,
        scale: f64,
        roi: (f64, f64),
    ) -> Option<Self> {
        if is_identity(in_len, out_len, scale, roi) {
            return Some(Self::identity(out_len));
        }
        if in_len == 0 {
            return None;
        }
        let taps = axis_taps(op, in_len, out_len, scale, roi);
        let k = taps.first().map_or(1, |t| t.0.len());
        let mut t = AxisTaps {
            k,
            index: Vec::with_capacity(k * out_len),
            weight: Vec::with_capacity(k * out_len),
            outside: Vec::with_capacity(out_len),
            picks: k == 1,
        };
        for (index, weight, outside) in taps {
            if index.len() != k || weight.len() != k || index.iter().any(|&i| i >= in_len) {
                return None;
            }
            t.picks &= weight[0] == 1.0;
            t.index.extend(index);
            t.weight.extend(weight);
            t.outside.push(outside);
        }
        Some(t)
    }
}

/// A resize of `planes` planes of `in_h×in_w` to `out_h×out_w`.
pub(crate) struct ResizeStep {
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    rows: AxisTaps,
    cols: AxisTaps,
    fill: f64,
}

impl ResizeStep {
    pub(crate) fn run(&self, threads: &Threads, x: &[f32], y: &mut [f32]) -> Result<(), String> {
        let (in_len, out_len) = (
            self.planes * self.in_h * self.in_w,
            self.planes * self.out_h * self.out_w,
        );
        if x.len() != in_len || y.len() != out_len {
            return Err(format!(
                "resize planned for {in_len} -> {out_len} elements, got {} -> {}",
                x.len(),
                y.len()
            ));
        }
        let total_rows = self.planes * self.out_h;
        if total_rows == 0 || self.out_w == 0 {
            return Ok(());
        }
        let tasks = if out_len < MIN_SPLIT {
            1
        } else {
            (threads.count() * 4).min(total_rows)
        };
        let chunk = total_rows.div_ceil(tasks);
        let out = SharedMut(y.as_mut_ptr());
        let task = |t: usize| {
            let (r0, r1) = (t * chunk, ((t + 1) * chunk).min(total_rows));
            for r in r0..r1 {
                // SAFETY: row `r` of the output lies inside `y` (lengths checked above)
                // and only this task writes it.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(out.at(r * self.out_w), self.out_w) };
                if r > r0 && self.repeats_previous(r) {
                    // SAFETY: the previous row was written by this task and does not
                    // overlap row `r`.
                    let prev = unsafe {
                        std::slice::from_raw_parts(out.at((r - 1) * self.out_w), self.out_w)
                    };
                    row.copy_from_slice(prev);
                } else {
                    self.row(x, r, row);
                }
            }
        };
        if tasks <= 1 {
            task(0);
        } else {
            threads.for_each(tasks, task);
        }
        Ok(())
    }

    /// Whether output row `r` reads exactly what row `r - 1` of the same plane reads.
    fn repeats_previous(&self, r: usize) -> bool {
        let oy = r % self.out_h;
        if oy == 0 {
            return false;
        }
        let k = self.rows.k;
        let rows = &self.rows;
        rows.outside[oy] == rows.outside[oy - 1]
            && rows.index[oy * k..(oy + 1) * k] == rows.index[(oy - 1) * k..oy * k]
            && rows.weight[oy * k..(oy + 1) * k] == rows.weight[(oy - 1) * k..oy * k]
    }

    /// Computes output row `r` (plane-major) into `out`.
    fn row(&self, x: &[f32], r: usize, out: &mut [f32]) {
        let (plane, oy) = (r / self.out_h, r % self.out_h);
        let src = &x[plane * self.in_h * self.in_w..(plane + 1) * self.in_h * self.in_w];
        let (rows, cols) = (&self.rows, &self.cols);
        let (kh, kw) = (rows.k, cols.k);
        let fill = self.fill as f32;
        let row_outside = rows.outside[oy];
        if rows.picks && cols.picks && !row_outside {
            let line = &src[rows.index[oy] * self.in_w..][..self.in_w];
            for (ox, o) in out.iter_mut().enumerate() {
                *o = if cols.outside[ox] {
                    fill
                } else {
                    line[cols.index[ox]]
                };
            }
            return;
        }
        let ry = &rows.index[oy * kh..(oy + 1) * kh];
        let wy = &rows.weight[oy * kh..(oy + 1) * kh];
        for (ox, o) in out.iter_mut().enumerate() {
            if cols.outside[ox] {
                *o = fill;
                continue;
            }
            let mut acc = 0f64;
            for t in ox * kw..(ox + 1) * kw {
                let ix = cols.index[t];
                // The value the row pass of the reference holds at (oy, ix).
                let v = if row_outside {
                    self.fill
                } else {
                    let mut v = 0f64;
                    for (&iy, &w) in ry.iter().zip(wy) {
                        v += w * src[iy * self.in_w + ix] as f64;
                    }
                    v
                };
                acc += cols.weight[t] * v;
            }
            *o = acc as f32;
        }
    }
}

/// The values of an optional constant input as f64 (`Err` when present but not a
/// constant of the expected kind).
fn constant_f64s(ctx: &Context, v: Option<ValueId>) -> Result<Option<Vec<f64>>, ()> {
    let Some(v) = v else { return Ok(None) };
    let t: &Tensor = ctx.graph.values[v].constant.as_deref().ok_or(())?;
    if !t.dtype().is_float() {
        return Err(());
    }
    t.to_vec::<f64>().map(Some).map_err(|_| ())
}

/// Lowers a Resize or Upsample on f32 whose scales, sizes and region of interest are
/// constants and that changes at most the last two axes.
pub(crate) fn lower_resize(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let input = |i: usize| node.inputs.get(i).copied().flatten();
    let (Some(x), Some(Some(y))) = (input(0), node.outputs.first().copied()) else {
        return Ok(None);
    };
    if !is_f32(ctx, x) || !is_f32(ctx, y) {
        return Ok(None);
    }
    let (Some(xs), Some(ys)) = (ctx.shapes[x].as_ref(), ctx.shapes[y].as_ref()) else {
        return Ok(None);
    };
    let (op, roi, scales, sizes) = match &node.op {
        Op::Nn(NnOp::Resize(r)) => {
            let (roi_at, scales_at, sizes_at) = r.input_slots();
            let (Ok(roi), Ok(scales)) = (
                constant_f64s(ctx, roi_at.and_then(input)),
                constant_f64s(ctx, input(scales_at)),
            ) else {
                return Ok(None);
            };
            let sizes = match sizes_at.and_then(input) {
                None => None,
                Some(v) => match ctx.graph.values[v].constant.as_deref() {
                    Some(t) if t.dtype() == DType::I64 => t.to_i64_vec().ok(),
                    _ => return Ok(None),
                },
            };
            (r.clone(), roi, scales, sizes)
        }
        Op::Nn(NnOp::Upsample(u)) => {
            let scales = if u.scales.is_empty() {
                match constant_f64s(ctx, input(1)) {
                    Ok(Some(s)) => s,
                    _ => return Ok(None),
                }
            } else {
                u.scales.iter().map(|&s| s as f64).collect()
            };
            if scales.len() != xs.len() || scales.iter().any(|&s| s < 1.0) {
                return Ok(None);
            }
            (u.as_resize(), None, Some(scales), None)
        }
        _ => return Ok(None),
    };
    if (op.antialias && op.mode == ResizeMode::Nearest) || xs.len() < 2 {
        return Ok(None);
    }
    let Ok(p) = op.params(xs, roi.as_deref(), scales.as_deref(), sizes.as_deref()) else {
        return Ok(None);
    };
    let rank = xs.len();
    if &p.output != ys
        || (0..rank - 2).any(|a| !is_identity(xs[a], p.output[a], p.scales[a], p.roi[a]))
    {
        return Ok(None);
    }
    let (h, w) = (rank - 2, rank - 1);
    let (Some(rows), Some(cols)) = (
        AxisTaps::build(&op, xs[h], ys[h], p.scales[h], p.roi[h]),
        AxisTaps::build(&op, xs[w], ys[w], p.scales[w], p.roi[w]),
    ) else {
        return Ok(None);
    };
    Ok(Some(Lowering {
        kernel: Lowered::Resize(Box::new(ResizeStep {
            planes: xs[..h].iter().product(),
            in_h: xs[h],
            in_w: xs[w],
            out_h: ys[h],
            out_w: ys[w],
            rows,
            cols,
            fill: op.extrapolation_value as f64,
        })),
        fused: Vec::new(),
        scratch_len: 0,
    }))
}
