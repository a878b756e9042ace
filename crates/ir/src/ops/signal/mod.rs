//! Signal processing: DFT, STFT, the Hann, Hamming and Blackman windows, and
//! MelWeightMatrix (all since opset 17).
//!
//! Complex values are stored as a trailing dimension of 2 (real, imaginary); real
//! signals have a trailing dimension of 1. `DFT`'s `axis` is an attribute before
//! opset 20 and input 2 afterwards: [`SignalOp::Dft`] holds it only in the attribute
//! form, and [`SignalOp::attributes`] writes back what the op was parsed with.

use slimnet_tensor::DType;

use crate::ops::util::{input, known_ints, optional, with_dtype};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// The generalized cosine window that a window operator computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

impl WindowKind {
    pub const ALL: [WindowKind; 3] = [WindowKind::Hann, WindowKind::Hamming, WindowKind::Blackman];

    pub fn op_type(self) -> &'static str {
        match self {
            WindowKind::Hann => "HannWindow",
            WindowKind::Hamming => "HammingWindow",
            WindowKind::Blackman => "BlackmanWindow",
        }
    }

    /// The coefficients `[a0, a1, a2]` of `a0 - a1 cos(x) + a2 cos(2x)`, as the
    /// operators' function bodies define them (Hamming's `a0` is 25/46).
    pub fn coefficients(self) -> [f64; 3] {
        match self {
            WindowKind::Hann => [0.5, 0.5, 0.0],
            WindowKind::Hamming => [25.0 / 46.0, 21.0 / 46.0, 0.0],
            WindowKind::Blackman => [0.42, 0.5, 0.08],
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalOp {
    /// Inputs: `input` (`[..., 1]` real or `[..., 2]` complex), optional scalar
    /// `dft_length`, and from opset 20 an optional scalar `axis` (default -2).
    /// `axis` is `Some` only for the attribute form (opsets 17 to 19, default 1).
    ///
    /// `onesided` with `inverse` is the inverse real FFT: a one-sided spectrum in,
    /// a real signal of `dft_length` (default `2 * (bins - 1)`) out.
    Dft {
        axis: Option<i64>,
        inverse: bool,
        onesided: bool,
    },
    /// Inputs: `signal` `[batch, length, 1 or 2]`, scalar `frame_step`, optional
    /// `window` `[frame_length]`, optional scalar `frame_length`. Output
    /// `[batch, frames, bins, 2]`.
    Stft { onesided: bool },
    /// Input: scalar `size`. Output `[size]` of `output_datatype`.
    Window {
        kind: WindowKind,
        periodic: bool,
        output_datatype: DType,
    },
    /// Inputs: scalars `num_mel_bins`, `dft_length`, `sample_rate`,
    /// `lower_edge_hertz`, `upper_edge_hertz`. Output
    /// `[dft_length / 2 + 1, num_mel_bins]` of `output_datatype`.
    MelWeightMatrix { output_datatype: DType },
}

fn flag(attrs: &Attributes, name: &str, default: bool) -> Result<bool, AttrError> {
    match attrs.int(name, default as i64)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(AttrError::new(name, format!("must be 0 or 1, got {v}"))),
    }
}

/// `output_datatype` (default float): any numeric type slimnet holds.
fn output_datatype(attrs: &Attributes) -> Result<DType, AttrError> {
    let code = attrs.int("output_datatype", 1)?;
    let dtype = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .ok_or_else(|| {
            AttrError::new(
                "output_datatype",
                format!("element type code {code} is not supported"),
            )
        })?;
    if matches!(dtype, DType::Bool | DType::String) {
        return Err(AttrError::new(
            "output_datatype",
            format!("must be a numeric type, got {dtype}"),
        ));
    }
    Ok(dtype)
}

/// The single value of a scalar input known at inference time; `Err` when it holds
/// more than one element.
fn known_scalar(inp: Option<&InferInput>, what: &str) -> Result<Option<i64>, String> {
    match known_ints(inp) {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v[0])),
        Some(v) => Err(format!("{what} must be a scalar, got {} values", v.len())),
    }
}

fn float_input(inp: &InferInput, op: &str, what: &str) -> Result<(), String> {
    match inp.info.dtype {
        Some(d) if !d.is_float() => Err(format!("{op} expects a float {what}, got {d}")),
        _ => Ok(()),
    }
}

fn int_input(inp: &InferInput, op: &str, what: &str) -> Result<(), String> {
    match inp.info.dtype {
        Some(d) if !matches!(d, DType::I32 | DType::I64) => {
            Err(format!("{op} expects an int32 or int64 {what}, got {d}"))
        }
        _ => Ok(()),
    }
}

/// Normalizes a DFT axis: accepted values are `[-r, -2]` and `[0, r - 2]` (the last
/// dimension holds the real and imaginary parts).
pub fn dft_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r - 2 {
        return Err(format!(
            "axis {axis} is out of range for an input of rank {rank} (the last dimension holds complex parts)"
        ));
    }
    Ok(a as usize)
}

/// Length of the transform and of the output along the axis for a DFT of an axis of
/// `len` elements; `dft_length` is the input's value when given.
///
/// Returns `(n, out_len)`; `n` is at least 1.
pub fn dft_lengths(
    len: usize,
    dft_length: Option<i64>,
    inverse: bool,
    onesided: bool,
) -> Result<(usize, usize), String> {
    let n = match dft_length {
        Some(n) => {
            if n < 1 {
                return Err(format!("dft_length must be at least 1, got {n}"));
            }
            usize::try_from(n).map_err(|_| format!("dft_length {n} is too large"))?
        }
        None if inverse && onesided => {
            if len < 2 {
                return Err(format!(
                    "an inverse one-sided DFT of {len} bins needs dft_length (default 2 * (bins - 1) is 0)"
                ));
            }
            2 * (len - 1)
        }
        None => {
            if len < 1 {
                return Err("a DFT over an empty axis needs dft_length".into());
            }
            len
        }
    };
    let out_len = if onesided && !inverse { n / 2 + 1 } else { n };
    Ok((n, out_len))
}

impl SignalOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in for `ctx.opset`;
    /// `None` when the op type is not in this family.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        if let Some(kind) = WindowKind::ALL
            .into_iter()
            .find(|k| k.op_type() == ctx.op_type)
        {
            return Some((|| {
                Ok(SignalOp::Window {
                    kind,
                    periodic: flag(attrs, "periodic", true)?,
                    output_datatype: output_datatype(attrs)?,
                })
            })());
        }
        let op = (|| {
            Ok(Some(match ctx.op_type {
                "DFT" => SignalOp::Dft {
                    axis: if ctx.opset < 20 {
                        Some(attrs.int("axis", 1)?)
                    } else {
                        None
                    },
                    inverse: flag(attrs, "inverse", false)?,
                    onesided: flag(attrs, "onesided", false)?,
                },
                "STFT" => SignalOp::Stft {
                    onesided: flag(attrs, "onesided", true)?,
                },
                "MelWeightMatrix" => SignalOp::MelWeightMatrix {
                    output_datatype: output_datatype(attrs)?,
                },
                _ => return Ok(None),
            }))
        })();
        op.transpose()
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            SignalOp::Dft { .. } => "DFT",
            SignalOp::Stft { .. } => "STFT",
            SignalOp::Window { kind, .. } => kind.op_type(),
            SignalOp::MelWeightMatrix { .. } => "MelWeightMatrix",
        }
    }

    /// The attributes to write back on export (`axis` only in its attribute form).
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let i = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        match self {
            SignalOp::Dft {
                axis,
                inverse,
                onesided,
            } => {
                let mut v = Vec::new();
                if let Some(a) = axis {
                    v.push(i("axis", *a));
                }
                v.push(i("inverse", *inverse as i64));
                v.push(i("onesided", *onesided as i64));
                v
            }
            SignalOp::Stft { onesided } => vec![i("onesided", *onesided as i64)],
            SignalOp::Window {
                periodic,
                output_datatype,
                ..
            } => vec![
                i("output_datatype", output_datatype.onnx_code() as i64),
                i("periodic", *periodic as i64),
            ],
            SignalOp::MelWeightMatrix { output_datatype } => {
                vec![i("output_datatype", output_datatype.onnx_code() as i64)]
            }
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            SignalOp::Dft {
                axis,
                inverse,
                onesided,
            } => infer_dft(inputs, *axis, *inverse, *onesided),
            SignalOp::Stft { onesided } => infer_stft(inputs, *onesided),
            SignalOp::Window {
                kind,
                output_datatype,
                ..
            } => {
                let size = input(inputs, 0)?;
                int_input(size, kind.op_type(), "size")?;
                let len = match known_scalar(Some(size), "size")? {
                    Some(n) if n < 0 => return Err(format!("size must not be negative, got {n}")),
                    Some(n) => Dim::Known(n as usize),
                    None => Dim::Unknown,
                };
                Ok(vec![with_dtype(*output_datatype, Some(vec![len]))])
            }
            SignalOp::MelWeightMatrix { output_datatype } => {
                for k in 0..3 {
                    int_input(input(inputs, k)?, "MelWeightMatrix", "scalar")?;
                }
                for k in 3..5 {
                    float_input(input(inputs, k)?, "MelWeightMatrix", "edge frequency")?;
                }
                let mels = known_scalar(optional(inputs, 0), "num_mel_bins")?;
                let dft = known_scalar(optional(inputs, 1), "dft_length")?;
                let rows = match dft {
                    Some(n) if n < 1 => {
                        return Err(format!("dft_length must be at least 1, got {n}"))
                    }
                    Some(n) => Dim::Known(n as usize / 2 + 1),
                    None => Dim::Unknown,
                };
                let cols = match mels {
                    Some(m) if m < 0 => {
                        return Err(format!("num_mel_bins must not be negative, got {m}"))
                    }
                    Some(m) => Dim::Known(m as usize),
                    None => Dim::Unknown,
                };
                Ok(vec![with_dtype(*output_datatype, Some(vec![rows, cols]))])
            }
        }
    }
}

fn infer_dft(
    inputs: &[Option<InferInput>],
    axis_attr: Option<i64>,
    inverse: bool,
    onesided: bool,
) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    float_input(x, "DFT", "input")?;
    if let Some(len) = optional(inputs, 1) {
        int_input(len, "DFT", "dft_length")?;
    }
    let Some(shape) = &x.info.shape else {
        return Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: None,
        }]);
    };
    let rank = shape.len();
    if rank < 2 {
        return Err(format!(
            "DFT expects an input of rank 2 or more ([..., 1] or [..., 2]), got rank {rank}"
        ));
    }
    if let Some(c) = shape[rank - 1].known() {
        if c != 1 && c != 2 {
            return Err(format!(
                "the last dimension of a DFT input must be 1 (real) or 2 (complex), got {c}"
            ));
        }
    }
    let axis = match (axis_attr, optional(inputs, 2)) {
        (Some(a), _) => Some(a),
        (None, None) => Some(-2),
        (None, Some(a)) => known_scalar(Some(a), "axis")?,
    };
    let last = Dim::Known(if inverse && onesided { 1 } else { 2 });
    let Some(axis) = axis else {
        let mut out = vec![Dim::Unknown; rank - 1];
        out.push(last);
        return Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: Some(out),
        }]);
    };
    let a = dft_axis(axis, rank)?;
    let dft_length = match optional(inputs, 1) {
        None => None,
        Some(l) => match known_scalar(Some(l), "dft_length")? {
            Some(n) => Some(n),
            None => {
                let mut out = shape.clone();
                out[a] = Dim::Unknown;
                out[rank - 1] = last;
                return Ok(vec![ValueInfo {
                    dtype: x.info.dtype,
                    shape: Some(out),
                }]);
            }
        },
    };
    let axis_dim = match (dft_length, shape[a].known()) {
        (Some(n), _) => Dim::Known(dft_lengths(0, Some(n), inverse, onesided)?.1),
        (None, Some(len)) => Dim::Known(dft_lengths(len, None, inverse, onesided)?.1),
        (None, None) if !onesided => shape[a].clone(),
        (None, None) => Dim::Unknown,
    };
    let mut out = shape.clone();
    out[a] = axis_dim;
    out[rank - 1] = last;
    Ok(vec![ValueInfo {
        dtype: x.info.dtype,
        shape: Some(out),
    }])
}

/// The frame length an STFT uses: `frame_length` if given, else the window's
/// length, else the whole signal (as the ONNX reference implementation does).
pub fn stft_frame_length(
    frame_length: Option<i64>,
    window_len: Option<usize>,
    signal_len: usize,
) -> Result<usize, String> {
    let fl = match (frame_length, window_len) {
        (Some(f), _) if f < 1 => return Err(format!("frame_length must be at least 1, got {f}")),
        (Some(f), Some(w)) if f as u64 != w as u64 => {
            return Err(format!(
                "frame_length {f} differs from the window's length {w}"
            ))
        }
        (Some(f), _) => usize::try_from(f).map_err(|_| format!("frame_length {f} is too large"))?,
        (None, Some(w)) => w,
        (None, None) => signal_len,
    };
    if fl == 0 {
        return Err("the frame length must be at least 1".into());
    }
    Ok(fl)
}

/// Number of frames of an STFT: `1 + (signal_len - frame_length) / frame_step`.
pub fn stft_frames(
    signal_len: usize,
    frame_length: usize,
    frame_step: i64,
) -> Result<usize, String> {
    if frame_step < 1 {
        return Err(format!("frame_step must be at least 1, got {frame_step}"));
    }
    if frame_length > signal_len {
        return Err(format!(
            "the frame length {frame_length} is longer than the signal ({signal_len})"
        ));
    }
    let step = u64::try_from(frame_step).unwrap_or(u64::MAX);
    Ok(1 + ((signal_len - frame_length) as u64 / step) as usize)
}

fn infer_stft(inputs: &[Option<InferInput>], onesided: bool) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    float_input(x, "STFT", "signal")?;
    let step_in = input(inputs, 1)?;
    int_input(step_in, "STFT", "frame_step")?;
    let window = optional(inputs, 2);
    if let Some(w) = window {
        float_input(w, "STFT", "window")?;
        if let Some(r) = w.info.rank() {
            if r != 1 {
                return Err(format!("the STFT window must have rank 1, got rank {r}"));
            }
        }
    }
    let length_in = optional(inputs, 3);
    if let Some(l) = length_in {
        int_input(l, "STFT", "frame_length")?;
    }
    let Some(shape) = &x.info.shape else {
        return Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: None,
        }]);
    };
    if shape.len() != 3 && shape.len() != 2 {
        return Err(format!(
            "STFT expects a signal of shape [batch, length, 1 or 2], got rank {}",
            shape.len()
        ));
    }
    if let Some(c) = shape.get(2).and_then(Dim::known) {
        if c != 1 && c != 2 {
            return Err(format!(
                "the last dimension of an STFT signal must be 1 (real) or 2 (complex), got {c}"
            ));
        }
    }
    let step = known_scalar(Some(step_in), "frame_step")?;
    // `Some(None)`: absent; `None`: present but not known here.
    let frame_length = match length_in {
        Some(l) => known_scalar(Some(l), "frame_length")?.map(Some),
        None => Some(None),
    };
    let window_len = match window {
        Some(w) => w
            .info
            .shape
            .as_ref()
            .and_then(|s| s.first())
            .and_then(Dim::known)
            .map(Some),
        None => Some(None),
    };
    let signal_len = shape[1].known();
    // The frame length, when what decides it is known.
    let fl = match (frame_length, window_len) {
        (Some(None), Some(None)) => signal_len
            .map(|len| stft_frame_length(None, None, len))
            .transpose()?,
        (Some(f), Some(w)) => Some(stft_frame_length(f, w, 0)?),
        (Some(Some(f)), None) => Some(stft_frame_length(Some(f), None, 0)?),
        _ => None,
    };
    let frames = match (signal_len, fl, step) {
        (Some(len), Some(fl), Some(step)) => Dim::Known(stft_frames(len, fl, step)?),
        _ => Dim::Unknown,
    };
    let bins = match fl {
        Some(fl) if onesided => Dim::Known(fl / 2 + 1),
        Some(fl) => Dim::Known(fl),
        None => Dim::Unknown,
    };
    Ok(vec![ValueInfo {
        dtype: x.info.dtype,
        shape: Some(vec![shape[0].clone(), frames, bins, Dim::Known(2)]),
    }])
}

#[cfg(test)]
mod tests;
