//! Hand-computed cases, error paths, and a property test that no input makes a
//! kernel of this family panic.

use proptest::prelude::*;
use slimnet_ir::ops::shape::{ScatterReduction, SliceAttrs};
use slimnet_ir::ops::ShapeOp;
use slimnet_tensor::{DType, Tensor, TensorData};

use super::run;

fn t<T: slimnet_tensor::Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn i64s(v: &[i64]) -> Tensor {
    t(&[v.len()], v.to_vec())
}

fn strings(shape: &[usize], v: &[&str]) -> Tensor {
    Tensor::new(
        shape.to_vec(),
        TensorData::String(v.iter().map(|s| s.to_string()).collect()),
    )
    .unwrap()
}

fn run1(op: ShapeOp, inputs: &[&Tensor]) -> Result<Tensor, String> {
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(|&x| Some(x)).collect();
    run(&op, &ins, 1).map(|mut v| v.remove(0))
}

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    t(shape, (0..n as i64).collect())
}

#[test]
fn reshape_copies_zero_and_infers_minus_one() {
    let x = iota(&[2, 3, 4]);
    let y = run1(
        ShapeOp::Reshape { allowzero: false },
        &[&x, &i64s(&[0, -1])],
    )
    .unwrap();
    assert_eq!(y.shape(), &[2, 12]);
    assert!(run1(
        ShapeOp::Reshape { allowzero: false },
        &[&x, &i64s(&[5, -1])]
    )
    .is_err());
    assert!(run1(
        ShapeOp::Reshape { allowzero: false },
        &[&x, &i64s(&[-1, -1])]
    )
    .is_err());
    assert!(run1(
        ShapeOp::Reshape { allowzero: false },
        &[&x, &i64s(&[0, 0, 0, 0])]
    )
    .is_err());
    let empty = iota(&[0, 3]);
    let y = run1(
        ShapeOp::Reshape { allowzero: true },
        &[&empty, &i64s(&[3, 0])],
    )
    .unwrap();
    assert_eq!(y.shape(), &[3, 0]);
}

#[test]
fn transpose_default_reverses() {
    let x = iota(&[2, 3]);
    let y = run1(ShapeOp::Transpose { perm: None }, &[&x]).unwrap();
    assert_eq!(y, t(&[3, 2], vec![0i64, 3, 1, 4, 2, 5]));
    assert!(run1(
        ShapeOp::Transpose {
            perm: Some(vec![0, 0])
        },
        &[&x]
    )
    .is_err());
}

#[test]
fn concat_and_split_round_trip_strings() {
    let a = strings(&[2, 1], &["a", "b"]);
    let b = strings(&[2, 2], &["c", "d", "e", "f"]);
    let y = run1(ShapeOp::Concat { axis: -1 }, &[&a, &b]).unwrap();
    assert_eq!(y, strings(&[2, 3], &["a", "c", "d", "b", "e", "f"]));
    let parts = run(
        &ShapeOp::Split {
            axis: 1,
            split: Some(vec![1, 2]),
            num_outputs: None,
            outputs: 2,
        },
        &[Some(&y)],
        2,
    )
    .unwrap();
    assert_eq!(parts, vec![a, b]);
}

#[test]
fn split_num_outputs_makes_a_smaller_last_part() {
    let x = iota(&[7]);
    let op = ShapeOp::Split {
        axis: 0,
        split: None,
        num_outputs: Some(4),
        outputs: 4,
    };
    let parts = run(&op, &[Some(&x)], 4).unwrap();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    assert_eq!(lens, vec![2, 2, 2, 1]);
    let op = ShapeOp::Split {
        axis: 0,
        split: None,
        num_outputs: None,
        outputs: 3,
    };
    assert!(run(&op, &[Some(&x)], 3).is_err());
}

#[test]
fn slice_negative_steps_and_clamping() {
    let x = iota(&[10]);
    let op = ShapeOp::Slice { attrs: None };
    let y = run1(
        op.clone(),
        &[
            &x,
            &i64s(&[-1]),
            &i64s(&[i64::MIN]),
            &i64s(&[0]),
            &i64s(&[-3]),
        ],
    )
    .unwrap();
    assert_eq!(y, t(&[4], vec![9i64, 6, 3, 0]));
    let y = run1(op.clone(), &[&x, &i64s(&[2]), &i64s(&[1000])]).unwrap();
    assert_eq!(y.len(), 8);
    assert!(run1(
        op.clone(),
        &[&x, &i64s(&[0]), &i64s(&[1]), &i64s(&[0]), &i64s(&[0])]
    )
    .is_err());
    assert!(run1(op, &[&x, &i64s(&[0]), &i64s(&[1]), &i64s(&[1])]).is_err());
    let legacy = ShapeOp::Slice {
        attrs: Some(SliceAttrs {
            starts: vec![1],
            ends: vec![3],
            axes: None,
        }),
    };
    assert_eq!(run1(legacy, &[&x]).unwrap(), t(&[2], vec![1i64, 2]));
}

#[test]
fn gather_family() {
    let x = iota(&[3, 2]);
    let y = run1(ShapeOp::Gather { axis: 0 }, &[&x, &t(&[2], vec![-1i32, 0])]).unwrap();
    assert_eq!(y, t(&[2, 2], vec![4i64, 5, 0, 1]));
    assert!(run1(ShapeOp::Gather { axis: 0 }, &[&x, &i64s(&[3])]).is_err());
    let y = run1(ShapeOp::Gather { axis: 1 }, &[&x, &Tensor::scalar(1i64)]).unwrap();
    assert_eq!(y, t(&[3], vec![1i64, 3, 5]));
    let idx = t(&[1, 2], vec![1i64, 0]);
    let y = run1(ShapeOp::GatherElements { axis: 0 }, &[&x, &idx]).unwrap();
    assert_eq!(y, t(&[1, 2], vec![2i64, 1]));
    let nd = t(&[2, 2], vec![0i64, 1, 2, 0]);
    let y = run1(ShapeOp::GatherND { batch_dims: 0 }, &[&x, &nd]).unwrap();
    assert_eq!(y, t(&[2], vec![1i64, 4]));
    let nd = t(&[3, 1], vec![1i64, 0, 1]);
    let y = run1(ShapeOp::GatherND { batch_dims: 1 }, &[&x, &nd]).unwrap();
    assert_eq!(y, t(&[3], vec![1i64, 2, 5]));
}

#[test]
fn scatter_with_reductions() {
    let x = t(&[4], vec![1f32, 2., 3., 4.]);
    let idx = t(&[2, 1], vec![1i64, 1]);
    let upd = t(&[2], vec![10f32, 20.]);
    let y = run1(
        ShapeOp::ScatterND {
            reduction: ScatterReduction::Add,
        },
        &[&x, &idx, &upd],
    )
    .unwrap();
    assert_eq!(y, t(&[4], vec![1f32, 32., 3., 4.]));
    let y = run1(
        ShapeOp::ScatterND {
            reduction: ScatterReduction::None,
        },
        &[&x, &idx, &upd],
    )
    .unwrap();
    assert_eq!(y, t(&[4], vec![1f32, 20., 3., 4.]));
    let idx = t(&[2], vec![3i64, -4]);
    let y = run1(
        ShapeOp::ScatterElements {
            axis: 0,
            reduction: ScatterReduction::Max,
        },
        &[&x, &idx, &upd],
    )
    .unwrap();
    assert_eq!(y, t(&[4], vec![20f32, 2., 3., 10.]));
    let s = strings(&[2], &["a", "b"]);
    let u = strings(&[1], &["z"]);
    let y = run1(
        ShapeOp::Scatter { axis: 0 },
        &[&s, &t(&[1], vec![1i64]), &u],
    )
    .unwrap();
    assert_eq!(y, strings(&[2], &["a", "z"]));
    let bad = ShapeOp::ScatterElements {
        axis: 0,
        reduction: ScatterReduction::Mul,
    };
    assert!(run1(bad, &[&s, &t(&[1], vec![1i64]), &u]).is_err());
}

#[test]
fn squeeze_unsqueeze_flatten() {
    let x = iota(&[1, 3, 1]);
    assert_eq!(
        run1(ShapeOp::Squeeze { axes: None }, &[&x])
            .unwrap()
            .shape(),
        &[3]
    );
    assert!(run1(
        ShapeOp::Squeeze {
            axes: Some(vec![1])
        },
        &[&x]
    )
    .is_err());
    let y = run1(ShapeOp::Unsqueeze { axes: None }, &[&x, &i64s(&[-1, 0])]).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 1, 1]);
    assert!(run1(
        ShapeOp::Unsqueeze {
            axes: Some(vec![0, 0])
        },
        &[&x]
    )
    .is_err());
    assert_eq!(
        run1(ShapeOp::Flatten { axis: -1 }, &[&x]).unwrap().shape(),
        &[3, 1]
    );
    assert_eq!(
        run1(ShapeOp::Flatten { axis: 3 }, &[&x]).unwrap().shape(),
        &[3, 1]
    );
    assert!(run1(ShapeOp::Flatten { axis: 4 }, &[&x]).is_err());
}

#[test]
fn huge_outputs_are_errors() {
    let x = iota(&[2]);
    let big = i64s(&[1 << 20, 1 << 20]);
    assert!(run1(ShapeOp::Expand, &[&x, &i64s(&[1 << 20, 1 << 20, 2])]).is_err());
    assert!(run1(ShapeOp::Tile, &[&x, &i64s(&[i64::MAX])]).is_err());
    let zero = Tensor::from_vec(vec![1], vec![0f32]).unwrap();
    assert!(run1(
        ShapeOp::ConstantOfShape {
            value: zero.clone()
        },
        &[&big]
    )
    .is_err());
    assert!(run1(ShapeOp::ConstantOfShape { value: zero }, &[&i64s(&[-1])]).is_err());
    let r = run1(
        ShapeOp::Range,
        &[
            &Tensor::scalar(0i64),
            &Tensor::scalar(i64::MAX),
            &Tensor::scalar(1i64),
        ],
    );
    assert!(r.is_err());
    let r = run1(
        ShapeOp::Range,
        &[
            &Tensor::scalar(0f32),
            &Tensor::scalar(f32::INFINITY),
            &Tensor::scalar(1f32),
        ],
    );
    assert!(r.is_err());
    assert!(run1(
        ShapeOp::Range,
        &[
            &Tensor::scalar(0i32),
            &Tensor::scalar(5i32),
            &Tensor::scalar(0i32)
        ]
    )
    .is_err());
}

#[test]
fn expand_tile_range() {
    let x = t(&[3, 1], vec![1u8, 2, 3]);
    let y = run1(ShapeOp::Expand, &[&x, &i64s(&[2, 1, 2])]).unwrap();
    assert_eq!(y, t(&[2, 3, 2], vec![1u8, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]));
    let y = run1(ShapeOp::Tile, &[&x, &i64s(&[1, 2])]).unwrap();
    assert_eq!(y, t(&[3, 2], vec![1u8, 1, 2, 2, 3, 3]));
    let y = run1(
        ShapeOp::Range,
        &[
            &Tensor::scalar(10i32),
            &Tensor::scalar(4i32),
            &Tensor::scalar(-3i32),
        ],
    )
    .unwrap();
    assert_eq!(y, t(&[2], vec![10i32, 7]));
    let y = run1(
        ShapeOp::Range,
        &[
            &Tensor::scalar(1f32),
            &Tensor::scalar(2f32),
            &Tensor::scalar(0.3f32),
        ],
    )
    .unwrap();
    assert_eq!(y.len(), 4);
}

#[test]
fn shape_size_constant_of_shape() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(
        run1(
            ShapeOp::Shape {
                start: -2,
                end: None
            },
            &[&x]
        )
        .unwrap(),
        i64s(&[3, 4])
    );
    assert_eq!(
        run1(
            ShapeOp::Shape {
                start: 2,
                end: Some(1)
            },
            &[&x]
        )
        .unwrap(),
        i64s(&[])
    );
    assert_eq!(run1(ShapeOp::Size, &[&x]).unwrap(), Tensor::scalar(24i64));
    let v = Tensor::from_vec(vec![1], vec![true]).unwrap();
    let y = run1(ShapeOp::ConstantOfShape { value: v }, &[&i64s(&[2])]).unwrap();
    assert_eq!(y, t(&[2], vec![true, true]));
    let y = run1(
        ShapeOp::ConstantOfShape {
            value: Tensor::scalar(7i32),
        },
        &[&i64s(&[])],
    )
    .unwrap();
    assert_eq!(y, Tensor::scalar(7i32));
}

#[test]
fn nonzero_onehot_trilu_eyelike() {
    let x = t(&[2, 2], vec![0f32, 1., f32::NAN, 0.]);
    assert_eq!(
        run1(ShapeOp::NonZero, &[&x]).unwrap(),
        t(&[2, 2], vec![0i64, 1, 1, 0])
    );
    assert_eq!(
        run1(ShapeOp::NonZero, &[&Tensor::scalar(3i32)]).unwrap(),
        t(&[1, 1], vec![0i64])
    );
    let y = run1(
        ShapeOp::OneHot { axis: -1 },
        &[
            &i64s(&[0, -1, 5]),
            &Tensor::scalar(3i64),
            &strings(&[2], &["n", "y"]),
        ],
    )
    .unwrap();
    assert_eq!(
        y,
        strings(&[3, 3], &["y", "n", "n", "n", "n", "y", "n", "n", "n"])
    );
    let y = run1(
        ShapeOp::OneHot { axis: 0 },
        &[
            &i64s(&[1, 0]),
            &Tensor::scalar(2f32),
            &t(&[2], vec![0i32, 1]),
        ],
    )
    .unwrap();
    assert_eq!(y, t(&[2, 2], vec![0i32, 1, 1, 0]));
    let m = iota(&[2, 3]);
    let y = run1(ShapeOp::Trilu { upper: true }, &[&m, &Tensor::scalar(1i64)]).unwrap();
    assert_eq!(y, t(&[2, 3], vec![0i64, 1, 2, 0, 0, 5]));
    let y = run1(ShapeOp::Trilu { upper: false }, &[&m]).unwrap();
    assert_eq!(y, t(&[2, 3], vec![0i64, 0, 0, 3, 4, 0]));
    let y = run1(
        ShapeOp::EyeLike {
            dtype: Some(DType::Bool),
            k: -1,
        },
        &[&m],
    )
    .unwrap();
    assert_eq!(y, t(&[2, 3], vec![false, false, false, true, false, false]));
}

#[test]
fn compress_and_reverse_sequence() {
    let x = iota(&[2, 3]);
    let c = t(&[2], vec![false, true]);
    assert_eq!(
        run1(ShapeOp::Compress { axis: Some(1) }, &[&x, &c]).unwrap(),
        t(&[2, 1], vec![1i64, 4])
    );
    assert_eq!(
        run1(ShapeOp::Compress { axis: None }, &[&x, &c]).unwrap(),
        t(&[1], vec![1i64])
    );
    let long = t(&[4], vec![false, false, false, true]);
    assert!(run1(ShapeOp::Compress { axis: Some(1) }, &[&x, &long]).is_err());
    let x = iota(&[3, 2]);
    let op = ShapeOp::ReverseSequence {
        time_axis: 0,
        batch_axis: 1,
    };
    let y = run1(op.clone(), &[&x, &i64s(&[3, 2])]).unwrap();
    assert_eq!(y, t(&[3, 2], vec![4i64, 3, 2, 1, 0, 5]));
    assert!(run1(op, &[&x, &i64s(&[4, 1])]).is_err());
}

#[test]
fn unique_sorted_and_in_first_occurrence_order() {
    let x = t(&[6], vec![2f32, 1., 1., 3., f32::NAN, 2.]);
    let outs = run(
        &ShapeOp::Unique {
            axis: None,
            sorted: true,
        },
        &[Some(&x)],
        4,
    )
    .unwrap();
    assert_eq!(outs[0].to_vec::<f32>().unwrap()[..3], [1., 2., 3.]);
    assert!(outs[0].to_vec::<f32>().unwrap()[3].is_nan());
    assert_eq!(outs[1], i64s(&[1, 0, 3, 4]));
    assert_eq!(outs[2], i64s(&[1, 0, 0, 2, 3, 1]));
    assert_eq!(outs[3], i64s(&[2, 2, 1, 1]));
    let outs = run(
        &ShapeOp::Unique {
            axis: None,
            sorted: false,
        },
        &[Some(&x)],
        4,
    )
    .unwrap();
    assert_eq!(outs[1], i64s(&[0, 1, 3, 4]));
    assert_eq!(outs[2], i64s(&[0, 1, 1, 2, 3, 0]));
    let rows = t(&[3, 2], vec![1i64, 0, 0, 1, 1, 0]);
    let outs = run(
        &ShapeOp::Unique {
            axis: Some(0),
            sorted: true,
        },
        &[Some(&rows)],
        4,
    )
    .unwrap();
    assert_eq!(outs[0], t(&[2, 2], vec![0i64, 1, 1, 0]));
    assert_eq!(outs[2], i64s(&[1, 0, 1]));
}

/// Every op of the family, with the number of inputs it takes.
fn all_ops() -> Vec<(ShapeOp, usize)> {
    let red = ScatterReduction::Add;
    vec![
        (ShapeOp::Reshape { allowzero: false }, 2),
        (ShapeOp::Reshape { allowzero: true }, 2),
        (ShapeOp::Flatten { axis: -1 }, 1),
        (ShapeOp::Transpose { perm: None }, 1),
        (
            ShapeOp::Transpose {
                perm: Some(vec![1, 0]),
            },
            1,
        ),
        (ShapeOp::Concat { axis: 0 }, 2),
        (
            ShapeOp::Split {
                axis: 0,
                split: None,
                num_outputs: Some(3),
                outputs: 3,
            },
            1,
        ),
        (
            ShapeOp::Split {
                axis: -1,
                split: None,
                num_outputs: None,
                outputs: 2,
            },
            2,
        ),
        (ShapeOp::Slice { attrs: None }, 5),
        (ShapeOp::Gather { axis: 1 }, 2),
        (ShapeOp::GatherElements { axis: 0 }, 2),
        (ShapeOp::GatherND { batch_dims: 1 }, 2),
        (ShapeOp::ScatterND { reduction: red }, 3),
        (
            ShapeOp::ScatterElements {
                axis: 1,
                reduction: red,
            },
            3,
        ),
        (ShapeOp::Squeeze { axes: None }, 2),
        (ShapeOp::Unsqueeze { axes: None }, 2),
        (ShapeOp::Expand, 2),
        (
            ShapeOp::Shape {
                start: -1,
                end: Some(9),
            },
            1,
        ),
        (ShapeOp::Size, 1),
        (ShapeOp::Tile, 2),
        (
            ShapeOp::ConstantOfShape {
                value: Tensor::scalar(1u8),
            },
            1,
        ),
        (ShapeOp::Range, 3),
        (ShapeOp::NonZero, 1),
        (ShapeOp::OneHot { axis: 1 }, 3),
        (ShapeOp::Trilu { upper: false }, 2),
        (ShapeOp::EyeLike { dtype: None, k: 2 }, 1),
        (ShapeOp::Compress { axis: Some(0) }, 2),
        (
            ShapeOp::ReverseSequence {
                time_axis: 1,
                batch_axis: 0,
            },
            2,
        ),
        (
            ShapeOp::Unique {
                axis: Some(-1),
                sorted: false,
            },
            1,
        ),
    ]
}

fn small_tensor() -> impl Strategy<Value = Tensor> {
    let shape = prop::collection::vec(0usize..4, 0..4);
    (shape, any::<bool>()).prop_flat_map(|(shape, ints)| {
        let n: usize = shape.iter().product();
        let vals = prop::collection::vec(-6i64..6, n);
        vals.prop_map(move |v| {
            let t = Tensor::from_vec(shape.clone(), v).unwrap();
            if ints {
                t
            } else {
                t.cast(DType::F32).unwrap()
            }
        })
    })
}

proptest! {
    #[test]
    fn no_input_makes_a_kernel_panic(ins in prop::collection::vec(small_tensor(), 5)) {
        for (op, n) in all_ops() {
            let inputs: Vec<Option<&Tensor>> = ins.iter().take(n).map(Some).collect();
            let _ = run(&op, &inputs, 3);
        }
    }
}
