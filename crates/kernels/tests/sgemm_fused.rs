//! `sgemm_fused` and `sgemm_packed` of every available tier, with 1 and 2 threads and
//! every activation and bias kind, against the f64 product followed by the activation
//! in f64.
//!
//! Error bound per element: the product's `(k + 2)·eps·Σ|a·b|` times the activation's
//! Lipschitz constant (at most `max(1, |alpha|)` here), plus `4·eps·(1 + |y|)` for the
//! vector activations' own rounding, which is relative to the input as well.

use proptest::prelude::*;
use slimnet_kernels::{
    Activation, Bias, CpuFeatures, Epilogue, KernelError, KernelTable, SgemmShape, Threads, Tier,
};

fn act64(x: f64, act: Activation) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha as f64 * x
            }
        }
        Activation::Clip { min, max } => x.max(min as f64).min(max as f64),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Tanh => x.tanh(),
    }
}

fn activations() -> Vec<Activation> {
    vec![
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu { alpha: 0.1 },
        Activation::Clip {
            min: -0.5,
            max: 0.75,
        },
        Activation::Sigmoid,
        Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Activation::HardSwish,
        Activation::Tanh,
    ]
}

fn tables() -> Vec<KernelTable> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect()
}

fn rng(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_matches_f64(
        m in 0usize..70, n in prop_oneof![0usize..150, 0usize..14], k in prop_oneof![0usize..300, 500usize..1100],
        pads in (0usize..3, 0usize..3, 0usize..3),
        bias_kind in 0u8..3, act_idx in 0usize..8, seed in any::<u64>(),
    ) {
        let shape = SgemmShape { m, n, k, lda: k + pads.0, ldb: n + pads.1, ldc: n + pads.2 };
        let mut r = rng(seed);
        let a: Vec<f32> = (0..m * shape.lda).map(|_| r()).collect();
        let b: Vec<f32> = (0..k * shape.ldb).map(|_| r()).collect();
        let bias_rows: Vec<f32> = (0..m).map(|_| r()).collect();
        let bias_cols: Vec<f32> = (0..n).map(|_| r()).collect();
        let bias = match bias_kind { 0 => Bias::None, 1 => Bias::PerRow(&bias_rows), _ => Bias::PerColumn(&bias_cols) };
        let act = activations()[act_idx];
        let epi = Epilogue { bias, activation: act };
        let eps = f32::EPSILON as f64;
        let one = Threads::single();
        let two = Threads::new(2).unwrap();
        for table in tables() {
            let packed = table.pack_a(m, k, &a, shape.lda).unwrap();
            let packed_b = table.pack_b(k, n, &b, shape.ldb).unwrap();
            for threads in [&one, &two] {
              for use_packed in ["none", "A", "B"] {
                let mut c = vec![f32::NAN; m * shape.ldc];
                match use_packed {
                    "A" => table.sgemm_packed(&packed, &b, shape.ldb, n, &mut c, shape.ldc, &epi, threads).unwrap(),
                    "B" => table.sgemm_packed_b(&a, shape.lda, m, &packed_b, &mut c, shape.ldc, &epi, threads).unwrap(),
                    _ => table.sgemm_fused(&shape, &a, &b, &mut c, &epi, threads).unwrap(),
                }
                for i in 0..m {
                    for j in 0..shape.ldc {
                        let got = c[i * shape.ldc + j];
                        if j >= n {
                            prop_assert!(got.is_nan(), "gap touched");
                            continue;
                        }
                        let (mut sum, mut abs) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let prod = a[i * shape.lda + p] as f64 * b[p * shape.ldb + j] as f64;
                            sum += prod;
                            abs += prod.abs();
                        }
                        let bv = match bias { Bias::None => 0.0, Bias::PerRow(v) => v[i], Bias::PerColumn(v) => v[j] } as f64;
                        let want = act64(sum + bv, act);
                        let tol = (k as f64 + 2.0) * eps * (abs + bv.abs()) + 4.0 * eps * (1.0 + want.abs());
                        let err = (got as f64 - want).abs();
                        prop_assert!(err <= tol, "{} packed={use_packed} t={} {act:?} ({i},{j}) {shape:?}: {got} vs {want}", table.tier(), threads.count());
                    }
                }
              }
            }
        }
    }
}

#[test]
fn activations_match_f64_over_a_wide_range() {
    // Values from -100 to 100, on the identity product `1·x`.
    let xs: Vec<f32> = (-4000..=4000)
        .map(|i| i as f32 / 40.0)
        .chain([1e-6, -1e-6, 0.0, -0.0])
        .collect();
    let n = xs.len();
    for table in tables() {
        for act in activations() {
            let mut c = vec![0.0f32; n];
            let epi = Epilogue {
                bias: Bias::None,
                activation: act,
            };
            table
                .sgemm_fused(
                    &SgemmShape::dense(1, n, 1),
                    &[1.0],
                    &xs,
                    &mut c,
                    &epi,
                    &Threads::single(),
                )
                .unwrap();
            for (&x, &y) in xs.iter().zip(&c) {
                let want = act64(x as f64, act);
                let tol = 4.0 * f32::EPSILON as f64 * (want.abs() + x.abs() as f64) + 1e-37;
                assert!(
                    (y as f64 - want).abs() <= tol,
                    "{} {act:?}({x}) = {y}, want {want}",
                    table.tier()
                );
            }
        }
    }
}

#[test]
fn bad_bias_and_foreign_packing_are_errors() {
    let table = KernelTable::detect();
    let mut c = vec![0.0f32; 4];
    let short = Epilogue {
        bias: Bias::PerRow(&[1.0]),
        activation: Activation::Relu,
    };
    let r = table.sgemm_fused(
        &SgemmShape::dense(2, 2, 2),
        &[0.0; 4],
        &[0.0; 4],
        &mut c,
        &short,
        &Threads::single(),
    );
    assert!(matches!(r, Err(KernelError::BadShape(_))));
    let packed = KernelTable::portable().pack_a(2, 2, &[1.0; 4], 2).unwrap();
    if table.tier() != Tier::Portable {
        let r = table.sgemm_packed(
            &packed,
            &[0.0; 4],
            2,
            2,
            &mut c,
            2,
            &Epilogue::default(),
            &Threads::single(),
        );
        assert!(matches!(r, Err(KernelError::BadShape(_))));
    }
    assert!(matches!(
        table.pack_a(2, 3, &[0.0; 5], 3),
        Err(KernelError::BadShape(_))
    ));
    assert!(matches!(
        table.pack_b(2, 3, &[0.0; 5], 3),
        Err(KernelError::BadShape(_))
    ));
    let packed_b = KernelTable::portable().pack_b(2, 2, &[1.0; 4], 2).unwrap();
    let r = table.sgemm_packed_b(
        &[0.0; 3],
        2,
        2,
        &packed_b,
        &mut c,
        2,
        &Epilogue::default(),
        &Threads::single(),
    );
    assert!(matches!(r, Err(KernelError::BadShape(_))));
}
