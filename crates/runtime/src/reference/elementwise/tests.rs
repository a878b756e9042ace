use proptest::prelude::*;
use slimnet_ir::ops::elementwise::{GeluApproximation, ShiftDirection};
use slimnet_tensor::{f16, BroadcastIndexer, DType};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn run1(op: ElementwiseOp, inputs: &[&Tensor]) -> Result<Tensor, String> {
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
    run(&op, &ins).map(|mut v| v.remove(0))
}

fn f32s(x: &Tensor) -> Vec<f32> {
    x.as_slice::<f32>().unwrap().to_vec()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-6 * y.abs().max(1e-30) || (x.is_nan() && y.is_nan()),
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn add_broadcasts_rows_columns_and_scalars() {
    let a = t(&[2, 3], vec![1f32, 2., 3., 4., 5., 6.]);
    let row = t(&[3], vec![10f32, 20., 30.]);
    let col = t(&[2, 1], vec![100f32, 200.]);
    let s = Tensor::scalar(0.5f32);
    let out = run1(ElementwiseOp::Add, &[&a, &row]).unwrap();
    assert_eq!(out.shape(), &[2, 3]);
    assert_eq!(f32s(&out), vec![11., 22., 33., 14., 25., 36.]);
    let out = run1(ElementwiseOp::Add, &[&col, &row]).unwrap();
    assert_eq!(f32s(&out), vec![110., 120., 130., 210., 220., 230.]);
    let out = run1(ElementwiseOp::Sub, &[&s, &a]).unwrap();
    assert_eq!(f32s(&out), vec![-0.5, -1.5, -2.5, -3.5, -4.5, -5.5]);
    assert!(run1(ElementwiseOp::Add, &[&a, &t(&[2], vec![1f32, 2.])]).is_err());
    assert!(run1(ElementwiseOp::Add, &[&a, &t(&[3], vec![1i64, 2, 3])]).is_err());
    assert!(run1(
        ElementwiseOp::Add,
        &[&t(&[1], vec![true]), &t(&[1], vec![true])]
    )
    .is_err());
}

#[test]
fn integer_arithmetic_wraps_and_truncates() {
    let a = t(&[3], vec![100i8, -128, 7]);
    let b = t(&[3], vec![100i8, -1, -2]);
    assert_eq!(
        run1(ElementwiseOp::Add, &[&a, &b])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[-56, 127, 5]
    );
    assert_eq!(
        run1(ElementwiseOp::Div, &[&a, &b])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[1, -128, -3]
    );
    let u = t(&[2], vec![3u8, 250]);
    let v = t(&[2], vec![5u8, 10]);
    assert_eq!(
        run1(ElementwiseOp::Sub, &[&u, &v])
            .unwrap()
            .as_slice::<u8>()
            .unwrap(),
        &[254, 240]
    );
    assert_eq!(
        run1(ElementwiseOp::Mul, &[&u, &v])
            .unwrap()
            .as_slice::<u8>()
            .unwrap(),
        &[15, 196]
    );
    let zero = t(&[1], vec![0i32]);
    assert!(run1(ElementwiseOp::Div, &[&t(&[1], vec![1i32]), &zero]).is_err());
    assert!(run1(
        ElementwiseOp::Mod { fmod: false },
        &[&t(&[1], vec![1i32]), &zero]
    )
    .is_err());
    // -7 / 2 truncates toward zero.
    assert_eq!(
        run1(
            ElementwiseOp::Div,
            &[&t(&[1], vec![-7i64]), &t(&[1], vec![2i64])]
        )
        .unwrap()
        .as_slice::<i64>()
        .unwrap(),
        &[-3]
    );
}

#[test]
fn mod_follows_python_or_c() {
    let x = t(&[6], vec![-4i32, 7, 5, 4, -7, 8]);
    let y = t(&[6], vec![2i32, -3, 8, -2, 3, 5]);
    let py = run1(ElementwiseOp::Mod { fmod: false }, &[&x, &y]).unwrap();
    assert_eq!(py.as_slice::<i32>().unwrap(), &[0, -2, 5, 0, 2, 3]);
    let c = run1(ElementwiseOp::Mod { fmod: true }, &[&x, &y]).unwrap();
    assert_eq!(c.as_slice::<i32>().unwrap(), &[0, 1, 5, 0, -1, 3]);
    let xf = t(&[3], vec![-4.3f64, 7.2, 5.0]);
    let yf = t(&[3], vec![2.1f64, -3.4, 8.0]);
    let py = run1(ElementwiseOp::Mod { fmod: false }, &[&xf, &yf]).unwrap();
    let want = [(-4.3f64).rem_euclid(2.1), 7.2 % -3.4 + -3.4, 5.0];
    for (g, w) in py.as_slice::<f64>().unwrap().iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
}

#[test]
fn pow_mixes_dtypes() {
    let x = t(&[3], vec![1f32, 2., 3.]);
    let e = t(&[3], vec![4i64, 5, 6]);
    assert_eq!(
        f32s(&run1(ElementwiseOp::Pow, &[&x, &e]).unwrap()),
        vec![1., 32., 729.]
    );
    let xi = t(&[3], vec![1i32, 2, 3]);
    let ef = t(&[3], vec![4f32, 5., 6.]);
    let out = run1(ElementwiseOp::Pow, &[&xi, &ef]).unwrap();
    assert_eq!(out.as_slice::<i32>().unwrap(), &[1, 32, 729]);
    let big = t(&[1], vec![3i64]);
    let out = run1(ElementwiseOp::Pow, &[&big, &t(&[], vec![39i64])]).unwrap();
    assert_eq!(out.as_slice::<i64>().unwrap(), &[4052555153018976267]);
    let sq = run1(
        ElementwiseOp::Pow,
        &[&t(&[2], vec![-2f32, 0.5]), &Tensor::scalar(2f32)],
    )
    .unwrap();
    assert_eq!(f32s(&sq), vec![4., 0.25]);
}

#[test]
fn comparisons_broadcast_and_handle_strings() {
    let a = t(&[2, 2], vec![1i32, 5, 3, 4]);
    let b = t(&[2], vec![3i32, 4]);
    assert_eq!(
        run1(ElementwiseOp::Less, &[&a, &b])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[true, false, false, false]
    );
    assert_eq!(
        run1(ElementwiseOp::GreaterOrEqual, &[&a, &b])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[false, true, true, true]
    );
    let s1 = Tensor::new(vec![2], TensorData::String(vec!["a".into(), "b".into()])).unwrap();
    let s2 = Tensor::new(vec![], TensorData::String(vec!["b".into()])).unwrap();
    assert_eq!(
        run1(ElementwiseOp::Equal, &[&s1, &s2])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[false, true]
    );
    assert!(run1(ElementwiseOp::Less, &[&s1, &s2]).is_err());
    let nan = t(&[1], vec![f32::NAN]);
    assert_eq!(
        run1(ElementwiseOp::Equal, &[&nan, &nan])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[false]
    );
}

#[test]
fn logic_and_bits() {
    let p = t(&[4], vec![true, true, false, false]);
    let q = t(&[4], vec![true, false, true, false]);
    assert_eq!(
        run1(ElementwiseOp::Xor, &[&p, &q])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[false, true, true, false]
    );
    assert_eq!(
        run1(ElementwiseOp::Not, &[&p])
            .unwrap()
            .as_slice::<bool>()
            .unwrap(),
        &[false, false, true, true]
    );
    assert!(run1(
        ElementwiseOp::And,
        &[&t(&[1], vec![1i32]), &t(&[1], vec![1i32])]
    )
    .is_err());
    assert!(run1(ElementwiseOp::Not, &[&t(&[1], vec![1f32])]).is_err());
    let a = t(&[2], vec![0b1100u8, 0xF0]);
    let b = t(&[2], vec![0b1010u8, 0x0F]);
    assert_eq!(
        run1(ElementwiseOp::BitwiseAnd, &[&a, &b])
            .unwrap()
            .as_slice::<u8>()
            .unwrap(),
        &[0b1000, 0]
    );
    assert_eq!(
        run1(ElementwiseOp::BitwiseNot, &[&a])
            .unwrap()
            .as_slice::<u8>()
            .unwrap(),
        &[0xF3, 0x0F]
    );
    assert!(run1(ElementwiseOp::BitwiseNot, &[&t(&[1], vec![1f32])]).is_err());
}

#[test]
fn bit_shift_edge_cases() {
    let right = ElementwiseOp::BitShift {
        direction: ShiftDirection::Right,
    };
    let left = ElementwiseOp::BitShift {
        direction: ShiftDirection::Left,
    };
    let x = t(&[3], vec![-16i8, 16, -1]);
    let n = t(&[3], vec![2i8, 8, -1]);
    assert_eq!(
        run1(right.clone(), &[&x, &n])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[-4, 0, -1]
    );
    assert_eq!(
        run1(left.clone(), &[&x, &n])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[-64, 0, 0]
    );
    let over = run1(left, &[&t(&[1], vec![64i8]), &t(&[1], vec![1i8])]).unwrap();
    assert_eq!(over.as_slice::<i8>().unwrap(), &[-128]);
    let u = run1(right, &[&t(&[2], vec![16u32, 4]), &t(&[1], vec![2u32])]).unwrap();
    assert_eq!(u.as_slice::<u32>().unwrap(), &[4, 1]);
}

#[test]
fn where_broadcasts_any_dtype() {
    let c = t(&[2, 1], vec![true, false]);
    let x = t(&[3], vec![1i64, 2, 3]);
    let y = Tensor::scalar(0i64);
    let out = run1(ElementwiseOp::Where, &[&c, &x, &y]).unwrap();
    assert_eq!(out.shape(), &[2, 3]);
    assert_eq!(out.as_slice::<i64>().unwrap(), &[1, 2, 3, 0, 0, 0]);
    let xs = Tensor::new(vec![], TensorData::String(vec!["yes".into()])).unwrap();
    let ys = Tensor::new(vec![], TensorData::String(vec!["no".into()])).unwrap();
    let out = run1(ElementwiseOp::Where, &[&c, &xs, &ys]).unwrap();
    assert_eq!(
        out.data(),
        &TensorData::String(vec!["yes".into(), "no".into()])
    );
    assert!(run1(ElementwiseOp::Where, &[&x, &x, &y]).is_err());
    assert!(run1(ElementwiseOp::Where, &[&c, &x, &t(&[1], vec![0f32])]).is_err());
}

#[test]
fn clip_bounds_from_inputs_or_attributes() {
    let x = t(&[5], vec![-3f32, -1., 0., 1., f32::NAN]);
    let lo = Tensor::scalar(-1.5f32);
    let hi = Tensor::scalar(0.5f32);
    let op = ElementwiseOp::Clip {
        min: None,
        max: None,
    };
    let out = run(&op, &[Some(&x), Some(&lo), Some(&hi)])
        .unwrap()
        .remove(0);
    let v = f32s(&out);
    assert_eq!(&v[..4], &[-1.5, -1., 0., 0.5]);
    assert!(v[4].is_nan());
    let only_max = run(&op, &[Some(&x), None, Some(&hi)]).unwrap().remove(0);
    assert_eq!(f32s(&only_max)[0], -3.);
    // min > max: everything becomes max.
    let out = run(&op, &[Some(&x), Some(&hi), Some(&lo)])
        .unwrap()
        .remove(0);
    assert_eq!(&f32s(&out)[..4], &[-1.5; 4]);
    let legacy = ElementwiseOp::Clip {
        min: Some(-1.0),
        max: Some(f32::MAX),
    };
    assert_eq!(
        &f32s(&run1(legacy, &[&x]).unwrap())[..4],
        &[-1., -1., 0., 1.]
    );
    let xi = t(&[3], vec![-100i8, 5, 100]);
    let out = run(&op, &[Some(&xi), Some(&Tensor::scalar(-10i8)), None])
        .unwrap()
        .remove(0);
    assert_eq!(out.as_slice::<i8>().unwrap(), &[-10, 5, 100]);
    assert!(run(&op, &[Some(&xi), Some(&lo), None]).is_err());
}

#[test]
fn unary_math_and_activations() {
    let x = t(&[6], vec![-2.5f32, -0.5, 0.5, 1.5, 2.5, -0.0]);
    assert_eq!(
        f32s(&run1(ElementwiseOp::Round, &[&x]).unwrap()),
        vec![-2., -0., 0., 2., 2., -0.]
    );
    assert_eq!(
        f32s(&run1(ElementwiseOp::Sign, &[&x]).unwrap()),
        vec![-1., -1., 1., 1., 1., 0.]
    );
    assert_eq!(
        f32s(&run1(ElementwiseOp::Relu, &[&x]).unwrap()),
        vec![0., 0., 0.5, 1.5, 2.5, -0.]
    );
    let g = f32s(
        &run1(
            ElementwiseOp::Gelu {
                approximate: GeluApproximation::None,
            },
            &[&x],
        )
        .unwrap(),
    );
    close(&g[..2], &[-0.015_524_163, -0.154_268_77]);
    let gt = f32s(
        &run1(
            ElementwiseOp::Gelu {
                approximate: GeluApproximation::Tanh,
            },
            &[&x],
        )
        .unwrap(),
    );
    close(&gt[..1], &[-0.015_084_266]);
    let s = f32s(&run1(ElementwiseOp::Sigmoid, &[&x]).unwrap());
    close(&s[..1], &[(1.0 / (1.0 + 2.5f64.exp())) as f32]);
    let lr = f32s(&run1(ElementwiseOp::LeakyRelu { alpha: 0.1 }, &[&x]).unwrap());
    close(&lr[..2], &[-0.25, -0.05]);
    let hs = f32s(&run1(ElementwiseOp::HardSwish, &[&t(&[3], vec![-4f32, 1., 4.])]).unwrap());
    close(&hs, &[0., 1. * (1. / 6. + 0.5), 4.]);
    let i = t(&[3], vec![-128i8, -3, 4]);
    assert_eq!(
        run1(ElementwiseOp::Abs, &[&i])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[-128, 3, 4]
    );
    assert_eq!(
        run1(ElementwiseOp::Relu, &[&i])
            .unwrap()
            .as_slice::<i8>()
            .unwrap(),
        &[0, 0, 4]
    );
    assert!(run1(ElementwiseOp::Neg, &[&t(&[1], vec![1u8])]).is_err());
    assert!(run1(ElementwiseOp::Exp, &[&i]).is_err());
    let h = t(&[2], vec![f16::from_f32(0.5), f16::from_f32(-1.0)]);
    let e = run1(ElementwiseOp::Erf, &[&h]).unwrap();
    assert_eq!(
        e.as_slice::<f16>().unwrap(),
        &[
            f16::from_f64(0.5204998778130465),
            f16::from_f64(-0.8427007929497149)
        ]
    );
    let inf = t(&[3], vec![f32::INFINITY, f32::NEG_INFINITY, 1.0]);
    let only_neg = ElementwiseOp::IsInf {
        detect_negative: true,
        detect_positive: false,
    };
    assert_eq!(
        run1(only_neg, &[&inf]).unwrap().as_slice::<bool>().unwrap(),
        &[false, true, false]
    );
    let shrink = run1(
        ElementwiseOp::Shrink {
            bias: 1.5,
            lambd: 1.5,
        },
        &[&t(&[3], vec![-2i32, 0, 3])],
    )
    .unwrap();
    assert_eq!(shrink.as_slice::<i32>().unwrap(), &[0, 0, 1]);
}

#[test]
fn variadic_ops_broadcast_all_inputs() {
    let a = t(&[3], vec![3f32, 2., 1.]);
    let b = t(&[2, 1], vec![1f32, 5.]);
    let c = Tensor::scalar(2f32);
    let ins = [Some(&a), Some(&b), Some(&c)];
    let max = run(&ElementwiseOp::Max, &ins).unwrap().remove(0);
    assert_eq!(max.shape(), &[2, 3]);
    assert_eq!(f32s(&max), vec![3., 2., 2., 5., 5., 5.]);
    let mean = run(&ElementwiseOp::Mean, &ins).unwrap().remove(0);
    close(&f32s(&mean), &[2., 5. / 3., 4. / 3., 10. / 3., 3., 8. / 3.]);
    let single = run(&ElementwiseOp::Sum, &[Some(&a)]).unwrap().remove(0);
    assert_eq!(single, a);
    let nan = t(&[1], vec![f32::NAN]);
    assert!(f32s(&run(&ElementwiseOp::Min, &[Some(&nan), Some(&c)]).unwrap()[0])[0].is_nan());
    let ints = run(
        &ElementwiseOp::Min,
        &[Some(&t(&[2], vec![4u64, 1])), Some(&t(&[1], vec![2u64]))],
    )
    .unwrap();
    assert_eq!(ints[0].as_slice::<u64>().unwrap(), &[2, 1]);
    assert!(run(&ElementwiseOp::Sum, &[Some(&t(&[1], vec![1i32]))]).is_err());
}

#[test]
fn cast_identity_and_dropout() {
    let x = t(&[2], vec![1.7f32, -2.5]);
    let c = run1(
        ElementwiseOp::Cast {
            to: DType::I32,
            saturate: None,
        },
        &[&x],
    )
    .unwrap();
    assert_eq!(c.as_slice::<i32>().unwrap(), &[1, -2]);
    // Integers wrap into narrower integers (200 as int16 is -56 as int8).
    let w = run1(
        ElementwiseOp::Cast {
            to: DType::I8,
            saturate: None,
        },
        &[&t(&[3], vec![200i16, -300, 7])],
    )
    .unwrap();
    assert_eq!(w.as_slice::<i8>().unwrap(), &[-56, -44, 7]);
    let u = run1(
        ElementwiseOp::Cast {
            to: DType::U8,
            saturate: None,
        },
        &[&t(&[2], vec![-1i32, 256])],
    )
    .unwrap();
    assert_eq!(u.as_slice::<u8>().unwrap(), &[255, 0]);
    let b = run1(
        ElementwiseOp::Cast {
            to: DType::Bool,
            saturate: None,
        },
        &[&t(&[3], vec![0f32, f32::NAN, -0.5])],
    )
    .unwrap();
    assert_eq!(b.as_slice::<bool>().unwrap(), &[false, true, true]);
    let big = run1(
        ElementwiseOp::Cast {
            to: DType::F32,
            saturate: None,
        },
        &[&t(&[1], vec![(1i64 << 60) + (1 << 36) + 1])],
    )
    .unwrap();
    assert_eq!(f32s(&big), vec![((1i64 << 60) + (1 << 36) + 1) as f32]);
    let like = run1(
        ElementwiseOp::CastLike { saturate: None },
        &[&x, &t(&[0], Vec::<f64>::new())],
    )
    .unwrap();
    assert_eq!(like.dtype(), DType::F64);
    assert_eq!(run1(ElementwiseOp::Identity, &[&x]).unwrap(), x);
    let d = ElementwiseOp::Dropout {
        ratio: None,
        seed: None,
        bool_mask: true,
    };
    let out = run(&d, &[Some(&x)]).unwrap();
    assert_eq!(out[0], x);
    assert_eq!(out[1].as_slice::<bool>().unwrap(), &[true, true]);
    let zero = Tensor::scalar(0f32);
    let yes = Tensor::scalar(true);
    assert!(run(&d, &[Some(&x), Some(&zero), Some(&yes)]).is_ok());
    assert!(run(&d, &[Some(&x), Some(&Tensor::scalar(0.5f32)), Some(&yes)]).is_err());
    let legacy = ElementwiseOp::Dropout {
        ratio: Some(0.3),
        seed: None,
        bool_mask: false,
    };
    assert_eq!(
        run(&legacy, &[Some(&x)]).unwrap()[1]
            .as_slice::<f32>()
            .unwrap(),
        &[1., 1.]
    );
}

#[test]
fn missing_inputs_are_errors() {
    assert!(run(&ElementwiseOp::Add, &[Some(&Tensor::scalar(1f32))]).is_err());
    assert!(run(&ElementwiseOp::Relu, &[]).is_err());
    assert!(run(
        &ElementwiseOp::Where,
        &[Some(&Tensor::scalar(true)), None, None]
    )
    .is_err());
}

proptest! {
    #[test]
    fn add_matches_naive_broadcast(a_dims in proptest::collection::vec(1usize..4, 0..4), b_mask in 0u8..16, vals in proptest::collection::vec(-100f32..100., 64)) {
        let b_dims: Vec<usize> = a_dims.iter().enumerate().map(|(i, &d)| if b_mask >> i & 1 == 1 { 1 } else { d }).collect();
        let na: usize = a_dims.iter().product();
        let nb: usize = b_dims.iter().product();
        let a = t(&a_dims, vals[..na].to_vec());
        let b = t(&b_dims, vals[64 - nb..].to_vec());
        let out = run1(ElementwiseOp::Mul, &[&a, &b]).unwrap();
        let ib: Vec<usize> = BroadcastIndexer::new(&b_dims, &a_dims).indices().collect();
        let want: Vec<f32> = (0..na).map(|i| vals[i] * vals[64 - nb + ib[i]]).collect();
        prop_assert_eq!(f32s(&out), want);
    }

    #[test]
    fn python_mod_has_divisor_sign(a in -1000i32..1000, b in -50i32..50) {
        prop_assume!(b != 0);
        let out = run1(ElementwiseOp::Mod { fmod: false }, &[&t(&[1], vec![a]), &t(&[1], vec![b])]).unwrap();
        let r = out.as_slice::<i32>().unwrap()[0];
        prop_assert_eq!(r, a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 });
        prop_assert!(r == 0 || (r < 0) == (b < 0));
    }
}
