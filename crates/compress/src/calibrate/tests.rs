use super::*;

fn observed(values: &[f32]) -> Observer {
    let mut o = Observer::new();
    o.observe(values, &[values.len()]);
    o
}

#[test]
fn minmax_covers_everything_and_zero() {
    let o = observed(&[0.5, 2.0, 1.0]);
    assert_eq!(
        o.range(CalibrationMethod::MinMax, QuantScheme::Asymmetric),
        (0.0, 2.0)
    );
    let o = observed(&[-3.0, -1.0]);
    assert_eq!(
        o.range(CalibrationMethod::MinMax, QuantScheme::Asymmetric),
        (-3.0, 0.0)
    );
}

#[test]
fn histogram_widens_without_losing_counts() {
    let mut o = Observer::new();
    o.observe(&[0.1, 0.2, -0.1], &[3]);
    o.observe(&[100.0, -50.0], &[2]);
    let total: u64 = o.pos.iter().chain(&o.neg).sum();
    assert_eq!(total, 5);
    assert_eq!(o.min_max(), (-50.0, 100.0));
}

/// A bell-shaped sample in about [-12, 12] (the inverse of a logistic CDF).
fn bell(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let u = (i as f32 + 0.5) / n as f32;
            (u / (1.0 - u)).ln()
        })
        .collect()
}

/// With one huge outlier, percentile and entropy ignore it; min-max does not. (MSE
/// rightly keeps a single outlier this large: clipping it costs more squared error
/// than the coarser rounding of everything else.)
#[test]
fn clipping_methods_ignore_a_rare_outlier() {
    let mut values = bell(100_000);
    values.push(1000.0);
    let o = observed(&values);
    let (_, hi) = o.range(CalibrationMethod::MinMax, QuantScheme::Asymmetric);
    assert_eq!(hi, 1000.0);
    for m in [
        CalibrationMethod::Percentile(99.99),
        CalibrationMethod::Entropy,
    ] {
        let (lo, hi) = o.range(m, QuantScheme::Asymmetric);
        assert!(hi < 100.0 && hi > 3.0, "{m}: hi {hi}");
        assert!(lo < -3.0, "{m}: lo {lo}");
    }
}

/// On a long-tailed distribution MSE clips the tails: the rounding error it saves
/// on the many central values outweighs the clipping error of the few extremes.
#[test]
fn mse_clips_long_tails() {
    let o = observed(&bell(100_000));
    let (lo, hi) = o.range(CalibrationMethod::MinMax, QuantScheme::Asymmetric);
    let (mlo, mhi) = o.range(CalibrationMethod::Mse, QuantScheme::Asymmetric);
    assert!(
        mhi < 0.9 * hi && mlo > 0.9 * lo,
        "mse [{mlo}, {mhi}] vs [{lo}, {hi}]"
    );
    assert!(mhi > 3.0 && mlo < -3.0, "mse [{mlo}, {mhi}]");
}

#[test]
fn channel_means_follow_axis_one() {
    let mut o = Observer::new();
    // shape 1x2x2: channel 0 = [1, 3], channel 1 = [10, 20]
    o.observe(&[1.0, 3.0, 10.0, 20.0], &[1, 2, 2]);
    assert_eq!(o.channel_means(), Some(vec![2.0, 15.0]));
}

#[test]
fn params_quantize_like_onnx() {
    let p = QuantParams::from_range(-1.0, 3.0, QuantScheme::Asymmetric);
    assert_eq!(p.zero_point, 64);
    assert_eq!(p.quantize(0.0), 64);
    assert_eq!(p.quantize(100.0), 255);
    let s = QuantParams::from_range(-1.0, 0.5, QuantScheme::Symmetric);
    assert_eq!(s.zero_point, 0);
    assert_eq!(s.quantize(-1.0), -127);
    // halves round to even
    let one = QuantParams {
        scale: 1.0,
        zero_point: 0,
        qmin: -128,
        qmax: 127,
    };
    assert_eq!(one.quantize(2.5), 2);
    assert_eq!(one.quantize(3.5), 4);
}

#[test]
fn method_names_parse() {
    assert_eq!(
        "mse".parse::<CalibrationMethod>(),
        Ok(CalibrationMethod::Mse)
    );
    assert_eq!(
        "percentile:99.9".parse::<CalibrationMethod>(),
        Ok(CalibrationMethod::Percentile(99.9))
    );
    assert!("percentile:20".parse::<CalibrationMethod>().is_err());
    assert!("fancy".parse::<CalibrationMethod>().is_err());
}
