//! Vision and miscellaneous tensor ops: GridSample, AffineGrid, Col2Im, RoiAlign,
//! NonMaxSuppression, MaxUnpool, CenterCropPad, CumProd, Det.
//!
//! Attributes whose spelling or existence changed between opsets (GridSample's mode
//! names before opset 20, RoiAlign's `coordinate_transformation_mode` from opset 16)
//! remember the opset family they were parsed at, so [`VisionOp::attributes`]
//! writes back what that opset accepts. Lists whose default depends on the input's
//! rank (Col2Im and MaxUnpool strides, pads, dilations) are kept as written, an empty
//! list meaning "the default along every axis".

mod infer;
#[cfg(test)]
mod tests;

use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// How GridSample interpolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridSampleMode {
    /// `linear` (`bilinear` before opset 20).
    Linear,
    Nearest,
    /// `cubic` (`bicubic` before opset 20): Keys' cubic convolution with alpha -0.75.
    Cubic,
}

/// What GridSample reads at positions outside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

impl GridPadding {
    pub fn as_str(self) -> &'static str {
        match self {
            GridPadding::Zeros => "zeros",
            GridPadding::Border => "border",
            GridPadding::Reflection => "reflection",
        }
    }
}

/// GridSample: samples `X` (N, C, D1..Dr) at the normalized coordinates of `grid`
/// (N, O1..Or, r), whose last axis lists coordinates innermost axis first (x, y, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct GridSample {
    pub mode: GridSampleMode,
    pub padding_mode: GridPadding,
    /// -1 and 1 are the centers of the corner pixels (otherwise their outer edges).
    pub align_corners: bool,
    /// Parsed at opsets 16–19: mode names `bilinear`/`bicubic`, 4-D input only.
    pub legacy: bool,
}

/// Col2Im: sums columns of sliding blocks back into an image (the inverse layout of
/// im2col). Empty lists mean the default (ones, zeros) along every spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Col2Im {
    pub dilations: Vec<i64>,
    /// Begin pads of every axis, then end pads.
    pub pads: Vec<i64>,
    pub strides: Vec<i64>,
}

/// RoiAlign: bilinear samples averaged (or maxed) over bins of each region.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiAlign {
    /// `max` pooling (otherwise `avg`).
    pub max: bool,
    pub output_height: i64,
    pub output_width: i64,
    /// Samples per bin along each axis; 0 or less: adaptive (`ceil(roi / output)`).
    pub sampling_ratio: i64,
    pub spatial_scale: f32,
    /// `half_pixel` coordinates (shifted by -0.5, no minimum region size); otherwise
    /// `output_half_pixel`, the only behavior before opset 16.
    pub half_pixel: bool,
    /// Parsed at opset 16 or later, where `coordinate_transformation_mode` exists.
    pub has_coordinate_mode: bool,
}

/// MaxUnpool: scatters `X` into zeros at the flat positions of `I`. Empty `pads`
/// and `strides` mean zeros and ones.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxUnpool {
    pub kernel_shape: Vec<i64>,
    pub pads: Vec<i64>,
    pub strides: Vec<i64>,
}

impl MaxUnpool {
    /// The unpooled spatial size of each axis for input spatial sizes `input`
    /// (`(in - 1) * stride - pad_begin - pad_end + kernel`); an error when it is not
    /// positive or the attributes do not fit the rank.
    pub fn spatial_output(&self, input: &[Option<usize>]) -> Result<Vec<Option<usize>>, String> {
        let r = self.kernel_shape.len();
        if input.len() != r {
            return Err(format!(
                "kernel_shape has {r} axes but the input has {} spatial axes",
                input.len()
            ));
        }
        if !self.strides.is_empty() && self.strides.len() != r {
            return Err(format!(
                "strides has {} values, expected {r}",
                self.strides.len()
            ));
        }
        if !self.pads.is_empty() && self.pads.len() != 2 * r {
            return Err(format!(
                "pads has {} values, expected {}",
                self.pads.len(),
                2 * r
            ));
        }
        let mut out = Vec::with_capacity(r);
        for (i, d) in input.iter().enumerate() {
            let Some(d) = d else {
                out.push(None);
                continue;
            };
            let s = self.strides.get(i).copied().unwrap_or(1) as i128;
            let p = if self.pads.is_empty() {
                0
            } else {
                self.pads[i] as i128 + self.pads[i + r] as i128
            };
            let n = (*d as i128 - 1) * s - p + self.kernel_shape[i] as i128;
            if !(1..=1i128 << 40).contains(&n) {
                return Err(format!(
                    "unpooled size {n} of spatial axis {i} is out of range"
                ));
            }
            out.push(Some(n as usize));
        }
        Ok(out)
    }
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum VisionOp {
    GridSample(GridSample),
    /// Output: the sampling grid of an affine transform `theta` (N, 2, 3) or (N, 3, 4)
    /// for the output `size` (N, C, H, W) or (N, C, D, H, W).
    AffineGrid {
        align_corners: bool,
    },
    Col2Im(Col2Im),
    RoiAlign(RoiAlign),
    /// Output: int64 `[num_selected, 3]` rows of (batch, class, box).
    NonMaxSuppression {
        /// Boxes are (x_center, y_center, width, height); otherwise (y1, x1, y2, x2).
        center_point_box: bool,
    },
    MaxUnpool(MaxUnpool),
    /// Crops or zero-pads `axes` (all when `None`) to the sizes of input 1, centered.
    CenterCropPad {
        axes: Option<Vec<i64>>,
    },
    /// Cumulative product along the axis of input 1.
    CumProd {
        exclusive: bool,
        reverse: bool,
    },
    /// Determinants of the square matrices of the last two axes.
    Det,
}

fn flag(attrs: &Attributes, name: &str) -> Result<bool, AttrError> {
    Ok(attrs.int(name, 0)? != 0)
}

/// A list of ints that must all be at least `min`.
fn list_at_least(attrs: &Attributes, name: &str, min: i64) -> Result<Vec<i64>, AttrError> {
    let v = attrs.ints(name, &[])?;
    if let Some(bad) = v.iter().find(|&&x| x < min) {
        return Err(AttrError::new(
            name,
            format!("values must be at least {min}, got {bad}"),
        ));
    }
    Ok(v)
}

fn one_of<T: Copy>(name: &str, value: &str, options: &[(&str, T)]) -> Result<T, AttrError> {
    options
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            AttrError::new(
                name,
                format!("'{value}' is not one of {}", names.join(", ")),
            )
        })
}

impl GridSample {
    fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        use GridSampleMode::*;
        let legacy = ctx.opset < 20;
        let (default, names): (&str, [(&str, GridSampleMode); 3]) = if legacy {
            (
                "bilinear",
                [
                    ("bilinear", Linear),
                    ("nearest", Nearest),
                    ("bicubic", Cubic),
                ],
            )
        } else {
            (
                "linear",
                [("linear", Linear), ("nearest", Nearest), ("cubic", Cubic)],
            )
        };
        let mode = one_of("mode", &attrs.string("mode", default)?, &names)?;
        let padding_mode = one_of(
            "padding_mode",
            &attrs.string("padding_mode", "zeros")?,
            &[
                ("zeros", GridPadding::Zeros),
                ("border", GridPadding::Border),
                ("reflection", GridPadding::Reflection),
            ],
        )?;
        Ok(GridSample {
            mode,
            padding_mode,
            align_corners: flag(attrs, "align_corners")?,
            legacy,
        })
    }

    fn attributes(&self) -> Vec<(String, Attr)> {
        let mode = match (self.mode, self.legacy) {
            (GridSampleMode::Linear, true) => "bilinear",
            (GridSampleMode::Linear, false) => "linear",
            (GridSampleMode::Cubic, true) => "bicubic",
            (GridSampleMode::Cubic, false) => "cubic",
            (GridSampleMode::Nearest, _) => "nearest",
        };
        vec![
            ("align_corners".into(), Attr::Int(self.align_corners as i64)),
            ("mode".into(), Attr::String(mode.into())),
            (
                "padding_mode".into(),
                Attr::String(self.padding_mode.as_str().into()),
            ),
        ]
    }
}

impl RoiAlign {
    fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        let has_coordinate_mode = ctx.opset >= 16;
        let half_pixel = if has_coordinate_mode {
            one_of(
                "coordinate_transformation_mode",
                &attrs.string("coordinate_transformation_mode", "half_pixel")?,
                &[("half_pixel", true), ("output_half_pixel", false)],
            )?
        } else {
            false
        };
        let max = one_of(
            "mode",
            &attrs.string("mode", "avg")?,
            &[("avg", false), ("max", true)],
        )?;
        let size = |name: &str| -> Result<i64, AttrError> {
            let v = attrs.int(name, 1)?;
            if v < 0 {
                return Err(AttrError::new(
                    name,
                    format!("must not be negative, got {v}"),
                ));
            }
            Ok(v)
        };
        Ok(RoiAlign {
            max,
            output_height: size("output_height")?,
            output_width: size("output_width")?,
            sampling_ratio: attrs.int("sampling_ratio", 0)?,
            spatial_scale: attrs.float("spatial_scale", 1.0)?,
            half_pixel,
            has_coordinate_mode,
        })
    }

    fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        if self.has_coordinate_mode {
            let m = if self.half_pixel {
                "half_pixel"
            } else {
                "output_half_pixel"
            };
            v.push((
                "coordinate_transformation_mode".into(),
                Attr::String(m.into()),
            ));
        }
        v.push((
            "mode".into(),
            Attr::String(if self.max { "max" } else { "avg" }.into()),
        ));
        v.push(("output_height".into(), Attr::Int(self.output_height)));
        v.push(("output_width".into(), Attr::Int(self.output_width)));
        v.push(("sampling_ratio".into(), Attr::Int(self.sampling_ratio)));
        v.push(("spatial_scale".into(), Attr::Float(self.spatial_scale)));
        v
    }
}

fn push_list(out: &mut Vec<(String, Attr)>, name: &str, v: &[i64]) {
    if !v.is_empty() {
        out.push((name.into(), Attr::Ints(v.to_vec())));
    }
}

impl VisionOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in for `ctx.opset`;
    /// `None` when the op type is not in this family.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let op = match ctx.op_type {
            "GridSample" => GridSample::parse(ctx, attrs).map(VisionOp::GridSample),
            "AffineGrid" => flag(attrs, "align_corners")
                .map(|align_corners| VisionOp::AffineGrid { align_corners }),
            "Col2Im" => (|| {
                Ok(VisionOp::Col2Im(Col2Im {
                    dilations: list_at_least(attrs, "dilations", 1)?,
                    pads: list_at_least(attrs, "pads", 0)?,
                    strides: list_at_least(attrs, "strides", 1)?,
                }))
            })(),
            "RoiAlign" => RoiAlign::parse(ctx, attrs).map(VisionOp::RoiAlign),
            "NonMaxSuppression" => (|| {
                let c = attrs.int("center_point_box", 0)?;
                if c != 0 && c != 1 {
                    return Err(AttrError::new(
                        "center_point_box",
                        format!("must be 0 or 1, got {c}"),
                    ));
                }
                Ok(VisionOp::NonMaxSuppression {
                    center_point_box: c == 1,
                })
            })(),
            "MaxUnpool" => (|| {
                let kernel_shape = list_at_least(attrs, "kernel_shape", 1)?;
                if kernel_shape.is_empty() {
                    return Err(AttrError::new("kernel_shape", "required but missing"));
                }
                Ok(VisionOp::MaxUnpool(MaxUnpool {
                    kernel_shape,
                    pads: list_at_least(attrs, "pads", 0)?,
                    strides: list_at_least(attrs, "strides", 1)?,
                }))
            })(),
            "CenterCropPad" => attrs
                .ints_opt("axes")
                .map(|axes| VisionOp::CenterCropPad { axes }),
            "CumProd" => (|| {
                Ok(VisionOp::CumProd {
                    exclusive: flag(attrs, "exclusive")?,
                    reverse: flag(attrs, "reverse")?,
                })
            })(),
            "Det" => Ok(VisionOp::Det),
            _ => return None,
        };
        Some(op)
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            VisionOp::GridSample(_) => "GridSample",
            VisionOp::AffineGrid { .. } => "AffineGrid",
            VisionOp::Col2Im(_) => "Col2Im",
            VisionOp::RoiAlign(_) => "RoiAlign",
            VisionOp::NonMaxSuppression { .. } => "NonMaxSuppression",
            VisionOp::MaxUnpool(_) => "MaxUnpool",
            VisionOp::CenterCropPad { .. } => "CenterCropPad",
            VisionOp::CumProd { .. } => "CumProd",
            VisionOp::Det => "Det",
        }
    }

    /// The attributes to write back on export: every one that carries meaning, in the
    /// spelling of the opset the op was parsed at.
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let int = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        match self {
            VisionOp::GridSample(g) => g.attributes(),
            VisionOp::AffineGrid { align_corners } => {
                vec![int("align_corners", *align_corners as i64)]
            }
            VisionOp::Col2Im(c) => {
                let mut v = Vec::new();
                push_list(&mut v, "dilations", &c.dilations);
                push_list(&mut v, "pads", &c.pads);
                push_list(&mut v, "strides", &c.strides);
                v
            }
            VisionOp::RoiAlign(r) => r.attributes(),
            VisionOp::NonMaxSuppression { center_point_box } => {
                vec![int("center_point_box", *center_point_box as i64)]
            }
            VisionOp::MaxUnpool(m) => {
                let mut v = vec![("kernel_shape".into(), Attr::Ints(m.kernel_shape.clone()))];
                push_list(&mut v, "pads", &m.pads);
                push_list(&mut v, "strides", &m.strides);
                v
            }
            VisionOp::CenterCropPad { axes } => match axes {
                Some(a) => vec![("axes".into(), Attr::Ints(a.clone()))],
                None => Vec::new(),
            },
            VisionOp::CumProd { exclusive, reverse } => {
                vec![
                    int("exclusive", *exclusive as i64),
                    int("reverse", *reverse as i64),
                ]
            }
            VisionOp::Det => Vec::new(),
        }
    }

    /// Output dtypes and shapes; constant inputs (AffineGrid's size, Col2Im's image
    /// shape, MaxUnpool's output shape, CenterCropPad's shape) give known dims.
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            VisionOp::GridSample(g) => infer::grid_sample(g, inputs),
            VisionOp::AffineGrid { .. } => infer::affine_grid(inputs),
            VisionOp::Col2Im(c) => infer::col2im(c, inputs),
            VisionOp::RoiAlign(r) => infer::roi_align(r, inputs),
            VisionOp::NonMaxSuppression { .. } => infer::non_max_suppression(inputs),
            VisionOp::MaxUnpool(m) => infer::max_unpool(m, inputs),
            VisionOp::CenterCropPad { axes } => infer::center_crop_pad(axes.as_deref(), inputs),
            VisionOp::CumProd { .. } => infer::cum_prod(inputs),
            VisionOp::Det => infer::det(inputs),
        }
    }
}
