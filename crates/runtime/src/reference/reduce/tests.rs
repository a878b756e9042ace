use proptest::prelude::*;
use slimnet_ir::ops::reduce::ReduceKind;
use slimnet_tensor::{DType, TensorData};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn reduce_op(kind: ReduceKind, axes: Option<Vec<i64>>, keepdims: bool) -> ReduceOp {
    ReduceOp::Reduce {
        kind,
        axes,
        keepdims,
        noop_with_empty_axes: false,
    }
}

fn run1(op: &ReduceOp, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    run(op, inputs, 1).map(|mut v| v.remove(0))
}

fn f32s(x: &Tensor) -> Vec<f32> {
    x.as_slice::<f32>().unwrap().to_vec()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-6 * y.abs().max(1.0) || (x.is_nan() && y.is_nan()),
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn reduce_sum_over_axes_attribute_or_input() {
    let x = t(&[2, 3], vec![1f32, 2., 3., 4., 5., 6.]);
    let out = run1(
        &reduce_op(ReduceKind::Sum, Some(vec![1]), true),
        &[Some(&x)],
    )
    .unwrap();
    assert_eq!(out.shape(), &[2, 1]);
    assert_eq!(f32s(&out), vec![6., 15.]);
    let axes = t(&[1], vec![-2i64]);
    let out = run1(
        &reduce_op(ReduceKind::Sum, None, false),
        &[Some(&x), Some(&axes)],
    )
    .unwrap();
    assert_eq!(out.shape(), &[3]);
    assert_eq!(f32s(&out), vec![5., 7., 9.]);
    let all = run1(&reduce_op(ReduceKind::Sum, None, false), &[Some(&x)]).unwrap();
    assert_eq!(all.shape(), &[] as &[usize]);
    assert_eq!(f32s(&all), vec![21.]);
    let empty_axes = t(&[0], Vec::<i64>::new());
    let noop = ReduceOp::Reduce {
        kind: ReduceKind::Sum,
        axes: None,
        keepdims: true,
        noop_with_empty_axes: true,
    };
    assert_eq!(run1(&noop, &[Some(&x), Some(&empty_axes)]).unwrap(), x);
    // Composite reductions still apply their elementwise steps.
    let square = ReduceOp::Reduce {
        kind: ReduceKind::SumSquare,
        axes: None,
        keepdims: false,
        noop_with_empty_axes: true,
    };
    assert_eq!(
        f32s(&run1(&square, &[Some(&x)]).unwrap()),
        vec![1., 4., 9., 16., 25., 36.]
    );
    assert!(run1(
        &reduce_op(ReduceKind::Sum, Some(vec![2]), true),
        &[Some(&x)]
    )
    .is_err());
    assert!(run1(
        &reduce_op(ReduceKind::Sum, Some(vec![1, -1]), true),
        &[Some(&x)]
    )
    .is_err());
}

#[test]
fn reductions_of_each_kind() {
    let x = t(&[2, 2], vec![1f32, -2., 3., 4.]);
    let r = |k| f32s(&run1(&reduce_op(k, Some(vec![1]), false), &[Some(&x)]).unwrap());
    assert_eq!(r(ReduceKind::Mean), vec![-0.5, 3.5]);
    assert_eq!(r(ReduceKind::Max), vec![1., 4.]);
    assert_eq!(r(ReduceKind::Min), vec![-2., 3.]);
    assert_eq!(r(ReduceKind::Prod), vec![-2., 12.]);
    assert_eq!(r(ReduceKind::L1), vec![3., 7.]);
    assert_eq!(r(ReduceKind::SumSquare), vec![5., 25.]);
    close(&r(ReduceKind::L2), &[5f32.sqrt(), 5.]);
    close(
        &r(ReduceKind::LogSumExp),
        &[
            (1f64.exp() + (-2f64).exp()).ln() as f32,
            (3f64.exp() + 4f64.exp()).ln() as f32,
        ],
    );
    let big = t(&[2], vec![1000f32, 1000.]);
    let lse = run1(
        &reduce_op(ReduceKind::LogSumExp, None, false),
        &[Some(&big)],
    )
    .unwrap();
    close(&f32s(&lse), &[1000. + std::f32::consts::LN_2]);
    let pos = t(&[2], vec![1f32, 2.]);
    close(
        &f32s(&run1(&reduce_op(ReduceKind::LogSum, None, false), &[Some(&pos)]).unwrap()),
        &[3f32.ln()],
    );
    let nan = t(&[2], vec![1f32, f32::NAN]);
    assert!(
        f32s(&run1(&reduce_op(ReduceKind::Max, None, false), &[Some(&nan)]).unwrap())[0].is_nan()
    );
}

#[test]
fn empty_set_reductions_give_identities() {
    let x = t(&[2, 0, 3], Vec::<f32>::new());
    let r = |k| run1(&reduce_op(k, Some(vec![1]), true), &[Some(&x)]).unwrap();
    assert_eq!(r(ReduceKind::Sum).shape(), &[2, 1, 3]);
    assert_eq!(f32s(&r(ReduceKind::Sum)), vec![0.; 6]);
    assert_eq!(f32s(&r(ReduceKind::Prod)), vec![1.; 6]);
    assert_eq!(f32s(&r(ReduceKind::Max)), vec![f32::NEG_INFINITY; 6]);
    assert_eq!(f32s(&r(ReduceKind::Min)), vec![f32::INFINITY; 6]);
    assert_eq!(f32s(&r(ReduceKind::LogSum)), vec![f32::NEG_INFINITY; 6]);
    assert_eq!(f32s(&r(ReduceKind::LogSumExp)), vec![f32::NEG_INFINITY; 6]);
    // Reducing a non-empty axis of an empty tensor gives an empty tensor.
    let out = run1(
        &reduce_op(ReduceKind::Sum, Some(vec![2]), false),
        &[Some(&x)],
    )
    .unwrap();
    assert_eq!(out.shape(), &[2, 0]);
    let b = t(&[0], Vec::<bool>::new());
    let out = run1(&reduce_op(ReduceKind::Max, None, false), &[Some(&b)]).unwrap();
    assert_eq!(out.as_slice::<bool>().unwrap(), &[false]);
}

#[test]
fn integer_and_bool_reductions() {
    let x = t(&[3], vec![100i8, 100, 100]);
    let sum = run1(&reduce_op(ReduceKind::Sum, None, false), &[Some(&x)]).unwrap();
    assert_eq!(sum.as_slice::<i8>().unwrap(), &[44]);
    let y = t(&[2], vec![-3i32, 0]);
    let mean = run1(&reduce_op(ReduceKind::Mean, None, false), &[Some(&y)]).unwrap();
    assert_eq!(mean.as_slice::<i32>().unwrap(), &[-1]);
    let big = t(&[2], vec![i64::MAX - 1, 1]);
    let sum = run1(&reduce_op(ReduceKind::Sum, None, false), &[Some(&big)]).unwrap();
    assert_eq!(sum.as_slice::<i64>().unwrap(), &[i64::MAX]);
    let b = t(&[2, 2], vec![true, false, false, false]);
    let any = run1(
        &reduce_op(ReduceKind::Max, Some(vec![1]), false),
        &[Some(&b)],
    )
    .unwrap();
    assert_eq!(any.as_slice::<bool>().unwrap(), &[true, false]);
    let all = run1(
        &reduce_op(ReduceKind::Min, Some(vec![0]), false),
        &[Some(&b)],
    )
    .unwrap();
    assert_eq!(all.as_slice::<bool>().unwrap(), &[false, false]);
    assert!(run1(&reduce_op(ReduceKind::Sum, None, false), &[Some(&b)]).is_err());
}

#[test]
fn arg_max_and_min() {
    let x = t(&[2, 3], vec![1f32, 5., 5., 7., 2., 7.]);
    let op = ReduceOp::ArgMax {
        axis: 1,
        keepdims: true,
        select_last_index: false,
    };
    let out = run1(&op, &[Some(&x)]).unwrap();
    assert_eq!(out.shape(), &[2, 1]);
    assert_eq!(out.as_slice::<i64>().unwrap(), &[1, 0]);
    let op = ReduceOp::ArgMax {
        axis: -1,
        keepdims: false,
        select_last_index: true,
    };
    assert_eq!(
        run1(&op, &[Some(&x)]).unwrap().as_slice::<i64>().unwrap(),
        &[2, 2]
    );
    let op = ReduceOp::ArgMin {
        axis: 0,
        keepdims: false,
        select_last_index: false,
    };
    let out = run1(&op, &[Some(&x)]).unwrap();
    assert_eq!(out.shape(), &[3]);
    assert_eq!(out.as_slice::<i64>().unwrap(), &[0, 1, 0]);
    let op = ReduceOp::ArgMax {
        axis: 2,
        keepdims: false,
        select_last_index: false,
    };
    assert!(run1(&op, &[Some(&x)]).is_err());
    let e = t(&[0], Vec::<f32>::new());
    let op = ReduceOp::ArgMax {
        axis: 0,
        keepdims: false,
        select_last_index: false,
    };
    assert!(run1(&op, &[Some(&e)]).is_err());
}

#[test]
fn top_k_sorts_and_breaks_ties_by_index() {
    let x = t(&[2, 4], vec![3f32, 1., 3., 2., 0., 9., 8., 9.]);
    let k = t(&[1], vec![3i64]);
    let op = ReduceOp::TopK {
        axis: -1,
        largest: true,
        sorted: true,
        k: None,
    };
    let out = run(&op, &[Some(&x), Some(&k)], 2).unwrap();
    assert_eq!(out[0].shape(), &[2, 3]);
    assert_eq!(f32s(&out[0]), vec![3., 3., 2., 9., 9., 8.]);
    assert_eq!(out[1].as_slice::<i64>().unwrap(), &[0, 2, 3, 1, 3, 2]);
    let small = ReduceOp::TopK {
        axis: 0,
        largest: false,
        sorted: true,
        k: Some(1),
    };
    let out = run(&small, &[Some(&x)], 2).unwrap();
    assert_eq!(f32s(&out[0]), vec![0., 1., 3., 2.]);
    assert_eq!(out[1].as_slice::<i64>().unwrap(), &[1, 0, 0, 0]);
    let zero = t(&[1], vec![0i64]);
    assert_eq!(
        run(&op, &[Some(&x), Some(&zero)], 2).unwrap()[0].shape(),
        &[2, 0]
    );
    let five = t(&[1], vec![5i64]);
    assert!(run(&op, &[Some(&x), Some(&five)], 2).is_err());
    assert!(run(&op, &[Some(&x)], 2).is_err());
    let u = t(&[3], vec![u64::MAX, 1, 2]);
    let out = run(
        &ReduceOp::TopK {
            axis: 0,
            largest: true,
            sorted: true,
            k: Some(2),
        },
        &[Some(&u)],
        2,
    )
    .unwrap();
    assert_eq!(out[0].as_slice::<u64>().unwrap(), &[u64::MAX, 2]);
}

#[test]
fn softmax_per_axis_and_flattened() {
    let x = t(&[2, 2], vec![0f32, 0., 1., 1.]);
    let new = run1(
        &ReduceOp::Softmax {
            axis: 0,
            coerce_2d: false,
        },
        &[Some(&x)],
    )
    .unwrap();
    let a = (1.0 / (1.0 + 1f64.exp())) as f32;
    close(&f32s(&new), &[a, a, 1. - a, 1. - a]);
    let old = run1(
        &ReduceOp::Softmax {
            axis: 0,
            coerce_2d: true,
        },
        &[Some(&x)],
    )
    .unwrap();
    let b = (1.0 / (2.0 + 2.0 * 1f64.exp())) as f32;
    let c = (1f64.exp() / (2.0 + 2.0 * 1f64.exp())) as f32;
    close(&f32s(&old), &[b, b, c, c]);
    let log = run1(
        &ReduceOp::LogSoftmax {
            axis: -1,
            coerce_2d: false,
        },
        &[Some(&x)],
    )
    .unwrap();
    close(&f32s(&log), &[-std::f32::consts::LN_2; 4]);
    let big = t(&[2], vec![10000f32, 10000.]);
    close(
        &f32s(
            &run1(
                &ReduceOp::Softmax {
                    axis: -1,
                    coerce_2d: false,
                },
                &[Some(&big)],
            )
            .unwrap(),
        ),
        &[0.5, 0.5],
    );
    let h = t(&[2, 3], vec![1f32, 3., 3., 0., -1., -2.]);
    let hard = run1(
        &ReduceOp::Hardmax {
            axis: 1,
            coerce_2d: false,
        },
        &[Some(&h)],
    )
    .unwrap();
    assert_eq!(f32s(&hard), vec![0., 1., 0., 1., 0., 0.]);
    assert!(run1(
        &ReduceOp::Softmax {
            axis: 2,
            coerce_2d: false
        },
        &[Some(&x)]
    )
    .is_err());
    assert!(run1(
        &ReduceOp::Softmax {
            axis: 0,
            coerce_2d: false
        },
        &[Some(&t(&[1], vec![1i32]))]
    )
    .is_err());
}

#[test]
fn layer_normalization_with_stats() {
    let x = t(&[2, 2], vec![1f32, 3., 2., 2.]);
    let scale = t(&[2], vec![2f32, 1.]);
    let bias = t(&[1], vec![0.5f32]);
    let op = ReduceOp::LayerNormalization {
        axis: -1,
        epsilon: 0.0,
        stash_type: 1,
    };
    let out = run(&op, &[Some(&x), Some(&scale), Some(&bias)], 3).unwrap();
    assert_eq!(out.len(), 3);
    // The second row has zero variance and epsilon is 0: 0 * inf is NaN.
    close(&f32s(&out[0]), &[-1.5, 1.5, f32::NAN, f32::NAN]);
    assert_eq!(out[1].shape(), &[2, 1]);
    assert_eq!(f32s(&out[1]), vec![2., 2.]);
    assert_eq!(f32s(&out[2])[0], 1.);
    assert!(f32s(&out[2])[1].is_infinite());
    let only_y = run(&op, &[Some(&x), Some(&scale)], 1).unwrap();
    assert_eq!(only_y.len(), 1);
    let bad_scale = t(&[3], vec![1f32, 1., 1.]);
    assert!(run(&op, &[Some(&x), Some(&bad_scale)], 1).is_err());
    assert!(run(&op, &[Some(&x)], 1).is_err());
}

#[test]
fn cumsum_variants() {
    let x = t(&[5], vec![1f32, 2., 3., 4., 5.]);
    let axis = Tensor::scalar(0i32);
    let c = |exclusive, reverse| {
        f32s(
            &run1(
                &ReduceOp::CumSum { exclusive, reverse },
                &[Some(&x), Some(&axis)],
            )
            .unwrap(),
        )
    };
    assert_eq!(c(false, false), vec![1., 3., 6., 10., 15.]);
    assert_eq!(c(true, false), vec![0., 1., 3., 6., 10.]);
    assert_eq!(c(false, true), vec![15., 14., 12., 9., 5.]);
    assert_eq!(c(true, true), vec![14., 12., 9., 5., 0.]);
    let m = t(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
    let out = run1(
        &ReduceOp::CumSum {
            exclusive: false,
            reverse: false,
        },
        &[Some(&m), Some(&t(&[1], vec![-1i64]))],
    )
    .unwrap();
    assert_eq!(out.as_slice::<i32>().unwrap(), &[1, 3, 6, 4, 9, 15]);
    let out = run1(
        &ReduceOp::CumSum {
            exclusive: false,
            reverse: false,
        },
        &[Some(&m), Some(&Tensor::scalar(0i64))],
    )
    .unwrap();
    assert_eq!(out.as_slice::<i32>().unwrap(), &[1, 2, 3, 5, 7, 9]);
    assert!(run1(
        &ReduceOp::CumSum {
            exclusive: false,
            reverse: false
        },
        &[Some(&m), Some(&Tensor::scalar(2i64))]
    )
    .is_err());
    assert!(run1(
        &ReduceOp::CumSum {
            exclusive: false,
            reverse: false
        },
        &[Some(&m), Some(&Tensor::scalar(0f32))]
    )
    .is_err());
}

#[test]
fn lp_and_mean_variance_normalization() {
    let x = t(&[2, 2], vec![3f32, 4., 0., 0.]);
    let l2 = run1(&ReduceOp::LpNormalization { axis: -1, p: 2 }, &[Some(&x)]).unwrap();
    assert_eq!(f32s(&l2), vec![0.6, 0.8, 0., 0.]);
    let l1 = run1(&ReduceOp::LpNormalization { axis: 0, p: 1 }, &[Some(&x)]).unwrap();
    assert_eq!(f32s(&l1), vec![1., 1., 0., 0.]);
    let m = t(&[1, 2, 1, 2], vec![1f32, 3., 5., 5.]);
    let out = run1(
        &ReduceOp::MeanVarianceNormalization {
            axes: vec![0, 2, 3],
        },
        &[Some(&m)],
    )
    .unwrap();
    close(&f32s(&out), &[-1., 1., 0., 0.]);
    assert!(run1(
        &ReduceOp::MeanVarianceNormalization {
            axes: vec![0, 2, 3]
        },
        &[Some(&x)]
    )
    .is_err());
}

#[test]
fn empty_tensors_do_not_panic() {
    let e = t(&[2, 3, 0], Vec::<f32>::new());
    for op in [
        ReduceOp::Softmax {
            axis: 1,
            coerce_2d: false,
        },
        ReduceOp::LogSoftmax {
            axis: 0,
            coerce_2d: true,
        },
        ReduceOp::Hardmax {
            axis: 2,
            coerce_2d: false,
        },
        ReduceOp::LpNormalization { axis: 1, p: 2 },
        ReduceOp::MeanVarianceNormalization { axes: vec![0, 1] },
        ReduceOp::ArgMax {
            axis: 1,
            keepdims: false,
            select_last_index: false,
        },
    ] {
        let out = run1(&op, &[Some(&e)]).unwrap();
        assert!(out.is_empty(), "{op:?}");
    }
    let out = run(
        &ReduceOp::TopK {
            axis: 1,
            largest: true,
            sorted: true,
            k: Some(2),
        },
        &[Some(&e)],
        2,
    )
    .unwrap();
    assert_eq!(out[0].shape(), &[2, 2, 0]);
    let cs = run1(
        &ReduceOp::CumSum {
            exclusive: false,
            reverse: true,
        },
        &[Some(&e), Some(&Tensor::scalar(2i64))],
    )
    .unwrap();
    assert!(cs.is_empty());
    let ln = ReduceOp::LayerNormalization {
        axis: 1,
        epsilon: 1e-5,
        stash_type: 1,
    };
    assert!(run(&ln, &[Some(&e), Some(&t(&[0], Vec::<f32>::new()))], 3).unwrap()[0].is_empty());
}

#[test]
fn bad_dtypes_are_errors() {
    let s = Tensor::new(vec![1], TensorData::String(vec!["a".into()])).unwrap();
    assert!(run1(&reduce_op(ReduceKind::Sum, None, false), &[Some(&s)]).is_err());
    assert!(run1(
        &ReduceOp::ArgMax {
            axis: 0,
            keepdims: true,
            select_last_index: false
        },
        &[Some(&s)]
    )
    .is_err());
    let i = t(&[2], vec![1i64, 2]);
    assert!(run1(&ReduceOp::LpNormalization { axis: 0, p: 2 }, &[Some(&i)]).is_err());
    let ln = ReduceOp::LayerNormalization {
        axis: 0,
        epsilon: 1e-5,
        stash_type: DType::I32.onnx_code() as i64,
    };
    assert!(run(
        &ln,
        &[
            Some(&t(&[2], vec![1f32, 2.])),
            Some(&t(&[2], vec![1f32, 1.]))
        ],
        3
    )
    .is_err());
}

proptest! {
    #[test]
    fn reduce_sum_matches_naive(dims in proptest::collection::vec(1usize..4, 1..4), mask in 0u8..16, keepdims: bool) {
        let n: usize = dims.iter().product();
        let x = t(&dims, (0..n).map(|i| i as f64).collect::<Vec<f64>>());
        let axes: Vec<i64> = (0..dims.len()).filter(|i| mask >> i & 1 == 1).map(|i| i as i64).collect();
        let out = run1(&reduce_op(ReduceKind::Sum, Some(axes.clone()), keepdims), &[Some(&x)]).unwrap();
        // Naive: sum the elements whose non-reduced coordinates match.
        let reduced: Vec<bool> = (0..dims.len()).map(|i| axes.is_empty() || axes.contains(&(i as i64))).collect();
        let strides = slimnet_tensor::strides_of(&dims);
        let keep: Vec<usize> = dims.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
        let kstrides = slimnet_tensor::strides_of(&keep);
        let mut want = vec![0f64; keep.iter().product()];
        for i in 0..n {
            let o: usize = (0..dims.len()).map(|d| if reduced[d] { 0 } else { (i / strides[d]) % dims[d] * kstrides[d] }).sum();
            want[o] += i as f64;
        }
        prop_assert_eq!(out.as_slice::<f64>().unwrap(), want.as_slice());
        prop_assert_eq!(out.len(), want.len());
    }

    #[test]
    fn top_k_matches_sorting(vals in proptest::collection::vec(-5i32..5, 1..20), k_frac in 0f64..1.0, largest: bool) {
        let n = vals.len();
        let k = ((n as f64) * k_frac) as usize;
        let x = t(&[n], vals.clone());
        let op = ReduceOp::TopK { axis: 0, largest, sorted: true, k: Some(k as i64) };
        let out = run(&op, &[Some(&x)], 2).unwrap();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| if largest { vals[b].cmp(&vals[a]) } else { vals[a].cmp(&vals[b]) }.then(a.cmp(&b)));
        let want: Vec<i64> = idx[..k].iter().map(|&i| i as i64).collect();
        prop_assert_eq!(out[1].as_slice::<i64>().unwrap(), want.as_slice());
    }
}
