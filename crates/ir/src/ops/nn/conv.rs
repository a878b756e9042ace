//! Convolutions (Conv, ConvTranspose) and the window geometry they share with the
//! pooling operators.

use slimnet_tensor::DType;

use crate::ops::util::{input, optional, with_dtype};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, ValueInfo};

/// How a window op pads its input (`auto_pad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// Output extent `ceil(input / stride)`, the extra padding at the end.
    SameUpper,
    /// Output extent `ceil(input / stride)`, the extra padding at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

impl AutoPad {
    fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        match attrs.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => Ok(AutoPad::NotSet),
            "SAME_UPPER" => Ok(AutoPad::SameUpper),
            "SAME_LOWER" => Ok(AutoPad::SameLower),
            "VALID" => Ok(AutoPad::Valid),
            other => Err(AttrError::new(
                "auto_pad",
                format!("unknown value '{other}'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AutoPad::NotSet => "NOTSET",
            AutoPad::SameUpper => "SAME_UPPER",
            AutoPad::SameLower => "SAME_LOWER",
            AutoPad::Valid => "VALID",
        }
    }
}

/// Window geometry shared by convolutions and pooling. Lists left empty take the
/// ONNX default along every spatial axis (stride and dilation 1, no padding);
/// `kernel_shape` empty means "from the weights" (convolutions only).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub auto_pad: AutoPad,
    pub kernel_shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`.
    pub pads: Vec<i64>,
    /// Pooling only: round the output extent up instead of down.
    pub ceil_mode: bool,
}

/// A window with every default filled in for concrete input extents.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedWindow {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before each spatial axis (negative only for ConvTranspose crops).
    pub pads_begin: Vec<i64>,
    pub pads_end: Vec<i64>,
    /// Output extent of each spatial axis.
    pub output: Vec<usize>,
}

fn positive_list(attrs: &Attributes, name: &str) -> Result<Vec<i64>, AttrError> {
    let v = attrs.ints(name, &[])?;
    if let Some(bad) = v.iter().find(|&&x| x <= 0) {
        return Err(AttrError::new(
            name,
            format!("values must be positive, got {bad}"),
        ));
    }
    Ok(v)
}

fn push_list(out: &mut Vec<(String, Attr)>, name: &str, v: &[i64]) {
    if !v.is_empty() {
        out.push((name.into(), Attr::Ints(v.to_vec())));
    }
}

fn at(list: &[i64], i: usize, default: i64) -> i64 {
    list.get(i).copied().unwrap_or(default)
}

/// Largest kernel extent, stride, dilation or padding accepted (keeps the window
/// arithmetic far from overflow).
const MAX_EXTENT: i64 = 1 << 31;

fn check_extents(k: i64, s: i64, d: i64, pads: &[i64]) -> Result<(), String> {
    if !(1..=MAX_EXTENT).contains(&k) {
        return Err(format!("kernel extent {k} is out of range"));
    }
    if !(1..=MAX_EXTENT).contains(&s) || !(1..=MAX_EXTENT).contains(&d) {
        return Err(format!(
            "stride {s} and dilation {d} must be positive and at most 2^31"
        ));
    }
    if let Some(p) = pads.iter().find(|p| p.abs() > MAX_EXTENT) {
        return Err(format!("padding {p} is out of range"));
    }
    Ok(())
}

impl Window {
    pub(super) fn parse(attrs: &Attributes, pooling: bool) -> Result<Self, AttrError> {
        let kernel_shape = if pooling {
            let k = attrs
                .ints_opt("kernel_shape")?
                .ok_or_else(|| AttrError::new("kernel_shape", "required but missing"))?;
            if k.is_empty() {
                return Err(AttrError::new("kernel_shape", "must not be empty"));
            }
            k
        } else {
            attrs.ints("kernel_shape", &[])?
        };
        if let Some(bad) = kernel_shape.iter().find(|&&x| x <= 0) {
            return Err(AttrError::new(
                "kernel_shape",
                format!("values must be positive, got {bad}"),
            ));
        }
        let pads = attrs.ints("pads", &[])?;
        if pads.len() % 2 != 0 {
            return Err(AttrError::new(
                "pads",
                format!("must hold an even count of values, got {}", pads.len()),
            ));
        }
        Ok(Window {
            auto_pad: AutoPad::parse(attrs)?,
            kernel_shape,
            strides: positive_list(attrs, "strides")?,
            dilations: positive_list(attrs, "dilations")?,
            pads,
            ceil_mode: pooling && attrs.int("ceil_mode", 0)? != 0,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<(String, Attr)>) {
        if self.auto_pad != AutoPad::NotSet {
            out.push((
                "auto_pad".into(),
                Attr::String(self.auto_pad.as_str().into()),
            ));
        }
        push_list(out, "kernel_shape", &self.kernel_shape);
        push_list(out, "strides", &self.strides);
        push_list(out, "dilations", &self.dilations);
        if self.auto_pad == AutoPad::NotSet {
            push_list(out, "pads", &self.pads);
        }
        if self.ceil_mode {
            out.push(("ceil_mode".into(), Attr::Int(1)));
        }
    }

    /// Checks that every per-axis list fits `spatial` axes.
    pub fn check_rank(&self, spatial: usize) -> Result<(), String> {
        for (name, list, want) in [
            ("kernel_shape", &self.kernel_shape, spatial),
            ("strides", &self.strides, spatial),
            ("dilations", &self.dilations, spatial),
            ("pads", &self.pads, 2 * spatial),
        ] {
            if !list.is_empty() && list.len() != want {
                return Err(format!(
                    "{name} holds {} values but the input has {spatial} spatial axes",
                    list.len()
                ));
            }
        }
        Ok(())
    }

    fn stride(&self, i: usize) -> usize {
        at(&self.strides, i, 1) as usize
    }

    fn dilation(&self, i: usize) -> usize {
        at(&self.dilations, i, 1) as usize
    }

    /// Output extent and (begin, end) padding of spatial axis `i` of `spatial`, for an
    /// input extent `input` and kernel extent `k`.
    pub fn axis(
        &self,
        i: usize,
        spatial: usize,
        input: usize,
        k: usize,
    ) -> Result<(usize, i64, i64), String> {
        let (s, d) = (at(&self.strides, i, 1), at(&self.dilations, i, 1));
        let (pb, pe) = (at(&self.pads, i, 0), at(&self.pads, spatial + i, 0));
        check_extents(k as i64, s, d, &[pb, pe])?;
        let (s, d) = (s as usize, d as usize);
        let dk = (k - 1) * d + 1;
        let fit = |padded: usize, before: usize| -> Result<usize, String> {
            if padded < dk {
                return Err(format!(
                    "kernel extent {dk} (with dilation) exceeds the padded input extent {padded} on spatial axis {i}"
                ));
            }
            let span = padded - dk;
            let mut out = span / s + 1;
            if self.ceil_mode && span.div_ceil(s) + 1 > out {
                out += 1;
                // The last window must start inside the input or its leading padding.
                if (out - 1) * s >= input + before {
                    out -= 1;
                }
            }
            Ok(out)
        };
        match self.auto_pad {
            AutoPad::NotSet => {
                if pb < 0 || pe < 0 {
                    return Err(format!("negative pads ({pb}, {pe}) are not supported"));
                }
                Ok((fit(input + pb as usize + pe as usize, pb as usize)?, pb, pe))
            }
            AutoPad::Valid => Ok((fit(input, 0)?, 0, 0)),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = input.div_ceil(s);
                let total = ((out.max(1) - 1) * s + dk).saturating_sub(input) as i64;
                let small = total / 2;
                Ok(if self.auto_pad == AutoPad::SameUpper {
                    (out, small, total - small)
                } else {
                    (out, total - small, small)
                })
            }
        }
    }

    /// Fills in every default for concrete spatial input extents and kernel extents.
    pub fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<ResolvedWindow, String> {
        let n = input.len();
        self.check_rank(n)?;
        if kernel.len() != n {
            return Err(format!(
                "kernel has {} spatial axes but the input has {n}",
                kernel.len()
            ));
        }
        let mut r = ResolvedWindow {
            kernel: kernel.to_vec(),
            strides: (0..n).map(|i| self.stride(i)).collect(),
            dilations: (0..n).map(|i| self.dilation(i)).collect(),
            pads_begin: Vec::with_capacity(n),
            pads_end: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (o, pb, pe) = self.axis(i, n, input[i], kernel[i])?;
            r.output.push(o);
            r.pads_begin.push(pb);
            r.pads_end.push(pe);
        }
        Ok(r)
    }

    /// Output dims of the spatial axes from symbolic input dims (unknown where the
    /// input extent or kernel extent is unknown).
    fn spatial_dims(&self, input: &[Dim], kernel: &[Option<usize>]) -> Result<Vec<Dim>, String> {
        let n = input.len();
        self.check_rank(n)?;
        let mut out = Vec::with_capacity(n);
        for (i, d) in input.iter().enumerate() {
            out.push(match (d.known(), kernel.get(i).copied().flatten()) {
                (Some(x), Some(k)) => Dim::Known(self.axis(i, n, x, k)?.0),
                _ => Dim::Unknown,
            });
        }
        Ok(out)
    }

    /// Shape inference of AveragePool and LpPool (one output) and MaxPool (with
    /// `outputs` 2, the int64 indices).
    pub(crate) fn infer_pool(
        &self,
        inputs: &[Option<InferInput>],
        outputs: usize,
    ) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let shape = match &x.info.shape {
            None => None,
            Some(s) => {
                if s.len() < 3 {
                    return Err(format!(
                        "input must have rank 3 or more (N, C, spatial...), got rank {}",
                        s.len()
                    ));
                }
                let kernel: Vec<Option<usize>> = self
                    .kernel_shape
                    .iter()
                    .map(|&k| Some(k as usize))
                    .collect();
                if kernel.len() != s.len() - 2 {
                    return Err(format!(
                        "kernel_shape holds {} values but the input has {} spatial axes",
                        kernel.len(),
                        s.len() - 2
                    ));
                }
                let mut out = vec![s[0].clone(), s[1].clone()];
                out.extend(self.spatial_dims(&s[2..], &kernel)?);
                Some(out)
            }
        };
        let mut v = vec![ValueInfo {
            dtype: x.info.dtype,
            shape: shape.clone(),
        }];
        if outputs > 1 {
            v.push(with_dtype(DType::I64, shape));
        }
        Ok(v)
    }
}

fn float_input(x: &InferInput, what: &str) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_float() => Err(format!("{what} must be a float tensor, got {d}")),
        _ => Ok(()),
    }
}

/// Conv: N-d convolution with groups.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub window: Window,
    pub group: i64,
}

impl Conv {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        let group = attrs.int("group", 1)?;
        if group <= 0 {
            return Err(AttrError::new(
                "group",
                format!("must be positive, got {group}"),
            ));
        }
        Ok(Conv {
            window: Window::parse(attrs, false)?,
            group,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        self.window.write(&mut v);
        v.push(("group".into(), Attr::Int(self.group)));
        v
    }

    /// Kernel extents: the `kernel_shape` attribute, else the weight's spatial dims.
    pub fn kernel(&self, weight_shape: &[usize]) -> Vec<usize> {
        if self.window.kernel_shape.is_empty() {
            weight_shape.get(2..).unwrap_or(&[]).to_vec()
        } else {
            self.window
                .kernel_shape
                .iter()
                .map(|&k| k as usize)
                .collect()
        }
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let w = input(inputs, 1)?;
        let Some((xs, ws)) = operand_shapes(x, w)? else {
            return Ok(vec![ValueInfo {
                dtype: x.info.dtype.or(w.info.dtype),
                shape: None,
            }]);
        };
        let (xs, ws) = (&xs, &ws);
        let g = self.group as usize;
        if let (Some(c), Some(wc)) = (xs[1].known(), ws[1].known()) {
            if c != wc * g {
                return Err(format!(
                    "X has {c} channels but W expects {wc} per group x {g} groups"
                ));
            }
        }
        if let Some(m) = ws[0].known() {
            if m % g != 0 {
                return Err(format!(
                    "W has {m} output channels, not divisible by group {g}"
                ));
            }
            if let Some(b) = optional(inputs, 2).and_then(|b| b.info.concrete_shape()) {
                if b != [m] {
                    return Err(format!("B has shape {b:?} but W has {m} output channels"));
                }
            }
        }
        let kernel: Vec<Option<usize>> = if self.window.kernel_shape.is_empty() {
            ws[2..].iter().map(Dim::known).collect()
        } else {
            self.window
                .kernel_shape
                .iter()
                .map(|&k| Some(k as usize))
                .collect()
        };
        let mut out = vec![xs[0].clone(), ws[0].clone()];
        out.extend(self.window.spatial_dims(&xs[2..], &kernel)?);
        Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: Some(out),
        }])
    }
}

/// ConvTranspose: the gradient of Conv with respect to its input.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    pub window: Window,
    pub group: i64,
    /// Extra extent added at the end of each spatial axis; empty means 0.
    pub output_padding: Vec<i64>,
    /// Requested output extents (spatial axes); empty when not given. When given
    /// without explicit pads, the pads are derived from it.
    pub output_shape: Vec<i64>,
}

impl ConvTranspose {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        let group = attrs.int("group", 1)?;
        if group <= 0 {
            return Err(AttrError::new(
                "group",
                format!("must be positive, got {group}"),
            ));
        }
        let output_shape = attrs.ints("output_shape", &[])?;
        if let Some(bad) = output_shape.iter().find(|&&x| x < 0) {
            return Err(AttrError::new(
                "output_shape",
                format!("values must not be negative, got {bad}"),
            ));
        }
        Ok(ConvTranspose {
            window: Window::parse(attrs, false)?,
            group,
            output_padding: attrs.ints("output_padding", &[])?,
            output_shape,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        self.window.write(&mut v);
        v.push(("group".into(), Attr::Int(self.group)));
        push_list(&mut v, "output_padding", &self.output_padding);
        push_list(&mut v, "output_shape", &self.output_shape);
        v
    }

    /// Kernel extents: the `kernel_shape` attribute, else the weight's spatial dims.
    pub fn kernel(&self, weight_shape: &[usize]) -> Vec<usize> {
        if self.window.kernel_shape.is_empty() {
            weight_shape.get(2..).unwrap_or(&[]).to_vec()
        } else {
            self.window
                .kernel_shape
                .iter()
                .map(|&k| k as usize)
                .collect()
        }
    }

    /// Output extent and (begin, end) padding of spatial axis `i` of `spatial`.
    pub fn axis(
        &self,
        i: usize,
        spatial: usize,
        input: usize,
        k: usize,
    ) -> Result<(usize, i64, i64), String> {
        let w = &self.window;
        let (s, d) = (at(&w.strides, i, 1), at(&w.dilations, i, 1));
        let op = at(&self.output_padding, i, 0);
        let pads = [at(&w.pads, i, 0), at(&w.pads, spatial + i, 0), op];
        check_extents(k as i64, s, d, &pads)?;
        if input as i64 > MAX_EXTENT {
            return Err(format!("input extent {input} is out of range"));
        }
        let dk = (k as i64 - 1) * d + 1;
        let full = s * (input as i64 - 1) + op + dk;
        let requested = if self.output_shape.is_empty() {
            None
        } else if self.output_shape.len() >= spatial {
            Some(self.output_shape[self.output_shape.len() - spatial + i])
        } else {
            return Err(format!(
                "output_shape holds {} values for {spatial} spatial axes",
                self.output_shape.len()
            ));
        };
        let explicit = w.auto_pad == AutoPad::NotSet && !w.pads.is_empty();
        let derive = |out: i64| -> (usize, i64, i64) {
            let total = full - out;
            let half = total.div_euclid(2);
            if w.auto_pad == AutoPad::SameUpper {
                (out as usize, half, total - half)
            } else {
                (out as usize, total - half, half)
            }
        };
        match (requested, w.auto_pad) {
            (Some(out), _) if !explicit => Ok(derive(out)),
            (None, AutoPad::SameUpper | AutoPad::SameLower) => Ok(derive(input as i64 * s)),
            _ => {
                let (pb, pe) = if explicit {
                    (at(&w.pads, i, 0), at(&w.pads, spatial + i, 0))
                } else {
                    (0, 0)
                };
                let out = match requested {
                    Some(o) => o,
                    None => full - pb - pe,
                };
                if out < 0 {
                    return Err(format!(
                        "output extent {out} on spatial axis {i} is negative"
                    ));
                }
                Ok((out as usize, pb, pe))
            }
        }
    }

    /// Fills in every default for concrete spatial input extents and kernel extents.
    pub fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<ResolvedWindow, String> {
        let n = input.len();
        self.window.check_rank(n)?;
        if !self.output_padding.is_empty() && self.output_padding.len() != n {
            return Err(format!(
                "output_padding holds {} values for {n} spatial axes",
                self.output_padding.len()
            ));
        }
        if kernel.len() != n {
            return Err(format!(
                "kernel has {} spatial axes but the input has {n}",
                kernel.len()
            ));
        }
        let mut r = ResolvedWindow {
            kernel: kernel.to_vec(),
            strides: (0..n)
                .map(|i| at(&self.window.strides, i, 1) as usize)
                .collect(),
            dilations: (0..n)
                .map(|i| at(&self.window.dilations, i, 1) as usize)
                .collect(),
            pads_begin: Vec::with_capacity(n),
            pads_end: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
        };
        for i in 0..n {
            if kernel[i] == 0 {
                return Err("kernel extent is 0".into());
            }
            let (o, pb, pe) = self.axis(i, n, input[i], kernel[i])?;
            r.output.push(o);
            r.pads_begin.push(pb);
            r.pads_end.push(pe);
        }
        Ok(r)
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let w = input(inputs, 1)?;
        let Some((xs, ws)) = operand_shapes(x, w)? else {
            return Ok(vec![ValueInfo {
                dtype: x.info.dtype.or(w.info.dtype),
                shape: None,
            }]);
        };
        let (xs, ws, rank) = (&xs, &ws, xs.len());
        if let (Some(c), Some(wc)) = (xs[1].known(), ws[0].known()) {
            if c != wc {
                return Err(format!("X has {c} channels but W has {wc} input channels"));
            }
        }
        let g = self.group as usize;
        if let Some(c) = ws[0].known() {
            if c % g != 0 {
                return Err(format!(
                    "W has {c} input channels, not divisible by group {g}"
                ));
            }
        }
        let kernel: Vec<Option<usize>> = if self.window.kernel_shape.is_empty() {
            ws[2..].iter().map(Dim::known).collect()
        } else {
            self.window
                .kernel_shape
                .iter()
                .map(|&k| Some(k as usize))
                .collect()
        };
        let n = rank - 2;
        self.window.check_rank(n)?;
        let mut out = vec![
            xs[0].clone(),
            ws[1].known().map_or(Dim::Unknown, |m| Dim::Known(m * g)),
        ];
        for i in 0..n {
            out.push(match (xs[2 + i].known(), kernel[i]) {
                (Some(v), Some(k)) if k > 0 => Dim::Known(self.axis(i, n, v, k)?.0),
                _ => Dim::Unknown,
            });
        }
        Ok(vec![ValueInfo {
            dtype: x.info.dtype,
            shape: Some(out),
        }])
    }
}

/// X's and W's shapes.
type OperandShapes = (Vec<Dim>, Vec<Dim>);

/// The shapes of a convolution's X and W (unknown dims where a shape is missing), or
/// `None` when neither rank is known; checks a float X, rank >= 3 and equal ranks.
fn operand_shapes(x: &InferInput, w: &InferInput) -> Result<Option<OperandShapes>, String> {
    float_input(x, "X")?;
    let Some(rank) = x.info.rank().or(w.info.rank()) else {
        return Ok(None);
    };
    if rank < 3 {
        return Err(format!(
            "input must have rank 3 or more (N, C, spatial...), got rank {rank}"
        ));
    }
    let xs = x
        .info
        .shape
        .clone()
        .unwrap_or_else(|| vec![Dim::Unknown; rank]);
    let ws = w
        .info
        .shape
        .clone()
        .unwrap_or_else(|| vec![Dim::Unknown; rank]);
    if xs.len() != ws.len() {
        return Err(format!(
            "X has rank {} but W has rank {}",
            xs.len(),
            ws.len()
        ));
    }
    Ok(Some((xs, ws)))
}
