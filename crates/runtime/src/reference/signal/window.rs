//! Window functions and the mel filter bank.

use slimnet_ir::ops::signal::WindowKind;
use slimnet_tensor::{DType, Tensor};

use super::{from_f64, output_len, scalar_float, scalar_int};

/// `a0 - a1 cos(x) + a2 cos(2x)` with `x = 2 pi k / N` for `k` in `0..size`, where
/// `N` is `size` (periodic) or `size - 1` (symmetric), as the operators' function
/// bodies compute it (so a symmetric window of size 1 is NaN, as in ONNX Runtime).
pub fn window(
    kind: WindowKind,
    periodic: bool,
    dtype: DType,
    size: &Tensor,
) -> Result<Tensor, String> {
    let n = scalar_int(size, "size")?;
    if n < 0 {
        return Err(format!("size must not be negative, got {n}"));
    }
    let shape = vec![usize::try_from(n).map_err(|_| format!("size {n} is too large"))?];
    let len = output_len(&shape)?;
    let denom = if periodic { n as f64 } else { n as f64 - 1.0 };
    let increment = std::f64::consts::TAU / denom;
    let [a0, a1, a2] = kind.coefficients();
    let values = (0..len)
        .map(|k| {
            let x = k as f64 * increment;
            let v = a0 - a1 * x.cos();
            if a2 != 0.0 {
                v + a2 * (2.0 * x).cos()
            } else {
                v
            }
        })
        .collect();
    from_f64(shape, values, dtype)
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// The `[dft_length / 2 + 1, num_mel_bins]` matrix of triangular mel filters, as the
/// ONNX specification's reference computes it: `num_mel_bins + 2` points evenly
/// spaced on the mel scale between the edges (the step is the span divided by
/// `num_mel_bins + 2`), each mapped to the spectrogram bin
/// `floor((dft_length + 1) * hz / sample_rate)`; filter `i` rises from point `i` to
/// point `i + 1` and falls to point `i + 2`. A point outside the spectrogram's bins
/// is an error.
pub fn mel_weight_matrix(dtype: DType, inputs: [&Tensor; 5]) -> Result<Tensor, String> {
    let mels = scalar_int(inputs[0], "num_mel_bins")?;
    let dft_length = scalar_int(inputs[1], "dft_length")?;
    let sample_rate = scalar_int(inputs[2], "sample_rate")?;
    let lower = scalar_float(inputs[3], "lower_edge_hertz")?;
    let upper = scalar_float(inputs[4], "upper_edge_hertz")?;
    if mels < 0 {
        return Err(format!("num_mel_bins must not be negative, got {mels}"));
    }
    if dft_length < 1 {
        return Err(format!("dft_length must be at least 1, got {dft_length}"));
    }
    if sample_rate < 1 {
        return Err(format!("sample_rate must be positive, got {sample_rate}"));
    }
    let rows = (dft_length / 2 + 1) as u64;
    let cols = mels as u64;
    let shape = vec![
        usize::try_from(rows).map_err(|_| "dft_length is too large".to_string())?,
        usize::try_from(cols).map_err(|_| "num_mel_bins is too large".to_string())?,
    ];
    let total = output_len(&shape)?;
    let (rows, cols) = (shape[0], shape[1]);
    let mut out = vec![0f64; total];
    let low_mel = hz_to_mel(lower);
    let step = (hz_to_mel(upper) - low_mel) / (cols + 2) as f64;
    let mut points = Vec::with_capacity(cols + 2);
    for i in 0..cols + 2 {
        let hz = mel_to_hz(low_mel + step * i as f64);
        let bin = ((dft_length as f64 + 1.0) * hz / sample_rate as f64).floor();
        if !(bin >= 0.0 && bin < rows as f64) {
            return Err(format!(
                "the mel filters fall outside the {rows} spectrogram bins (point {i} is at {hz} Hz, bin {bin}): check lower_edge_hertz {lower}, upper_edge_hertz {upper}, sample_rate {sample_rate} and dft_length {dft_length}"
            ));
        }
        points.push(bin as usize);
    }
    for i in 0..cols {
        let (low, center, high) = (points[i], points[i + 1], points[i + 2]);
        if center == low {
            out[center * cols + i] = 1.0;
        } else if center > low {
            let width = (center - low) as f64;
            for j in low..=center {
                out[j * cols + i] = (j - low) as f64 / width;
            }
        }
        if high > center {
            let width = (high - center) as f64;
            for j in center..high {
                out[j * cols + i] = (high - j) as f64 / width;
            }
        }
    }
    from_f64(shape, out, dtype)
}
