//! Scalar `f64` functions the elementwise kernels apply: the error function and
//! the activations, each NaN-propagating like numpy.

use std::f64::consts::{FRAC_2_SQRT_PI, PI, SQRT_2};

/// Reciprocals of the odd numbers 1, 3, 5, ... (terms of the series of `erf`).
const ODD_RECIPROCALS: [f64; 48] = {
    let mut t = [0.0; 48];
    let mut i = 0;
    while i < 48 {
        t[i] = 1.0 / (2 * i + 1) as f64;
        i += 1;
    }
    t
};

/// `erf(a)` for `0 <= a < 2.5`: `2/sqrt(pi) * exp(-a^2) * sum_n (2a^2)^n a / (2n+1)!!`
/// (all terms positive, so nothing cancels).
fn erf_series(a: f64) -> f64 {
    let x2 = a * a;
    let mut term = a;
    let mut sum = a;
    for r in &ODD_RECIPROCALS[1..] {
        term *= 2.0 * x2 * r;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-x2).exp() * sum
}

/// Coefficients of `erf(x) / x = 2/sqrt(pi) * sum_n (-1)^n y^n / (n! (2n+1))` in
/// `y = x^2`, enough for `f64` precision when `y < 1`.
const MACLAURIN: [f64; 20] = {
    let mut c = [0.0; 20];
    let mut factorial = 1.0;
    let mut n = 0;
    while n < 20 {
        if n > 0 {
            factorial *= n as f64;
        }
        let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
        c[n] = sign * FRAC_2_SQRT_PI / (factorial * (2 * n + 1) as f64);
        n += 1;
    }
    c
};

/// `erf(a) / a` for `a < 1` by Horner's rule on the Maclaurin series.
#[inline]
fn erf_over_x_small(a: f64) -> f64 {
    let y = a * a;
    MACLAURIN.iter().rev().fold(0.0, |acc, &c| acc * y + c)
}

/// Chebyshev coefficients (degree `CHEB_DEGREE`) per interval of width
/// `CHEB_WIDTH`: `erf(x) / x` on `[0, 2)` and `erfc(x) * exp(x^2)` on `[2, 8)`, both
/// smooth, interpolated once from the series and the continued fraction above.
const CHEB_DEGREE: usize = 12;
const CHEB_WIDTH: f64 = 0.5;
const ERF_SPLIT: f64 = 2.0;
const ERFC_END: f64 = 8.0;
type Cheb = [f64; CHEB_DEGREE + 1];

/// Chebyshev interpolant of `f` on `[lo, hi]` (argument mapped to `[-1, 1]`).
/// The tangent at the midpoint (`f`, `df`) is fitted exactly and only the small
/// remainder through the nodes, which keeps the coefficients' rounding errors small.
fn chebyshev_fit(f: &dyn Fn(f64) -> f64, df: &dyn Fn(f64) -> f64, lo: f64, hi: f64) -> Cheb {
    let n = CHEB_DEGREE + 1;
    let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
    let (f0, f1) = (f(mid), df(mid));
    let values: Vec<f64> = (0..n)
        .map(|j| {
            let dx = half * (PI * (j as f64 + 0.5) / n as f64).cos();
            f(mid + dx) - f0 - f1 * dx
        })
        .collect();
    let mut c = [0.0; CHEB_DEGREE + 1];
    for (k, ck) in c.iter_mut().enumerate() {
        let s: f64 = values
            .iter()
            .enumerate()
            .map(|(j, v)| v * (PI * k as f64 * (j as f64 + 0.5) / n as f64).cos())
            .sum();
        *ck = 2.0 * s / n as f64;
    }
    c[0] = c[0] / 2.0 + f0;
    c[1] += f1 * half;
    c
}

fn tables() -> &'static (Vec<Cheb>, Vec<Cheb>) {
    static TABLES: std::sync::OnceLock<(Vec<Cheb>, Vec<Cheb>)> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let fit =
            |f: &dyn Fn(f64) -> f64, df: &dyn Fn(f64) -> f64, lo: f64, hi: f64| -> Vec<Cheb> {
                let n = ((hi - lo) / CHEB_WIDTH) as usize;
                (0..n)
                    .map(|i| {
                        chebyshev_fit(
                            f,
                            df,
                            lo + i as f64 * CHEB_WIDTH,
                            lo + (i + 1) as f64 * CHEB_WIDTH,
                        )
                    })
                    .collect()
            };
        // h(a) = erf(a) / a, h'(a) = (2/sqrt(pi) exp(-a^2) - h(a)) / a.
        let h = |a: f64| erf_series(a) / a;
        let dh = |a: f64| (FRAC_2_SQRT_PI * (-a * a).exp() - erf_series(a) / a) / a;
        // g(a) = erfc(a) exp(a^2), g'(a) = 2a g(a) - 2/sqrt(pi).
        let g = |a: f64| {
            if a < 2.5 {
                (1.0 - erf_series(a)) * (a * a).exp()
            } else {
                erfc_fraction_scaled(a)
            }
        };
        let dg = |a: f64| 2.0 * a * g(a) - FRAC_2_SQRT_PI;
        (
            fit(&h, &dh, 0.0, ERF_SPLIT),
            fit(&g, &dg, ERF_SPLIT, ERFC_END),
        )
    })
}

/// Evaluates the interpolant of the interval holding `a` (`lo <= a`).
#[inline]
fn cheb_eval(table: &[Cheb], lo: f64, a: f64) -> f64 {
    let i = (((a - lo) / CHEB_WIDTH) as usize).min(table.len() - 1);
    let c = &table[i];
    let t = 2.0 * (a - lo - i as f64 * CHEB_WIDTH) / CHEB_WIDTH - 1.0;
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c[1..].iter().rev() {
        let b0 = ck + 2.0 * t * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    c[0] + t * b1 - b2
}

/// `erfc(a) * exp(a^2)` for `a >= 2.5` from the continued fraction.
fn erfc_fraction_scaled(a: f64) -> f64 {
    let mut f = a;
    for k in (1..=40).rev() {
        f = a + (k as f64 * 0.5) / f;
    }
    (FRAC_2_SQRT_PI * 0.5) / f
}

/// The error function, within about 1e-15 relative of the true value.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let y = if a < 1.0 {
        a * erf_over_x_small(a)
    } else if a < ERF_SPLIT {
        a * cheb_eval(&tables().0, 0.0, a)
    } else if a < 6.0 {
        1.0 - (-a * a).exp() * cheb_eval(&tables().1, ERF_SPLIT, a)
    } else {
        1.0
    };
    y.copysign(x)
}

/// The complementary error function `1 - erf(x)`, accurate in relative terms also
/// where it is tiny (large positive `x`).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let c = if a < 1.0 {
        1.0 - a * erf_over_x_small(a)
    } else if a < ERF_SPLIT {
        1.0 - a * cheb_eval(&tables().0, 0.0, a)
    } else if a < ERFC_END {
        (-a * a).exp() * cheb_eval(&tables().1, ERF_SPLIT, a)
    } else {
        (-a * a).exp() * erfc_fraction_scaled(a)
    };
    if x < 0.0 {
        2.0 - c
    } else {
        c
    }
}

/// `max(a, b)` that returns NaN when either is NaN.
#[inline]
pub fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// `min(a, b)` that returns NaN when either is NaN.
#[inline]
pub fn min_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || a < b {
        a
    } else {
        b
    }
}

#[inline]
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + exp(x))` without overflow for large `x`.
#[inline]
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[inline]
pub fn gelu(x: f64) -> f64 {
    // 1 + erf(x / sqrt 2) without cancellation for negative x.
    0.5 * x * erfc(-x / SQRT_2)
}

#[inline]
pub fn gelu_tanh(x: f64) -> f64 {
    // 0.5 * (1 + tanh(z)) == sigmoid(2z), which keeps precision for negative x.
    let k = (2.0 / PI).sqrt();
    x * sigmoid(2.0 * k * (x + 0.044715 * x * x * x))
}

/// Numpy's `sign`: -1, 0 or 1, NaN for NaN.
#[inline]
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// `clamp(v, 0, 1)` that keeps NaN.
#[inline]
pub fn unit_clamp(v: f64) -> f64 {
    v.clamp(0.0, 1.0)
}

/// Python's `%` on floats (the result takes the divisor's sign), with the special
/// cases of ONNX `Mod` (fmod = 0).
#[inline]
pub fn py_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r == 0.0 {
        0.0f64.copysign(b)
    } else if (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from a high-precision reference.
        let cases = [
            (0.0, 0.0),
            (1e-10, 1.1283791670955126e-10),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
            (5.9, 0.9999999999999999),
            (-1.5, -0.9661051464753108),
            (1.5315, 0.9696787301793474),
            (0.0405, 0.045674382434575445),
        ];
        for (x, want) in cases {
            let got = erf(x);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs(),
                "erf({x}) = {got}, want {want}"
            );
        }
        assert_eq!(erf(f64::INFINITY), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn interpolated_erf_matches_the_series() {
        for i in 0..4000 {
            let x = i as f64 * 0.0015;
            let exact = if x < 2.5 {
                erf_series(x)
            } else {
                1.0 - (-x * x).exp() * erfc_fraction_scaled(x)
            };
            // Both are within about 1e-15 of the true value.
            assert!(
                (erf(x) - exact).abs() <= 2e-15 * exact.max(1e-300),
                "erf({x}) = {} vs {exact}",
                erf(x)
            );
        }
        assert_eq!(erf(1e-300), 1e-300 * FRAC_2_SQRT_PI);
    }

    #[test]
    fn erfc_keeps_relative_precision() {
        let cases = [
            (-1.0, 1.842700792949715),
            (0.5, 0.4795001221869535),
            (3.0, 2.2090496998585438e-05),
            (10.0, 2.088487583762545e-45),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                (got - want).abs() <= 1e-14 * want,
                "erfc({x}) = {got}, want {want}"
            );
        }
        assert_eq!(erfc(f64::INFINITY), 0.0);
        assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
    }

    #[test]
    fn python_mod_signs() {
        assert_eq!(py_mod(-4.0, 3.0), 2.0);
        assert_eq!(py_mod(4.0, -3.0), -2.0);
        assert!(py_mod(0.0, -2.0).is_sign_negative());
        assert!(py_mod(-0.0, 2.0).is_sign_positive());
        assert_eq!(py_mod(-3.0, f64::INFINITY), f64::INFINITY);
        assert_eq!(py_mod(3.0, f64::INFINITY), 3.0);
        assert!(py_mod(f64::INFINITY, 2.0).is_nan());
        assert!(py_mod(1.0, 0.0).is_nan());
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-16);
        assert_eq!(softplus(-1000.0), 0.0);
    }
}
