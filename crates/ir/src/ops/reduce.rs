//! Reductions and normalizations: Reduce*, ArgMax/ArgMin, Softmax family,
//! LayerNormalization, CumSum, TopK, LpNormalization, MeanVarianceNormalization.
//!
//! Attributes that moved to inputs in later opsets (Reduce* `axes`, TopK `k`) are
//! `Some` only when parsed from an attribute; [`ReduceOp::attributes`] writes back
//! what the opset the op was parsed at accepts.

use slimnet_tensor::DType;

use crate::ops::util::{input, known_ints, like, normalize_axis, optional, with_dtype};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// What a `Reduce*` operator computes over the reduced elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

impl ReduceKind {
    pub const ALL: [ReduceKind; 10] = [
        ReduceKind::Sum,
        ReduceKind::Mean,
        ReduceKind::Max,
        ReduceKind::Min,
        ReduceKind::Prod,
        ReduceKind::L1,
        ReduceKind::L2,
        ReduceKind::LogSum,
        ReduceKind::LogSumExp,
        ReduceKind::SumSquare,
    ];

    pub fn op_type(self) -> &'static str {
        match self {
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
            ReduceKind::Prod => "ReduceProd",
            ReduceKind::L1 => "ReduceL1",
            ReduceKind::L2 => "ReduceL2",
            ReduceKind::LogSum => "ReduceLogSum",
            ReduceKind::LogSumExp => "ReduceLogSumExp",
            ReduceKind::SumSquare => "ReduceSumSquare",
        }
    }

    /// The first opset in which `axes` is an input rather than an attribute.
    pub fn axes_input_since(self) -> i64 {
        match self {
            ReduceKind::Sum => 13,
            _ => 18,
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    /// `axes` is the attribute (opsets before [`ReduceKind::axes_input_since`]);
    /// `None` when the axes come from input 1 or are absent. Absent or empty axes
    /// reduce every axis, unless `noop_with_empty_axes` makes the op an identity.
    Reduce {
        kind: ReduceKind,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// Output int64 indices of the first (or last) maximum along `axis`.
    ArgMax {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    ArgMin {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// `coerce_2d` (opsets before 13): the input is viewed as a matrix of
    /// `prod(shape[..axis])` rows and normalized along each whole row; otherwise
    /// along `axis` only.
    Softmax {
        axis: i64,
        coerce_2d: bool,
    },
    LogSoftmax {
        axis: i64,
        coerce_2d: bool,
    },
    Hardmax {
        axis: i64,
        coerce_2d: bool,
    },
    /// Normalizes over axes `axis..rank`; `stash_type` is the ONNX dtype code of the
    /// optional Mean and InvStdDev outputs.
    LayerNormalization {
        axis: i64,
        epsilon: f32,
        stash_type: i64,
    },
    /// Axis is input 1.
    CumSum {
        exclusive: bool,
        reverse: bool,
    },
    /// `k` is the attribute of opsets before 10 (input 1 afterwards).
    TopK {
        axis: i64,
        largest: bool,
        sorted: bool,
        k: Option<i64>,
    },
    /// `p` is 1 or 2.
    LpNormalization {
        axis: i64,
        p: i64,
    },
    MeanVarianceNormalization {
        axes: Vec<i64>,
    },
}

fn flag(attrs: &Attributes, name: &str, default: bool) -> Result<bool, AttrError> {
    Ok(attrs.int(name, default as i64)? != 0)
}

fn softmax_axis(ctx: &NodeContext, attrs: &Attributes) -> Result<(i64, bool), AttrError> {
    if ctx.opset < 13 {
        Ok((attrs.int("axis", 1)?, true))
    } else {
        Ok((attrs.int("axis", -1)?, false))
    }
}

impl ReduceOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in for `ctx.opset`;
    /// `None` when the op type is not in this family.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        if let Some(kind) = ReduceKind::ALL
            .into_iter()
            .find(|k| k.op_type() == ctx.op_type)
        {
            return Some((|| {
                let attribute_form = ctx.opset < kind.axes_input_since();
                Ok(ReduceOp::Reduce {
                    kind,
                    axes: attrs.ints_opt("axes")?,
                    keepdims: flag(attrs, "keepdims", true)?,
                    noop_with_empty_axes: !attribute_form
                        && flag(attrs, "noop_with_empty_axes", false)?,
                })
            })());
        }
        let op = (|| {
            Ok(Some(match ctx.op_type {
                "ArgMax" | "ArgMin" => {
                    let axis = attrs.int("axis", 0)?;
                    let keepdims = flag(attrs, "keepdims", true)?;
                    let select_last_index = flag(attrs, "select_last_index", false)?;
                    if ctx.op_type == "ArgMax" {
                        ReduceOp::ArgMax {
                            axis,
                            keepdims,
                            select_last_index,
                        }
                    } else {
                        ReduceOp::ArgMin {
                            axis,
                            keepdims,
                            select_last_index,
                        }
                    }
                }
                "Softmax" => {
                    let (axis, coerce_2d) = softmax_axis(ctx, attrs)?;
                    ReduceOp::Softmax { axis, coerce_2d }
                }
                "LogSoftmax" => {
                    let (axis, coerce_2d) = softmax_axis(ctx, attrs)?;
                    ReduceOp::LogSoftmax { axis, coerce_2d }
                }
                "Hardmax" => {
                    let (axis, coerce_2d) = softmax_axis(ctx, attrs)?;
                    ReduceOp::Hardmax { axis, coerce_2d }
                }
                "LayerNormalization" => ReduceOp::LayerNormalization {
                    axis: attrs.int("axis", -1)?,
                    epsilon: attrs.float("epsilon", 1e-5)?,
                    stash_type: attrs.int("stash_type", 1)?,
                },
                "CumSum" => ReduceOp::CumSum {
                    exclusive: flag(attrs, "exclusive", false)?,
                    reverse: flag(attrs, "reverse", false)?,
                },
                "TopK" => ReduceOp::TopK {
                    axis: attrs.int("axis", -1)?,
                    largest: flag(attrs, "largest", true)?,
                    sorted: flag(attrs, "sorted", true)?,
                    k: if ctx.opset < 10 {
                        Some(attrs.int_required("k")?)
                    } else {
                        None
                    },
                },
                "LpNormalization" => {
                    let p = attrs.int("p", 2)?;
                    if p != 1 && p != 2 {
                        return Err(AttrError::new("p", format!("must be 1 or 2, got {p}")));
                    }
                    ReduceOp::LpNormalization {
                        axis: attrs.int("axis", -1)?,
                        p,
                    }
                }
                "MeanVarianceNormalization" => ReduceOp::MeanVarianceNormalization {
                    axes: attrs.ints("axes", &[0, 2, 3])?,
                },
                _ => return Ok(None),
            }))
        })();
        op.transpose()
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            ReduceOp::Reduce { kind, .. } => kind.op_type(),
            ReduceOp::ArgMax { .. } => "ArgMax",
            ReduceOp::ArgMin { .. } => "ArgMin",
            ReduceOp::Softmax { .. } => "Softmax",
            ReduceOp::LogSoftmax { .. } => "LogSoftmax",
            ReduceOp::Hardmax { .. } => "Hardmax",
            ReduceOp::LayerNormalization { .. } => "LayerNormalization",
            ReduceOp::CumSum { .. } => "CumSum",
            ReduceOp::TopK { .. } => "TopK",
            ReduceOp::LpNormalization { .. } => "LpNormalization",
            ReduceOp::MeanVarianceNormalization { .. } => "MeanVarianceNormalization",
        }
    }

    /// The attributes to write back on export (opset-specific ones only when present
    /// or not at their default).
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let i = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        match self {
            ReduceOp::Reduce {
                axes,
                keepdims,
                noop_with_empty_axes,
                ..
            } => {
                let mut v = Vec::new();
                if let Some(a) = axes {
                    v.push(("axes".to_string(), Attr::Ints(a.clone())));
                }
                v.push(i("keepdims", *keepdims as i64));
                if *noop_with_empty_axes {
                    v.push(i("noop_with_empty_axes", 1));
                }
                v
            }
            ReduceOp::ArgMax {
                axis,
                keepdims,
                select_last_index,
            }
            | ReduceOp::ArgMin {
                axis,
                keepdims,
                select_last_index,
            } => {
                let mut v = vec![i("axis", *axis), i("keepdims", *keepdims as i64)];
                if *select_last_index {
                    v.push(i("select_last_index", 1));
                }
                v
            }
            ReduceOp::Softmax { axis, .. }
            | ReduceOp::LogSoftmax { axis, .. }
            | ReduceOp::Hardmax { axis, .. } => {
                vec![i("axis", *axis)]
            }
            ReduceOp::LayerNormalization {
                axis,
                epsilon,
                stash_type,
            } => {
                vec![
                    i("axis", *axis),
                    ("epsilon".into(), Attr::Float(*epsilon)),
                    i("stash_type", *stash_type),
                ]
            }
            ReduceOp::CumSum { exclusive, reverse } => vec![
                i("exclusive", *exclusive as i64),
                i("reverse", *reverse as i64),
            ],
            ReduceOp::TopK {
                axis,
                largest,
                sorted,
                k,
            } => {
                let mut v = vec![i("axis", *axis)];
                if let Some(k) = k {
                    v.push(i("k", *k));
                }
                if !*largest {
                    v.push(i("largest", 0));
                }
                if !*sorted {
                    v.push(i("sorted", 0));
                }
                v
            }
            ReduceOp::LpNormalization { axis, p } => vec![i("axis", *axis), i("p", *p)],
            ReduceOp::MeanVarianceNormalization { axes } => {
                vec![("axes".into(), Attr::Ints(axes.clone()))]
            }
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        let shape = x.info.shape.as_ref();
        let float_only = |what: &str| match x.info.dtype {
            Some(d) if !d.is_float() => Err(format!("{what} expects a float tensor, got {d}")),
            _ => Ok(()),
        };
        Ok(match self {
            ReduceOp::Reduce {
                axes,
                keepdims,
                noop_with_empty_axes,
                ..
            } => {
                let axes_input = optional(inputs, 1);
                let axes = match (axes, axes_input) {
                    (Some(a), _) => Some(a.clone()),
                    (None, None) => Some(Vec::new()),
                    (None, Some(a)) => known_ints(Some(a)),
                };
                let shape = match (shape, axes) {
                    (None, _) => None,
                    (Some(s), Some(axes)) if axes.is_empty() && *noop_with_empty_axes => {
                        Some(s.clone())
                    }
                    (Some(s), Some(axes)) => Some(reduced_shape(s, &axes, *keepdims)?),
                    (Some(s), None) if *keepdims => Some(vec![Dim::Unknown; s.len()]),
                    // Unknown axes: the rank follows from their count, if that is known.
                    (Some(s), None) => match axes_input.and_then(|a| a.info.concrete_shape()) {
                        Some(n) if n.len() == 1 && n[0] == 0 && *noop_with_empty_axes => {
                            Some(s.clone())
                        }
                        Some(n) if n.len() == 1 && n[0] == 0 => Some(Vec::new()),
                        Some(n) if n.len() == 1 && n[0] <= s.len() => {
                            Some(vec![Dim::Unknown; s.len() - n[0]])
                        }
                        _ => None,
                    },
                };
                vec![like(x, shape)]
            }
            ReduceOp::ArgMax { axis, keepdims, .. } | ReduceOp::ArgMin { axis, keepdims, .. } => {
                let shape = shape
                    .map(|s| reduced_shape(s, &[*axis], *keepdims))
                    .transpose()?;
                vec![with_dtype(DType::I64, shape)]
            }
            ReduceOp::Softmax { axis, .. }
            | ReduceOp::LogSoftmax { axis, .. }
            | ReduceOp::Hardmax { axis, .. } => {
                float_only(self.op_type())?;
                if let Some(s) = shape {
                    normalize_axis(*axis, s.len())?;
                }
                vec![x.info.clone()]
            }
            ReduceOp::LayerNormalization {
                axis, stash_type, ..
            } => {
                float_only("LayerNormalization")?;
                let stash = i32::try_from(*stash_type)
                    .ok()
                    .and_then(DType::from_onnx_code)
                    .filter(|d| d.is_float())
                    .ok_or_else(|| format!("stash_type {stash_type} is not a float type"))?;
                let stats = match shape {
                    Some(s) => {
                        let a = normalize_axis(*axis, s.len())?;
                        Some(
                            s.iter()
                                .enumerate()
                                .map(|(i, d)| if i < a { d.clone() } else { Dim::Known(1) })
                                .collect(),
                        )
                    }
                    None => None,
                };
                vec![
                    x.info.clone(),
                    with_dtype(stash, stats.clone()),
                    with_dtype(stash, stats),
                ]
            }
            ReduceOp::CumSum { .. } => vec![x.info.clone()],
            ReduceOp::TopK { axis, k, .. } => {
                let k =
                    k.or_else(|| known_ints(optional(inputs, 1)).and_then(|v| v.first().copied()));
                let shape = match shape {
                    Some(s) => {
                        let a = normalize_axis(*axis, s.len())?;
                        if let (Some(k), Some(n)) = (k, s.get(a).and_then(Dim::known)) {
                            if k < 0 || k as usize > n {
                                return Err(format!(
                                    "k = {k} is out of range for an axis of {n} elements"
                                ));
                            }
                        }
                        let mut out = s.clone();
                        out[a] = k.map_or(Dim::Unknown, |k| Dim::Known(k.max(0) as usize));
                        Some(out)
                    }
                    None => None,
                };
                vec![like(x, shape.clone()), with_dtype(DType::I64, shape)]
            }
            ReduceOp::LpNormalization { axis, .. } => {
                float_only("LpNormalization")?;
                if let Some(s) = shape {
                    normalize_axis(*axis, s.len())?;
                }
                vec![x.info.clone()]
            }
            ReduceOp::MeanVarianceNormalization { axes } => {
                float_only("MeanVarianceNormalization")?;
                if let Some(s) = shape {
                    reduced_shape(s, axes, true)?;
                }
                vec![x.info.clone()]
            }
        })
    }
}

/// The shape after reducing `axes` (all axes when empty); an error for axes out of
/// range or repeated.
pub fn reduced_shape(shape: &[Dim], axes: &[i64], keepdims: bool) -> Result<Vec<Dim>, String> {
    let rank = shape.len();
    let mut reduce = vec![axes.is_empty(); rank];
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        if reduce[n] {
            return Err(format!("axis {a} is repeated"));
        }
        reduce[n] = true;
    }
    Ok(shape
        .iter()
        .zip(&reduce)
        .filter_map(|(d, &r)| match (r, keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(op_type: &'static str, opset: i64) -> NodeContext<'static> {
        NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 1,
            num_outputs: 1,
        }
    }

    fn known(s: &[usize]) -> Vec<Dim> {
        s.iter().map(|&d| Dim::Known(d)).collect()
    }

    #[test]
    fn parse_fills_opset_defaults() {
        let none = Attributes::default();
        let old = ReduceOp::parse(&ctx("Softmax", 11), &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            old,
            ReduceOp::Softmax {
                axis: 1,
                coerce_2d: true
            }
        );
        let new = ReduceOp::parse(&ctx("Softmax", 13), &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            new,
            ReduceOp::Softmax {
                axis: -1,
                coerce_2d: false
            }
        );
        let attrs = Attributes::new(vec![
            ("axes".into(), Attr::Ints(vec![1])),
            ("keepdims".into(), Attr::Int(0)),
        ]);
        let r = ReduceOp::parse(&ctx("ReduceMean", 13), &attrs)
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            ReduceOp::Reduce {
                kind: ReduceKind::Mean,
                axes: Some(vec![1]),
                keepdims: false,
                noop_with_empty_axes: false
            }
        );
        assert!(ReduceOp::parse(&ctx("TopK", 1), &none).unwrap().is_err());
        assert!(ReduceOp::parse(&ctx("Relu", 13), &none).is_none());
        let attrs = r.attributes();
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn reduce_shapes() {
        let s = vec![Dim::Symbol("n".into()), Dim::Known(3), Dim::Known(4)];
        assert_eq!(
            reduced_shape(&s, &[-1], true).unwrap(),
            vec![Dim::Symbol("n".into()), Dim::Known(3), Dim::Known(1)]
        );
        assert_eq!(reduced_shape(&s, &[], false).unwrap(), vec![]);
        assert!(reduced_shape(&s, &[3], false).is_err());
        assert!(reduced_shape(&s, &[1, -2], false).is_err());
        let info = ValueInfo::new(DType::F32, s.clone());
        let axes = slimnet_tensor::Tensor::from_vec(vec![1], vec![0i64]).unwrap();
        let axes_info = ValueInfo::of_tensor(&axes);
        let op = ReduceOp::Reduce {
            kind: ReduceKind::Sum,
            axes: None,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        let ins = [
            Some(InferInput {
                info: &info,
                value: None,
            }),
            Some(InferInput {
                info: &axes_info,
                value: Some(&axes),
            }),
        ];
        assert_eq!(op.infer(&ins).unwrap()[0].shape, Some(known(&[3, 4])));
        let ins = [
            Some(InferInput {
                info: &info,
                value: None,
            }),
            Some(InferInput {
                info: &axes_info,
                value: None,
            }),
        ];
        assert_eq!(
            op.infer(&ins).unwrap()[0].shape,
            Some(vec![Dim::Unknown, Dim::Unknown])
        );
    }

    #[test]
    fn topk_and_layernorm_shapes() {
        let info = ValueInfo::new(DType::F32, known(&[2, 5]));
        let k = slimnet_tensor::Tensor::from_vec(vec![1], vec![3i64]).unwrap();
        let k_info = ValueInfo::of_tensor(&k);
        let op = ReduceOp::TopK {
            axis: -1,
            largest: true,
            sorted: true,
            k: None,
        };
        let out = op
            .infer(&[
                Some(InferInput {
                    info: &info,
                    value: None,
                }),
                Some(InferInput {
                    info: &k_info,
                    value: Some(&k),
                }),
            ])
            .unwrap();
        assert_eq!(out[0].shape, Some(known(&[2, 3])));
        assert_eq!(out[1].dtype, Some(DType::I64));
        let ln = ReduceOp::LayerNormalization {
            axis: 1,
            epsilon: 1e-5,
            stash_type: 1,
        };
        let out = ln
            .infer(&[Some(InferInput {
                info: &info,
                value: None,
            })])
            .unwrap();
        assert_eq!(out[1], ValueInfo::new(DType::F32, known(&[2, 1])));
    }
}
