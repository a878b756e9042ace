//! Activations, unary math and binary ops.

use proptest::prelude::*;

use super::{close, erf64, length, tables, Rng};
use crate::eltwise::{activation_scalar, BinaryLayout, BinaryOp, UnaryOp};
use crate::epilogue::Activation;
use crate::parallel::Threads;

const ACTS: [Activation; 9] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu { alpha: 0.1 },
    Activation::Clip {
        min: -1.0,
        max: 2.5,
    },
    Activation::Clip {
        min: f32::NAN,
        max: 0.5,
    },
    Activation::Sigmoid,
    Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Activation::HardSwish,
    Activation::Tanh,
];

/// The exact activation and the tolerance the kernels promise for it.
fn act_ref(act: Activation, x: f32) -> (f64, f64) {
    let xd = x as f64;
    let clamp01 = |y: f64| if y.is_nan() { y } else { y.clamp(0.0, 1.0) };
    match act {
        Activation::Identity => (xd, 0.0),
        Activation::Relu => (if xd < 0.0 { 0.0 } else { xd }, 0.0),
        Activation::LeakyRelu { alpha } => (if xd < 0.0 { alpha as f64 * xd } else { xd }, 0.0),
        Activation::Clip { min, max } => {
            let y = if xd < min as f64 { min as f64 } else { xd };
            (if y > max as f64 { max as f64 } else { y }, 0.0)
        }
        Activation::Sigmoid => {
            let w = 1.0 / (1.0 + (-xd).exp());
            (w, 1e-6 * w + 3e-45)
        }
        Activation::HardSigmoid { alpha, beta } => {
            (clamp01(alpha as f64 * xd + beta as f64), 2.5e-7)
        }
        Activation::HardSwish => {
            let w = xd * clamp01(xd / 6.0 + 0.5);
            (w, 2.5e-7 * xd.abs())
        }
        Activation::Tanh => {
            let w = xd.tanh();
            (w, 1e-6 * w.abs() + 1e-38)
        }
    }
}

/// The exact op and the tolerance [`UnaryOp`]'s documentation promises.
fn unary_ref(op: UnaryOp, x: f32) -> (f64, f64) {
    let xd = x as f64;
    match op {
        UnaryOp::Exp => {
            let w = xd.exp();
            (w, 3e-7 * w + 3e-45)
        }
        UnaryOp::Log => {
            let w = xd.ln();
            (w, (3e-7 * w.abs()).max(1e-7))
        }
        UnaryOp::Sqrt => (xd.sqrt(), 0.0),
        UnaryOp::Neg => (-xd, 0.0),
        UnaryOp::Abs => (xd.abs(), 0.0),
        UnaryOp::Reciprocal => (1.0 / xd, 0.0),
        UnaryOp::Square => (xd * xd, 0.0),
        UnaryOp::Erf => {
            let w = erf64(xd);
            (w, if xd.abs() < 0.5 { 1e-6 * w.abs() } else { 5e-7 })
        }
        UnaryOp::Gelu => {
            let w = xd * 0.5 * (1.0 + erf64(xd * std::f64::consts::FRAC_1_SQRT_2));
            (w, 5e-7 * xd.abs().max(1.0))
        }
        UnaryOp::Floor => (xd.floor(), 0.0),
        UnaryOp::Ceil => (xd.ceil(), 0.0),
        UnaryOp::Round => (xd.round_ties_even(), 0.0),
    }
}

/// Exact results must round to the f32 the kernels return (`tol == 0`).
fn ok(got: f32, want: f64, tol: f64) -> bool {
    if tol == 0.0 {
        (got.is_nan() && want.is_nan()) || got == want as f32
    } else {
        close(got, want, tol)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn activations_match_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let n = length(&mut rng);
        let x = rng.values(n, true);
        for act in ACTS {
            for (i, &v) in x.iter().enumerate() {
                let (w, tol) = act_ref(act, v);
                let g = activation_scalar(act, v);
                prop_assert!(ok(g, w, tol), "scalar {act:?} x[{i}]={v}: {g} vs {w}");
            }
            for t in tables() {
                let mut out = vec![f32::NAN; n];
                t.activate_into(act, &x, &mut out).unwrap();
                let mut inplace = x.clone();
                t.activate(act, &mut inplace);
                for (i, &v) in x.iter().enumerate() {
                    let (w, tol) = act_ref(act, v);
                    prop_assert!(ok(out[i], w, tol), "{} {act:?} x[{i}]={v}: {} vs {w}", t.tier(), out[i]);
                    prop_assert!(inplace[i].to_bits() == out[i].to_bits() || inplace[i].is_nan() && out[i].is_nan());
                }
            }
        }
    }

    #[test]
    fn unary_ops_match_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let n = length(&mut rng);
        let x = rng.values(n, true);
        for op in UnaryOp::ALL {
            for t in tables() {
                let mut out = vec![f32::NAN; n];
                t.unary(op, &x, &mut out).unwrap();
                let mut inplace = x.clone();
                t.unary_inplace(op, &mut inplace);
                for (i, &v) in x.iter().enumerate() {
                    let (w, tol) = unary_ref(op, v);
                    prop_assert!(ok(out[i], w, tol), "{} {op:?} x[{i}]={v}: {} vs {w}", t.tier(), out[i]);
                    prop_assert!(inplace[i].to_bits() == out[i].to_bits() || inplace[i].is_nan() && out[i].is_nan());
                }
            }
        }
    }

    #[test]
    fn binary_ops_match_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (outer, mid) = (rng.below(4), rng.below(24));
        let inner = [1, 2, 3, 7, 15, 16, 17, 40][rng.below(8)];
        let n = length(&mut rng);
        let total = outer * mid * inner;
        let (layout, a_len, b_len, out_len) = match rng.below(5) {
            0 => (BinaryLayout::Same, n, n, n),
            1 => (BinaryLayout::ScalarA, 1, n, n),
            2 => (BinaryLayout::ScalarB, n, 1, n),
            3 => (BinaryLayout::MidA { outer, mid, inner }, mid, total, total),
            _ => (BinaryLayout::MidB { outer, mid, inner }, total, mid, total),
        };
        let a = rng.values(a_len, true);
        let mut b = rng.values(b_len, true);
        if b_len == 1 && rng.below(2) == 0 {
            b[0] = 2.0;
        }
        let (ia, ib): (Vec<usize>, Vec<usize>) = (0..out_len)
            .map(|i| match layout {
                BinaryLayout::Same => (i, i),
                BinaryLayout::ScalarA => (0, i),
                BinaryLayout::ScalarB => (i, 0),
                BinaryLayout::MidA { .. } => ((i / inner) % mid, i),
                BinaryLayout::MidB { .. } => (i, (i / inner) % mid),
            })
            .unzip();
        for op in BinaryOp::ALL {
            let want: Vec<f64> = (0..out_len)
                .map(|i| {
                    let (x, y) = (a[ia[i]] as f64, b[ib[i]] as f64);
                    match op {
                        BinaryOp::Add => x + y,
                        BinaryOp::Sub => x - y,
                        BinaryOp::Mul => x * y,
                        BinaryOp::Div => x / y,
                        BinaryOp::Max if x.is_nan() || y.is_nan() => f64::NAN,
                        BinaryOp::Max => x.max(y),
                        BinaryOp::Min if x.is_nan() || y.is_nan() => f64::NAN,
                        BinaryOp::Min => x.min(y),
                        BinaryOp::Pow => x.powf(y),
                    }
                })
                .collect();
            let tol = |w: f64| if op == BinaryOp::Pow { 1.2e-7 * w.abs() + 1.5e-45 } else { 0.0 };
            for i in 0..out_len {
                let g = op.apply(a[ia[i]], b[ib[i]]);
                prop_assert!(ok(g, want[i], tol(want[i])), "apply {op:?} at {i}: {g} vs {}", want[i]);
            }
            for t in tables() {
                let mut out = vec![f32::NAN; out_len];
                t.binary(op, &a, &b, &mut out, layout).unwrap();
                for i in 0..out_len {
                    prop_assert!(
                        ok(out[i], want[i], tol(want[i])),
                        "{} {op:?} {layout:?} at {i}: {} {} -> {} vs {}",
                        t.tier(), a[ia[i]], b[ib[i]], out[i], want[i]
                    );
                }
                // In place over whichever operand is full size.
                let acc_is_a = matches!(
                    layout,
                    BinaryLayout::Same | BinaryLayout::ScalarB | BinaryLayout::MidB { .. }
                );
                let (mut acc, other) = if acc_is_a { (a.clone(), &b) } else { (b.clone(), &a) };
                t.binary_inplace(op, &mut acc, other, layout, acc_is_a).unwrap();
                for i in 0..out_len {
                    prop_assert!(acc[i].to_bits() == out[i].to_bits() || acc[i].is_nan() && out[i].is_nan(), "in place {op:?} at {i}");
                }
            }
        }
    }
}

#[test]
fn binary_rejects_bad_lengths() {
    let t = crate::KernelTable::detect();
    let (a, b, mut out) = (vec![1.0; 6], vec![1.0; 3], vec![0.0; 6]);
    let mid = |outer, mid, inner| BinaryLayout::MidB { outer, mid, inner };
    let bad = [
        (BinaryLayout::Same, 6, 3, 6),
        (BinaryLayout::ScalarB, 6, 3, 6),
        (BinaryLayout::ScalarA, 6, 3, 6),
        (mid(2, 3, 2), 6, 3, 3),
        (mid(1, 3, 3), 6, 3, 6),
        (mid(usize::MAX, 3, 2), 6, 3, 6),
        (
            BinaryLayout::MidA {
                outer: 2,
                mid: 3,
                inner: 1,
            },
            6,
            3,
            6,
        ),
    ];
    for (layout, al, bl, ol) in bad {
        let r = t.binary(BinaryOp::Add, &a[..al], &b[..bl], &mut out[..ol], layout);
        assert!(
            matches!(r, Err(crate::KernelError::BadShape(_))),
            "{layout:?}"
        );
    }
    let mut acc = vec![0.0; 3];
    let r = t.binary_inplace(BinaryOp::Add, &mut acc, &a, mid(2, 3, 1), true);
    assert!(r.is_err(), "a small accumulator cannot hold the output");
    assert!(t
        .activate_into(Activation::Relu, &a, &mut out[..5])
        .is_err());
    assert!(t.unary(UnaryOp::Exp, &a, &mut out[..5]).is_err());
}

#[test]
fn relu_and_max_propagate_nan() {
    for t in tables() {
        let mut x = vec![f32::NAN, -1.0, 2.0, f32::NAN];
        t.activate(Activation::Relu, &mut x);
        assert!(x[0].is_nan() && x[3].is_nan() && x[1] == 0.0 && x[2] == 2.0);
        let a = [f32::NAN, 1.0, f32::NAN, 3.0];
        let b = [1.0, f32::NAN, f32::NAN, 2.0];
        let mut out = [0.0; 4];
        for op in [BinaryOp::Max, BinaryOp::Min] {
            t.binary(op, &a, &b, &mut out, BinaryLayout::Same).unwrap();
            assert!(out[..3].iter().all(|v| v.is_nan()), "{op:?} {out:?}");
        }
    }
}

#[test]
fn parallel_streaming_ops_equal_single_threaded() {
    let two = Threads::new(2).unwrap();
    let mut rng = Rng::new(7);
    let n = 3 * (1 << 16) + 13;
    let x = rng.values(n, true);
    let y = rng.values(n, true);
    for t in tables() {
        let mut want = vec![0.0; n];
        let mut got = vec![0.0; n];
        t.activate_into(Activation::Sigmoid, &x, &mut want).unwrap();
        t.activate_into_par(Activation::Sigmoid, &x, &mut got, &two)
            .unwrap();
        assert!(same(&got, &want));
        let mut inplace = x.clone();
        t.activate_par(Activation::Sigmoid, &mut inplace, &two);
        assert!(same(&inplace, &want));

        t.unary(UnaryOp::Erf, &x, &mut want).unwrap();
        t.unary_par(UnaryOp::Erf, &x, &mut got, &two).unwrap();
        assert!(same(&got, &want));
        let mut inplace = x.clone();
        t.unary_inplace_par(UnaryOp::Erf, &mut inplace, &two);
        assert!(same(&inplace, &want));

        let layout = BinaryLayout::MidB {
            outer: 3,
            mid: 7,
            inner: n / 21,
        };
        let len = 21 * (n / 21);
        t.binary(BinaryOp::Mul, &x[..len], &y[..7], &mut want[..len], layout)
            .unwrap();
        t.binary_par(
            BinaryOp::Mul,
            &x[..len],
            &y[..7],
            &mut got[..len],
            layout,
            &two,
        )
        .unwrap();
        assert!(same(&got[..len], &want[..len]));
        let mut acc = x[..len].to_vec();
        t.binary_inplace_par(BinaryOp::Mul, &mut acc, &y[..7], layout, true, &two)
            .unwrap();
        assert!(same(&acc, &want[..len]));
    }
}

/// Bitwise equal, NaN matching NaN.
pub(super) fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan())
}

/// A dense sweep over the ranges where the approximations switch branches, checking
/// the documented bounds and reporting the worst errors seen (`--nocapture`).
#[test]
fn approximations_hold_their_bounds_on_a_sweep() {
    let n = 1 << 17;
    let grid = |lo: f32, hi: f32| -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / n as f32)
            .collect()
    };
    let cases: [(&str, Vec<f32>); 4] = [
        ("wide", grid(-110.0, 110.0)),
        ("small", grid(-4.0, 4.0)),
        ("tiny", grid(-1e-3, 1e-3)),
        (
            "positive",
            (0..n)
                .map(|i| f32::from_bits(0x0000_1000 + i as u32 * 16_000))
                .collect(),
        ),
    ];
    for t in tables() {
        for (name, x) in &cases {
            let mut out = vec![0.0; x.len()];
            for op in [UnaryOp::Exp, UnaryOp::Log, UnaryOp::Erf, UnaryOp::Gelu] {
                t.unary(op, x, &mut out).unwrap();
                let mut worst = 0.0f64;
                for (&v, &g) in x.iter().zip(&out) {
                    let (w, tol) = unary_ref(op, v);
                    assert!(ok(g, w, tol), "{} {op:?} {v}: {g} vs {w}", t.tier());
                    if w.is_finite() && (w as f32).is_finite() && tol > 0.0 {
                        worst = worst.max(((g as f64) - w).abs() / tol);
                    }
                }
                println!(
                    "{} {op:?} {name}: worst error {worst:.3} of the bound",
                    t.tier()
                );
            }
            for act in [Activation::Sigmoid, Activation::Tanh] {
                t.activate_into(act, x, &mut out).unwrap();
                let mut worst = 0.0f64;
                for (&v, &g) in x.iter().zip(&out) {
                    let (w, tol) = act_ref(act, v);
                    assert!(ok(g, w, tol), "{} {act:?} {v}: {g} vs {w}", t.tier());
                    worst = worst.max(((g as f64) - w).abs() / tol);
                }
                println!(
                    "{} {act:?} {name}: worst error {worst:.3} of the bound",
                    t.tier()
                );
            }
        }
    }
}
