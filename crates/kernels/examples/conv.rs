//! Prints the measured FMA peak of one core, then GFLOP/s (and the fraction of that
//! peak) for the fused sgemm (256..1024, A packed on the fly and ahead) and for a few
//! convolution shapes of PP-OCR, with one and two threads, for every tier this CPU
//! supports. Run with `cargo run --release -p slimnet-kernels --example conv`.

use std::time::Instant;

use slimnet_kernels::conv::Conv2dParams;
use slimnet_kernels::{
    Activation, Bias, CpuFeatures, Epilogue, KernelTable, SgemmShape, Threads, Tier,
};

/// Best seconds per call of `f` over many short runs (the minimum is the least
/// disturbed by other load on the machine).
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.01 / once) as usize).clamp(1, 10_000);
    let mut best = f64::INFINITY;
    for _ in 0..15 {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    const ITERS: usize = 1 << 19;

    /// Runs `ITERS` steps of 12 independent FMA chains; returns the flops done.
    #[target_feature(enable = "avx512f")]
    fn fma512(seed: f32) -> (f64, f32) {
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(seed * 1e-7));
        let mut acc = [_mm512_set1_ps(seed); 12];
        for _ in 0..ITERS / 64 {
            for _ in 0..64 {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            acc = std::hint::black_box(acc);
        }
        let s = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
        ((ITERS * 12 * 16 * 2) as f64, _mm512_reduce_add_ps(s))
    }

    #[target_feature(enable = "avx2,fma")]
    fn fma256(seed: f32) -> (f64, f32) {
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(seed * 1e-7));
        let mut acc = [_mm256_set1_ps(seed); 12];
        for _ in 0..ITERS / 64 {
            for _ in 0..64 {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            acc = std::hint::black_box(acc);
        }
        let s = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 values.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        ((ITERS * 12 * 8 * 2) as f64, out.iter().sum())
    }

    /// Peak GFLOP/s of one core with AVX-512 and with AVX2 FMAs, where available.
    pub fn measure() -> (Option<f64>, Option<f64>) {
        let run = |f: &dyn Fn() -> (f64, f32)| {
            let mut best = 0.0f64;
            for _ in 0..30 {
                let t0 = std::time::Instant::now();
                let (flops, sink) = f();
                std::hint::black_box(sink);
                best = best.max(flops / t0.elapsed().as_secs_f64() / 1e9);
            }
            best
        };
        let p512 = is_x86_feature_detected!("avx512f")
            // SAFETY: the feature was just detected.
            .then(|| run(&|| unsafe { fma512(std::hint::black_box(1.0)) }));
        let p256 = (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            // SAFETY: the features were just detected.
            .then(|| run(&|| unsafe { fma256(std::hint::black_box(1.0)) }));
        (p512, p256)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod peak {
    pub fn measure() -> (Option<f64>, Option<f64>) {
        (None, None)
    }
}

fn fill(n: usize, mul: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * mul % 13) as f32 - 6.0) / 8.0)
        .collect()
}

fn main() {
    let f = CpuFeatures::detect();
    let (p512, p256) = peak::measure();
    let peak = p512.or(p256).unwrap_or(f64::NAN);
    if let Some(p) = p512 {
        println!("FMA peak, one core, AVX-512: {p:7.1} GFLOP/s");
    }
    if let Some(p) = p256 {
        println!("FMA peak, one core, AVX2:    {p:7.1} GFLOP/s");
    }
    let one = Threads::single();
    let two = Threads::new(2).unwrap();
    let tables: Vec<KernelTable> = Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect();
    let only = std::env::var("SLIMNET_BENCH_TIER").ok();
    let report = |what: &str, tier: Tier, flops: f64, s1: f64, s2: f64| {
        let (g1, g2) = (flops / s1 / 1e9, flops / s2 / 1e9);
        println!(
            "{what:34} {:9} 1T {g1:7.1} GFLOP/s ({:3.0}% of peak)  2T {g2:7.1} ({:4.2}x)",
            tier.name(),
            100.0 * g1 / peak,
            s1 / s2
        );
    };
    for table in tables
        .iter()
        .filter(|t| only.as_deref().is_none_or(|o| o == t.tier().name()))
    {
        let tier = table.tier();
        for n in [256usize, 512, 1024] {
            let (a, b) = (fill(n * n, 7), fill(n * n, 5));
            let mut c = vec![0.0f32; n * n];
            let shape = SgemmShape::dense(n, n, n);
            let flops = 2.0 * (n as f64).powi(3);
            let epi = Epilogue {
                bias: Bias::PerRow(&a[..n]),
                activation: Activation::Relu,
            };
            let mut run =
                |t: &Threads| time(|| table.sgemm_fused(&shape, &a, &b, &mut c, &epi, t).unwrap());
            let (s1, s2) = (run(&one), run(&two));
            report(&format!("sgemm_fused {n}^3 bias+relu"), tier, flops, s1, s2);
            let pa = table.pack_a(n, n, &a, n).unwrap();
            let mut run = |t: &Threads| {
                time(|| {
                    table
                        .sgemm_packed(&pa, &b, n, n, &mut c, n, &epi, t)
                        .unwrap()
                })
            };
            let (s1, s2) = (run(&one), run(&two));
            report(
                &format!("sgemm_packed {n}^3 bias+relu"),
                tier,
                flops,
                s1,
                s2,
            );
        }
        for (m, k, n) in [(1usize, 1536usize, 128usize), (1, 96, 96), (4, 512, 512)] {
            let (a, b) = (fill(m * k, 7), fill(k * n, 5));
            let mut c = vec![0.0f32; m * n];
            let shape = SgemmShape::dense(m, n, k);
            let epi = Epilogue {
                bias: Bias::PerColumn(&b[..n]),
                activation: Activation::Relu,
            };
            let mut run =
                |t: &Threads| time(|| table.sgemm_fused(&shape, &a, &b, &mut c, &epi, t).unwrap());
            let (s1, s2) = (run(&one), run(&two));
            let flops = 2.0 * (m * k * n) as f64;
            report(&format!("sgemm_fused {m}x{k}x{n}"), tier, flops, s1, s2);
        }
        let conv = |cin, cout, hw, k, s, groups| Conv2dParams {
            batch: 1,
            in_channels: cin,
            in_h: hw,
            in_w: hw,
            out_channels: cout,
            kernel_h: k,
            kernel_w: k,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: k / 2,
            pad_left: k / 2,
            pad_bottom: k / 2,
            pad_right: k / 2,
            groups,
        };
        let stft = Conv2dParams {
            in_h: 1,
            in_w: 2272,
            kernel_h: 1,
            kernel_w: 512,
            stride_h: 1,
            stride_w: 160,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            ..conv(1, 257, 1, 1, 1, 1)
        };
        let rec = |cin, cout| Conv2dParams {
            in_h: 3,
            in_w: 80,
            ..conv(cin, cout, 1, 1, 1, 1)
        };
        let shapes = [
            ("1x1 96->96 @160", conv(96, 96, 160, 1, 1, 1)),
            ("1x1 480->480 @3x80", rec(480, 480)),
            ("1x1 120->480 @3x80", rec(120, 480)),
            ("conv1d k512 s160 1->257 @2272", stft),
            ("1x1 16->64 @320", conv(16, 64, 320, 1, 1, 1)),
            ("1x1 480->120 @20", conv(480, 120, 20, 1, 1, 1)),
            ("3x3 s2 3->16 @640", conv(3, 16, 640, 3, 2, 1)),
            ("3x3 96->24 @160", conv(96, 24, 160, 3, 1, 1)),
            ("dw 3x3 s1 c64 @160", conv(64, 64, 160, 3, 1, 64)),
            ("dw 3x3 s2 c64 @160", conv(64, 64, 160, 3, 2, 64)),
            ("dw 5x5 s1 c120 @40", conv(120, 120, 40, 5, 1, 120)),
            ("dw 5x5 s2 c72 @80", conv(72, 72, 80, 5, 2, 72)),
        ];
        for (name, p) in shapes {
            let x = fill(p.input_len(), 7);
            let w = fill(p.weights_len(), 5);
            let bias = fill(p.out_channels, 3);
            let packed = table.pack_conv_weights(&p, &w).unwrap();
            let mut out = vec![0.0f32; p.output_len()];
            let flops = 2.0
                * p.output_len() as f64
                * (p.in_channels / p.groups * p.kernel_h * p.kernel_w) as f64;
            let mut run = |t: &Threads| {
                let mut scratch = vec![0.0f32; table.conv2d_scratch_len(&p, t)];
                time(|| {
                    table
                        .conv2d(
                            &p,
                            &x,
                            &packed,
                            Some(&bias),
                            Activation::HardSwish,
                            &mut out,
                            &mut scratch,
                            t,
                        )
                        .unwrap()
                })
            };
            let (s1, s2) = (run(&one), run(&two));
            report(
                &format!("{name} [{}]", table.conv2d_path(&p)),
                tier,
                flops,
                s1,
                s2,
            );
        }
    }
}
