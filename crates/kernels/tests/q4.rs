//! `gemm_q4` of every available tier, with 1 and 2 threads, against dequantized
//! weights multiplied in f64, for every block size, with and without zero points,
//! on odd shapes (`k` not a multiple of the block, partial panels, `m` from 0 to 9 and from 30 to 39, across the switch to the
//! dequantizing path).

use proptest::prelude::*;
use slimnet_kernels::qgemm::pack_q4_weights;
use slimnet_kernels::{Activation, Bias, CpuFeatures, Epilogue, KernelTable, Threads, Tier};

fn tables() -> Vec<KernelTable> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check(m: usize, k: usize, n: usize, bs: usize, zeros: bool, bias: bool, relu: bool, seed: u64) {
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let blocks = k.div_ceil(bs);
    let q: Vec<i8> = (0..k * n).map(|_| (rnd() % 16) as i8 - 8).collect();
    let sc: Vec<f32> = (0..blocks * n)
        .map(|_| (rnd() % 1000) as f32 * 1e-3 + 1e-3)
        .collect();
    let z: Vec<i8> = (0..blocks * n).map(|_| (rnd() % 16) as i8 - 8).collect();
    let lda = k + 1;
    let x: Vec<f32> = (0..m * lda)
        .map(|_| (rnd() % 2001) as f32 * 1e-3 - 1.0)
        .collect();
    let bv: Vec<f32> = (0..n).map(|_| (rnd() % 200) as f32 * 0.01 - 1.0).collect();
    let w = pack_q4_weights(k, n, bs, &q, &sc, zeros.then_some(&z[..])).unwrap();
    let epi = Epilogue {
        bias: if bias {
            Bias::PerColumn(&bv)
        } else {
            Bias::None
        },
        activation: if relu {
            Activation::Relu
        } else {
            Activation::Identity
        },
    };
    let ldc = n + 2;
    let mut want = vec![0.0f64; m * ldc];
    let mut mag = vec![0.0f64; m * ldc];
    for i in 0..m {
        for j in 0..n {
            let (mut acc, mut a) = (0.0f64, 0.0f64);
            for p in 0..k {
                let b = p / bs;
                let zp = if zeros { z[b * n + j] as f64 } else { 0.0 };
                let wv = sc[b * n + j] as f64 * (q[p * n + j] as f64 - zp);
                acc += x[i * lda + p] as f64 * wv;
                a += (x[i * lda + p] as f64 * wv).abs();
            }
            let bb = if bias { bv[j] as f64 } else { 0.0 };
            let v = acc + bb;
            want[i * ldc + j] = if relu { v.max(0.0) } else { v };
            mag[i * ldc + j] = a + bb.abs() + 1.0;
        }
    }
    for t in tables() {
        for th in [Threads::single(), Threads::new(2).unwrap()] {
            let mut got = vec![f32::NAN; m * ldc];
            t.gemm_q4(m, &x, lda, &w, &mut got, ldc, &epi, &th).unwrap();
            for (idx, g) in got.iter().enumerate() {
                if idx % ldc >= n {
                    assert!(g.is_nan(), "gap written at {idx}");
                    continue;
                }
                let tol = 1e-5 * mag[idx] * (1.0 + (k as f64).sqrt() / 8.0);
                assert!(
                    (*g as f64 - want[idx]).abs() <= tol,
                    "{} m={m} k={k} n={n} bs={bs} at {idx}: {g} vs {}",
                    t.tier(),
                    want[idx]
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gemm_q4_matches_f64(
        m in prop_oneof![0usize..10, 30usize..40], k in 0usize..300, n in 0usize..100,
        bs in prop_oneof![Just(16usize), Just(32), Just(64), Just(128)],
        zeros in any::<bool>(), bias in any::<bool>(), relu in any::<bool>(), seed in any::<u64>(),
    ) {
        check(m, k, n, bs, zeros, bias, relu, seed);
    }
}

#[test]
fn gemm_q4_large_split_over_threads() {
    check(1, 1024, 1000, 32, true, true, false, 3);
    check(5, 512, 333, 128, false, false, true, 4);
    check(70, 300, 600, 64, true, true, false, 5);
}

#[test]
fn gemm_q4_rejects_bad_input() {
    assert!(pack_q4_weights(4, 2, 24, &[0; 8], &[1.0; 2], None).is_err());
    assert!(pack_q4_weights(4, 2, 16, &[8; 8], &[1.0; 2], None).is_err());
    assert!(pack_q4_weights(4, 2, 16, &[0; 7], &[1.0; 2], None).is_err());
    assert!(pack_q4_weights(4, 2, 16, &[0; 8], &[1.0; 1], None).is_err());
    assert!(pack_q4_weights(4, 2, 16, &[0; 8], &[1.0; 2], Some(&[0])).is_err());
    let w = pack_q4_weights(4, 2, 16, &[1; 8], &[1.0; 2], None).unwrap();
    let t = KernelTable::portable();
    let th = Threads::single();
    let mut out = [0.0f32; 4];
    let e = Epilogue::default();
    assert!(t
        .gemm_q4(2, &[1.0; 7], 4, &w, &mut out, 2, &e, &th)
        .is_err());
    assert!(t
        .gemm_q4(2, &[1.0; 8], 4, &w, &mut out[..3], 2, &e, &th)
        .is_err());
    let eb = Epilogue {
        bias: Bias::PerColumn(&[1.0]),
        ..e
    };
    assert!(t
        .gemm_q4(2, &[1.0; 8], 4, &w, &mut out, 2, &eb, &th)
        .is_err());
    t.gemm_q4(2, &[1.0; 8], 4, &w, &mut out, 2, &e, &th)
        .unwrap();
    assert_eq!(out, [4.0; 4]);
}
