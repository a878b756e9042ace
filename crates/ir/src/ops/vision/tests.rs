use slimnet_tensor::{DType, Tensor};

use super::*;
use crate::Dim;

fn ctx(op_type: &str, opset: i64) -> NodeContext<'_> {
    NodeContext {
        name: "n",
        op_type,
        domain: "",
        opset,
        num_inputs: 2,
        num_outputs: 1,
    }
}

fn parse(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> Result<VisionOp, AttrError> {
    let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
    VisionOp::parse(&ctx(op_type, opset), &attrs).expect("in the family")
}

fn s(v: &str) -> Attr {
    Attr::String(v.into())
}

fn k(d: usize) -> Dim {
    Dim::Known(d)
}

fn sym(n: &str) -> Dim {
    Dim::Symbol(n.into())
}

fn info(dtype: DType, dims: Vec<Dim>) -> ValueInfo {
    ValueInfo::new(dtype, dims)
}

fn infer(
    op: &VisionOp,
    infos: &[&ValueInfo],
    values: &[Option<&Tensor>],
) -> Result<Vec<ValueInfo>, String> {
    let inputs: Vec<Option<InferInput>> = infos
        .iter()
        .enumerate()
        .map(|(i, info)| {
            Some(InferInput {
                info,
                value: values.get(i).copied().flatten(),
            })
        })
        .collect();
    op.infer(&inputs)
}

#[test]
fn grid_sample_mode_names_follow_the_opset() {
    let old = parse("GridSample", 16, vec![]).unwrap();
    let VisionOp::GridSample(g) = &old else {
        panic!()
    };
    assert_eq!(
        (g.mode, g.padding_mode, g.align_corners, g.legacy),
        (GridSampleMode::Linear, GridPadding::Zeros, false, true)
    );
    let new = parse(
        "GridSample",
        20,
        vec![("mode", s("cubic")), ("padding_mode", s("reflection"))],
    )
    .unwrap();
    let VisionOp::GridSample(g) = &new else {
        panic!()
    };
    assert_eq!(
        (g.mode, g.padding_mode, g.legacy),
        (GridSampleMode::Cubic, GridPadding::Reflection, false)
    );
    assert!(parse("GridSample", 20, vec![("mode", s("bilinear"))]).is_err());
    assert!(parse("GridSample", 16, vec![("mode", s("cubic"))]).is_err());
    assert!(parse("GridSample", 20, vec![("padding_mode", s("wrap"))]).is_err());
    // Export writes the spelling of the opset the op came from.
    let mode_of = |op: &VisionOp| {
        op.attributes()
            .into_iter()
            .find(|(n, _)| n == "mode")
            .map(|(_, a)| match a {
                Attr::String(m) => m,
                _ => panic!(),
            })
    };
    assert_eq!(mode_of(&old).as_deref(), Some("bilinear"));
    assert_eq!(mode_of(&new).as_deref(), Some("cubic"));
}

#[test]
fn attributes_round_trip_through_parse() {
    type Case<'a> = (&'a str, i64, Vec<(&'a str, Attr)>);
    let cases: Vec<Case> = vec![
        (
            "GridSample",
            22,
            vec![
                ("mode", s("nearest")),
                ("padding_mode", s("border")),
                ("align_corners", Attr::Int(1)),
            ],
        ),
        ("GridSample", 16, vec![("mode", s("bicubic"))]),
        ("AffineGrid", 20, vec![("align_corners", Attr::Int(1))]),
        (
            "Col2Im",
            18,
            vec![
                ("dilations", Attr::Ints(vec![1, 2])),
                ("pads", Attr::Ints(vec![0, 1, 0, 1])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        ),
        ("Col2Im", 18, vec![]),
        (
            "RoiAlign",
            16,
            vec![
                ("coordinate_transformation_mode", s("output_half_pixel")),
                ("mode", s("max")),
                ("output_height", Attr::Int(5)),
                ("sampling_ratio", Attr::Int(2)),
                ("spatial_scale", Attr::Float(0.25)),
            ],
        ),
        ("RoiAlign", 10, vec![("output_width", Attr::Int(3))]),
        (
            "NonMaxSuppression",
            11,
            vec![("center_point_box", Attr::Int(1))],
        ),
        (
            "MaxUnpool",
            11,
            vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        ),
        ("CenterCropPad", 18, vec![("axes", Attr::Ints(vec![-2, 0]))]),
        ("CenterCropPad", 18, vec![]),
        (
            "CumProd",
            26,
            vec![("exclusive", Attr::Int(1)), ("reverse", Attr::Int(1))],
        ),
        ("Det", 22, vec![]),
    ];
    for (op_type, opset, attrs) in cases {
        let op = parse(op_type, opset, attrs).unwrap();
        assert_eq!(op.op_type(), op_type);
        let written = op.attributes();
        let back = VisionOp::parse(&ctx(op_type, opset), &Attributes::new(written))
            .unwrap()
            .unwrap();
        assert_eq!(back, op, "{op_type}");
    }
}

#[test]
fn roi_align_coordinate_mode_exists_from_opset_16() {
    let VisionOp::RoiAlign(old) = parse("RoiAlign", 10, vec![]).unwrap() else {
        panic!()
    };
    assert!(!old.half_pixel && !old.has_coordinate_mode);
    assert!(!old
        .attributes()
        .iter()
        .any(|(n, _)| n == "coordinate_transformation_mode"));
    let VisionOp::RoiAlign(new) = parse("RoiAlign", 16, vec![]).unwrap() else {
        panic!()
    };
    assert!(new.half_pixel && !new.max);
    assert_eq!(
        (
            new.output_height,
            new.output_width,
            new.sampling_ratio,
            new.spatial_scale
        ),
        (1, 1, 0, 1.0)
    );
    assert!(parse("RoiAlign", 16, vec![("mode", s("min"))]).is_err());
    assert!(parse("RoiAlign", 16, vec![("output_height", Attr::Int(-1))]).is_err());
}

#[test]
fn bad_attributes_are_errors() {
    assert!(parse("MaxUnpool", 11, vec![]).is_err());
    assert!(parse("MaxUnpool", 11, vec![("kernel_shape", Attr::Ints(vec![0]))]).is_err());
    assert!(parse("Col2Im", 18, vec![("strides", Attr::Ints(vec![0, 1]))]).is_err());
    assert!(parse("Col2Im", 18, vec![("pads", Attr::Ints(vec![-1, 0, 0, 0]))]).is_err());
    assert!(parse(
        "NonMaxSuppression",
        11,
        vec![("center_point_box", Attr::Int(2))]
    )
    .is_err());
    assert!(parse("AffineGrid", 20, vec![("align_corners", s("yes"))]).is_err());
    let attrs = Attributes::default();
    assert!(VisionOp::parse(&ctx("Relu", 13), &attrs).is_none());
}

#[test]
fn grid_sample_keeps_symbolic_dims() {
    let op = parse("GridSample", 20, vec![]).unwrap();
    let x = info(DType::F32, vec![sym("n"), k(3), k(8), k(8)]);
    let grid = info(DType::F32, vec![Dim::Unknown, sym("h"), k(5), k(2)]);
    let out = infer(&op, &[&x, &grid], &[]).unwrap();
    assert_eq!(
        out[0],
        info(DType::F32, vec![sym("n"), k(3), sym("h"), k(5)])
    );
    let grid3 = info(DType::F32, vec![k(1), k(2), k(3), k(4), k(3)]);
    let x3 = info(DType::F16, vec![k(1), k(2), k(4), k(4), k(4)]);
    assert_eq!(
        infer(&op, &[&x3, &grid3], &[]).unwrap()[0].shape,
        Some(vec![k(1), k(2), k(2), k(3), k(4)])
    );
    // Opset 16 takes 4-D input only; the grid's last axis must match the rank.
    let old = parse("GridSample", 16, vec![]).unwrap();
    assert!(infer(&old, &[&x3, &grid3], &[]).is_err());
    let bad = info(DType::F32, vec![k(1), k(5), k(5), k(3)]);
    assert!(infer(&op, &[&x, &bad], &[]).is_err());
    let int_grid = info(DType::I64, vec![k(1), k(5), k(5), k(2)]);
    assert!(infer(&op, &[&x, &int_grid], &[]).is_err());
}

#[test]
fn affine_grid_uses_the_constant_size() {
    let op = parse("AffineGrid", 20, vec![]).unwrap();
    let theta = info(DType::F32, vec![sym("n"), k(2), k(3)]);
    let size_t = Tensor::from_vec(vec![4], vec![2i64, 3, 5, 7]).unwrap();
    let size = ValueInfo::of_tensor(&size_t);
    let out = infer(&op, &[&theta, &size], &[None, Some(&size_t)]).unwrap();
    assert_eq!(out[0], info(DType::F32, vec![k(2), k(5), k(7), k(2)]));
    let out = infer(&op, &[&theta, &size], &[]).unwrap();
    assert_eq!(
        out[0].shape,
        Some(vec![sym("n"), Dim::Unknown, Dim::Unknown, k(2)])
    );
    let theta3 = info(DType::F32, vec![k(2), k(3), k(4)]);
    assert!(infer(&op, &[&theta3, &size], &[None, Some(&size_t)]).is_err());
}

#[test]
fn col2im_shape_from_image_and_block() {
    let op = parse("Col2Im", 18, vec![("strides", Attr::Ints(vec![2, 2]))]).unwrap();
    let x = info(DType::F32, vec![sym("n"), k(18), k(4)]);
    let image_t = Tensor::from_vec(vec![2], vec![5i64, 5]).unwrap();
    let block_t = Tensor::from_vec(vec![2], vec![3i64, 3]).unwrap();
    let (image, block) = (
        ValueInfo::of_tensor(&image_t),
        ValueInfo::of_tensor(&block_t),
    );
    let out = infer(
        &op,
        &[&x, &image, &block],
        &[None, Some(&image_t), Some(&block_t)],
    )
    .unwrap();
    assert_eq!(out[0].shape, Some(vec![sym("n"), k(2), k(5), k(5)]));
    let out = infer(&op, &[&x, &image, &block], &[]).unwrap();
    assert_eq!(
        out[0].shape,
        Some(vec![sym("n"), Dim::Unknown, Dim::Unknown, Dim::Unknown])
    );
    // 5 blocks do not fit the (5 - 3) / 2 + 1 = 2 per axis.
    let wrong = info(DType::F32, vec![k(1), k(18), k(5)]);
    assert!(infer(
        &op,
        &[&wrong, &image, &block],
        &[None, Some(&image_t), Some(&block_t)]
    )
    .is_err());
}

#[test]
fn roi_nms_det_cumprod_shapes() {
    let roi = parse(
        "RoiAlign",
        16,
        vec![
            ("output_height", Attr::Int(7)),
            ("output_width", Attr::Int(5)),
        ],
    )
    .unwrap();
    let x = info(DType::F32, vec![k(1), k(256), sym("h"), sym("w")]);
    let rois = info(DType::F32, vec![sym("r"), k(4)]);
    let idx = info(DType::I64, vec![Dim::Unknown]);
    let out = infer(&roi, &[&x, &rois, &idx], &[]).unwrap();
    assert_eq!(out[0], info(DType::F32, vec![sym("r"), k(256), k(7), k(5)]));

    let nms = parse("NonMaxSuppression", 11, vec![]).unwrap();
    let boxes = info(DType::F32, vec![k(1), k(6), k(4)]);
    let scores = info(DType::F32, vec![k(1), k(2), k(6)]);
    let out = infer(&nms, &[&boxes, &scores], &[]).unwrap();
    assert_eq!(out[0], info(DType::I64, vec![Dim::Unknown, k(3)]));
    let scores_bad = info(DType::F32, vec![k(1), k(2), k(5)]);
    assert!(infer(&nms, &[&boxes, &scores_bad], &[]).is_err());

    let det = VisionOp::Det;
    let m = info(DType::F64, vec![sym("b"), k(3), k(3)]);
    assert_eq!(
        infer(&det, &[&m], &[]).unwrap()[0],
        info(DType::F64, vec![sym("b")])
    );
    assert!(infer(&det, &[&info(DType::F32, vec![k(2), k(3)])], &[]).is_err());
    assert!(infer(&det, &[&info(DType::I32, vec![k(2), k(2)])], &[]).is_err());

    let cp = parse("CumProd", 26, vec![]).unwrap();
    let v = info(DType::I32, vec![sym("n"), k(3)]);
    let axis_t = Tensor::scalar(2i64);
    let axis = ValueInfo::of_tensor(&axis_t);
    assert_eq!(infer(&cp, &[&v, &axis], &[]).unwrap()[0], v);
    assert!(infer(&cp, &[&v, &axis], &[None, Some(&axis_t)]).is_err());
}

#[test]
fn max_unpool_and_center_crop_pad_shapes() {
    let op = parse(
        "MaxUnpool",
        11,
        vec![
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    )
    .unwrap();
    let x = info(DType::F32, vec![sym("n"), k(3), k(2), Dim::Unknown]);
    let i = info(DType::I64, vec![sym("n"), k(3), k(2), Dim::Unknown]);
    let out = infer(&op, &[&x, &i], &[]).unwrap();
    assert_eq!(out[0].shape, Some(vec![sym("n"), k(3), k(4), Dim::Unknown]));
    let shape_t = Tensor::from_vec(vec![4], vec![1i64, 3, 5, 5]).unwrap();
    let shape = ValueInfo::of_tensor(&shape_t);
    let out = infer(&op, &[&x, &i, &shape], &[None, None, Some(&shape_t)]).unwrap();
    assert_eq!(out[0].shape, Some(vec![k(1), k(3), k(5), k(5)]));
    let small = Tensor::from_vec(vec![4], vec![1i64, 3, 3, 5]).unwrap();
    assert!(infer(&op, &[&x, &i, &shape], &[None, None, Some(&small)]).is_err());

    let ccp = parse("CenterCropPad", 18, vec![("axes", Attr::Ints(vec![-1, 1]))]).unwrap();
    let x = info(DType::U8, vec![sym("n"), k(20), k(10), k(3)]);
    let target_t = Tensor::from_vec(vec![2], vec![2i64, 16]).unwrap();
    let target = ValueInfo::of_tensor(&target_t);
    let out = infer(&ccp, &[&x, &target], &[None, Some(&target_t)]).unwrap();
    assert_eq!(out[0], info(DType::U8, vec![sym("n"), k(16), k(10), k(2)]));
    let out = infer(&ccp, &[&x, &target], &[]).unwrap();
    assert_eq!(
        out[0].shape,
        Some(vec![sym("n"), Dim::Unknown, k(10), Dim::Unknown])
    );
    let three = ValueInfo::known(DType::I64, &[3]);
    assert!(infer(&ccp, &[&x, &three], &[]).is_err());
}
