//! Every sgemm tier available on this CPU against the portable version and against a
//! naive f64 triple loop, on random shapes (odd sizes, tails, zero sizes) with random
//! leading dimensions and `beta`.
//!
//! Error bound, per element of `C`: `|c − exact| ≤ (k + 2)·eps·(Σ_p |a_ip·b_pj| + |beta·c0_ij|)`,
//! the classical bound for a sum of `k + 1` products in any order (with or without
//! FMA), which is at most `(k + 2)·eps·(k·max|a|·max|b| + |beta|·max|c0|)`. Two
//! tiers are compared with twice that bound.

use proptest::prelude::*;
use slimnet_kernels::{CpuFeatures, KernelError, KernelTable, SgemmShape, Tier};

#[derive(Clone, Debug)]
struct Case {
    shape: SgemmShape,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    beta: f32,
}

fn case() -> impl Strategy<Value = Case> {
    let dim = prop_oneof![0usize..=3, 0usize..=40, 0usize..=300];
    (
        dim.clone(),
        dim.clone(),
        dim,
        0usize..3,
        0usize..3,
        0usize..3,
        0u8..4,
    )
        .prop_flat_map(|(m, n, k, pa, pb, pc, beta_kind)| {
            let shape = SgemmShape {
                m,
                n,
                k,
                lda: k + pa,
                ldb: n + pb,
                ldc: n + pc,
            };
            let beta = [0.0f32, 1.0, -0.5, 2.0][beta_kind as usize];
            let len = |rows: usize, ld: usize| rows * ld;
            (
                Just(shape),
                prop::collection::vec(-1.0f32..1.0, len(m, shape.lda)),
                prop::collection::vec(-1.0f32..1.0, len(k, shape.ldb)),
                prop::collection::vec(-1.0f32..1.0, len(m, shape.ldc)),
                Just(beta),
            )
        })
        .prop_map(|(shape, a, b, c, beta)| Case {
            shape,
            a,
            b,
            c,
            beta,
        })
}

/// The exact product (in f64) and the per-element error scale `Σ|a·b| + |beta·c0|`.
fn naive(t: &Case) -> (Vec<f64>, Vec<f64>) {
    let s = &t.shape;
    let mut exact = vec![0.0f64; t.c.len()];
    let mut scale = vec![0.0f64; t.c.len()];
    for i in 0..s.m {
        for j in 0..s.n {
            let c0 = t.c[i * s.ldc + j] as f64;
            let (mut sum, mut abs) = if t.beta == 0.0 {
                (0.0, 0.0)
            } else {
                (t.beta as f64 * c0, (t.beta as f64 * c0).abs())
            };
            for p in 0..s.k {
                let prod = t.a[i * s.lda + p] as f64 * t.b[p * s.ldb + j] as f64;
                sum += prod;
                abs += prod.abs();
            }
            exact[i * s.ldc + j] = sum;
            scale[i * s.ldc + j] = abs;
        }
    }
    (exact, scale)
}

fn run(table: &KernelTable, t: &Case) -> Vec<f32> {
    let mut c = t.c.clone();
    table.sgemm(&t.shape, &t.a, &t.b, t.beta, &mut c).unwrap();
    c
}

fn available_tiers() -> Vec<Tier> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn every_tier_matches_portable_and_f64(t in case()) {
        let s = &t.shape;
        let eps = f32::EPSILON as f64;
        let bound = (s.k as f64 + 2.0) * eps;
        let (exact, scale) = naive(&t);
        let portable = run(&KernelTable::portable(), &t);
        for tier in available_tiers() {
            let got = run(&KernelTable::for_tier(tier).unwrap(), &t);
            for idx in 0..t.c.len() {
                let (i, j) = (idx / s.ldc.max(1), idx % s.ldc.max(1));
                if i >= s.m || j >= s.n {
                    // Gaps between rows of C are never touched.
                    prop_assert_eq!(got[idx].to_bits(), t.c[idx].to_bits());
                    continue;
                }
                let tol = bound * scale[idx];
                let err = (got[idx] as f64 - exact[idx]).abs();
                prop_assert!(err <= tol, "{tier} vs f64 at ({i},{j}) of {s:?}: {err} > {tol}");
                let diff = (got[idx] as f64 - portable[idx] as f64).abs();
                prop_assert!(diff <= 2.0 * tol, "{tier} vs portable at ({i},{j}): {diff}");
            }
        }
    }
}

#[test]
fn beta_zero_ignores_nan_in_c() {
    for tier in available_tiers() {
        let table = KernelTable::for_tier(tier).unwrap();
        for (m, n, k) in [(7, 19, 5), (1, 1, 0), (30, 33, 1)] {
            let a = vec![1.0f32; m * k];
            let b = vec![2.0f32; k * n];
            let mut c = vec![f32::NAN; m * n];
            table
                .sgemm(&SgemmShape::dense(m, n, k), &a, &b, 0.0, &mut c)
                .unwrap();
            assert!(c.iter().all(|&x| x == 2.0 * k as f32), "{tier} {m}x{n}x{k}");
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let table = KernelTable::detect();
    let mut c = vec![0.0f32; 4];
    let short = table.sgemm(
        &SgemmShape::dense(2, 2, 2),
        &[0.0; 3],
        &[0.0; 4],
        0.0,
        &mut c,
    );
    assert!(matches!(short, Err(KernelError::BadShape(_))));
    let mut s = SgemmShape::dense(2, 2, 2);
    s.lda = 1;
    let ld = table.sgemm(&s, &[0.0; 8], &[0.0; 4], 0.0, &mut c);
    assert!(matches!(ld, Err(KernelError::BadShape(_))));
    // Empty matrices need no storage.
    table
        .sgemm(&SgemmShape::dense(0, 5, 3), &[], &[0.0; 15], 0.0, &mut [])
        .unwrap();
}

#[test]
fn unavailable_or_unknown_tiers_are_refused() {
    let f = CpuFeatures::detect();
    for tier in Tier::ALL {
        match KernelTable::for_tier(tier) {
            Ok(t) => assert_eq!(t.tier(), tier),
            Err(KernelError::TierUnavailable { tier: t, .. }) => {
                assert_eq!(t, tier);
                assert!(!tier.is_available(&f));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(matches!(
        "sse9".parse::<Tier>(),
        Err(KernelError::UnknownTier(_))
    ));
    assert_eq!("AVX2".parse::<Tier>().unwrap(), Tier::Avx2);
    assert_eq!(KernelTable::detect().tier(), Tier::best(&f));
}
