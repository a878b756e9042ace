//! Prints GOPS (`2·m·n·k / time`) of the int8 GEMM with weights on the left on
//! convolution-like shapes, next to the f32 sgemm with packed weights on the same
//! shapes, and of GEMVs (`m = 1`): int8 and int4 weights against f32, for every tier
//! this CPU supports (one thread; best of several runs). Run with
//! `cargo run --release -p slimnet-kernels --example qgemm`.

use std::time::Instant;

use slimnet_kernels::conv::Conv2dParams;
use slimnet_kernels::qgemm::{pack_q4_weights, pack_qweights, pack_qweights_rhs, QEpilogue};
use slimnet_kernels::{Activation, Bias, CpuFeatures, Epilogue, KernelTable, Threads, Tier};

/// Seconds per call of `f`: the best of 5 rounds of about 0.2 s.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.2 / once) as usize).clamp(1, 10_000);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn main() {
    let f = CpuFeatures::detect();
    let th = Threads::single();
    let qe = QEpilogue {
        x_scale: 0.02,
        x_zero: 128,
        bias: None,
        activation: Activation::Identity,
    };
    let fe = Epilogue::default();
    for tier in Tier::ALL.into_iter().filter(|t| t.is_available(&f)) {
        let t = KernelTable::for_tier(tier).unwrap();
        println!("tier {} (int8 kernel {})", tier.name(), t.qgemm_kernel());
        for (m, k, n) in [
            (64usize, 576usize, 6400usize),
            (256, 256, 1024),
            (128, 1152, 1600),
        ] {
            let ops = 2.0 * (m * n * k) as f64;
            let w: Vec<i8> = (0..m * k).map(|i| (i * 7 % 255) as i8).collect();
            let b: Vec<u8> = (0..k * n).map(|i| (i * 5 % 256) as u8).collect();
            let pw = pack_qweights(m, k, &w, &[0.01]).unwrap();
            let mut c = vec![0.0f32; m * n];
            let tq = time(|| t.qgemm(&pw, &b, n, n, &mut c, n, &qe, &th).unwrap());
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            let pa = t.pack_a(m, k, &wf, k).unwrap();
            let tf = time(|| t.sgemm_packed(&pa, &bf, n, n, &mut c, n, &fe, &th).unwrap());
            println!(
                "  m={m:4} k={k:5} n={n:5}: int8 {:7.1} GOPS   f32 {:7.1} GOPS",
                ops / tq / 1e9,
                ops / tf / 1e9
            );
        }
        {
            // A 3x3 convolution, 64 -> 64 channels on 80x80 (padding 1): the first
            // shape above through qconv2d (u8 im2col) and the f32 conv2d.
            let p = Conv2dParams {
                batch: 1,
                in_channels: 64,
                in_h: 80,
                in_w: 80,
                out_channels: 64,
                kernel_h: 3,
                kernel_w: 3,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 1,
                pad_left: 1,
                pad_bottom: 1,
                pad_right: 1,
                groups: 1,
            };
            let ops = 2.0 * (p.output_len() * 64 * 9) as f64;
            let w: Vec<i8> = (0..p.weights_len()).map(|i| (i * 7 % 255) as i8).collect();
            let x: Vec<u8> = (0..p.input_len()).map(|i| (i * 5 % 256) as u8).collect();
            let pw = t.pack_qconv_weights(&p, &w, &[0.01]).unwrap();
            let mut out = vec![0.0f32; p.output_len()];
            let tq = time(|| t.qconv2d(&p, &x, &pw, &qe, &mut out, &th).unwrap());
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let pf = t.pack_conv_weights(&p, &wf).unwrap();
            let mut scratch = vec![0.0f32; t.conv2d_scratch_len(&p, &th)];
            let tf = time(|| {
                t.conv2d(
                    &p,
                    &xf,
                    &pf,
                    None,
                    Activation::Identity,
                    &mut out,
                    &mut scratch,
                    &th,
                )
                .unwrap()
            });
            println!(
                "  conv 3x3 64->64 80x80:      int8 {:7.1} GOPS   f32 {:7.1} GOPS",
                ops / tq / 1e9,
                ops / tf / 1e9
            );
            // Depthwise 3x3, 144 channels on 56x56.
            let p = Conv2dParams {
                in_channels: 144,
                out_channels: 144,
                groups: 144,
                in_h: 56,
                in_w: 56,
                ..p
            };
            let ops = 2.0 * (p.output_len() * 9) as f64;
            let w: Vec<i8> = (0..p.weights_len()).map(|i| (i * 7 % 255) as i8).collect();
            let x: Vec<u8> = (0..p.input_len()).map(|i| (i * 5 % 256) as u8).collect();
            let pw = t.pack_qconv_weights(&p, &w, &[0.01]).unwrap();
            let mut out = vec![0.0f32; p.output_len()];
            let tq = time(|| t.qconv2d(&p, &x, &pw, &qe, &mut out, &th).unwrap());
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let pf = t.pack_conv_weights(&p, &wf).unwrap();
            let tf = time(|| {
                t.conv2d(
                    &p,
                    &xf,
                    &pf,
                    None,
                    Activation::Identity,
                    &mut out,
                    &mut [],
                    &th,
                )
                .unwrap()
            });
            println!(
                "  depthwise 3x3 144ch 56x56:  int8 {:7.1} GOPS   f32 {:7.1} GOPS",
                ops / tq / 1e9,
                ops / tf / 1e9
            );
        }
        for kn in [1024usize, 4096] {
            let (k, n) = (kn, kn);
            let ops = 2.0 * (n * k) as f64;
            let x: Vec<f32> = (0..k).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
            let xq: Vec<u8> = (0..k).map(|i| (i * 3 % 256) as u8).collect();
            let mut out = vec![0.0f32; n];
            let w8: Vec<i8> = (0..k * n).map(|i| (i * 7 % 255) as i8).collect();
            let p8 = pack_qweights_rhs(k, n, &w8, &[0.01]).unwrap();
            let t8 = time(|| t.qgemm_rhs(&xq, k, 1, &p8, &mut out, n, &qe, &th).unwrap());
            let q4: Vec<i8> = (0..k * n).map(|i| (i * 7 % 16) as i8 - 8).collect();
            let s4 = vec![0.01f32; k.div_ceil(32) * n];
            let p4 = pack_q4_weights(k, n, 32, &q4, &s4, None).unwrap();
            let bias = vec![0.0f32; n];
            let e4 = Epilogue {
                bias: Bias::PerColumn(&bias),
                activation: Activation::Identity,
            };
            let t4 = time(|| t.gemm_q4(1, &x, k, &p4, &mut out, n, &e4, &th).unwrap());
            let wf: Vec<f32> = q4.iter().map(|&v| v as f32).collect();
            let pb = t.pack_b(k, n, &wf, n).unwrap();
            let tf = time(|| {
                t.sgemm_packed_b(&x, k, 1, &pb, &mut out, n, &e4, &th)
                    .unwrap()
            });
            println!(
                "  GEMV k=n={kn:5}: int8 {:6.1} GOPS   int4 {:6.1} GOPS   f32 {:6.1} GOPS",
                ops / t8 / 1e9,
                ops / t4 / 1e9,
                ops / tf / 1e9
            );
            if kn == 1024 {
                // Many rows, weights on the right (MatMul): int8 against f32.
                let m = 256;
                let xq: Vec<u8> = (0..m * k).map(|i| (i * 3 % 256) as u8).collect();
                let xm: Vec<f32> = xq.iter().map(|&v| v as f32).collect();
                let mut om = vec![0.0f32; m * n];
                let t8 = time(|| t.qgemm_rhs(&xq, k, m, &p8, &mut om, n, &qe, &th).unwrap());
                let w8f: Vec<f32> = w8.iter().map(|&v| v as f32).collect();
                let pb8 = t.pack_b(k, n, &w8f, n).unwrap();
                let tf = time(|| {
                    t.sgemm_packed_b(&xm, k, m, &pb8, &mut om, n, &fe, &th)
                        .unwrap()
                });
                println!(
                    "  m=256 k=n={kn:5}: int8 {:6.1} GOPS   f32 {:6.1} GOPS (weights on the right)",
                    ops * m as f64 / t8 / 1e9,
                    ops * m as f64 / tf / 1e9
                );
                // Many rows: int4 unpacked once per 4 rows, against the f32 sgemm.
                let m = 64;
                let xm: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
                let mut om = vec![0.0f32; m * n];
                let t4 = time(|| t.gemm_q4(m, &xm, k, &p4, &mut om, n, &e4, &th).unwrap());
                let tf = time(|| {
                    t.sgemm_packed_b(&xm, k, m, &pb, &mut om, n, &e4, &th)
                        .unwrap()
                });
                println!(
                    "  m=64 k=n={kn:5}:  int4 {:6.1} GOPS   f32 {:6.1} GOPS",
                    ops * m as f64 / t4 / 1e9,
                    ops * m as f64 / tf / 1e9
                );
            }
        }
    }
}
