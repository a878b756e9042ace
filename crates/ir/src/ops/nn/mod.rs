//! Neural-network layers: convolutions, pooling, Gemm and MatMul, normalizations,
//! LRN, Resize and Upsample, Pad, DepthToSpace and SpaceToDepth, Einsum.
//!
//! Attributes whose ONNX default depends on the input's rank (strides, dilations,
//! pads) are kept as written, with an empty list meaning "the default along every
//! axis"; [`Window::resolve`] fills them in once the rank is known.

mod conv;
mod linalg;
mod norm;
mod pool;
mod resize;

pub use conv::{AutoPad, Conv, ConvTranspose, ResolvedWindow, Window};
pub use linalg::{einsum_plan, EinsumPlan, Gemm};
pub use norm::{BatchNormalization, GroupNormalization, Lrn};
pub use pool::{AveragePool, LpPool, MaxPool};
pub use resize::{
    resize_output_shape, CoordinateMode, KeepAspectRatio, NearestMode, Pad, PadMode, Resize,
    ResizeMode, ResizeParams, Upsample,
};

use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// Neural-network operators.
#[derive(Clone, Debug, PartialEq)]
pub enum NnOp {
    Conv(Conv),
    ConvTranspose(ConvTranspose),
    MaxPool(MaxPool),
    AveragePool(AveragePool),
    LpPool(LpPool),
    GlobalAveragePool,
    GlobalMaxPool,
    Gemm(Gemm),
    MatMul,
    BatchNormalization(BatchNormalization),
    InstanceNormalization {
        epsilon: f32,
    },
    GroupNormalization(GroupNormalization),
    Lrn(Lrn),
    Resize(Resize),
    Upsample(Upsample),
    Pad(Pad),
    /// `crd` selects the `CRD` ordering of the `mode` attribute (opset 11+); `DCR` otherwise.
    DepthToSpace {
        blocksize: i64,
        crd: bool,
    },
    /// `crd` selects the `CRD` ordering (opset 25+ `mode` attribute); `DCR` otherwise.
    SpaceToDepth {
        blocksize: i64,
        crd: bool,
    },
    Einsum {
        equation: String,
    },
}

fn block_mode(attrs: &Attributes) -> Result<bool, AttrError> {
    match attrs.string("mode", "DCR")?.as_str() {
        "DCR" => Ok(false),
        "CRD" => Ok(true),
        other => Err(AttrError::new(
            "mode",
            format!("'{other}' is neither DCR nor CRD"),
        )),
    }
}

fn positive(attrs: &Attributes, name: &str) -> Result<i64, AttrError> {
    let v = attrs.int_required(name)?;
    if v <= 0 {
        return Err(AttrError::new(name, format!("must be positive, got {v}")));
    }
    Ok(v)
}

impl NnOp {
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let op = match ctx.op_type {
            "Conv" => Conv::parse(attrs).map(NnOp::Conv),
            "ConvTranspose" => ConvTranspose::parse(attrs).map(NnOp::ConvTranspose),
            "MaxPool" => MaxPool::parse(attrs).map(NnOp::MaxPool),
            "AveragePool" => AveragePool::parse(attrs).map(NnOp::AveragePool),
            "LpPool" => LpPool::parse(attrs).map(NnOp::LpPool),
            "GlobalAveragePool" => Ok(NnOp::GlobalAveragePool),
            "GlobalMaxPool" => Ok(NnOp::GlobalMaxPool),
            "Gemm" => Gemm::parse(ctx, attrs).map(NnOp::Gemm),
            "MatMul" => Ok(NnOp::MatMul),
            "BatchNormalization" => {
                BatchNormalization::parse(ctx, attrs).map(NnOp::BatchNormalization)
            }
            "InstanceNormalization" => attrs
                .float("epsilon", 1e-5)
                .map(|epsilon| NnOp::InstanceNormalization { epsilon }),
            "GroupNormalization" => {
                GroupNormalization::parse(ctx, attrs).map(NnOp::GroupNormalization)
            }
            "LRN" => Lrn::parse(attrs).map(NnOp::Lrn),
            "Resize" => Resize::parse(ctx, attrs).map(NnOp::Resize),
            "Upsample" => Upsample::parse(ctx, attrs).map(NnOp::Upsample),
            "Pad" => Pad::parse(ctx, attrs).map(NnOp::Pad),
            "DepthToSpace" => (|| {
                Ok(NnOp::DepthToSpace {
                    blocksize: positive(attrs, "blocksize")?,
                    crd: block_mode(attrs)?,
                })
            })(),
            "SpaceToDepth" => (|| {
                Ok(NnOp::SpaceToDepth {
                    blocksize: positive(attrs, "blocksize")?,
                    crd: block_mode(attrs)?,
                })
            })(),
            "Einsum" => (|| {
                let equation = attrs
                    .string_opt("equation")?
                    .ok_or_else(|| AttrError::new("equation", "required but missing"))?;
                Ok(NnOp::Einsum { equation })
            })(),
            _ => return None,
        };
        Some(op)
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            NnOp::Conv(_) => "Conv",
            NnOp::ConvTranspose(_) => "ConvTranspose",
            NnOp::MaxPool(_) => "MaxPool",
            NnOp::AveragePool(_) => "AveragePool",
            NnOp::LpPool(_) => "LpPool",
            NnOp::GlobalAveragePool => "GlobalAveragePool",
            NnOp::GlobalMaxPool => "GlobalMaxPool",
            NnOp::Gemm(_) => "Gemm",
            NnOp::MatMul => "MatMul",
            NnOp::BatchNormalization(_) => "BatchNormalization",
            NnOp::InstanceNormalization { .. } => "InstanceNormalization",
            NnOp::GroupNormalization(_) => "GroupNormalization",
            NnOp::Lrn(_) => "LRN",
            NnOp::Resize(_) => "Resize",
            NnOp::Upsample(_) => "Upsample",
            NnOp::Pad(_) => "Pad",
            NnOp::DepthToSpace { .. } => "DepthToSpace",
            NnOp::SpaceToDepth { .. } => "SpaceToDepth",
            NnOp::Einsum { .. } => "Einsum",
        }
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match self {
            NnOp::Conv(c) => c.attributes(),
            NnOp::ConvTranspose(c) => c.attributes(),
            NnOp::MaxPool(p) => p.attributes(),
            NnOp::AveragePool(p) => p.attributes(),
            NnOp::LpPool(p) => p.attributes(),
            NnOp::GlobalAveragePool | NnOp::GlobalMaxPool | NnOp::MatMul => Vec::new(),
            NnOp::Gemm(g) => g.attributes(),
            NnOp::BatchNormalization(b) => b.attributes(),
            NnOp::InstanceNormalization { epsilon } => {
                vec![("epsilon".into(), Attr::Float(*epsilon))]
            }
            NnOp::GroupNormalization(g) => g.attributes(),
            NnOp::Lrn(l) => l.attributes(),
            NnOp::Resize(r) => r.attributes(),
            NnOp::Upsample(u) => u.attributes(),
            NnOp::Pad(p) => p.attributes(),
            NnOp::DepthToSpace { blocksize, crd } | NnOp::SpaceToDepth { blocksize, crd } => {
                // `mode` exists only from opset 11 (DepthToSpace) and 25 (SpaceToDepth):
                // written only when it is not the default.
                let mut v = vec![("blocksize".into(), Attr::Int(*blocksize))];
                if *crd {
                    v.push(("mode".into(), Attr::String("CRD".into())));
                }
                v
            }
            NnOp::Einsum { equation } => vec![("equation".into(), Attr::String(equation.clone()))],
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            NnOp::Conv(c) => c.infer(inputs),
            NnOp::ConvTranspose(c) => c.infer(inputs),
            NnOp::MaxPool(p) => p.infer(inputs),
            NnOp::AveragePool(p) => p.window.infer_pool(inputs, 1),
            NnOp::LpPool(p) => p.window.infer_pool(inputs, 1),
            NnOp::GlobalAveragePool | NnOp::GlobalMaxPool => pool::infer_global_pool(inputs),
            NnOp::Gemm(g) => g.infer(inputs),
            NnOp::MatMul => linalg::infer_matmul(inputs),
            NnOp::BatchNormalization(b) => b.infer(inputs),
            NnOp::InstanceNormalization { .. } => norm::infer_same(inputs, true),
            NnOp::GroupNormalization(_) => norm::infer_same(inputs, true),
            NnOp::Lrn(_) => norm::infer_same(inputs, true),
            NnOp::Resize(r) => r.infer(inputs),
            NnOp::Upsample(u) => u.infer(inputs),
            NnOp::Pad(p) => p.infer(inputs),
            NnOp::DepthToSpace { blocksize, .. } => {
                norm::infer_depth_space(inputs, *blocksize, true)
            }
            NnOp::SpaceToDepth { blocksize, .. } => {
                norm::infer_depth_space(inputs, *blocksize, false)
            }
            NnOp::Einsum { equation } => linalg::infer_einsum(equation, inputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dim;
    use slimnet_tensor::{DType, Tensor};

    fn ctx(op_type: &str, opset: i64) -> NodeContext<'_> {
        NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 0,
            num_outputs: 1,
        }
    }

    fn parse(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> NnOp {
        let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
        NnOp::parse(&ctx(op_type, opset), &attrs)
            .expect("nn op")
            .expect("valid attributes")
    }

    fn info(dims: Vec<Dim>) -> ValueInfo {
        ValueInfo {
            dtype: Some(DType::F32),
            shape: Some(dims),
        }
    }

    fn k(v: usize) -> Dim {
        Dim::Known(v)
    }

    fn sym(s: &str) -> Dim {
        Dim::Symbol(s.into())
    }

    #[test]
    fn attributes_round_trip_through_parse() {
        let cases = vec![
            parse(
                "Conv",
                13,
                vec![("strides", Attr::Ints(vec![2, 2])), ("group", Attr::Int(2))],
            ),
            parse(
                "ConvTranspose",
                13,
                vec![
                    ("output_shape", Attr::Ints(vec![9, 9])),
                    ("auto_pad", Attr::String("SAME_LOWER".into())),
                ],
            ),
            parse(
                "MaxPool",
                12,
                vec![
                    ("kernel_shape", Attr::Ints(vec![3])),
                    ("ceil_mode", Attr::Int(1)),
                    ("storage_order", Attr::Int(1)),
                ],
            ),
            parse(
                "AveragePool",
                19,
                vec![
                    ("kernel_shape", Attr::Ints(vec![2, 2])),
                    ("count_include_pad", Attr::Int(1)),
                ],
            ),
            parse(
                "LpPool",
                18,
                vec![
                    ("kernel_shape", Attr::Ints(vec![2, 2])),
                    ("p", Attr::Int(3)),
                ],
            ),
            parse(
                "Gemm",
                13,
                vec![("transB", Attr::Int(1)), ("alpha", Attr::Float(0.5))],
            ),
            parse(
                "BatchNormalization",
                15,
                vec![("training_mode", Attr::Int(1))],
            ),
            parse(
                "Resize",
                19,
                vec![
                    ("mode", Attr::String("cubic".into())),
                    ("axes", Attr::Ints(vec![2, 3])),
                ],
            ),
            parse("Resize", 10, vec![("mode", Attr::String("linear".into()))]),
            parse(
                "Pad",
                2,
                vec![
                    ("pads", Attr::Ints(vec![0, 1, 0, 1])),
                    ("mode", Attr::String("reflect".into())),
                ],
            ),
            parse(
                "Upsample",
                7,
                vec![("scales", Attr::Floats(vec![1.0, 2.0]))],
            ),
            parse(
                "DepthToSpace",
                13,
                vec![
                    ("blocksize", Attr::Int(2)),
                    ("mode", Attr::String("CRD".into())),
                ],
            ),
            parse(
                "Einsum",
                12,
                vec![("equation", Attr::String("ij,jk->ik".into()))],
            ),
            parse("LRN", 13, vec![("size", Attr::Int(3))]),
            parse("GroupNormalization", 21, vec![("num_groups", Attr::Int(2))]),
        ];
        for op in cases {
            let opset = match &op {
                NnOp::Resize(r) => r.opset,
                NnOp::Pad(p) => p.opset,
                NnOp::Upsample(u) => u.opset,
                NnOp::BatchNormalization(b) => b.opset,
                NnOp::GroupNormalization(g) => g.opset,
                _ => 19,
            };
            let attrs = Attributes::new(op.attributes());
            let again = NnOp::parse(&ctx(op.op_type(), opset), &attrs)
                .unwrap()
                .unwrap();
            assert_eq!(again, op);
        }
    }

    #[test]
    fn defaults_and_bad_attributes() {
        match parse("Resize", 10, vec![]) {
            NnOp::Resize(r) => {
                assert_eq!(r.coordinate_mode, CoordinateMode::Asymmetric);
                assert_eq!(r.nearest_mode, NearestMode::Simple);
            }
            other => panic!("{other:?}"),
        }
        match parse("Resize", 13, vec![]) {
            NnOp::Resize(r) => assert_eq!(r.coordinate_mode, CoordinateMode::HalfPixel),
            other => panic!("{other:?}"),
        }
        let bad = |op: &str, attrs: Vec<(&str, Attr)>| {
            let attrs =
                Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
            NnOp::parse(&ctx(op, 13), &attrs).unwrap().is_err()
        };
        assert!(bad("Conv", vec![("group", Attr::Int(0))]));
        assert!(bad("Conv", vec![("strides", Attr::Ints(vec![0]))]));
        assert!(bad("MaxPool", vec![]));
        assert!(bad("Conv", vec![("auto_pad", Attr::String("SAME".into()))]));
        assert!(bad(
            "DepthToSpace",
            vec![
                ("blocksize", Attr::Int(2)),
                ("mode", Attr::String("XYZ".into()))
            ]
        ));
        assert!(NnOp::parse(&ctx("Relu", 13), &Attributes::default()).is_none());
    }

    #[test]
    fn conv_keeps_the_symbolic_batch() {
        let op = parse(
            "Conv",
            13,
            vec![
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        );
        let x = info(vec![sym("N"), k(3), k(224), Dim::Unknown]);
        let w = info(vec![k(16), k(3), k(3), k(3)]);
        let out = op
            .infer(&[
                Some(InferInput {
                    info: &x,
                    value: None,
                }),
                Some(InferInput {
                    info: &w,
                    value: None,
                }),
            ])
            .unwrap();
        assert_eq!(
            out[0].shape,
            Some(vec![sym("N"), k(16), k(112), Dim::Unknown])
        );
        let w_bad = info(vec![k(16), k(4), k(3), k(3)]);
        assert!(op
            .infer(&[
                Some(InferInput {
                    info: &x,
                    value: None
                }),
                Some(InferInput {
                    info: &w_bad,
                    value: None
                })
            ])
            .is_err());
    }

    #[test]
    fn resize_and_pad_use_constant_inputs() {
        let op = parse("Resize", 13, vec![]);
        let x = info(vec![sym("N"), k(3), k(10), k(20)]);
        let scales = Tensor::from_vec(vec![4], vec![1f32, 1.0, 2.0, 0.5]).unwrap();
        let si = ValueInfo::of_tensor(&scales);
        let out = op
            .infer(&[
                Some(InferInput {
                    info: &x,
                    value: None,
                }),
                None,
                Some(InferInput {
                    info: &si,
                    value: Some(&scales),
                }),
            ])
            .unwrap();
        assert_eq!(out[0].shape, Some(vec![sym("N"), k(3), k(20), k(10)]));
        let pad = parse("Pad", 18, vec![]);
        let pads = Tensor::from_vec(vec![4], vec![1i64, 0, 2, -1]).unwrap();
        let pi = ValueInfo::of_tensor(&pads);
        let y = info(vec![sym("N"), k(5)]);
        let out = pad
            .infer(&[
                Some(InferInput {
                    info: &y,
                    value: None,
                }),
                Some(InferInput {
                    info: &pi,
                    value: Some(&pads),
                }),
            ])
            .unwrap();
        assert_eq!(out[0].shape, Some(vec![Dim::Unknown, k(4)]));
    }

    #[test]
    fn matmul_and_einsum_shapes() {
        let a = info(vec![sym("B"), k(1), k(4), k(5)]);
        let b = info(vec![k(3), k(5), k(6)]);
        let out = NnOp::MatMul
            .infer(&[
                Some(InferInput {
                    info: &a,
                    value: None,
                }),
                Some(InferInput {
                    info: &b,
                    value: None,
                }),
            ])
            .unwrap();
        assert_eq!(out[0].shape, Some(vec![sym("B"), k(3), k(4), k(6)]));
        let e = parse(
            "Einsum",
            12,
            vec![("equation", Attr::String("...ij,...jk".into()))],
        );
        let out = e
            .infer(&[
                Some(InferInput {
                    info: &a,
                    value: None,
                }),
                Some(InferInput {
                    info: &b,
                    value: None,
                }),
            ])
            .unwrap();
        assert_eq!(out[0].shape, Some(vec![sym("B"), k(3), k(4), k(6)]));
        let c = info(vec![k(7), k(6)]);
        assert!(NnOp::MatMul
            .infer(&[
                Some(InferInput {
                    info: &a,
                    value: None
                }),
                Some(InferInput {
                    info: &c,
                    value: None
                })
            ])
            .is_err());
    }
}
