//! `qconv2d` of every available tier (pointwise GEMM, u8 im2col and direct depthwise
//! paths), with 1 and
//! 2 threads, against a naive direct convolution in i64 whose padding is the input's
//! zero point, followed by the same f32 epilogue: outputs match bit for bit with the
//! identity and ReLU activations.

use proptest::prelude::*;
use slimnet_kernels::conv::Conv2dParams;
use slimnet_kernels::qgemm::QEpilogue;
use slimnet_kernels::{Activation, CpuFeatures, KernelTable, Threads, Tier};

fn tables() -> Vec<KernelTable> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn naive(p: &Conv2dParams, x: &[u8], w: &[i8], sw: &[f32], e: &QEpilogue) -> Vec<f32> {
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (cg, mg) = (p.in_channels / p.groups, p.out_channels / p.groups);
    let kg = cg * p.kernel_h * p.kernel_w;
    let mut out = vec![0.0; p.output_len()];
    for b in 0..p.batch {
        for o in 0..p.out_channels {
            let g = o / mg;
            let wsum: i64 = w[o * kg..(o + 1) * kg].iter().map(|&v| v as i64).sum();
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let mut acc = 0i64;
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for kh in 0..p.kernel_h {
                            for kw in 0..p.kernel_w {
                                let ih = (oh * p.stride_h + kh * p.dilation_h) as isize
                                    - p.pad_top as isize;
                                let iw = (ow * p.stride_w + kw * p.dilation_w) as isize
                                    - p.pad_left as isize;
                                let xv = if ih < 0
                                    || iw < 0
                                    || ih >= p.in_h as isize
                                    || iw >= p.in_w as isize
                                {
                                    e.x_zero
                                } else {
                                    x[((b * p.in_channels + c) * p.in_h + ih as usize) * p.in_w
                                        + iw as usize]
                                };
                                let wv = w[((o * cg + ci) * p.kernel_h + kh) * p.kernel_w + kw];
                                acc += xv as i64 * wv as i64;
                            }
                        }
                    }
                    let s = e.x_scale * sw[if sw.len() == 1 { 0 } else { o }];
                    let v = (acc - e.x_zero as i64 * wsum) as i32 as f32 * s
                        + e.bias.map_or(0.0, |b| b[o]);
                    let v = match e.activation {
                        Activation::Relu => v.max(0.0),
                        _ => v,
                    };
                    out[((b * p.out_channels + o) * oh_n + oh) * ow_n + ow] = v;
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn qconv2d_matches_naive(
        batch in 0usize..3, cg in 1usize..5, mg in 1usize..7, groups in 1usize..3,
        in_h in 1usize..9, in_w in 1usize..12, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
        pads in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        relu in any::<bool>(), bias in any::<bool>(), per_ch in any::<bool>(),
        depthwise in any::<bool>(), seed in any::<u64>(),
    ) {
        // Depthwise: one input and one output channel per group.
        let (cg, mg, groups) = if depthwise { (1, 1, groups * cg) } else { (cg, mg, groups) };
        let p = Conv2dParams {
            batch, in_channels: cg * groups, in_h, in_w, out_channels: mg * groups,
            kernel_h: kh, kernel_w: kw, stride_h: sh, stride_w: sw,
            dilation_h: dh, dilation_w: dw,
            pad_top: pads.0, pad_left: pads.1, pad_bottom: pads.2, pad_right: pads.3,
            groups,
        };
        prop_assume!(p.check().is_ok());
        check(&p, relu, bias, per_ch, seed);
    }
}

#[test]
fn qconv2d_rejects_bad_input() {
    let t = KernelTable::portable();
    let p = Conv2dParams {
        batch: 1,
        in_channels: 2,
        in_h: 4,
        in_w: 4,
        out_channels: 3,
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
    let w = vec![1i8; p.weights_len()];
    assert!(t.pack_qconv_weights(&p, &w[1..], &[1.0]).is_err());
    assert!(t.pack_qconv_weights(&p, &w, &[1.0, 2.0]).is_err());
    let packed = t.pack_qconv_weights(&p, &w, &[1.0]).unwrap();
    let e = QEpilogue {
        x_scale: 1.0,
        x_zero: 3,
        bias: None,
        activation: Activation::Identity,
    };
    let x = vec![3u8; p.input_len()];
    let mut out = vec![0.0; p.output_len()];
    let th = Threads::single();
    assert!(t.qconv2d(&p, &x[1..], &packed, &e, &mut out, &th).is_err());
    assert!(t.qconv2d(&p, &x, &packed, &e, &mut out[1..], &th).is_err());
    let q = Conv2dParams { kernel_h: 1, ..p };
    assert!(t.qconv2d(&q, &x, &packed, &e, &mut out, &th).is_err());
    // Every input equals the zero point, so the output is zero, padding included.
    t.qconv2d(&p, &x, &packed, &e, &mut out, &th).unwrap();
    assert!(out.iter().all(|&v| v == 0.0));
}

fn check(p: &Conv2dParams, relu: bool, bias: bool, per_ch: bool, seed: u64) {
    let p = *p;
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x: Vec<u8> = (0..p.input_len()).map(|_| rnd() as u8).collect();
    let w: Vec<i8> = (0..p.weights_len()).map(|_| rnd() as i8).collect();
    let scales: Vec<f32> = (0..if per_ch { p.out_channels } else { 1 })
        .map(|_| (rnd() % 1000) as f32 * 1e-4 + 1e-3)
        .collect();
    let bias_v: Vec<f32> = (0..p.out_channels)
        .map(|_| (rnd() % 200) as f32 * 0.01 - 1.0)
        .collect();
    let e = QEpilogue {
        x_scale: 0.017,
        x_zero: rnd() as u8,
        bias: bias.then_some(&bias_v[..]),
        activation: if relu {
            Activation::Relu
        } else {
            Activation::Identity
        },
    };
    let want = naive(&p, &x, &w, &scales, &e);
    for t in tables() {
        let packed = t.pack_qconv_weights(&p, &w, &scales).unwrap();
        for th in [Threads::single(), Threads::new(2).unwrap()] {
            let mut got = vec![f32::NAN; p.output_len()];
            t.qconv2d(&p, &x, &packed, &e, &mut got, &th).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits(),
                    "{} {p:?} at {i}: {g} vs {w}",
                    t.tier()
                );
            }
        }
    }
}

/// Large enough for the im2col blocks to be spread over two threads.
#[test]
fn qconv2d_blocks_over_threads() {
    let p = Conv2dParams {
        batch: 2,
        in_channels: 8,
        in_h: 40,
        in_w: 37,
        out_channels: 18,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 1,
        pad_left: 2,
        pad_bottom: 0,
        pad_right: 1,
        groups: 2,
    };
    check(&p, true, true, true, 11);
    let p = Conv2dParams {
        in_channels: 64,
        out_channels: 64,
        groups: 1,
        in_h: 60,
        in_w: 61,
        ..p
    };
    check(&p, false, false, false, 12);
}
