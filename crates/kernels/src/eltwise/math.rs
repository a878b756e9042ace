//! Vectorized approximations of `exp`, `ln`, the logistic sigmoid, `tanh` and `erf`,
//! written once over [`Simd`]. Every one propagates NaN. The error bounds are stated
//! on the public operations that use them ([`super::UnaryOp`], the activations) and
//! checked against f64 in the tests.

use super::simd::Simd;

/// `1.5·2^23`: adding and subtracting it rounds an f32 of magnitude below `2^22` to
/// the nearest integer (ties to even) in the default rounding mode.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Rounds lanes of magnitude below `2^22` to the nearest integer.
#[inline(always)]
fn round_small<S: Simd>(t: S::V) -> S::V {
    let m = S::splat(ROUND_MAGIC);
    S::sub(S::add(t, m), m)
}

/// `e^x`: Cody–Waite reduction `x = n·ln2 + r` with `|r| <= ln2/2`, a degree-6
/// polynomial for `e^r` (Cephes `expf`), and `2^n` applied in two halves so that
/// results near the overflow edge stay finite and tiny results become subnormals
/// instead of zero. Overflows to `+inf` above about 88.72, underflows to 0 below
/// about -103.9.
#[inline(always)]
pub(crate) fn exp<S: Simd>(x: S::V) -> S::V {
    // `min`/`max` return their second operand for NaN, so NaN passes the clamp.
    let x = S::max(S::splat(-104.0), S::min(S::splat(89.0), x));
    let n = round_small::<S>(S::mul(x, S::splat(std::f32::consts::LOG2_E)));
    let r = S::mul_add(n, S::splat(-355.0 / 512.0), x);
    let r = S::mul_add(n, S::splat(2.121_944_4e-4), r);
    let mut p = S::splat(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = S::mul_add(p, r, S::splat(c));
    }
    let y = S::mul_add(p, S::mul(r, r), S::add(r, S::splat(1.0)));
    let n1 = round_small::<S>(S::mul(n, S::splat(0.5)));
    let n2 = S::sub(n, n1);
    S::mul(S::mul(y, S::pow2i(n1)), S::pow2i(n2))
}

/// `ln x` (Cephes `logf`): `x = m·2^e` with `m` in `[sqrt(1/2), sqrt(2))`, a degree-9
/// polynomial in `m - 1`. Subnormal inputs are scaled first; `ln 0 = -inf`,
/// `ln(negative) = NaN`, `ln(+inf) = +inf`.
#[inline(always)]
pub(crate) fn ln<S: Simd>(x: S::V) -> S::V {
    let one = S::splat(1.0);
    let tiny = S::lt(x, S::splat(f32::MIN_POSITIVE));
    let xs = S::select(tiny, S::mul(x, S::splat(8_388_608.0)), x);
    let (e, m) = S::frexp(xs);
    let e = S::select(tiny, S::sub(e, S::splat(23.0)), e);
    let below = S::lt(m, S::splat(std::f32::consts::FRAC_1_SQRT_2));
    let e = S::select(below, S::sub(e, one), e);
    let f = S::sub(S::select(below, S::add(m, m), m), one);
    let z = S::mul(f, f);
    let mut y = S::splat(7.037_683_6e-2);
    for c in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        y = S::mul_add(y, f, S::splat(c));
    }
    let y = S::mul(S::mul(y, f), z);
    let y = S::mul_add(e, S::splat(-2.121_944_4e-4), y);
    let y = S::mul_add(z, S::splat(-0.5), y);
    let r = S::mul_add(e, S::splat(355.0 / 512.0), S::add(f, y));
    let zero = S::splat(0.0);
    let r = S::select(S::lt(x, zero), S::splat(f32::NAN), r);
    let r = S::select(S::eq(x, zero), S::splat(f32::NEG_INFINITY), r);
    let r = S::select(S::eq(x, S::splat(f32::INFINITY)), x, r);
    S::select(S::is_nan(x), x, r)
}

/// `1 / (1 + e^-x)`, computed from `e = e^-|x|` as `1/(1+e)` or `e/(1+e)` so that
/// both tails keep their relative accuracy.
#[inline(always)]
pub(crate) fn sigmoid<S: Simd>(x: S::V) -> S::V {
    let e = exp::<S>(S::neg(S::abs(x)));
    let r = S::div(S::splat(1.0), S::add(S::splat(1.0), e));
    S::select(S::lt(x, S::splat(0.0)), S::mul(e, r), r)
}

/// `tanh x` (Cephes `tanhf`): an odd polynomial below `|x| = 0.625`, else
/// `1 - 2/(e^{2|x|} + 1)` with the sign of `x`.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(x: S::V) -> S::V {
    let a = S::abs(x);
    let z = S::mul(x, x);
    let mut p = S::splat(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
        p = S::mul_add(p, z, S::splat(c));
    }
    let small = S::mul_add(S::mul(p, z), x, x);
    let e = exp::<S>(S::add(a, a));
    let one = S::splat(1.0);
    let big = S::sub(one, S::div(S::splat(2.0), S::add(e, one)));
    let big = S::select(S::lt(x, S::splat(0.0)), S::neg(big), big);
    S::select(S::lt(a, S::splat(0.625)), small, big)
}

/// `erf x`: its Maclaurin series to `x^13` below `|x| = 0.5`, else Abramowitz &
/// Stegun 7.1.26 (`1 - t·P(t)·e^{-x²}`, `t = 1/(1 + 0.3275911|x|)`) with the sign of
/// `x`.
#[inline(always)]
pub(crate) fn erf<S: Simd>(x: S::V) -> S::V {
    let a = S::abs(x);
    let z = S::mul(x, x);
    let mut s = S::splat(1.0 / 9360.0);
    for c in [
        -1.0 / 1320.0,
        1.0 / 216.0,
        -1.0 / 42.0,
        0.1,
        -1.0 / 3.0,
        1.0,
    ] {
        s = S::mul_add(s, z, S::splat(c));
    }
    let small = S::mul(S::mul(x, S::splat(std::f32::consts::FRAC_2_SQRT_PI)), s);
    let one = S::splat(1.0);
    let t = S::div(one, S::mul_add(a, S::splat(0.327_591_1), one));
    let mut q = S::splat(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
        q = S::mul_add(q, t, S::splat(c));
    }
    let q = S::mul(q, t);
    let big = S::sub(one, S::mul(q, exp::<S>(S::neg(z))));
    let big = S::select(S::lt(x, S::splat(0.0)), S::neg(big), big);
    S::select(S::lt(a, S::splat(0.5)), small, big)
}
