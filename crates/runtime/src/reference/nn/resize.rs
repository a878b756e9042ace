//! Resize and Upsample: separable interpolation, one axis at a time, in f64.

use slimnet_ir::ops::nn::{CoordinateMode, NearestMode, Resize, ResizeMode, Upsample};
use slimnet_tensor::{DType, Tensor};

use super::float::{count, to_tensor};
use crate::reference::util::{input, optional};

/// Input positions and weights that make one output position of one axis.
struct Taps {
    index: Vec<usize>,
    weight: Vec<f64>,
    /// tf_crop_and_resize outside the input: the extrapolation value instead.
    outside: bool,
}

fn f64s(t: Option<&Tensor>, what: &str) -> Result<Option<Vec<f64>>, String> {
    match t {
        None => Ok(None),
        Some(t) if !t.dtype().is_float() => {
            Err(format!("{what} must be a float tensor, got {}", t.dtype()))
        }
        Some(t) => t.to_vec::<f64>().map(Some).map_err(|e| e.to_string()),
    }
}

pub fn run_resize(op: &Resize, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let (roi_at, scales_at, sizes_at) = op.input_slots();
    let roi = f64s(roi_at.and_then(|i| optional(inputs, i)), "roi")?;
    let scales = f64s(optional(inputs, scales_at), "scales")?;
    let sizes = match sizes_at.and_then(|i| optional(inputs, i)) {
        None => None,
        Some(t) if t.dtype() != DType::I64 => {
            return Err(format!("sizes must be int64, got {}", t.dtype()))
        }
        Some(t) => Some(t.to_i64_vec().map_err(|e| e.to_string())?),
    };
    resize(op, x, roi.as_deref(), scales.as_deref(), sizes.as_deref())
}

pub fn run_upsample(op: &Upsample, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let scales = if op.scales.is_empty() {
        f64s(Some(input(inputs, 1)?), "scales")?.unwrap_or_default()
    } else {
        op.scales.iter().map(|&s| s as f64).collect()
    };
    if scales.len() != x.rank() {
        return Err(format!(
            "scales holds {} values for an input of rank {}",
            scales.len(),
            x.rank()
        ));
    }
    if let Some(s) = scales.iter().find(|&&s| s < 1.0) {
        return Err(format!("Upsample scales must be at least 1, got {s}"));
    }
    resize(&op.as_resize(), x, None, Some(&scales), None)
}

fn resize(
    op: &Resize,
    x: &Tensor,
    roi: Option<&[f64]>,
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
) -> Result<Vec<Tensor>, String> {
    if op.antialias && op.mode == ResizeMode::Nearest {
        return Err("antialias is not supported with mode nearest".into());
    }
    let dtype = x.dtype();
    if !(dtype.is_float() || dtype.is_integer()) {
        return Err(format!("Resize does not support dtype {dtype}"));
    }
    let p = op.params(x.shape(), roi, scales, sizes)?;
    count(&p.output)?;
    let mut shape = x.shape().to_vec();
    let mut data: Vec<f64> = x.to_vec::<f64>().map_err(|e| e.to_string())?;
    for axis in 0..shape.len() {
        let (out_len, scale, roi) = (p.output[axis], p.scales[axis], p.roi[axis]);
        if is_identity(shape[axis], out_len, scale, roi) {
            continue;
        }
        if shape[axis] == 0 && out_len > 0 {
            return Err(format!(
                "axis {axis} is empty and cannot be resized to {out_len}"
            ));
        }
        let taps: Vec<Taps> = (0..out_len)
            .map(|o| taps(op, o, shape[axis], out_len, scale, roi))
            .collect();
        let outer = count(&shape[..axis])?;
        let inner = count(&shape[axis + 1..])?;
        let in_len = shape[axis];
        let mut next = vec![0f64; outer * out_len * inner];
        let fill = op.extrapolation_value as f64;
        for b in 0..outer {
            let src = &data[b * in_len * inner..(b + 1) * in_len * inner];
            for (o, t) in taps.iter().enumerate() {
                let dst = &mut next[(b * out_len + o) * inner..(b * out_len + o + 1) * inner];
                if t.outside {
                    dst.fill(fill);
                    continue;
                }
                for (&i, &w) in t.index.iter().zip(&t.weight) {
                    for (d, &s) in dst.iter_mut().zip(&src[i * inner..(i + 1) * inner]) {
                        *d += w * s;
                    }
                }
            }
        }
        data = next;
        shape[axis] = out_len;
    }
    let out = if dtype.is_float() {
        to_tensor(shape, data, dtype)?
    } else {
        let rounded: Vec<f64> = data.into_iter().map(f64::round_ties_even).collect();
        Tensor::from_vec(shape, rounded)
            .and_then(|t| t.cast(dtype))
            .map_err(|e| e.to_string())?
    };
    Ok(vec![out])
}

/// The source coordinate of output position `o` (and whether it lies outside the
/// input, for tf_crop_and_resize).
fn source(
    op: &Resize,
    o: usize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
) -> (f64, bool) {
    let x = o as f64;
    let (inf, width) = (in_len as f64, scale * in_len as f64);
    let v = match op.coordinate_mode {
        CoordinateMode::AlignCorners => {
            if width == 1.0 {
                0.0
            } else {
                x * (inf - 1.0) / (width - 1.0)
            }
        }
        CoordinateMode::Asymmetric => x / scale,
        CoordinateMode::TfCropAndResize => {
            let v = if width == 1.0 {
                (roi.1 - roi.0) * (inf - 1.0) / 2.0
            } else {
                x * (roi.1 - roi.0) * (inf - 1.0) / (width - 1.0)
            } + roi.0 * (inf - 1.0);
            return (v, v < 0.0 || v > inf - 1.0);
        }
        CoordinateMode::PytorchHalfPixel => {
            if width == 1.0 {
                -0.5
            } else {
                (x + 0.5) / scale - 0.5
            }
        }
        CoordinateMode::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordinateMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / width;
            let offset = inf / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        CoordinateMode::TfHalfPixelForNn => (x + 0.5) / scale,
    };
    (v, false)
}

/// [`source`] for `nearest`, in f32 arithmetic with integer output lengths as ONNX
/// Runtime computes it, so that exact ties pick the same pixel.
fn source_nearest(
    op: &Resize,
    o: usize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
) -> (f64, bool) {
    let (x, s) = (o as f32, scale as f32);
    let (inf, outf) = (in_len as f32, out_len as f32);
    let v = match op.coordinate_mode {
        CoordinateMode::AlignCorners => {
            if out_len == 1 {
                0.0
            } else {
                x * (inf - 1.0) / (outf - 1.0)
            }
        }
        CoordinateMode::Asymmetric => x / s,
        CoordinateMode::TfCropAndResize => {
            let (r0, r1) = (roi.0 as f32, roi.1 as f32);
            let v = if out_len > 1 {
                r0 * (inf - 1.0) + x * (r1 - r0) * (inf - 1.0) / (outf - 1.0)
            } else {
                0.5 * (r0 + r1) * (inf - 1.0)
            };
            return (v as f64, v < 0.0 || v > inf - 1.0);
        }
        CoordinateMode::PytorchHalfPixel => {
            if out_len > 1 {
                (x + 0.5) / s - 0.5
            } else {
                0.0
            }
        }
        CoordinateMode::HalfPixel => (x + 0.5) / s - 0.5,
        CoordinateMode::HalfPixelSymmetric => {
            let adjustment = outf / (s * inf);
            let offset = inf / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / s - 0.5
        }
        CoordinateMode::TfHalfPixelForNn => (x + 0.5) / s,
    };
    (v as f64, false)
}

/// The taps of every output position of one axis resized from `in_len` to
/// `out_len`: input indices, weights, and whether the position lies outside the
/// input (tf_crop_and_resize). The fast runtime builds its tables from these, so both
/// agree on every coordinate.
pub(crate) fn axis_taps(
    op: &Resize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
) -> Vec<(Vec<usize>, Vec<f64>, bool)> {
    (0..out_len)
        .map(|o| {
            let t = taps(op, o, in_len, out_len, scale, roi);
            (t.index, t.weight, t.outside)
        })
        .collect()
}

/// Whether an axis is left as it is (and skipped by the reference).
pub(crate) fn is_identity(in_len: usize, out_len: usize, scale: f64, roi: (f64, f64)) -> bool {
    (scale - 1.0).abs() < 1e-9 && out_len == in_len && roi == (0.0, 1.0)
}

fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

fn taps(op: &Resize, o: usize, in_len: usize, out_len: usize, scale: f64, roi: (f64, f64)) -> Taps {
    let (v, outside) = if op.mode == ResizeMode::Nearest {
        source_nearest(op, o, in_len, out_len, scale, roi)
    } else {
        source(op, o, in_len, out_len, scale, roi)
    };
    let last = in_len as i64 - 1;
    let clamp = |i: i64| i.clamp(0, last.max(0)) as usize;
    let floor = v.floor();
    let frac = v - floor;
    if op.mode == ResizeMode::Nearest {
        let f = floor as i64;
        let i = match op.nearest_mode {
            NearestMode::Simple => {
                if scale < 1.0 {
                    v.ceil() as i64
                } else {
                    v.trunc() as i64
                }
            }
            _ if frac == 0.0 => f,
            NearestMode::RoundPreferFloor => f + (frac > 0.5) as i64,
            NearestMode::RoundPreferCeil => f + (frac >= 0.5) as i64,
            NearestMode::Floor => f,
            NearestMode::Ceil => f + 1,
        };
        return Taps {
            index: vec![clamp(i)],
            weight: vec![1.0],
            outside,
        };
    }
    // Prefer the pixel on the left: an integral coordinate has ratio 1.
    let (ratio, base) = if frac == 0.0 {
        (1.0, floor as i64 - 1)
    } else {
        (frac, floor as i64)
    };
    let support = if op.mode == ResizeMode::Linear {
        1.0
    } else {
        2.0
    };
    let s = if op.antialias { scale.min(1.0) } else { 1.0 };
    let start = (-support / s).floor() as i64 + 1;
    let a = op.cubic_coeff_a as f64;
    let mut t = Taps {
        index: Vec::new(),
        weight: Vec::new(),
        outside,
    };
    for i in start..=1 - start {
        let arg = s * (i as f64 - ratio);
        let w = if op.mode == ResizeMode::Linear {
            (1.0 - arg.abs()).clamp(0.0, 1.0)
        } else {
            cubic(arg, a)
        };
        let idx = base + i;
        let w = if op.exclude_outside && (idx < 0 || idx > last) {
            0.0
        } else {
            w
        };
        t.index.push(clamp(idx));
        t.weight.push(w);
    }
    if op.antialias || op.exclude_outside {
        let sum: f64 = t.weight.iter().sum();
        if sum != 0.0 {
            t.weight.iter_mut().for_each(|w| *w /= sum);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_ir::ops::nn::KeepAspectRatio;

    fn op(mode: ResizeMode, coordinate_mode: CoordinateMode) -> Resize {
        Resize {
            mode,
            coordinate_mode,
            nearest_mode: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: vec![],
            keep_aspect_ratio: KeepAspectRatio::Stretch,
            opset: 19,
        }
    }

    #[test]
    fn nearest_upsample_repeats() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        let r = resize(
            &op(ResizeMode::Nearest, CoordinateMode::Asymmetric),
            &x,
            None,
            Some(&[1.0, 1.0, 2.0, 2.0]),
            None,
        )
        .unwrap();
        assert_eq!(
            r[0].as_slice::<f32>().unwrap(),
            &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
        );
    }

    #[test]
    fn linear_align_corners_hits_the_ends() {
        let x = Tensor::from_vec(vec![1, 3], vec![0f32, 1.0, 4.0]).unwrap();
        let r = resize(
            &op(ResizeMode::Linear, CoordinateMode::AlignCorners),
            &x,
            None,
            None,
            Some(&[1, 5]),
        )
        .unwrap();
        assert_eq!(r[0].as_slice::<f32>().unwrap(), &[0.0, 0.5, 1.0, 2.5, 4.0]);
        assert!(resize(
            &op(ResizeMode::Linear, CoordinateMode::HalfPixel),
            &x,
            None,
            None,
            Some(&[5])
        )
        .is_err());
    }
}
