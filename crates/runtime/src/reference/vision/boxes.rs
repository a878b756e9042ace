//! `RoiAlign` and `NonMaxSuppression`.

use slimnet_ir::ops::vision::RoiAlign;
use slimnet_tensor::Tensor;

use super::{floats, from_f64, ints, out_len, tensor, MAX_ELEMENTS};

/// One bilinear sample: four element offsets in the feature plane and their weights.
#[derive(Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f64; 4],
}

/// The bilinear sample at (`y`, `x`) of a `height` x `width` plane; all weights zero
/// past one pixel outside the plane.
fn sample(y: f64, x: f64, height: usize, width: usize) -> Sample {
    let (h, w) = (height as f64, width as f64);
    if !(y >= -1.0 && y <= h && x >= -1.0 && x <= w) {
        return Sample::default();
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y_low, mut x_low) = (y as usize, x as usize);
    let y_high = if y_low >= height - 1 {
        y_low = height - 1;
        y = y_low as f64;
        y_low
    } else {
        y_low + 1
    };
    let x_high = if x_low >= width - 1 {
        x_low = width - 1;
        x = x_low as f64;
        x_low
    } else {
        x_low + 1
    };
    let (ly, lx) = (y - y_low as f64, x - x_low as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Sample {
        pos: [
            y_low * width + x_low,
            y_low * width + x_high,
            y_high * width + x_low,
            y_high * width + x_high,
        ],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

/// RoiAlign over `X` (N, C, H, W) for `rois` (R, 4) of (x1, y1, x2, y2) and their
/// `batch_indices` (R); output (R, C, output_height, output_width). Max pooling
/// takes, per sample, the largest of the four weighted corner values (as ONNX
/// Runtime and the ONNX reference do).
pub fn roi_align(
    r: &RoiAlign,
    x: &Tensor,
    rois: &Tensor,
    batch_indices: &Tensor,
) -> Result<Tensor, String> {
    let data = floats(x, "X")?;
    let boxes = floats(rois, "rois")?;
    let batch = ints(batch_indices, "batch_indices")?;
    let xs = x.shape();
    if xs.len() != 4 {
        return Err(format!("X must have rank 4, got shape {xs:?}"));
    }
    let num = batch.len();
    if rois.shape() != [num, 4] || batch_indices.rank() != 1 {
        return Err(format!(
            "rois of shape {:?} and batch_indices of shape {:?} do not match (R, 4) and (R)",
            rois.shape(),
            batch_indices.shape()
        ));
    }
    let (n, c, height, width) = (xs[0], xs[1], xs[2], xs[3]);
    let (ph, pw) = (r.output_height as usize, r.output_width as usize);
    let out_shape = vec![num, c, ph, pw];
    let total = out_len(&out_shape)?;
    let mut out = vec![0f64; total];
    if total == 0 {
        return from_f64(out_shape, out, x.dtype());
    }
    if height == 0 || width == 0 {
        return Err(format!("X of shape {xs:?} has no pixels to sample"));
    }
    let scale = r.spatial_scale as f64;
    let offset = if r.half_pixel { 0.5 } else { 0.0 };
    let plane = height * width;
    for (k, &b) in batch.iter().enumerate() {
        if b < 0 || b as u64 >= n as u64 {
            return Err(format!("batch index {b} is out of range for {n} images"));
        }
        let roi = &boxes[k * 4..k * 4 + 4];
        let (start_w, start_h) = (roi[0] * scale - offset, roi[1] * scale - offset);
        let (end_w, end_h) = (roi[2] * scale - offset, roi[3] * scale - offset);
        let (mut roi_w, mut roi_h) = (end_w - start_w, end_h - start_h);
        if !r.half_pixel {
            roi_w = roi_w.max(1.0);
            roi_h = roi_h.max(1.0);
        }
        let (bin_h, bin_w) = (roi_h / ph as f64, roi_w / pw as f64);
        let grid = |ratio: f64| -> usize {
            if r.sampling_ratio > 0 {
                r.sampling_ratio as usize
            } else {
                ratio.ceil().max(0.0) as usize
            }
        };
        let (grid_h, grid_w) = (grid(bin_h), grid(bin_w));
        let per_bin = grid_h
            .checked_mul(grid_w)
            .filter(|&s| s.saturating_mul(ph * pw) <= MAX_ELEMENTS);
        let Some(per_bin) = per_bin else {
            return Err(format!(
                "region {k} needs too many samples per bin ({grid_h} x {grid_w})"
            ));
        };
        if per_bin == 0 {
            // No samples: every bin stays zero.
            continue;
        }
        let bins = ph * pw;
        for bin in 0..bins {
            let (i, j) = ((bin / pw) as f64, (bin % pw) as f64);
            for iy in 0..grid_h {
                let y = start_h + i * bin_h + (iy as f64 + 0.5) * bin_h / grid_h as f64;
                for ix in 0..grid_w {
                    let xx = start_w + j * bin_w + (ix as f64 + 0.5) * bin_w / grid_w as f64;
                    let s = sample(y, xx, height, width);
                    let first = iy == 0 && ix == 0;
                    for ch in 0..c {
                        let base = (b as usize * c + ch) * plane;
                        let terms = (0..4).map(|q| s.w[q] * data[base + s.pos[q]]);
                        let o = &mut out[(k * c + ch) * bins + bin];
                        if r.max {
                            let t = terms.fold(f64::NEG_INFINITY, f64::max);
                            *o = if first { t } else { o.max(t) };
                        } else {
                            *o += terms.sum::<f64>();
                        }
                    }
                }
            }
            if !r.max {
                for ch in 0..c {
                    out[(k * c + ch) * bins + bin] /= per_bin as f64;
                }
            }
        }
    }
    from_f64(out_shape, out, x.dtype())
}

/// Whether two boxes overlap by more than `threshold` (intersection over union).
fn suppresses(a: &[f64], b: &[f64], center_point_box: bool, threshold: f64) -> bool {
    // (x_min, x_max, y_min, y_max) of a box.
    let extent = |q: &[f64]| {
        if center_point_box {
            let (hw, hh) = (q[2] / 2.0, q[3] / 2.0);
            (q[0] - hw, q[0] + hw, q[1] - hh, q[1] + hh)
        } else {
            (
                q[1].min(q[3]),
                q[1].max(q[3]),
                q[0].min(q[2]),
                q[0].max(q[2]),
            )
        }
    };
    let (ax0, ax1, ay0, ay1) = extent(a);
    let (bx0, bx1, by0, by1) = extent(b);
    let (ix0, ix1) = (ax0.max(bx0), ax1.min(bx1));
    let (iy0, iy1) = (ay0.max(by0), ay1.min(by1));
    if ix1 <= ix0 || iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    let area_a = (ax1 - ax0) * (ay1 - ay0);
    let area_b = (bx1 - bx0) * (by1 - by0);
    let union = area_a + area_b - inter;
    if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

/// The first value of an optional scalar input; `None` when absent or empty.
fn first(t: Option<&Tensor>, what: &str, float: bool) -> Result<Option<f64>, String> {
    let Some(t) = t else { return Ok(None) };
    let v = if float {
        floats(t, what)?
    } else {
        ints(t, what)?.into_iter().map(|i| i as f64).collect()
    };
    Ok(v.first().copied())
}

/// NonMaxSuppression: per batch and class, boxes in descending score order (ties:
/// lower index first), each kept unless it overlaps a kept one by more than the IoU
/// threshold; at most `max_output_boxes_per_class` (absent: 0) per class, and only
/// scores above `score_threshold` when it is given.
pub fn non_max_suppression(
    boxes: &Tensor,
    scores: &Tensor,
    [max_out, iou, score]: [Option<&Tensor>; 3],
    center_point_box: bool,
) -> Result<Tensor, String> {
    let b = floats(boxes, "boxes")?;
    let s = floats(scores, "scores")?;
    let (bs, ss) = (boxes.shape(), scores.shape());
    if bs.len() != 3 || bs[2] != 4 || ss.len() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
        return Err(format!(
            "boxes of shape {bs:?} and scores of shape {ss:?} do not match (N, B, 4) and (N, C, B)"
        ));
    }
    let limit = match max_out {
        Some(t) => ints(t, "max_output_boxes_per_class")?
            .first()
            .copied()
            .unwrap_or(0)
            .max(0) as u64,
        None => 0,
    };
    let iou = first(iou, "iou_threshold", true)?.unwrap_or(0.0);
    let score = first(score, "score_threshold", true)?;
    let (batches, classes, count) = (ss[0], ss[1], ss[2]);
    let mut selected: Vec<i64> = Vec::new();
    let mut order: Vec<usize> = Vec::with_capacity(count);
    let mut kept: Vec<usize> = Vec::new();
    for n in 0..batches {
        let bb = &b[n * count * 4..(n + 1) * count * 4];
        for c in 0..classes {
            let sc = &s[(n * classes + c) * count..(n * classes + c + 1) * count];
            order.clear();
            order.extend((0..count).filter(|&i| score.is_none_or(|t| sc[i] > t)));
            // Stable: equal scores keep the lower index first; NaN scores go last.
            order.sort_by(|&i, &j| {
                sc[j]
                    .partial_cmp(&sc[i])
                    .unwrap_or_else(|| sc[i].is_nan().cmp(&sc[j].is_nan()))
            });
            kept.clear();
            for &i in &order {
                if kept.len() as u64 >= limit {
                    break;
                }
                let bi = &bb[i * 4..i * 4 + 4];
                if !kept
                    .iter()
                    .any(|&k| suppresses(bi, &bb[k * 4..k * 4 + 4], center_point_box, iou))
                {
                    kept.push(i);
                    selected.extend([n as i64, c as i64, i as i64]);
                }
            }
        }
    }
    let rows = selected.len() / 3;
    tensor(vec![rows, 3], selected)
}
