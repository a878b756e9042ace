//! Every int8 kernel this CPU runs (forced one by one), with 1 and 2 threads, against a
//! plain scalar reference: exact i32 accumulators, then the same f32 epilogue.

use proptest::prelude::*;

use super::*;
use crate::cpu::Tier;

/// A table whose int8 kernel is `k`.
fn table_with(k: QKernel) -> KernelTable {
    let f = CpuFeatures::detect();
    let mut t = KernelTable::for_tier(Tier::best(&f)).unwrap();
    t.quant.q8 = k;
    t
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn i8(&mut self, lo: i32, hi: i32) -> i8 {
        (lo + (self.next() >> 33) as i32 % (hi - lo + 1)) as i8
    }
    fn u8(&mut self) -> u8 {
        (self.next() >> 40) as u8
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// The reference epilogue of accumulator `acc` for channel `ch`.
fn ref_epi(acc: i64, xz: u8, sx: f32, sw: f32, wsum: i64, bias: f32, act: Activation) -> f32 {
    let v = (acc - xz as i64 * wsum) as i32 as f32 * (sx * sw) + bias;
    crate::gemm::epilogue::act_scalar(v, act)
}

fn close(got: f32, want: f32, act: Activation) -> bool {
    if matches!(act, Activation::Identity | Activation::Relu) {
        got.to_bits() == want.to_bits()
    } else {
        (got - want).abs() <= 1e-6 * want.abs().max(1.0)
    }
}

fn acts() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Identity),
        Just(Activation::Relu),
        Just(Activation::Sigmoid)
    ]
}

/// Runs `check` with a table for every kernel and 1 and 2 threads.
fn each_kernel(mut check: impl FnMut(&KernelTable, &Threads, QKernel)) {
    let two = Threads::new(2).unwrap();
    for k in QKernel::available() {
        let t = table_with(k);
        check(&t, &Threads::single(), k);
        check(&t, &two, k);
    }
}

#[allow(clippy::too_many_arguments)]
fn check_left(
    m: usize,
    n: usize,
    k: usize,
    wide: bool,
    per_ch: bool,
    bias: bool,
    act: Activation,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let (lo, hi) = if wide { (-128, 127) } else { (-64, 64) };
    let w: Vec<i8> = (0..m * k).map(|_| rng.i8(lo, hi)).collect();
    let ldb = n + 3;
    let b: Vec<u8> = (0..k * ldb).map(|_| rng.u8()).collect();
    let scales: Vec<f32> = (0..if per_ch { m } else { 1 })
        .map(|_| rng.f32().abs() * 0.1 + 1e-3)
        .collect();
    let bias_v: Vec<f32> = (0..m).map(|_| rng.f32()).collect();
    let (xz, sx) = (rng.u8(), 0.02 + rng.f32().abs() * 0.05);
    let epi = QEpilogue {
        x_scale: sx,
        x_zero: xz,
        bias: bias.then_some(&bias_v[..]),
        activation: act,
    };
    let packed = pack_qweights(m, k, &w, &scales).unwrap();
    let ldc = n + 1;
    let mut want = vec![f32::NAN; m * ldc];
    for i in 0..m {
        let wsum: i64 = w[i * k..(i + 1) * k].iter().map(|&v| v as i64).sum();
        for j in 0..n {
            let acc: i64 = (0..k)
                .map(|p| w[i * k + p] as i64 * b[p * ldb + j] as i64)
                .sum();
            let sw = scales[if per_ch { i } else { 0 }];
            want[i * ldc + j] = ref_epi(
                acc,
                xz,
                sx,
                sw,
                wsum,
                if bias { bias_v[i] } else { 0.0 },
                act,
            );
        }
    }
    let mut panels = vec![0u8; qpanels_len(k, n)];
    pack_qpanels(k, n, &b, ldb, &mut panels).unwrap();
    each_kernel(|t, th, kern| {
        for pre in [false, true] {
            let mut got = vec![f32::NAN; m * ldc];
            if pre {
                t.qgemm_prepacked(&packed, &panels, n, &mut got, ldc, &epi, th)
                    .unwrap();
            } else {
                t.qgemm(&packed, &b, ldb, n, &mut got, ldc, &epi, th)
                    .unwrap();
            }
            for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                if idx % ldc < n {
                    assert!(
                        close(*g, *w, act),
                        "{kern:?} pre={pre} m={m} n={n} k={k} at {idx}: {g} vs {w}"
                    );
                } else {
                    assert!(g.is_nan(), "gap written at {idx}");
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn check_right(
    m: usize,
    n: usize,
    k: usize,
    wide: bool,
    per_ch: bool,
    bias: bool,
    act: Activation,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let (lo, hi) = if wide { (-128, 127) } else { (-64, 64) };
    let w: Vec<i8> = (0..k * n).map(|_| rng.i8(lo, hi)).collect();
    let lda = k + 2;
    let a: Vec<u8> = (0..m * lda).map(|_| rng.u8()).collect();
    let scales: Vec<f32> = (0..if per_ch { n } else { 1 })
        .map(|_| rng.f32().abs() * 0.1 + 1e-3)
        .collect();
    let bias_v: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let (xz, sx) = (rng.u8(), 0.02 + rng.f32().abs() * 0.05);
    let epi = QEpilogue {
        x_scale: sx,
        x_zero: xz,
        bias: bias.then_some(&bias_v[..]),
        activation: act,
    };
    let packed = pack_qweights_rhs(k, n, &w, &scales).unwrap();
    let ldc = n + 2;
    let mut want = vec![f32::NAN; m * ldc];
    for j in 0..n {
        let wsum: i64 = (0..k).map(|p| w[p * n + j] as i64).sum();
        for i in 0..m {
            let acc: i64 = (0..k)
                .map(|p| a[i * lda + p] as i64 * w[p * n + j] as i64)
                .sum();
            let sw = scales[if per_ch { j } else { 0 }];
            want[i * ldc + j] = ref_epi(
                acc,
                xz,
                sx,
                sw,
                wsum,
                if bias { bias_v[j] } else { 0.0 },
                act,
            );
        }
    }
    each_kernel(|t, th, kern| {
        let mut got = vec![f32::NAN; m * ldc];
        t.qgemm_rhs(&a, lda, m, &packed, &mut got, ldc, &epi, th)
            .unwrap();
        for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
            if idx % ldc < n {
                assert!(
                    close(*g, *w, act),
                    "{kern:?} m={m} n={n} k={k} at {idx}: {g} vs {w}"
                );
            } else {
                assert!(g.is_nan(), "gap written at {idx}");
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn qgemm_left_matches_reference(
        m in 0usize..20, n in 0usize..80, k in 0usize..45, wide in any::<bool>(),
        per_ch in any::<bool>(), bias in any::<bool>(), act in acts(), seed in any::<u64>(),
    ) {
        check_left(m, n, k, wide, per_ch, bias, act, seed);
    }

    #[test]
    fn qgemm_right_matches_reference(
        m in 0usize..12, n in 0usize..80, k in 0usize..45, wide in any::<bool>(),
        per_ch in any::<bool>(), bias in any::<bool>(), act in acts(), seed in any::<u64>(),
    ) {
        check_right(m, n, k, wide, per_ch, bias, act, seed);
    }
}

/// Products large enough to be split over two threads, by columns and by rows.
#[test]
fn qgemm_split_over_threads() {
    check_left(37, 301, 131, true, true, true, Activation::Relu, 7);
    check_left(200, 40, 150, true, false, false, Activation::Identity, 8);
    check_right(1, 999, 1027, true, true, true, Activation::Identity, 9);
    check_right(150, 70, 101, true, true, false, Activation::Identity, 10);
}

/// Weights 127 with inputs 255: a plain `vpmaddubsw` saturates (`2·255·127 > 32767`);
/// the AVX2 kernel must not.
#[test]
fn avx2_maddubs_does_not_saturate() {
    let (m, n, k) = (3, 40, 64);
    check_left_const(m, n, k, 127, 255);
    check_left_const(m, n, k, -128, 255);
    #[cfg(target_arch = "x86_64")]
    if QKernel::available().contains(&QKernel::Avx2) {
        // The naive kernel really is wrong on these values, so the test above would
        // catch it.
        let rows = [127u8; 4 * 16];
        let panel = [255u8; 128 * 16];
        let mut out = [0i32; NR];
        // SAFETY: AVX2 was detected; the buffers hold one row of 16 groups, one
        // panel of 16 groups and one tile row.
        unsafe {
            x86::tile_avx2_naive(
                16,
                rows.as_ptr(),
                64,
                panel.as_ptr(),
                false,
                out.as_mut_ptr(),
            )
        };
        assert_ne!(out[0], 64 * 127 * 255);
    }
}

fn check_left_const(m: usize, n: usize, k: usize, wv: i8, xv: u8) {
    let w = vec![wv; m * k];
    let b = vec![xv; k * n];
    let packed = pack_qweights(m, k, &w, &[1.0]).unwrap();
    let epi = QEpilogue {
        x_scale: 1.0,
        x_zero: 0,
        bias: None,
        activation: Activation::Identity,
    };
    each_kernel(|t, th, kern| {
        let mut c = vec![0.0; m * n];
        t.qgemm(&packed, &b, n, n, &mut c, n, &epi, th).unwrap();
        let want = (k as i32 * wv as i32 * xv as i32) as f32;
        assert!(c.iter().all(|&v| v == want), "{kern:?}: {} vs {want}", c[0]);
        let wr = pack_qweights_rhs(k, n, &vec![wv; k * n], &[1.0]).unwrap();
        let a = vec![xv; m * k];
        c.fill(0.0);
        t.qgemm_rhs(&a, k, m, &wr, &mut c, n, &epi, th).unwrap();
        assert!(
            c.iter().all(|&v| v == want),
            "{kern:?} rhs: {} vs {want}",
            c[0]
        );
    });
}

#[test]
fn quantize_matches_onnx_and_tiers_agree() {
    let t = KernelTable::portable();
    let src = [
        0.5f32,
        1.5,
        2.5,
        -0.5,
        -1.5,
        3.49,
        1000.0,
        -1000.0,
        f32::NAN,
        f32::INFINITY,
    ];
    let mut d = [0u8; 10];
    t.quantize_u8(&src, 1.0, 0, &mut d).unwrap();
    assert_eq!(d, [0, 2, 2, 0, 0, 3, 255, 0, 0, 255]);
    let mut s = [0i8; 10];
    t.quantize_i8(&src, 1.0, 1, &mut s).unwrap();
    assert_eq!(s, [1, 3, 3, 1, -1, 4, 127, -128, -128, 127]);
    let mut rng = Rng(99);
    let src: Vec<f32> = (0..1037)
        .map(|i| match i % 5 {
            0 => (rng.next() % 600) as f32 * 0.5 - 150.0,
            1 => f32::from_bits(rng.next() as u32),
            _ => rng.f32() * 40.0,
        })
        .collect();
    let f = CpuFeatures::detect();
    for scale in [1.0f32, 0.37, 3.0] {
        let mut want = vec![0u8; src.len()];
        t.quantize_u8(&src, scale, 17, &mut want).unwrap();
        let mut want_s = vec![0i8; src.len()];
        t.quantize_i8(&src, scale, -3, &mut want_s).unwrap();
        for tier in Tier::ALL.into_iter().filter(|t| t.is_available(&f)) {
            let tt = KernelTable::for_tier(tier).unwrap();
            for len in [src.len(), 15, 7, 0] {
                let mut got = vec![0u8; len];
                tt.quantize_u8(&src[..len], scale, 17, &mut got).unwrap();
                assert_eq!(got, want[..len], "{tier}");
                let mut got = vec![0i8; len];
                tt.quantize_i8(&src[..len], scale, -3, &mut got).unwrap();
                assert_eq!(got, want_s[..len], "{tier}");
            }
        }
    }
    assert!(t.quantize_u8(&[1.0], 1.0, 0, &mut []).is_err());
}

#[test]
fn bad_shapes_are_errors() {
    assert!(pack_qweights(2, 3, &[0; 5], &[1.0]).is_err());
    assert!(pack_qweights(2, 3, &[0; 6], &[1.0; 3]).is_err());
    assert!(pack_qweights_rhs(3, 2, &[0; 6], &[1.0; 2]).is_ok());
    let w = pack_qweights(2, 3, &[1; 6], &[1.0]).unwrap();
    let t = KernelTable::portable();
    let th = Threads::single();
    let epi = QEpilogue {
        x_scale: 1.0,
        x_zero: 0,
        bias: None,
        activation: Activation::Identity,
    };
    let mut c = vec![0.0; 8];
    assert!(t.qgemm(&w, &[0; 11], 4, 4, &mut c, 4, &epi, &th).is_err());
    assert!(t
        .qgemm(&w, &[0; 12], 4, 4, &mut c[..7], 4, &epi, &th)
        .is_err());
    assert!(t.qgemm(&w, &[0; 12], 3, 4, &mut c, 4, &epi, &th).is_err());
    let short = [0.0; 1];
    let e2 = QEpilogue {
        bias: Some(&short),
        ..epi
    };
    assert!(t.qgemm(&w, &[0; 12], 4, 4, &mut c, 4, &e2, &th).is_err());
    assert!(t.qgemm(&w, &[0; 12], 4, 4, &mut c, 4, &epi, &th).is_ok());
    assert!(t
        .qgemm_prepacked(&w, &[0; 10], 4, &mut c, 4, &epi, &th)
        .is_err());
}

#[test]
fn table_picks_name_the_quantized_kernels() {
    let f = CpuFeatures::detect();
    for tier in Tier::ALL.into_iter().filter(|t| t.is_available(&f)) {
        let t = KernelTable::for_tier(tier).unwrap();
        let pick = |slot: &str| t.picks().into_iter().find(|p| p.0 == slot).map(|p| p.1);
        let want = match tier {
            Tier::Avx512 if f.avx512vnni => "qgemm_avx512vnni",
            Tier::Avx512 | Tier::Avx2 => "qgemm_avx2",
            _ => "qgemm_portable",
        };
        assert_eq!(pick("qgemm"), Some(want), "{tier}");
        assert_eq!(t.qgemm_kernel(), want);
        assert!(pick("quantize").is_some() && pick("gemm_q4").is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The tile kernels of every tier produce the same i32 accumulators as the
    /// portable one, bit for bit, for every tile height, both operand orders, and
    /// weights in `[-64, 64]` (AVX2's fast path) or the full s8 range.
    #[test]
    fn tile_accumulators_are_identical(kq in 0usize..40, wide in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let (lo, hi) = if wide { (-128, 127) } else { (-64, 64) };
        let rs = 4 * kq + 3;
        for rows_u8 in [false, true] {
            // The s8 operand holds weights, the u8 one activations.
            let mut s8 = |_: usize| rng.i8(lo, hi) as u8;
            let (rows, panel): (Vec<u8>, Vec<u8>) = if rows_u8 {
                let p: Vec<u8> = (0..128 * kq).map(&mut s8).collect();
                ((0..MR_MAX_TEST * rs).map(|_| rng.u8()).collect(), p)
            } else {
                let r: Vec<u8> = (0..MR_MAX_TEST * rs).map(&mut s8).collect();
                (r, (0..128 * kq).map(|_| rng.u8()).collect())
            };
            for kern in QKernel::available() {
                for r in 1..=kern.mr() {
                    let mut want = vec![0i32; r * NR];
                    let mut got = vec![0i32; r * NR];
                    // SAFETY: the buffers hold `r` rows of `rs >= 4·kq` bytes, a panel
                    // of `kq` groups and `r` tile rows; the kernels are available.
                    unsafe {
                        driver::tile_portable(kq, rows.as_ptr(), rs, panel.as_ptr(), r, rows_u8, want.as_mut_ptr());
                        kern.tile(kq, rows.as_ptr(), rs, panel.as_ptr(), r, rows_u8, !wide, got.as_mut_ptr());
                    }
                    prop_assert_eq!(&got, &want, "{:?} r={} rows_u8={}", kern, r, rows_u8);
                }
            }
        }
    }
}

const MR_MAX_TEST: usize = driver::MR_MAX;
