//! `conv2d` of every available tier and every path (pointwise GEMM, im2col GEMM,
//! depthwise direct), with 1 and 2 threads, against a naive f64 direct convolution on
//! random shapes: odd sizes, asymmetric padding, strides 1–3, dilations 1–2, groups,
//! zero batch.
//!
//! Error bound per output: `(taps + 2)·eps·(Σ|w·x| + |bias|)` (a sum of `taps + 1`
//! terms in any order), through activations whose Lipschitz constant is at most 1,
//! plus `4·eps·(1 + |y|)` for the vector activations.

use proptest::prelude::*;
use slimnet_kernels::conv::Conv2dParams;
use slimnet_kernels::{Activation, CpuFeatures, KernelError, KernelTable, Threads, Tier};

fn tables() -> Vec<KernelTable> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect()
}

fn act64(x: f64, act: Activation) -> f64 {
    match act {
        Activation::Relu => x.max(0.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        _ => x,
    }
}

/// The exact output and the error scale of each output value.
fn naive(p: &Conv2dParams, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
    let (oh_n, ow_n) = (p.out_h(), p.out_w());
    let (cg, mg) = (p.in_channels / p.groups, p.out_channels / p.groups);
    let mut out = vec![0.0; p.output_len()];
    let mut scale = vec![0.0; p.output_len()];
    for b in 0..p.batch {
        for o in 0..p.out_channels {
            let g = o / mg;
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let bv = bias.map_or(0.0, |v| v[o] as f64);
                    let (mut s, mut a) = (bv, bv.abs());
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for kh in 0..p.kernel_h {
                            for kw in 0..p.kernel_w {
                                let ih = (oh * p.stride_h + kh * p.dilation_h) as isize
                                    - p.pad_top as isize;
                                let iw = (ow * p.stride_w + kw * p.dilation_w) as isize
                                    - p.pad_left as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih >= p.in_h as isize
                                    || iw >= p.in_w as isize
                                {
                                    continue;
                                }
                                let xv = x[((b * p.in_channels + c) * p.in_h + ih as usize)
                                    * p.in_w
                                    + iw as usize] as f64;
                                let wv =
                                    w[((o * cg + ci) * p.kernel_h + kh) * p.kernel_w + kw] as f64;
                                s += xv * wv;
                                a += (xv * wv).abs();
                            }
                        }
                    }
                    let idx = ((b * p.out_channels + o) * oh_n + oh) * ow_n + ow;
                    out[idx] = s;
                    scale[idx] = a;
                }
            }
        }
    }
    (out, scale)
}

/// Random parameters for one of the paths: 0 depthwise (3×3 / 5×5, stride 1 / 2, or
/// anything), 1 pointwise, 2 general.
fn params() -> impl Strategy<Value = Conv2dParams> {
    (
        0u8..3,
        (
            prop_oneof![1 => Just(0usize), 6 => 1usize..3],
            1usize..7,
            1usize..5,
        ),
        (1usize..24, 1usize..40),
        (1usize..4, 1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        (1usize..4, prop::bool::ANY),
    )
        .prop_map(
            |(kind, (batch, cin, cout), (h, w), (kh, kw, s, dh, dw), pads, (groups, special))| {
                let mut p = Conv2dParams {
                    batch,
                    in_channels: cin * groups,
                    in_h: h,
                    in_w: w,
                    out_channels: cout * groups,
                    kernel_h: kh,
                    kernel_w: kw,
                    stride_h: s,
                    stride_w: if special { s } else { 1 + (s % 2) },
                    dilation_h: dh,
                    dilation_w: dw,
                    pad_top: pads.0,
                    pad_left: pads.1,
                    pad_bottom: pads.2,
                    pad_right: pads.3,
                    groups,
                };
                match kind {
                    0 => {
                        p.groups = cin * groups;
                        p.in_channels = p.groups;
                        p.out_channels = p.groups;
                        if special {
                            let k = if kh == 1 { 5 } else { 3 };
                            (p.kernel_h, p.kernel_w) = (k, k);
                            (p.stride_h, p.stride_w) = (1 + s % 2, 1 + s % 2);
                            (p.dilation_h, p.dilation_w) = (1, 1);
                            (p.pad_top, p.pad_left, p.pad_bottom, p.pad_right) =
                                (k / 2, k / 2, pads.2.min(k / 2), pads.3.min(k / 2));
                            p.in_w = w + 20;
                        }
                    }
                    1 => {
                        (p.kernel_h, p.kernel_w, p.stride_h, p.stride_w) = (1, 1, 1, 1);
                        (p.pad_top, p.pad_left, p.pad_bottom, p.pad_right) = (0, 0, 0, 0);
                        p.in_w = w * 5;
                    }
                    _ => {}
                }
                let span_h = (p.kernel_h - 1) * p.dilation_h + 1;
                let span_w = (p.kernel_w - 1) * p.dilation_w + 1;
                p.in_h = p.in_h.max(span_h);
                p.in_w = p.in_w.max(span_w);
                p
            },
        )
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

fn check_conv(
    p: &Conv2dParams,
    seed: u64,
    act_idx: usize,
    with_bias: bool,
) -> Result<(), TestCaseError> {
    prop_assert!(p.check().is_ok(), "{p:?}");
    let p = *p;
    let mut r = rng(seed);
    let x: Vec<f32> = (0..p.input_len()).map(|_| r()).collect();
    let w: Vec<f32> = (0..p.weights_len()).map(|_| r()).collect();
    let bias: Vec<f32> = (0..p.out_channels).map(|_| r()).collect();
    let bias = with_bias.then_some(&bias[..]);
    let act = [
        Activation::Identity,
        Activation::Relu,
        Activation::HardSwish,
        Activation::Sigmoid,
    ][act_idx];
    let (want, scale) = naive(&p, &x, &w, bias);
    let taps = (p.in_channels / p.groups * p.kernel_h * p.kernel_w) as f64;
    let eps = f32::EPSILON as f64;
    for table in tables() {
        let packed = table.pack_conv_weights(&p, &w).unwrap();
        for threads in [Threads::single(), Threads::new(2).unwrap()] {
            let mut out = vec![f32::NAN; p.output_len()];
            let mut scratch = vec![0.0; table.conv2d_scratch_len(&p, &threads)];
            table
                .conv2d(&p, &x, &packed, bias, act, &mut out, &mut scratch, &threads)
                .unwrap();
            for (i, (&g, (&e, &s))) in out.iter().zip(want.iter().zip(&scale)).enumerate() {
                let y = act64(e, act);
                let tol = (taps + 2.0) * eps * s + 4.0 * eps * (1.0 + y.abs());
                prop_assert!(
                    (g as f64 - y).abs() <= tol,
                    "{} {} t={} {p:?} at {i}: {g} vs {y}",
                    table.tier(),
                    table.conv2d_path(&p),
                    threads.count()
                );
            }
        }
    }
    Ok(())
}

/// Random general convolutions whose GEMM is deep (more than one block of `k`) and
/// wide (more than one block of im2col columns), with few or many output channels.
fn deep_params() -> impl Strategy<Value = Conv2dParams> {
    (
        (50usize..75, prop_oneof![1usize..5, 10usize..31], 1usize..3),
        (3usize..15, 3usize..40),
        (1usize..3, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
    )
        .prop_map(|((cin, cout, groups), (h, w), (s, dh, dw), (pt, pl))| {
            let mut p = Conv2dParams {
                batch: 1,
                in_channels: cin * groups,
                in_h: h,
                in_w: w,
                out_channels: cout * groups,
                kernel_h: 3,
                kernel_w: 3,
                stride_h: s,
                stride_w: 1 + (s + dh) % 2,
                dilation_h: dh,
                dilation_w: dw,
                pad_top: pt,
                pad_left: pl,
                pad_bottom: pl,
                pad_right: pt,
                groups,
            };
            p.in_h = p.in_h.max(2 * dh + 1);
            p.in_w = p.in_w.max(2 * dw + 1);
            p
        })
}

/// Random general convolutions of batches of small images, whose im2col columns are
/// folded across images: blocks that span images (deep GEMMs make blocks narrow),
/// narrow outputs (the gather path) and wide ones (the copy path), tiny depths.
fn folded_params() -> impl Strategy<Value = Conv2dParams> {
    (
        (2usize..7, prop_oneof![1usize..4, 60usize..75], 1usize..20),
        (1usize..9, prop_oneof![1usize..9, 30usize..40]),
        (1usize..4, 1usize..4, 1usize..3),
        (0usize..2, 0usize..2, 0usize..2),
    )
        .prop_map(|((batch, cin, cout), (h, w), (kh, kw, s), (pt, pl, pr))| {
            let mut p = Conv2dParams {
                batch,
                in_channels: cin,
                in_h: h,
                in_w: w,
                out_channels: cout,
                kernel_h: kh,
                kernel_w: kw,
                stride_h: s,
                stride_w: 1 + (s + kh) % 2,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pt,
                pad_left: pl,
                pad_bottom: pr,
                pad_right: pr,
                groups: 1,
            };
            p.in_h = p.in_h.max(kh);
            p.in_w = p.in_w.max(kw);
            p
        })
}

/// Random convolutions with kernels one column wide, stride 1 and no padding at the
/// sides (im2col rows are whole input rows), over batches of small images.
fn column_params() -> impl Strategy<Value = Conv2dParams> {
    (
        (1usize..5, prop_oneof![1usize..20, 60usize..75], 1usize..20),
        (1usize..12, 1usize..40),
        (1usize..4, 1usize..3),
        (0usize..3, 0usize..3, 1usize..3),
    )
        .prop_map(|((batch, cin, cout), (h, w), (kh, dh), (pt, pb, groups))| {
            let groups = if cin % groups == 0 && cout % groups == 0 {
                groups
            } else {
                1
            };
            let mut p = Conv2dParams {
                batch,
                in_channels: cin,
                in_h: h,
                in_w: w,
                out_channels: cout,
                kernel_h: kh,
                kernel_w: 1,
                stride_h: 1,
                stride_w: 1,
                dilation_h: dh,
                dilation_w: 1,
                pad_top: pt,
                pad_left: 0,
                pad_bottom: pb,
                pad_right: 0,
                groups,
            };
            p.in_h = p.in_h.max((kh - 1) * dh + 1);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_f64(p in params(), seed in any::<u64>(), act_idx in 0usize..4, with_bias in prop::bool::ANY) {
        check_conv(&p, seed, act_idx, with_bias)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn deep_im2col_matches_f64(p in deep_params(), seed in any::<u64>(), act_idx in 0usize..4, with_bias in prop::bool::ANY) {
        check_conv(&p, seed, act_idx, with_bias)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn folded_im2col_matches_f64(p in folded_params(), seed in any::<u64>(), act_idx in 0usize..4, with_bias in prop::bool::ANY) {
        check_conv(&p, seed, act_idx, with_bias)?;
    }

    #[test]
    fn column_kernel_im2col_matches_f64(p in column_params(), seed in any::<u64>(), act_idx in 0usize..4, with_bias in prop::bool::ANY) {
        check_conv(&p, seed, act_idx, with_bias)?;
    }
}

#[test]
fn paths_are_chosen_by_shape() {
    let t = KernelTable::detect();
    let base = Conv2dParams {
        batch: 1,
        in_channels: 8,
        in_h: 9,
        in_w: 9,
        out_channels: 8,
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
        groups: 8,
    };
    assert_eq!(t.conv2d_path(&base), "depthwise_3x3_s1");
    assert_eq!(
        t.conv2d_path(&Conv2dParams {
            stride_h: 2,
            stride_w: 2,
            kernel_h: 5,
            kernel_w: 5,
            ..base
        }),
        "depthwise_5x5_s2"
    );
    assert_eq!(
        t.conv2d_path(&Conv2dParams { groups: 1, ..base }),
        "im2col_gemm"
    );
    let pw = Conv2dParams {
        groups: 1,
        kernel_h: 1,
        kernel_w: 1,
        pad_top: 0,
        pad_left: 0,
        pad_bottom: 0,
        pad_right: 0,
        ..base
    };
    assert_eq!(t.conv2d_path(&pw), "pointwise_gemm");
}

#[test]
fn bad_shapes_are_errors() {
    let t = KernelTable::detect();
    let p = Conv2dParams {
        batch: 1,
        in_channels: 4,
        in_h: 5,
        in_w: 5,
        out_channels: 6,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
        pad_bottom: 0,
        pad_right: 0,
        groups: 2,
    };
    let bad = |r: Result<_, KernelError>| assert!(matches!(r, Err(KernelError::BadShape(_))));
    bad(Conv2dParams { groups: 3, ..p }.check());
    bad(Conv2dParams { stride_w: 0, ..p }.check());
    bad(Conv2dParams { kernel_h: 7, ..p }.check());
    bad(Conv2dParams { kernel_w: 0, ..p }.check());
    bad(t.pack_conv_weights(&p, &[0.0; 10]).map(|_| ()));
    let w = vec![0.5; p.weights_len()];
    let packed = t.pack_conv_weights(&p, &w).unwrap();
    let x = vec![1.0; p.input_len()];
    let mut out = vec![0.0; p.output_len()];
    let one = Threads::single();
    let mut scratch = vec![0.0; t.conv2d_scratch_len(&p, &one)];
    bad(t.conv2d(
        &p,
        &x[1..],
        &packed,
        None,
        Activation::Identity,
        &mut out,
        &mut scratch,
        &one,
    ));
    bad(t.conv2d(
        &p,
        &x,
        &packed,
        Some(&[0.0; 5]),
        Activation::Identity,
        &mut out,
        &mut scratch,
        &one,
    ));
    bad(t.conv2d(
        &p,
        &x,
        &packed,
        None,
        Activation::Identity,
        &mut out[1..],
        &mut scratch,
        &one,
    ));
    bad(t.conv2d(
        &p,
        &x,
        &packed,
        None,
        Activation::Identity,
        &mut out,
        &mut [],
        &one,
    ));
    bad(t.conv2d(
        &Conv2dParams { pad_top: 1, ..p },
        &x,
        &packed,
        None,
        Activation::Identity,
        &mut out,
        &mut scratch,
        &one,
    ));
    t.conv2d(
        &p,
        &x,
        &packed,
        None,
        Activation::Identity,
        &mut out,
        &mut scratch,
        &one,
    )
    .unwrap();
    assert!(out.iter().all(|&v| v == 0.5 * 18.0));
    // Zero batch: nothing to do, nothing needed.
    let z = Conv2dParams { batch: 0, ..p };
    t.conv2d(
        &z,
        &[],
        &packed,
        None,
        Activation::Relu,
        &mut [],
        &mut scratch,
        &one,
    )
    .unwrap();
}
