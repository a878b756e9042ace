//! DFT and STFT.

use slimnet_ir::ops::signal::{dft_axis, dft_lengths, stft_frame_length, stft_frames};
use slimnet_tensor::Tensor;

use super::fft::{Complex, Fft};
use super::{float_values, from_f64, output_len, scalar_int, MAX_ELEMENTS};

/// The DFT of `x` (`[..., 1]` real or `[..., 2]` complex) along `axis`.
///
/// The signal is cut or zero-padded to `dft_length` (default: the axis' length).
/// `inverse` divides by the length. `onesided` alone keeps bins `0..=n/2` (complex
/// input is accepted, as the ONNX reference implementation does, and also cut);
/// with `inverse` it is the inverse real FFT: the first `n/2 + 1` bins (zero-padded
/// or cut) stand for a Hermitian spectrum, the imaginary parts of bin 0 and (for an
/// even `n`) bin `n/2` are ignored, and the output is real, of length `n` (default
/// `2 * (bins - 1)`).
pub fn dft(
    x: &Tensor,
    dft_length: Option<&Tensor>,
    axis: i64,
    inverse: bool,
    onesided: bool,
) -> Result<Tensor, String> {
    let dtype = x.dtype();
    let xs = float_values(x, "the DFT input")?;
    let shape = x.shape();
    let rank = shape.len();
    if rank < 2 {
        return Err(format!(
            "DFT expects an input of rank 2 or more ([..., 1] or [..., 2]), got shape {shape:?}"
        ));
    }
    let c = shape[rank - 1];
    if c != 1 && c != 2 {
        return Err(format!(
            "the last dimension of a DFT input must be 1 (real) or 2 (complex), got {c}"
        ));
    }
    let a = dft_axis(axis, rank)?;
    let len = shape[a];
    let dl = dft_length
        .map(|t| scalar_int(t, "dft_length"))
        .transpose()?;
    let (n, out_len) = dft_lengths(len, dl, inverse, onesided)?;
    if n > MAX_ELEMENTS {
        return Err(format!("dft_length {n} is too large"));
    }
    let irfft = inverse && onesided;
    let out_c = if irfft { 1 } else { 2 };
    let mut out_shape = shape.to_vec();
    out_shape[a] = out_len;
    out_shape[rank - 1] = out_c;
    let total = output_len(&out_shape)?;
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..rank - 1].iter().product();
    let mut out = vec![0f64; total];
    if total == 0 {
        return from_f64(out_shape, out, dtype);
    }
    let plan = Fft::new(n);
    let mut buf = vec![Complex::ZERO; n];
    let used = if irfft {
        len.min(n / 2 + 1)
    } else {
        len.min(n)
    };
    let scale = if inverse { 1.0 / n as f64 } else { 1.0 };
    for o in 0..outer {
        for i in 0..inner {
            buf.fill(Complex::ZERO);
            for (t, b) in buf.iter_mut().enumerate().take(used) {
                let at = ((o * len + t) * inner + i) * c;
                *b = Complex::new(xs[at], if c == 2 { xs[at + 1] } else { 0.0 });
            }
            if irfft {
                buf[0].im = 0.0;
                if n % 2 == 0 {
                    buf[n / 2].im = 0.0;
                }
                for k in n / 2 + 1..n {
                    buf[k] = buf[n - k].conj();
                }
                plan.inverse(&mut buf);
            } else if inverse {
                plan.inverse(&mut buf);
            } else {
                plan.forward(&mut buf);
            }
            for (k, b) in buf.iter().enumerate().take(out_len) {
                let at = ((o * out_len + k) * inner + i) * out_c;
                out[at] = b.re * scale;
                if out_c == 2 {
                    out[at + 1] = b.im * scale;
                }
            }
        }
    }
    from_f64(out_shape, out, dtype)
}

/// The short-time Fourier transform of `signal` (`[batch, length, 1 or 2]`, or
/// `[batch, length]` as real): frames of `frame_length` samples every `frame_step`,
/// each multiplied by `window` (default all ones) and transformed. Output
/// `[batch, frames, bins, 2]`, `bins = frame_length / 2 + 1` when `onesided`.
pub fn stft(
    signal: &Tensor,
    frame_step: &Tensor,
    window: Option<&Tensor>,
    frame_length: Option<&Tensor>,
    onesided: bool,
) -> Result<Tensor, String> {
    let dtype = signal.dtype();
    let xs = float_values(signal, "the STFT signal")?;
    let (batch, len, c) = match *signal.shape() {
        [b, l] => (b, l, 1),
        [b, l, c] if c == 1 || c == 2 => (b, l, c),
        _ => {
            return Err(format!(
                "STFT expects a signal of shape [batch, length, 1 or 2], got {:?}",
                signal.shape()
            ))
        }
    };
    let step = scalar_int(frame_step, "frame_step")?;
    let w = match window {
        Some(t) if t.rank() != 1 => {
            return Err(format!(
                "the STFT window must have rank 1, got shape {:?}",
                t.shape()
            ))
        }
        Some(t) => Some(float_values(t, "the STFT window")?),
        None => None,
    };
    let fl_value = frame_length
        .map(|t| scalar_int(t, "frame_length"))
        .transpose()?;
    let fl = stft_frame_length(fl_value, w.as_ref().map(Vec::len), len)?;
    let frames = stft_frames(len, fl, step)?;
    let bins = if onesided { fl / 2 + 1 } else { fl };
    let out_shape = vec![batch, frames, bins, 2];
    let total = output_len(&out_shape)?;
    let mut out = vec![0f64; total];
    if total == 0 {
        return from_f64(out_shape, out, dtype);
    }
    // `stft_frames` bounds `(frames - 1) * step` by the signal length.
    let step = step as usize;
    let plan = Fft::new(fl);
    let mut buf = vec![Complex::ZERO; fl];
    for b in 0..batch {
        for f in 0..frames {
            for (t, v) in buf.iter_mut().enumerate() {
                let at = (b * len + f * step + t) * c;
                let s = Complex::new(xs[at], if c == 2 { xs[at + 1] } else { 0.0 });
                *v = match &w {
                    Some(w) => s.scale(w[t]),
                    None => s,
                };
            }
            plan.forward(&mut buf);
            for (k, v) in buf.iter().enumerate().take(bins) {
                let at = ((b * frames + f) * bins + k) * 2;
                out[at] = v.re;
                out[at + 1] = v.im;
            }
        }
    }
    from_f64(out_shape, out, dtype)
}
