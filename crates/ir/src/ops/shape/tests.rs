//! Parsing, attribute round trips, and inference with symbolic dimensions.

use slimnet_tensor::{DType, Tensor};

use super::{ScatterReduction, ShapeOp, SymInt};
use crate::{Attr, Attributes, Dim, InferInput, NodeContext, ValueInfo};

fn ctx(op_type: &str, opset: i64, outputs: usize) -> NodeContext<'_> {
    NodeContext {
        name: "n",
        op_type,
        domain: "",
        opset,
        num_inputs: 2,
        num_outputs: outputs,
    }
}

fn parse(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> Result<ShapeOp, crate::AttrError> {
    let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
    ShapeOp::parse(&ctx(op_type, opset, 2), &attrs).expect("a shape op")
}

fn sym(s: &str) -> Dim {
    Dim::Symbol(s.into())
}

fn k(n: usize) -> Dim {
    Dim::Known(n)
}

fn info(dims: Vec<Dim>) -> ValueInfo {
    ValueInfo {
        dtype: Some(DType::F32),
        shape: Some(dims),
    }
}

#[test]
fn parse_fills_defaults_and_respects_opsets() {
    assert_eq!(
        parse("Flatten", 13, vec![]).unwrap(),
        ShapeOp::Flatten { axis: 1 }
    );
    assert_eq!(
        parse("OneHot", 11, vec![]).unwrap(),
        ShapeOp::OneHot { axis: -1 }
    );
    assert!(parse("Concat", 13, vec![]).is_err());
    assert!(parse("Unsqueeze", 11, vec![]).is_err());
    assert_eq!(
        parse("Unsqueeze", 13, vec![]).unwrap(),
        ShapeOp::Unsqueeze { axes: None }
    );
    let old = parse("Squeeze", 11, vec![("axes", Attr::Ints(vec![0]))]).unwrap();
    assert_eq!(
        old,
        ShapeOp::Squeeze {
            axes: Some(vec![0])
        }
    );
    let split = parse("Split", 18, vec![("num_outputs", Attr::Int(2))]).unwrap();
    assert_eq!(
        split,
        ShapeOp::Split {
            axis: 0,
            split: None,
            num_outputs: Some(2),
            outputs: 2
        }
    );
    assert!(parse("Slice", 9, vec![]).is_err());
    assert!(parse(
        "ScatterND",
        18,
        vec![("reduction", Attr::String("sum".into()))]
    )
    .is_err());
    let c = parse("Constant", 13, vec![("value_ints", Attr::Ints(vec![1, 2]))]).unwrap();
    assert_eq!(
        c,
        ShapeOp::Constant {
            value: Tensor::from_vec(vec![2], vec![1i64, 2]).unwrap()
        }
    );
    assert!(parse("Constant", 13, vec![]).is_err());
    assert!(parse(
        "Constant",
        13,
        vec![
            ("value_int", Attr::Int(1)),
            ("value_float", Attr::Float(1.0))
        ]
    )
    .is_err());
    let cos = parse("ConstantOfShape", 9, vec![]).unwrap();
    assert_eq!(
        cos,
        ShapeOp::ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![0f32]).unwrap()
        }
    );
    assert!(parse("ReverseSequence", 10, vec![("batch_axis", Attr::Int(0))]).is_err());
}

#[test]
fn attributes_round_trip() {
    let ops = vec![
        ShapeOp::Reshape { allowzero: true },
        ShapeOp::Transpose {
            perm: Some(vec![1, 0]),
        },
        ShapeOp::Concat { axis: -1 },
        ShapeOp::Gather { axis: 1 },
        ShapeOp::GatherND { batch_dims: 1 },
        ShapeOp::ScatterElements {
            axis: 1,
            reduction: ScatterReduction::Min,
        },
        ShapeOp::ScatterND {
            reduction: ScatterReduction::Mul,
        },
        ShapeOp::Shape {
            start: 1,
            end: Some(-1),
        },
        ShapeOp::Trilu { upper: false },
        ShapeOp::EyeLike {
            dtype: Some(DType::I32),
            k: 2,
        },
        ShapeOp::Compress { axis: Some(0) },
        ShapeOp::Unique {
            axis: Some(1),
            sorted: false,
        },
        ShapeOp::ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![3i32]).unwrap(),
        },
    ];
    for op in ops {
        let attrs = Attributes::new(op.attributes());
        let back = ShapeOp::parse(&ctx(op.op_type(), 18, 2), &attrs)
            .unwrap()
            .unwrap();
        assert_eq!(back, op);
    }
    let old_split = parse("Split", 11, vec![("split", Attr::Ints(vec![1, 2]))]).unwrap();
    let back = ShapeOp::parse(
        &ctx("Split", 11, 2),
        &Attributes::new(old_split.attributes()),
    )
    .unwrap()
    .unwrap();
    assert_eq!(back, old_split);
}

#[test]
fn reshape_follows_symbols() {
    let x = info(vec![sym("N"), k(3), k(4)]);
    let target = Tensor::from_vec(vec![2], vec![0i64, -1]).unwrap();
    let t_info = ValueInfo::of_tensor(&target);
    let inputs = [
        Some(InferInput {
            info: &x,
            value: None,
        }),
        Some(InferInput {
            info: &t_info,
            value: Some(&target),
        }),
    ];
    let out = ShapeOp::Reshape { allowzero: false }
        .infer(&inputs)
        .unwrap();
    assert_eq!(out[0].shape, Some(vec![sym("N"), k(12)]));

    let y = info(vec![sym("N"), k(12)]);
    let target = Tensor::from_vec(vec![2], vec![12i64, -1]).unwrap();
    let inputs = [
        Some(InferInput {
            info: &y,
            value: None,
        }),
        Some(InferInput {
            info: &t_info,
            value: Some(&target),
        }),
    ];
    let out = ShapeOp::Reshape { allowzero: false }
        .infer(&inputs)
        .unwrap();
    assert_eq!(out[0].shape, Some(vec![k(12), sym("N")]));

    let z = info(vec![k(2), k(3)]);
    let target = Tensor::from_vec(vec![2], vec![4i64, -1]).unwrap();
    let inputs = [
        Some(InferInput {
            info: &z,
            value: None,
        }),
        Some(InferInput {
            info: &t_info,
            value: Some(&target),
        }),
    ];
    assert!(ShapeOp::Reshape { allowzero: false }
        .infer(&inputs)
        .is_err());
}

/// `Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))` keeps the batch symbol.
#[test]
fn shape_chain_keeps_the_batch_symbol() {
    let x = info(vec![sym("N"), k(3), k(4), k(4)]);
    let xi = Some(InferInput {
        info: &x,
        value: None,
    });
    let shape_op = ShapeOp::Shape {
        start: 0,
        end: None,
    };
    let shape_info = shape_op.infer(std::slice::from_ref(&xi)).unwrap().remove(0);
    let shape_val = shape_op
        .infer_sym_value(std::slice::from_ref(&xi), &[])
        .unwrap();
    assert_eq!(
        shape_val,
        vec![
            SymInt::Sym("N".into()),
            SymInt::Int(3),
            SymInt::Int(4),
            SymInt::Int(4)
        ]
    );

    let zero = Tensor::scalar(0i64);
    let zero_info = ValueInfo::of_tensor(&zero);
    let ins = [
        Some(InferInput {
            info: &shape_info,
            value: None,
        }),
        Some(InferInput {
            info: &zero_info,
            value: Some(&zero),
        }),
    ];
    let gathered = ShapeOp::Gather { axis: 0 }
        .infer_sym_value(&ins, &[Some(shape_val)])
        .unwrap();
    assert_eq!(gathered, vec![SymInt::Sym("N".into())]);

    let batch_info = info(vec![k(1)]);
    let minus_one = Tensor::from_vec(vec![1], vec![-1i64]).unwrap();
    let m_info = ValueInfo::of_tensor(&minus_one);
    let ins = [
        Some(InferInput {
            info: &batch_info,
            value: None,
        }),
        Some(InferInput {
            info: &m_info,
            value: Some(&minus_one),
        }),
    ];
    let target = ShapeOp::Concat { axis: 0 }
        .infer_sym_value(&ins, &[Some(gathered), None])
        .unwrap();
    assert_eq!(target, vec![SymInt::Sym("N".into()), SymInt::Int(-1)]);

    let t_info = info(vec![k(2)]);
    let ins = [
        xi,
        Some(InferInput {
            info: &t_info,
            value: None,
        }),
    ];
    let out = ShapeOp::Reshape { allowzero: false }
        .infer_with_sym(&ins, &[None, Some(target)])
        .unwrap();
    assert_eq!(out[0].shape, Some(vec![sym("N"), k(48)]));
}

#[test]
fn concat_split_and_slice_keep_what_they_can() {
    let a = info(vec![sym("N"), k(2)]);
    let b = info(vec![k(0), sym("C")]);
    let c = info(vec![k(3), Dim::Unknown]);
    let ins = [
        Some(InferInput {
            info: &a,
            value: None,
        }),
        Some(InferInput {
            info: &b,
            value: None,
        }),
    ];
    let out = ShapeOp::Concat { axis: 0 }.infer(&ins).unwrap();
    assert_eq!(out[0].shape, Some(vec![sym("N"), k(2)]));
    let ins = [
        Some(InferInput {
            info: &a,
            value: None,
        }),
        Some(InferInput {
            info: &c,
            value: None,
        }),
    ];
    let out = ShapeOp::Concat { axis: 0 }.infer(&ins).unwrap();
    assert_eq!(out[0].shape, Some(vec![Dim::Unknown, k(2)]));

    let x = info(vec![sym("N"), k(7)]);
    let ins = [Some(InferInput {
        info: &x,
        value: None,
    })];
    let out = ShapeOp::Split {
        axis: 1,
        split: None,
        num_outputs: Some(3),
        outputs: 3,
    }
    .infer(&ins)
    .unwrap();
    let dims: Vec<Dim> = out
        .iter()
        .map(|o| o.shape.as_ref().unwrap()[1].clone())
        .collect();
    assert_eq!(dims, vec![k(3), k(3), k(1)]);

    let op = ShapeOp::Slice {
        attrs: Some(super::SliceAttrs {
            starts: vec![1],
            ends: vec![-1],
            axes: Some(vec![1]),
        }),
    };
    assert_eq!(op.infer(&ins).unwrap()[0].shape, Some(vec![sym("N"), k(5)]));
}

#[test]
fn infer_value_of_shape_and_size() {
    let x = info(vec![k(2), k(5)]);
    let ins = [Some(InferInput {
        info: &x,
        value: None,
    })];
    let v = ShapeOp::Shape {
        start: 1,
        end: None,
    }
    .infer_value(&ins)
    .unwrap();
    assert_eq!(v[0], Tensor::from_vec(vec![1], vec![5i64]).unwrap());
    assert_eq!(
        ShapeOp::Size.infer_value(&ins).unwrap()[0],
        Tensor::scalar(10i64)
    );
}

/// Every op of the family against many combinations of known, symbolic and
/// unknown shapes and small values: inference may fail but never panics.
#[test]
fn inference_never_panics() {
    let ops = vec![
        ShapeOp::Reshape { allowzero: false },
        ShapeOp::Reshape { allowzero: true },
        ShapeOp::Flatten { axis: -2 },
        ShapeOp::Transpose { perm: None },
        ShapeOp::Transpose {
            perm: Some(vec![1, 0, 2]),
        },
        ShapeOp::Concat { axis: 1 },
        ShapeOp::Split {
            axis: 0,
            split: None,
            num_outputs: None,
            outputs: 2,
        },
        ShapeOp::Split {
            axis: -1,
            split: Some(vec![1, 1]),
            num_outputs: None,
            outputs: 2,
        },
        ShapeOp::Slice { attrs: None },
        ShapeOp::Gather { axis: -1 },
        ShapeOp::GatherElements { axis: 0 },
        ShapeOp::GatherND { batch_dims: 1 },
        ShapeOp::ScatterND {
            reduction: ScatterReduction::None,
        },
        ShapeOp::Squeeze { axes: None },
        ShapeOp::Unsqueeze { axes: None },
        ShapeOp::Expand,
        ShapeOp::Shape {
            start: -5,
            end: Some(5),
        },
        ShapeOp::Size,
        ShapeOp::Tile,
        ShapeOp::ConstantOfShape {
            value: Tensor::scalar(0u8),
        },
        ShapeOp::Range,
        ShapeOp::NonZero,
        ShapeOp::OneHot { axis: -3 },
        ShapeOp::Trilu { upper: true },
        ShapeOp::EyeLike { dtype: None, k: 0 },
        ShapeOp::Compress { axis: Some(-1) },
        ShapeOp::ReverseSequence {
            time_axis: 0,
            batch_axis: 1,
        },
        ShapeOp::Unique {
            axis: Some(2),
            sorted: true,
        },
    ];
    let shapes: Vec<Option<Vec<Dim>>> = vec![
        None,
        Some(vec![]),
        Some(vec![k(0)]),
        Some(vec![k(2)]),
        Some(vec![sym("N"), k(3)]),
        Some(vec![Dim::Unknown, k(1), k(4)]),
        Some(vec![k(2), k(3), k(4)]),
    ];
    let values: Vec<Option<Tensor>> = vec![
        None,
        Some(Tensor::scalar(-1i64)),
        Some(Tensor::from_vec(vec![0], Vec::<i64>::new()).unwrap()),
        Some(Tensor::from_vec(vec![2], vec![0i64, -1]).unwrap()),
        Some(Tensor::from_vec(vec![3], vec![3i64, -7, i64::MAX]).unwrap()),
        Some(Tensor::from_vec(vec![2], vec![i64::MIN, 2]).unwrap()),
    ];
    let mut count = 0;
    for op in &ops {
        for s0 in &shapes {
            for s1 in &shapes {
                for v in &values {
                    let i0 = ValueInfo {
                        dtype: Some(DType::F32),
                        shape: s0.clone(),
                    };
                    let i1 = match v {
                        Some(t) => ValueInfo::of_tensor(t),
                        None => ValueInfo {
                            dtype: Some(DType::I64),
                            shape: s1.clone(),
                        },
                    };
                    let ins = [
                        Some(InferInput {
                            info: &i0,
                            value: None,
                        }),
                        Some(InferInput {
                            info: &i1,
                            value: v.as_ref(),
                        }),
                        Some(InferInput {
                            info: &i1,
                            value: v.as_ref(),
                        }),
                    ];
                    let _ = op.infer(&ins);
                    let syms = [
                        Some(vec![SymInt::Int(-1)]),
                        Some(vec![SymInt::Sym("N".into()), SymInt::Int(0)]),
                    ];
                    let _ = op.infer_with_sym(&ins, &syms);
                    let _ = op.infer_sym_value(&ins, &syms);
                    let _ = op.infer_value(&ins);
                    count += 1;
                }
            }
        }
    }
    assert!(count > 1000);
}
