//! The SIMD tiers with small cache blocks, so that random shapes cross every block
//! edge (`mc`, `kc`, `nc`) and every tile edge, compared with the portable version.

use proptest::prelude::*;

use super::driver::Blocking;
use super::{portable, SgemmShape};
use crate::cpu::{CpuFeatures, Tier};

type WithBlocking = fn(&SgemmShape, &[f32], &[f32], f32, &mut [f32], Blocking);

fn tiers() -> Vec<(Tier, WithBlocking, usize, usize)> {
    let f = CpuFeatures::detect();
    #[allow(unused_mut)]
    let mut v: Vec<(Tier, WithBlocking, usize, usize)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if Tier::Avx2.is_available(&f) {
            v.push((Tier::Avx2, super::avx2::sgemm_with, 6, 16));
        }
        if Tier::Avx512.is_available(&f) {
            v.push((Tier::Avx512, super::avx512::sgemm_with, 14, 32));
            v.push((Tier::Avx512, super::avx512::sgemm_with_rows::<12>, 12, 32));
            v.push((Tier::Avx512, super::avx512::sgemm_with_rows::<8>, 8, 32));
            v.push((Tier::Avx512, super::avx512::sgemm_with_rows::<4>, 4, 32));
        }
    }
    let _ = f;
    // The NEON micro-kernel's portable twin runs everywhere (reported as the portable
    // tier: it needs no CPU feature).
    v.push((Tier::Portable, super::neon::sgemm_emulated_with, 8, 8));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn small_blocks_match_portable(
        m in 0usize..70, n in 0usize..110, k in 0usize..40,
        mcm in 1usize..4, kc in 1usize..9, ncm in 1usize..4,
        beta in prop_oneof![Just(0.0f32), Just(1.0), Just(0.75)],
        seed in any::<u64>(),
    ) {
        let shape = SgemmShape { m, n, k, lda: k + 1, ldb: n + 2, ldc: n + 3 };
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let a: Vec<f32> = (0..m * shape.lda).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..k * shape.ldb).map(|_| rnd()).collect();
        let c0: Vec<f32> = (0..m * shape.ldc).map(|_| rnd()).collect();
        let mut want = c0.clone();
        portable::sgemm(&shape, &a, &b, beta, &mut want);
        for (tier, f, mr, nr) in tiers() {
            let blk = Blocking { mc: mcm * mr, kc, nc: ncm * nr };
            let mut got = c0.clone();
            f(&shape, &a, &b, beta, &mut got, blk);
            // Entries are in [-1, 1): (k + 2)·eps·(k + |beta|), doubled for two tiers.
            let tol = 2.0 * (k as f32 + 2.0) * f32::EPSILON * (k as f32 + beta.abs());
            for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= tol, "{tier} {blk:?} {shape:?} at {idx}: {g} vs {w}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The fused driver of every tier with small blocks (several `k` blocks, so the
    /// epilogue follows accumulation), `A` raw or packed, against the portable product
    /// followed by the scalar epilogue.
    #[test]
    fn small_blocks_fused_match_portable(
        m in 0usize..50, n in 0usize..80, k in 0usize..40,
        mcm in 1usize..4, kc in 1usize..9, ncm in 1usize..4,
        packed in any::<bool>(), col_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        use super::driver::{ASrc, BSrc, Window};
        use super::epilogue::{act_scalar, TileEpi};
        use super::GemmImpl;
        use crate::epilogue::Activation;
        let shape = SgemmShape { m, n, k, lda: k + 1, ldb: n + 2, ldc: n + 3 };
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let a: Vec<f32> = (0..m * shape.lda).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..k * shape.ldb).map(|_| rnd()).collect();
        let bias: Vec<f32> = (0..m.max(n)).map(|_| rnd()).collect();
        let act = Activation::LeakyRelu { alpha: 0.25 };
        let mut want = vec![0.0f32; m * shape.ldc];
        portable::sgemm(&shape, &a, &b, 0.0, &mut want);
        for i in 0..m {
            for j in 0..n {
                let v = &mut want[i * shape.ldc + j];
                *v = act_scalar(*v + if col_bias { bias[j] } else { bias[i] }, act);
            }
        }
        let f = CpuFeatures::detect();
        let tiers = Tier::ALL.into_iter().filter(|t| t.is_available(&f));
        for (tier, g) in tiers.flat_map(|t| [(t, GemmImpl::for_tier(t)), (t, GemmImpl::for_rows(t, m))]) {
            let blk = Blocking { mc: mcm * g.mr, kc, nc: ncm * g.nr };
            let rows = m.div_ceil(g.mr) * g.mr;
            let mut pa = vec![0.0f32; rows * k];
            (g.pack_a)(m, k, &a, shape.lda, kc, &mut pa);
            let cols = n.div_ceil(g.nr) * g.nr;
            let mut pb = vec![f32::NAN; cols * k];
            (g.pack_b)(k, n, &b, shape.ldb, kc, &mut pb);
            let mut got = vec![f32::NAN; m * shape.ldc];
            let w = Window {
                m, n, k,
                a: if packed { ASrc::Packed { ptr: pa.as_ptr(), rows, row0: 0 } }
                   else { ASrc::Raw { ptr: a.as_ptr(), lda: shape.lda } },
                b: if packed { BSrc::Packed { ptr: pb.as_ptr(), cols, col0: 0 } }
                   else { BSrc::Raw { ptr: b.as_ptr(), ldb: shape.ldb } },
                c: got.as_mut_ptr(), ldc: shape.ldc, beta: 0.0,
                epi: TileEpi {
                    row_bias: if col_bias { std::ptr::null() } else { bias.as_ptr() },
                    col_bias: if col_bias { bias.as_ptr() } else { std::ptr::null() },
                    act,
                },
            };
            // SAFETY: the window describes the vectors above; the tier is available.
            unsafe { (g.run)(&w, blk) };
            let tol = 2.0 * (k as f32 + 3.0) * f32::EPSILON * (k as f32 + 1.0);
            for i in 0..m {
                for j in 0..n {
                    let (g, w) = (got[i * shape.ldc + j], want[i * shape.ldc + j]);
                    prop_assert!((g - w).abs() <= tol, "{tier} {blk:?} packed={packed} ({i},{j}): {g} vs {w}");
                }
            }
        }
    }
}
