//! Softmax, layer normalization, row means and pooling.

use proptest::prelude::*;

use super::streaming::same;
use super::{close, tables, Rng};
use crate::eltwise::Pool2dParams;
use crate::parallel::Threads;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn softmax_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (rows, cols) = (rng.below(4), [0, 1, 2, 15, 16, 17, 33, 100, 301][rng.below(9)]);
        let x: Vec<f32> = (0..rows * cols).map(|_| rng.range(-60.0, 60.0)).collect();
        for t in tables() {
            let mut sm = x.clone();
            t.softmax(&mut sm, rows, cols).unwrap();
            let mut lsm = x.clone();
            t.log_softmax(&mut lsm, rows, cols).unwrap();
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                for (j, &v) in row.iter().enumerate() {
                    let d = v as f64 - m;
                    let w = d.exp() / s;
                    let rel = 1e-6 + (cols as f64 + d.abs()) * 6e-8;
                    let g = sm[r * cols + j];
                    prop_assert!(close(g, w, rel * w + 3e-45), "{} softmax {r},{j}: {g} vs {w}", t.tier());
                    let lw = d - s.ln();
                    let lg = lsm[r * cols + j];
                    let tol = (1.0 + d.abs()) * 1e-6 + cols as f64 * 6e-8;
                    prop_assert!(close(lg, lw, tol), "{} log_softmax {r},{j}: {lg} vs {lw}", t.tier());
                }
            }
        }
    }

    #[test]
    fn layer_norm_and_means_match_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (rows, cols) = (rng.below(4), [1, 2, 7, 16, 17, 64, 100, 301][rng.below(8)]);
        let shift = rng.range(-5.0, 5.0);
        let spread = [1e-2, 1.0, 30.0][rng.below(3)];
        let x: Vec<f32> = (0..rows * cols).map(|_| shift + spread * rng.range(-1.0, 1.0)).collect();
        let scale: Option<Vec<f32>> = (rng.below(3) > 0).then(|| (0..cols).map(|_| rng.range(-2.0, 2.0)).collect());
        let bias: Option<Vec<f32>> = (rng.below(2) > 0).then(|| (0..cols).map(|_| rng.range(-2.0, 2.0)).collect());
        let eps = [1e-5f32, 1e-12][rng.below(2)];
        for t in tables() {
            let mut out = vec![f32::NAN; rows * cols];
            t.layer_norm(&x, rows, cols, scale.as_deref(), bias.as_deref(), eps, &mut out).unwrap();
            let mut means = vec![f32::NAN; rows];
            t.reduce_mean_last(&x, rows, cols, &mut means).unwrap();
            let mut pooled = vec![f32::NAN; rows];
            t.global_avg_pool(&x, rows, cols, &mut pooled, &Threads::single()).unwrap();
            for r in 0..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let n = cols as f64;
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
                let abs_mean = row.iter().map(|&v| (v as f64).abs()).sum::<f64>() / n;
                prop_assert!(close(means[r], mean, n * 1.2e-7 * abs_mean), "{} mean {r}", t.tier());
                prop_assert!(same(&pooled[r..r + 1], &means[r..r + 1]));
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                let rstd = 1.0 / (var + eps as f64).sqrt();
                for (j, &v) in row.iter().enumerate() {
                    let xh = (v as f64 - mean) * rstd;
                    let s = scale.as_ref().map_or(1.0, |s| s[j] as f64);
                    let b = bias.as_ref().map_or(0.0, |b| b[j] as f64);
                    let w = xh * s + b;
                    let tol = s.abs()
                        * ((1.0 + xh.abs()) * (1e-6 + n * 1.2e-7) + mean.abs() * n * 1.2e-7 * rstd)
                        + b.abs() * 1.2e-7;
                    let g = out[r * cols + j];
                    prop_assert!(close(g, w, tol), "{} layer_norm {r},{j}: {g} vs {w} (tol {tol})", t.tier());
                }
            }
        }
    }

    #[test]
    fn pools_match_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let mut p = Pool2dParams {
            batch: 1 + rng.below(2),
            channels: 1 + rng.below(3),
            in_h: 1 + rng.below(12),
            in_w: 1 + rng.below(40),
            kernel_h: 1 + rng.below(4),
            kernel_w: 1 + rng.below(4),
            stride_h: 1 + rng.below(3),
            stride_w: [1, 1, 2, 3][rng.below(4)],
            dilation_h: 1 + rng.below(2),
            dilation_w: 1 + rng.below(2),
            count_include_pad: rng.below(2) == 0,
            ..Pool2dParams::default()
        };
        p.pad_top = rng.below(p.kernel_h);
        p.pad_bottom = rng.below(p.kernel_h);
        p.pad_left = rng.below(p.kernel_w);
        p.pad_right = rng.below(p.kernel_w);
        let span = |len: usize, pads: usize, k: usize, d: usize, s: usize| {
            let total = (len + pads) as isize - (d * (k - 1)) as isize - 1;
            if total < 0 { 0 } else { total as usize / s + 1 }
        };
        p.out_h = span(p.in_h, p.pad_top + p.pad_bottom, p.kernel_h, p.dilation_h, p.stride_h) + rng.below(2);
        p.out_w = span(p.in_w, p.pad_left + p.pad_right, p.kernel_w, p.dilation_w, p.stride_w) + rng.below(2);
        let planes = p.batch * p.channels;
        let mut x = rng.values(planes * p.in_h * p.in_w, false);
        if rng.below(4) == 0 && !x.is_empty() {
            let i = rng.below(x.len());
            x[i] = f32::NAN;
        }
        let (want_max, want_avg, scale) = pool_ref(&p, &x);
        for t in tables() {
            let mut mx = vec![0.0; planes * p.out_h * p.out_w];
            let mut av = mx.clone();
            t.max_pool2d(&p, &x, &mut mx, &Threads::single()).unwrap();
            t.avg_pool2d(&p, &x, &mut av, &Threads::single()).unwrap();
            for i in 0..mx.len() {
                prop_assert!(close(mx[i], want_max[i], 0.0), "{} max {p:?} at {i}: {} vs {}", t.tier(), mx[i], want_max[i]);
                prop_assert!(close(av[i], want_avg[i], 1e-6 * scale[i]), "{} avg {p:?} at {i}: {} vs {}", t.tier(), av[i], want_avg[i]);
            }
        }
    }
}

proptest! {
    /// The dedicated 2x2 stride-2 max pooling path, odd extents and NaN included.
    #[test]
    fn max_pool_2x2_stride_2_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (in_h, in_w) = (2 + rng.below(15), 2 + rng.below(41));
        let p = Pool2dParams {
            batch: 1 + rng.below(3),
            channels: 1 + rng.below(4),
            in_h,
            in_w,
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 2,
            stride_w: 2,
            dilation_h: 1,
            dilation_w: 1,
            out_h: in_h / 2,
            out_w: in_w / 2,
            ..Pool2dParams::default()
        };
        let planes = p.batch * p.channels;
        let mut x = rng.values(planes * p.in_h * p.in_w, false);
        if rng.below(3) == 0 {
            let i = rng.below(x.len());
            x[i] = f32::NAN;
        }
        let (want, _, _) = pool_ref(&p, &x);
        for t in tables() {
            let mut got = vec![0.0; planes * p.out_h * p.out_w];
            t.max_pool2d(&p, &x, &mut got, &Threads::single()).unwrap();
            for i in 0..got.len() {
                prop_assert!(close(got[i], want[i], 0.0), "{} {p:?} at {i}: {} vs {}", t.tier(), got[i], want[i]);
            }
        }
    }
}

/// Max pool, average pool, and `sum|x|/count` per output, in f64.
fn pool_ref(p: &Pool2dParams, x: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut mx, mut av, mut sc) = (vec![], vec![], vec![]);
    let (ih_n, iw_n) = (p.in_h as isize, p.in_w as isize);
    for c in 0..p.batch * p.channels {
        for oh in 0..p.out_h {
            for ow in 0..p.out_w {
                let (mut m, mut s, mut a, mut cnt, mut nan) =
                    (f64::NEG_INFINITY, 0.0, 0.0, 0.0, false);
                for kh in 0..p.kernel_h {
                    for kw in 0..p.kernel_w {
                        let ih =
                            (oh * p.stride_h + kh * p.dilation_h) as isize - p.pad_top as isize;
                        let iw =
                            (ow * p.stride_w + kw * p.dilation_w) as isize - p.pad_left as isize;
                        let inside = (0..ih_n).contains(&ih) && (0..iw_n).contains(&iw);
                        let padded = (-(p.pad_top as isize)..ih_n + p.pad_bottom as isize)
                            .contains(&ih)
                            && (-(p.pad_left as isize)..iw_n + p.pad_right as isize).contains(&iw);
                        if inside || (p.count_include_pad && padded) {
                            cnt += 1.0;
                        }
                        if inside {
                            let v =
                                x[c * p.in_h * p.in_w + ih as usize * p.in_w + iw as usize] as f64;
                            nan |= v.is_nan();
                            m = m.max(v);
                            s += v;
                            a += v.abs();
                        }
                    }
                }
                mx.push(if nan { f64::NAN } else { m });
                av.push(s / cnt);
                sc.push(a / cnt);
            }
        }
    }
    (mx, av, sc)
}

#[test]
fn softmax_rows_with_nan_become_nan() {
    for t in tables() {
        let mut x = vec![1.0, f32::NAN, 2.0, 3.0, 0.5, 1.5, 2.5, 3.5];
        t.softmax(&mut x, 2, 4).unwrap();
        assert!(x[..4].iter().all(|v| v.is_nan()));
        assert!((x[4..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(t.softmax(&mut x, 3, 3).is_err());
        assert!(t.log_softmax(&mut x, usize::MAX, 2).is_err());
    }
}

#[test]
fn norms_and_pools_reject_bad_shapes() {
    let t = crate::KernelTable::detect();
    let x = vec![1.0; 12];
    let mut out = vec![0.0; 12];
    assert!(t
        .layer_norm(&x, 3, 4, Some(&x[..3]), None, 1e-5, &mut out)
        .is_err());
    assert!(t
        .layer_norm(&x, 3, 4, None, None, 1e-5, &mut out[..11])
        .is_err());
    assert!(t.reduce_mean_last(&x, 3, 4, &mut out[..2]).is_err());
    assert!(t
        .global_avg_pool(&x, 5, 2, &mut out[..5], &Threads::single())
        .is_err());
    let p = Pool2dParams {
        batch: 1,
        channels: 3,
        in_h: 2,
        in_w: 2,
        kernel_h: 2,
        kernel_w: 2,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        out_h: 1,
        out_w: 1,
        ..Pool2dParams::default()
    };
    assert!(t
        .max_pool2d(&p, &x, &mut out[..3], &Threads::single())
        .is_ok());
    assert!(t
        .max_pool2d(&p, &x, &mut out[..4], &Threads::single())
        .is_err());
    for bad in [
        Pool2dParams { stride_h: 0, ..p },
        Pool2dParams { kernel_w: 0, ..p },
        Pool2dParams { dilation_w: 0, ..p },
        Pool2dParams {
            out_h: usize::MAX,
            out_w: 0,
            ..p
        },
    ] {
        assert!(
            t.avg_pool2d(&bad, &x, &mut out[..3], &Threads::single())
                .is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn parallel_pools_equal_single_threaded() {
    let two = Threads::new(2).unwrap();
    let mut rng = Rng::new(11);
    let p = Pool2dParams {
        batch: 2,
        channels: 9,
        in_h: 64,
        in_w: 64,
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
        out_h: 64,
        out_w: 64,
        count_include_pad: false,
    };
    let x = rng.values(18 * 64 * 64, false);
    for t in tables() {
        for avg in [false, true] {
            let mut one = vec![0.0; x.len()];
            let mut par = one.clone();
            if avg {
                t.avg_pool2d(&p, &x, &mut one, &Threads::single()).unwrap();
                t.avg_pool2d(&p, &x, &mut par, &two).unwrap();
            } else {
                t.max_pool2d(&p, &x, &mut one, &Threads::single()).unwrap();
                t.max_pool2d(&p, &x, &mut par, &two).unwrap();
            }
            assert!(same(&one, &par));
        }
        let mut one = vec![0.0; 18];
        let mut par = one.clone();
        t.global_avg_pool(&x, 18, 64 * 64, &mut one, &Threads::single())
            .unwrap();
        t.global_avg_pool(&x, 18, 64 * 64, &mut par, &two).unwrap();
        assert!(same(&one, &par));
    }
}
