//! Data movement and shape computation: Reshape, Transpose, Concat, Split, Slice,
//! Gather and Scatter variants, Squeeze, Unsqueeze, Expand, Shape, Tile, Range,
//! ConstantOfShape, Constant and friends.
//!
//! Where ONNX moved an attribute to an input across opsets (Squeeze and Unsqueeze
//! `axes`, Split `split`, Slice `starts`/`ends`/`axes`), the typed op keeps the
//! attribute form as `Some(..)` and the kernels read the input otherwise, so each
//! node is exported in the form it was imported in.

mod infer;
mod rules;
mod symbolic;
#[cfg(test)]
mod tests;

pub use rules::{check_perm, clamp_shape_range, reshape_dims, slice_bounds, split_sizes};
pub use symbolic::{SymInt, MAX_SYM_LEN};

use slimnet_tensor::{DType, Tensor};

use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// How a scatter combines an update with the element already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterReduction {
    /// The update replaces the element.
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl ScatterReduction {
    pub fn parse(s: &str) -> Result<Self, AttrError> {
        Ok(match s {
            "none" => ScatterReduction::None,
            "add" => ScatterReduction::Add,
            "mul" => ScatterReduction::Mul,
            "max" => ScatterReduction::Max,
            "min" => ScatterReduction::Min,
            other => {
                return Err(AttrError::new(
                    "reduction",
                    format!("unknown reduction '{other}'"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ScatterReduction::None => "none",
            ScatterReduction::Add => "add",
            ScatterReduction::Mul => "mul",
            ScatterReduction::Max => "max",
            ScatterReduction::Min => "min",
        }
    }
}

/// Data movement and shape operators.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeOp {
    /// Inputs: data, shape. `0` in the shape copies the input's dimension unless
    /// `allowzero`; one `-1` is inferred.
    Reshape {
        allowzero: bool,
    },
    /// 2-D output `[prod(d[..axis]), prod(d[axis..])]`; `axis` in `[-r, r]`.
    Flatten {
        axis: i64,
    },
    /// `None` reverses the axes.
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    /// `split` is the attribute form (opset < 13); from opset 13 the sizes come from
    /// the optional input 1. `num_outputs` (opset 18) splits into ceil-sized chunks.
    /// `outputs` is the node's number of outputs.
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
        num_outputs: Option<i64>,
        outputs: usize,
    },
    /// `Some` holds the attribute form of opset < 10 (starts, ends, optional axes);
    /// `None` reads inputs starts, ends, axes, steps.
    Slice {
        attrs: Option<SliceAttrs>,
    },
    Gather {
        axis: i64,
    },
    GatherElements {
        axis: i64,
    },
    GatherND {
        batch_dims: i64,
    },
    ScatterND {
        reduction: ScatterReduction,
    },
    ScatterElements {
        axis: i64,
        reduction: ScatterReduction,
    },
    /// The deprecated `Scatter` (opsets 9-10): `ScatterElements` without reduction.
    Scatter {
        axis: i64,
    },
    /// `axes` as an attribute (opset < 13); otherwise the optional input 1. Without
    /// axes, every dimension of size 1 is removed.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    /// `axes` as an attribute (opset < 13); otherwise the required input 1.
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    /// Inputs: data, shape; bidirectional broadcast.
    Expand,
    /// A slice `[start, end)` of the input's shape (clamped to the rank).
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Size,
    /// Inputs: data, repeats.
    Tile,
    /// A tensor of the given shape filled with `value` (a one-element tensor).
    ConstantOfShape {
        value: Tensor,
    },
    /// Inputs: start, limit, delta (scalars).
    Range,
    NonZero,
    /// Inputs: indices, depth, values `[off, on]`.
    OneHot {
        axis: i64,
    },
    /// Inputs: data, optional k.
    Trilu {
        upper: bool,
    },
    /// `dtype` of the output (the input's when `None`); ones on diagonal `k`.
    EyeLike {
        dtype: Option<DType>,
        k: i64,
    },
    /// Without `axis` the input is flattened first.
    Compress {
        axis: Option<i64>,
    },
    ReverseSequence {
        time_axis: i64,
        batch_axis: i64,
    },
    /// Outputs: Y, indices, inverse_indices, counts (the last three optional).
    Unique {
        axis: Option<i64>,
        sorted: bool,
    },
    Constant {
        value: Tensor,
    },
}

/// The attribute form of `Slice` (opset < 10).
#[derive(Clone, Debug, PartialEq)]
pub struct SliceAttrs {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Option<Vec<i64>>,
}

impl ShapeOp {
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let opset = ctx.opset;
        let op = (|| -> Result<Option<ShapeOp>, AttrError> {
            Ok(Some(match ctx.op_type {
                "Reshape" => ShapeOp::Reshape {
                    allowzero: attrs.int("allowzero", 0)? != 0,
                },
                "Flatten" => ShapeOp::Flatten {
                    axis: attrs.int("axis", 1)?,
                },
                "Transpose" => ShapeOp::Transpose {
                    perm: attrs.ints_opt("perm")?,
                },
                "Concat" => ShapeOp::Concat {
                    axis: attrs.int_required("axis")?,
                },
                "Split" => {
                    let split = if opset < 13 {
                        attrs.ints_opt("split")?
                    } else {
                        None
                    };
                    let num_outputs = if opset >= 18 {
                        attrs.int_opt("num_outputs")?
                    } else {
                        None
                    };
                    if let Some(n) = num_outputs {
                        if n < 1 {
                            return Err(AttrError::new("num_outputs", "must be at least 1"));
                        }
                    }
                    ShapeOp::Split {
                        axis: attrs.int("axis", 0)?,
                        split,
                        num_outputs,
                        outputs: ctx.num_outputs,
                    }
                }
                "Slice" => {
                    let attrs = if opset < 10 {
                        let starts = attrs.ints_opt("starts")?;
                        let ends = attrs.ints_opt("ends")?;
                        match (starts, ends) {
                            (Some(starts), Some(ends)) => Some(SliceAttrs {
                                starts,
                                ends,
                                axes: attrs.ints_opt("axes")?,
                            }),
                            _ => {
                                return Err(AttrError::new(
                                    "starts",
                                    "starts and ends are required before opset 10",
                                ))
                            }
                        }
                    } else {
                        None
                    };
                    ShapeOp::Slice { attrs }
                }
                "Gather" => ShapeOp::Gather {
                    axis: attrs.int("axis", 0)?,
                },
                "GatherElements" => ShapeOp::GatherElements {
                    axis: attrs.int("axis", 0)?,
                },
                "GatherND" => ShapeOp::GatherND {
                    batch_dims: attrs.int("batch_dims", 0)?,
                },
                "ScatterND" => ShapeOp::ScatterND {
                    reduction: ScatterReduction::parse(&attrs.string("reduction", "none")?)?,
                },
                "ScatterElements" => ShapeOp::ScatterElements {
                    axis: attrs.int("axis", 0)?,
                    reduction: ScatterReduction::parse(&attrs.string("reduction", "none")?)?,
                },
                "Scatter" => ShapeOp::Scatter {
                    axis: attrs.int("axis", 0)?,
                },
                "Squeeze" => ShapeOp::Squeeze {
                    axes: if opset < 13 {
                        attrs.ints_opt("axes")?
                    } else {
                        None
                    },
                },
                "Unsqueeze" => {
                    let axes = if opset < 13 {
                        Some(
                            attrs
                                .ints_opt("axes")?
                                .ok_or_else(|| AttrError::new("axes", "required but missing"))?,
                        )
                    } else {
                        None
                    };
                    ShapeOp::Unsqueeze { axes }
                }
                "Expand" => ShapeOp::Expand,
                "Shape" => ShapeOp::Shape {
                    start: attrs.int("start", 0)?,
                    end: attrs.int_opt("end")?,
                },
                "Size" => ShapeOp::Size,
                "Tile" => ShapeOp::Tile,
                "ConstantOfShape" => {
                    let value = match attrs.tensor_opt("value")? {
                        Some(t) if t.len() != 1 => {
                            return Err(AttrError::new("value", "must hold exactly one element"));
                        }
                        Some(t) => t,
                        None => Tensor::from_vec(vec![1], vec![0f32]).expect("one element"),
                    };
                    ShapeOp::ConstantOfShape { value }
                }
                "Range" => ShapeOp::Range,
                "NonZero" => ShapeOp::NonZero,
                "OneHot" => ShapeOp::OneHot {
                    axis: attrs.int("axis", -1)?,
                },
                "Trilu" => ShapeOp::Trilu {
                    upper: attrs.int("upper", 1)? != 0,
                },
                "EyeLike" => {
                    let dtype = match attrs.int_opt("dtype")? {
                        None => None,
                        Some(code) => Some(
                            i32::try_from(code)
                                .ok()
                                .and_then(DType::from_onnx_code)
                                .ok_or_else(|| {
                                    AttrError::new(
                                        "dtype",
                                        format!("unsupported element type {code}"),
                                    )
                                })?,
                        ),
                    };
                    ShapeOp::EyeLike {
                        dtype,
                        k: attrs.int("k", 0)?,
                    }
                }
                "Compress" => ShapeOp::Compress {
                    axis: attrs.int_opt("axis")?,
                },
                "ReverseSequence" => {
                    let time_axis = attrs.int("time_axis", 0)?;
                    let batch_axis = attrs.int("batch_axis", 1)?;
                    if !matches!((time_axis, batch_axis), (0, 1) | (1, 0)) {
                        return Err(AttrError::new(
                            "batch_axis",
                            "time_axis and batch_axis must be 0 and 1 in some order",
                        ));
                    }
                    ShapeOp::ReverseSequence {
                        time_axis,
                        batch_axis,
                    }
                }
                "Unique" => ShapeOp::Unique {
                    axis: attrs.int_opt("axis")?,
                    sorted: attrs.int("sorted", 1)? != 0,
                },
                "Constant" => ShapeOp::Constant {
                    value: constant_value(attrs)?,
                },
                _ => return Ok(None),
            }))
        })();
        op.transpose()
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            ShapeOp::Reshape { .. } => "Reshape",
            ShapeOp::Flatten { .. } => "Flatten",
            ShapeOp::Transpose { .. } => "Transpose",
            ShapeOp::Concat { .. } => "Concat",
            ShapeOp::Split { .. } => "Split",
            ShapeOp::Slice { .. } => "Slice",
            ShapeOp::Gather { .. } => "Gather",
            ShapeOp::GatherElements { .. } => "GatherElements",
            ShapeOp::GatherND { .. } => "GatherND",
            ShapeOp::ScatterND { .. } => "ScatterND",
            ShapeOp::ScatterElements { .. } => "ScatterElements",
            ShapeOp::Scatter { .. } => "Scatter",
            ShapeOp::Squeeze { .. } => "Squeeze",
            ShapeOp::Unsqueeze { .. } => "Unsqueeze",
            ShapeOp::Expand => "Expand",
            ShapeOp::Shape { .. } => "Shape",
            ShapeOp::Size => "Size",
            ShapeOp::Tile => "Tile",
            ShapeOp::ConstantOfShape { .. } => "ConstantOfShape",
            ShapeOp::Range => "Range",
            ShapeOp::NonZero => "NonZero",
            ShapeOp::OneHot { .. } => "OneHot",
            ShapeOp::Trilu { .. } => "Trilu",
            ShapeOp::EyeLike { .. } => "EyeLike",
            ShapeOp::Compress { .. } => "Compress",
            ShapeOp::ReverseSequence { .. } => "ReverseSequence",
            ShapeOp::Unique { .. } => "Unique",
            ShapeOp::Constant { .. } => "Constant",
        }
    }

    /// Attributes to write back. Attributes that only exist in later opsets
    /// (`allowzero`, Shape's `start`/`end`, `batch_dims`, `reduction`, `num_outputs`)
    /// are written only when they differ from their default.
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        fn a(name: &str, attr: Attr) -> (String, Attr) {
            (name.to_string(), attr)
        }
        let mut out = Vec::new();
        match self {
            ShapeOp::Reshape { allowzero } => {
                if *allowzero {
                    out.push(a("allowzero", Attr::Int(1)));
                }
            }
            ShapeOp::Flatten { axis } | ShapeOp::Concat { axis } | ShapeOp::Gather { axis } => {
                out.push(a("axis", Attr::Int(*axis)))
            }
            ShapeOp::GatherElements { axis }
            | ShapeOp::Scatter { axis }
            | ShapeOp::OneHot { axis } => out.push(a("axis", Attr::Int(*axis))),
            ShapeOp::Transpose { perm } => {
                if let Some(p) = perm {
                    out.push(a("perm", Attr::Ints(p.clone())));
                }
            }
            ShapeOp::Split {
                axis,
                split,
                num_outputs,
                ..
            } => {
                out.push(a("axis", Attr::Int(*axis)));
                if let Some(s) = split {
                    out.push(a("split", Attr::Ints(s.clone())));
                }
                if let Some(n) = num_outputs {
                    out.push(a("num_outputs", Attr::Int(*n)));
                }
            }
            ShapeOp::Slice { attrs } => {
                if let Some(s) = attrs {
                    out.push(a("starts", Attr::Ints(s.starts.clone())));
                    out.push(a("ends", Attr::Ints(s.ends.clone())));
                    if let Some(axes) = &s.axes {
                        out.push(a("axes", Attr::Ints(axes.clone())));
                    }
                }
            }
            ShapeOp::GatherND { batch_dims } => {
                if *batch_dims != 0 {
                    out.push(a("batch_dims", Attr::Int(*batch_dims)));
                }
            }
            ShapeOp::ScatterND { reduction } => {
                if *reduction != ScatterReduction::None {
                    out.push(a("reduction", Attr::String(reduction.name().into())));
                }
            }
            ShapeOp::ScatterElements { axis, reduction } => {
                out.push(a("axis", Attr::Int(*axis)));
                if *reduction != ScatterReduction::None {
                    out.push(a("reduction", Attr::String(reduction.name().into())));
                }
            }
            ShapeOp::Squeeze { axes } | ShapeOp::Unsqueeze { axes } => {
                if let Some(axes) = axes {
                    out.push(a("axes", Attr::Ints(axes.clone())));
                }
            }
            ShapeOp::Shape { start, end } => {
                if *start != 0 {
                    out.push(a("start", Attr::Int(*start)));
                }
                if let Some(e) = end {
                    out.push(a("end", Attr::Int(*e)));
                }
            }
            ShapeOp::ConstantOfShape { value } | ShapeOp::Constant { value } => {
                out.push(a("value", Attr::Tensor(value.clone())))
            }
            ShapeOp::Trilu { upper } => out.push(a("upper", Attr::Int(*upper as i64))),
            ShapeOp::EyeLike { dtype, k } => {
                if let Some(d) = dtype {
                    out.push(a("dtype", Attr::Int(d.onnx_code() as i64)));
                }
                out.push(a("k", Attr::Int(*k)));
            }
            ShapeOp::Compress { axis } => {
                if let Some(ax) = axis {
                    out.push(a("axis", Attr::Int(*ax)));
                }
            }
            ShapeOp::ReverseSequence {
                time_axis,
                batch_axis,
            } => {
                out.push(a("time_axis", Attr::Int(*time_axis)));
                out.push(a("batch_axis", Attr::Int(*batch_axis)));
            }
            ShapeOp::Unique { axis, sorted } => {
                if let Some(ax) = axis {
                    out.push(a("axis", Attr::Int(*ax)));
                }
                out.push(a("sorted", Attr::Int(*sorted as i64)));
            }
            ShapeOp::Expand | ShapeOp::Size | ShapeOp::Tile | ShapeOp::Range | ShapeOp::NonZero => {
            }
        }
        out
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        infer::infer(self, inputs, &[])
    }

    /// [`ShapeOp::infer`], also using the symbolic values of the inputs (`syms[i]`
    /// for input `i`, `None` where unknown) for shape-like inputs: Reshape's and
    /// Expand's shape, ConstantOfShape's input, Tile's repeats, Slice's bounds, ...
    pub fn infer_with_sym(
        &self,
        inputs: &[Option<InferInput>],
        syms: &[Option<Vec<SymInt>>],
    ) -> Result<Vec<ValueInfo>, String> {
        infer::infer(self, inputs, syms)
    }

    /// The symbolic value of the first output, for the ops that compute shapes:
    /// Shape, Size, Constant, and Gather, Slice, Concat, Squeeze, Unsqueeze, Reshape
    /// and Flatten of such values. `None` when it cannot be followed.
    pub fn infer_sym_value(
        &self,
        inputs: &[Option<InferInput>],
        syms: &[Option<Vec<SymInt>>],
    ) -> Option<Vec<SymInt>> {
        symbolic::infer_sym_value(self, inputs, syms)
    }

    /// The value of `Shape` and `Size` outputs when the input's shape is fully known
    /// even though its value is not (lets inference follow `Shape -> ... -> Reshape`).
    pub fn infer_value(&self, inputs: &[Option<InferInput>]) -> Option<Vec<Tensor>> {
        infer::infer_value(self, inputs)
    }
}

/// The tensor of a `Constant` node, from whichever one of its value attributes is set.
fn constant_value(attrs: &Attributes) -> Result<Tensor, AttrError> {
    const KINDS: [&str; 8] = [
        "value",
        "sparse_value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "value_string",
        "value_strings",
    ];
    let present: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| attrs.contains(k))
        .collect();
    let kind = match present.as_slice() {
        [one] => *one,
        [] => {
            return Err(AttrError::new(
                "value",
                "a Constant needs one value attribute",
            ))
        }
        _ => {
            return Err(AttrError::new(
                present[1],
                "a Constant takes exactly one value attribute",
            ))
        }
    };
    let err = |e: slimnet_tensor::TensorError| AttrError::new(kind, e.to_string());
    let t = match kind {
        "value" => attrs.tensor_opt(kind)?.expect("present"),
        "sparse_value" => return Err(AttrError::new(kind, "sparse tensors are not supported")),
        "value_float" => Tensor::scalar(attrs.float_opt(kind)?.expect("present")),
        "value_floats" => {
            let v = attrs.floats_opt(kind)?.expect("present");
            Tensor::from_vec(vec![v.len()], v).map_err(err)?
        }
        "value_int" => Tensor::scalar(attrs.int_opt(kind)?.expect("present")),
        "value_ints" => {
            let v = attrs.ints_opt(kind)?.expect("present");
            Tensor::from_vec(vec![v.len()], v).map_err(err)?
        }
        "value_string" => {
            let s = attrs.string_opt(kind)?.expect("present");
            Tensor::new(vec![], slimnet_tensor::TensorData::String(vec![s])).map_err(err)?
        }
        _ => {
            let v = attrs.strings_opt(kind)?.expect("present");
            Tensor::new(vec![v.len()], slimnet_tensor::TensorData::String(v)).map_err(err)?
        }
    };
    Ok(t)
}
