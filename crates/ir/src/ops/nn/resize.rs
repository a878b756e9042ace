//! Resize (opsets 10–19+), Upsample (opsets 7–9) and Pad (attribute form before
//! opset 11, input form after).

use crate::ops::util::{input, known_ints, optional};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// Interpolation of Resize and Upsample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

impl ResizeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResizeMode::Nearest => "nearest",
            ResizeMode::Linear => "linear",
            ResizeMode::Cubic => "cubic",
        }
    }
}

/// How an output coordinate maps back to an input coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinateMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

impl CoordinateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CoordinateMode::HalfPixel => "half_pixel",
            CoordinateMode::HalfPixelSymmetric => "half_pixel_symmetric",
            CoordinateMode::PytorchHalfPixel => "pytorch_half_pixel",
            CoordinateMode::AlignCorners => "align_corners",
            CoordinateMode::Asymmetric => "asymmetric",
            CoordinateMode::TfHalfPixelForNn => "tf_half_pixel_for_nn",
            CoordinateMode::TfCropAndResize => "tf_crop_and_resize",
        }
    }
}

/// How `nearest` picks the input pixel for a fractional coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Upsample and Resize-10: truncate when upsampling, ceil when downsampling.
    Simple,
}

impl NearestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NearestMode::RoundPreferFloor | NearestMode::Simple => "round_prefer_floor",
            NearestMode::RoundPreferCeil => "round_prefer_ceil",
            NearestMode::Floor => "floor",
            NearestMode::Ceil => "ceil",
        }
    }
}

/// With `sizes`, how the aspect ratio of the resized axes is kept (opset 18+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAspectRatio {
    Stretch,
    NotLarger,
    NotSmaller,
}

impl KeepAspectRatio {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepAspectRatio::Stretch => "stretch",
            KeepAspectRatio::NotLarger => "not_larger",
            KeepAspectRatio::NotSmaller => "not_smaller",
        }
    }
}

fn parse_mode(attrs: &Attributes, cubic: bool) -> Result<ResizeMode, AttrError> {
    match attrs
        .string("mode", "nearest")?
        .to_ascii_lowercase()
        .as_str()
    {
        "nearest" => Ok(ResizeMode::Nearest),
        "linear" | "bilinear" => Ok(ResizeMode::Linear),
        "cubic" if cubic => Ok(ResizeMode::Cubic),
        other => Err(AttrError::new("mode", format!("unknown value '{other}'"))),
    }
}

/// Resize. Inputs: opset 10 `(X, scales)`; opset 11+ `(X, roi?, scales?, sizes?)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coordinate_mode: CoordinateMode,
    pub nearest_mode: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    /// Axes that `roi`, `scales` and `sizes` refer to; empty means every axis.
    pub axes: Vec<i64>,
    pub keep_aspect_ratio: KeepAspectRatio,
    /// The opset the node was read at (decides the input layout).
    pub opset: i64,
}

/// Per-axis geometry of one Resize call, for every axis of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeParams {
    pub output: Vec<usize>,
    /// Scale of each axis (output over input extent, or as given).
    pub scales: Vec<f64>,
    /// `(start, end)` of the region of interest of each axis, normalized.
    pub roi: Vec<(f64, f64)>,
}

impl Resize {
    pub(crate) fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        let v11 = ctx.opset >= 11;
        let coordinate_mode = if !v11 {
            CoordinateMode::Asymmetric
        } else {
            match attrs
                .string("coordinate_transformation_mode", "half_pixel")?
                .as_str()
            {
                "half_pixel" => CoordinateMode::HalfPixel,
                "half_pixel_symmetric" => CoordinateMode::HalfPixelSymmetric,
                "pytorch_half_pixel" => CoordinateMode::PytorchHalfPixel,
                "align_corners" => CoordinateMode::AlignCorners,
                "asymmetric" => CoordinateMode::Asymmetric,
                "tf_half_pixel_for_nn" => CoordinateMode::TfHalfPixelForNn,
                "tf_crop_and_resize" => CoordinateMode::TfCropAndResize,
                other => {
                    return Err(AttrError::new(
                        "coordinate_transformation_mode",
                        format!("unknown value '{other}'"),
                    ));
                }
            }
        };
        let nearest_mode = if !v11 {
            NearestMode::Simple
        } else {
            match attrs.string("nearest_mode", "round_prefer_floor")?.as_str() {
                "round_prefer_floor" => NearestMode::RoundPreferFloor,
                "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                "floor" => NearestMode::Floor,
                "ceil" => NearestMode::Ceil,
                other => {
                    return Err(AttrError::new(
                        "nearest_mode",
                        format!("unknown value '{other}'"),
                    ))
                }
            }
        };
        let keep_aspect_ratio = match attrs
            .string("keep_aspect_ratio_policy", "stretch")?
            .as_str()
        {
            "stretch" => KeepAspectRatio::Stretch,
            "not_larger" => KeepAspectRatio::NotLarger,
            "not_smaller" => KeepAspectRatio::NotSmaller,
            other => {
                return Err(AttrError::new(
                    "keep_aspect_ratio_policy",
                    format!("unknown value '{other}'"),
                ))
            }
        };
        Ok(Resize {
            mode: parse_mode(attrs, v11)?,
            coordinate_mode,
            nearest_mode,
            cubic_coeff_a: attrs.float("cubic_coeff_a", -0.75)?,
            exclude_outside: attrs.int("exclude_outside", 0)? != 0,
            extrapolation_value: attrs.float("extrapolation_value", 0.0)?,
            antialias: attrs.int("antialias", 0)? != 0,
            axes: attrs.ints("axes", &[])?,
            keep_aspect_ratio,
            opset: ctx.opset,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = vec![("mode".into(), Attr::String(self.mode.as_str().into()))];
        if self.opset < 11 {
            return v;
        }
        let s = |x: &str| Attr::String(x.into());
        v.push((
            "coordinate_transformation_mode".into(),
            s(self.coordinate_mode.as_str()),
        ));
        v.push(("nearest_mode".into(), s(self.nearest_mode.as_str())));
        v.push(("cubic_coeff_a".into(), Attr::Float(self.cubic_coeff_a)));
        v.push((
            "exclude_outside".into(),
            Attr::Int(self.exclude_outside as i64),
        ));
        v.push((
            "extrapolation_value".into(),
            Attr::Float(self.extrapolation_value),
        ));
        if self.opset >= 18 {
            v.push(("antialias".into(), Attr::Int(self.antialias as i64)));
            v.push((
                "keep_aspect_ratio_policy".into(),
                s(self.keep_aspect_ratio.as_str()),
            ));
            if !self.axes.is_empty() {
                v.push(("axes".into(), Attr::Ints(self.axes.clone())));
            }
        }
        v
    }

    /// Input positions of `(roi, scales, sizes)` for this opset.
    pub fn input_slots(&self) -> (Option<usize>, usize, Option<usize>) {
        if self.opset < 11 {
            (None, 1, None)
        } else {
            (Some(1), 2, Some(3))
        }
    }

    /// The resized axes, normalized, for an input of `rank`.
    pub fn resolved_axes(&self, rank: usize) -> Result<Vec<usize>, String> {
        if self.axes.is_empty() {
            return Ok((0..rank).collect());
        }
        let mut out = Vec::with_capacity(self.axes.len());
        for &a in &self.axes {
            let n = if a < 0 { a + rank as i64 } else { a };
            if n < 0 || n >= rank as i64 {
                return Err(format!("axis {a} is out of range for rank {rank}"));
            }
            if out.contains(&(n as usize)) {
                return Err(format!("axis {a} is repeated"));
            }
            out.push(n as usize);
        }
        Ok(out)
    }

    /// Output extents, scales and region of interest for an input of shape `input`.
    /// Empty `roi`, `scales` or `sizes` count as absent.
    pub fn params(
        &self,
        input: &[usize],
        roi: Option<&[f64]>,
        scales: Option<&[f64]>,
        sizes: Option<&[i64]>,
    ) -> Result<ResizeParams, String> {
        let rank = input.len();
        let axes = self.resolved_axes(rank)?;
        let n = axes.len();
        let scales = scales.filter(|s| !s.is_empty());
        let sizes = sizes.filter(|s| !s.is_empty());
        let mut p = ResizeParams {
            output: input.to_vec(),
            scales: vec![1.0; rank],
            roi: vec![(0.0, 1.0); rank],
        };
        if let Some(r) = roi.filter(|r| !r.is_empty()) {
            if r.len() != 2 * n {
                return Err(format!("roi holds {} values, expected {}", r.len(), 2 * n));
            }
            for (i, &a) in axes.iter().enumerate() {
                p.roi[a] = (r[i], r[n + i]);
            }
        }
        match (scales, sizes) {
            (Some(_), Some(_)) => return Err("only one of scales and sizes may be given".into()),
            (None, None) => return Err("one of scales and sizes must be given".into()),
            (Some(s), None) => {
                if s.len() != n {
                    return Err(format!("scales holds {} values for {n} axes", s.len()));
                }
                for (i, &a) in axes.iter().enumerate() {
                    if !s[i].is_finite() || s[i] <= 0.0 {
                        return Err(format!("scale {} must be positive", s[i]));
                    }
                    p.scales[a] = s[i];
                    p.output[a] = (s[i] * input[a] as f64).floor() as usize;
                }
            }
            (None, Some(z)) => {
                if z.len() != n {
                    return Err(format!("sizes holds {} values for {n} axes", z.len()));
                }
                if let Some(bad) = z.iter().find(|&&v| v < 0) {
                    return Err(format!("sizes must not be negative, got {bad}"));
                }
                let ratio = |i: usize, a: usize| {
                    if input[a] == 0 {
                        1.0
                    } else {
                        z[i] as f64 / input[a] as f64
                    }
                };
                match self.keep_aspect_ratio {
                    KeepAspectRatio::Stretch => {
                        for (i, &a) in axes.iter().enumerate() {
                            p.scales[a] = ratio(i, a);
                            p.output[a] = z[i] as usize;
                        }
                    }
                    policy => {
                        let all = axes.iter().enumerate().map(|(i, &a)| ratio(i, a));
                        let s = if policy == KeepAspectRatio::NotLarger {
                            all.fold(f64::INFINITY, f64::min)
                        } else {
                            all.fold(f64::NEG_INFINITY, f64::max)
                        };
                        for &a in &axes {
                            p.scales[a] = s;
                            p.output[a] = (s * input[a] as f64 + 0.5).floor() as usize;
                        }
                    }
                }
            }
        }
        Ok(p)
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let (_, scales_at, sizes_at) = self.input_slots();
        let scales = optional(inputs, scales_at)
            .and_then(|s| s.value)
            .and_then(|t| t.to_vec::<f64>().ok());
        let sizes = sizes_at.and_then(|i| known_ints(optional(inputs, i)));
        let shape = resize_output_shape(
            x.info.shape.as_deref(),
            self,
            scales.as_deref(),
            sizes.as_deref(),
        )?;
        Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape,
        }])
    }
}

/// Symbolic output shape of a Resize from what is known of the input shape and the
/// constant `scales` or `sizes`.
pub fn resize_output_shape(
    input: Option<&[Dim]>,
    op: &Resize,
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
) -> Result<Option<Vec<Dim>>, String> {
    let scales = scales.filter(|s| !s.is_empty());
    let sizes = sizes.filter(|s| !s.is_empty());
    let rank = match (input, op.axes.is_empty(), scales, sizes) {
        (Some(s), _, _, _) => s.len(),
        (None, true, Some(s), _) => s.len(),
        (None, true, None, Some(z)) => z.len(),
        _ => return Ok(None),
    };
    let unknown = vec![Dim::Unknown; rank];
    let dims = input.unwrap_or(&unknown);
    let axes = op.resolved_axes(rank)?;
    if scales.is_none() && sizes.is_none() {
        let mut out = dims.to_vec();
        for &a in &axes {
            out[a] = Dim::Unknown;
        }
        return Ok(Some(out));
    }
    // Axes that are not resized keep their dims (even symbolic ones); the resized
    // axes are computed when their input extents are known.
    let resized_known = axes.iter().all(|&a| dims[a].known().is_some());
    if resized_known {
        let probe: Vec<usize> = dims.iter().map(|d| d.known().unwrap_or(1)).collect();
        let p = op.params(&probe, None, scales, sizes)?;
        let mut out = dims.to_vec();
        for &a in &axes {
            out[a] = Dim::Known(p.output[a]);
        }
        return Ok(Some(out));
    }
    let mut out = dims.to_vec();
    for (i, &a) in axes.iter().enumerate() {
        out[a] = match (scales, sizes) {
            (Some(s), None) if s.len() == axes.len() => match dims[a].known() {
                _ if s[i] == 1.0 => dims[a].clone(),
                Some(v) => Dim::Known((s[i] * v as f64).floor() as usize),
                None => Dim::Unknown,
            },
            (None, Some(z))
                if z.len() == axes.len() && op.keep_aspect_ratio == KeepAspectRatio::Stretch =>
            {
                Dim::Known(z[i].max(0) as usize)
            }
            _ => Dim::Unknown,
        };
    }
    Ok(Some(out))
}

/// Upsample (deprecated since opset 10): nearest or linear with asymmetric
/// coordinates. Scales come from the attribute (opset 7–8) or input 1 (opset 9).
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    pub mode: ResizeMode,
    /// Opsets before 9: the `scales` attribute; empty when scales are an input.
    pub scales: Vec<f32>,
    pub opset: i64,
}

impl Upsample {
    pub(crate) fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        let scales = if ctx.opset < 9 {
            attrs
                .floats_opt("scales")?
                .ok_or_else(|| AttrError::new("scales", "required but missing"))?
        } else {
            Vec::new()
        };
        Ok(Upsample {
            mode: parse_mode(attrs, false)?,
            scales,
            opset: ctx.opset,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = vec![("mode".into(), Attr::String(self.mode.as_str().into()))];
        if !self.scales.is_empty() {
            v.push(("scales".into(), Attr::Floats(self.scales.clone())));
        }
        v
    }

    /// The Resize-10 equivalent of this Upsample.
    pub fn as_resize(&self) -> Resize {
        Resize {
            mode: self.mode,
            coordinate_mode: CoordinateMode::Asymmetric,
            nearest_mode: NearestMode::Simple,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: Vec::new(),
            keep_aspect_ratio: KeepAspectRatio::Stretch,
            opset: 10,
        }
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let scales: Option<Vec<f64>> = if self.scales.is_empty() {
            optional(inputs, 1)
                .and_then(|s| s.value)
                .and_then(|t| t.to_vec::<f64>().ok())
        } else {
            Some(self.scales.iter().map(|&s| s as f64).collect())
        };
        let shape = resize_output_shape(
            x.info.shape.as_deref(),
            &self.as_resize(),
            scales.as_deref(),
            None,
        )?;
        Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape,
        }])
    }
}

/// How Pad fills the new border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl PadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }
}

/// Pad. Before opset 11 the pads and value are attributes; from opset 11 they are
/// inputs `(data, pads, constant_value?, axes?)` (axes from opset 18).
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub mode: PadMode,
    /// Opsets before 11: `[x1_begin, x2_begin, ..., x1_end, ...]` (negative crops).
    pub pads: Option<Vec<i64>>,
    /// Opsets before 11: the constant fill value.
    pub value: f32,
    pub opset: i64,
}

impl Pad {
    pub(crate) fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        let mode = match attrs.string("mode", "constant")?.as_str() {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            "wrap" => PadMode::Wrap,
            other => return Err(AttrError::new("mode", format!("unknown value '{other}'"))),
        };
        let pads = if ctx.opset < 11 {
            let p = match attrs.ints_opt("pads")? {
                Some(p) => p,
                None => attrs
                    .ints_opt("paddings")?
                    .ok_or_else(|| AttrError::new("pads", "required but missing"))?,
            };
            if p.len() % 2 != 0 {
                return Err(AttrError::new(
                    "pads",
                    format!("must hold an even count of values, got {}", p.len()),
                ));
            }
            Some(p)
        } else {
            None
        };
        Ok(Pad {
            mode,
            pads,
            value: attrs.float("value", 0.0)?,
            opset: ctx.opset,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = vec![("mode".into(), Attr::String(self.mode.as_str().into()))];
        if let Some(p) = &self.pads {
            v.push(("pads".into(), Attr::Ints(p.clone())));
            v.push(("value".into(), Attr::Float(self.value)));
        }
        v
    }

    /// Per-axis `(begin, end)` padding for an input of `rank`, from the attribute or
    /// the `pads` and `axes` input values.
    pub fn resolve_pads(
        &self,
        rank: usize,
        pads: Option<&[i64]>,
        axes: Option<&[i64]>,
    ) -> Result<Vec<(i64, i64)>, String> {
        let pads = match (&self.pads, pads) {
            (Some(p), _) => p.as_slice(),
            (None, Some(p)) => p,
            (None, None) => return Err("input 1 (pads) is required but missing".into()),
        };
        let axes: Vec<usize> = match axes {
            None => (0..rank).collect(),
            Some(a) => a
                .iter()
                .map(|&x| {
                    let n = if x < 0 { x + rank as i64 } else { x };
                    if n < 0 || n >= rank as i64 {
                        Err(format!("axis {x} is out of range for rank {rank}"))
                    } else {
                        Ok(n as usize)
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        if pads.len() != 2 * axes.len() {
            return Err(format!(
                "pads holds {} values, expected {} for {} axes",
                pads.len(),
                2 * axes.len(),
                axes.len()
            ));
        }
        let mut out = vec![(0, 0); rank];
        let n = axes.len();
        for (i, &a) in axes.iter().enumerate() {
            out[a] = (pads[i], pads[n + i]);
        }
        Ok(out)
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let Some(dims) = &x.info.shape else {
            return Ok(vec![x.info.clone()]);
        };
        let (pads, axes) = if self.pads.is_some() {
            (None, None)
        } else {
            let p = known_ints(optional(inputs, 1));
            if p.is_none() {
                return Ok(vec![ValueInfo {
                    dtype: x.info.dtype,
                    shape: Some(vec![Dim::Unknown; dims.len()]),
                }]);
            }
            let a = match optional(inputs, 3) {
                None => None,
                Some(a) => match known_ints(Some(a)) {
                    Some(v) => Some(v),
                    None => {
                        return Ok(vec![ValueInfo {
                            dtype: x.info.dtype,
                            shape: Some(vec![Dim::Unknown; dims.len()]),
                        }]);
                    }
                },
            };
            (p, a)
        };
        let per_axis = self.resolve_pads(dims.len(), pads.as_deref(), axes.as_deref())?;
        let mut out = Vec::with_capacity(dims.len());
        for (d, &(b, e)) in dims.iter().zip(&per_axis) {
            out.push(match d.known() {
                _ if b == 0 && e == 0 => d.clone(),
                Some(v) => {
                    let n = v as i64 + b + e;
                    if n < 0 {
                        return Err(format!("pads ({b}, {e}) crop more than the extent {v}"));
                    }
                    Dim::Known(n as usize)
                }
                None => Dim::Unknown,
            });
        }
        Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: Some(out),
        }])
    }
}
