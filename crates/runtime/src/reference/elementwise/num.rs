//! Typed integer arithmetic with numpy's semantics (wrapping on overflow, division
//! truncating toward zero) and the float element types' rounding from `f64`.

use slimnet_tensor::{bf16, f16, Element};

/// Float element types; their kernels compute through `f64` and round once.
pub trait Float: Element {
    /// `v` rounded to nearest (ties to even) in one step.
    fn round_from(v: f64) -> Self;
}

impl Float for f32 {
    #[inline]
    fn round_from(v: f64) -> Self {
        v as f32
    }
}

impl Float for f64 {
    #[inline]
    fn round_from(v: f64) -> Self {
        v
    }
}

impl Float for f16 {
    #[inline]
    fn round_from(v: f64) -> Self {
        f16::from_f32(f32_round_to_odd(v))
    }
}

impl Float for bf16 {
    #[inline]
    fn round_from(v: f64) -> Self {
        bf16::from_f32(f32_round_to_odd(v))
    }
}

/// `v` as `f32` rounded to odd: truncated toward zero, with the last bit set when
/// that was inexact. Rounding this once more to a type with at most 22 significand
/// bits (f16, bf16) gives the correctly rounded result, where going through a
/// nearest-rounded `f32` can round twice the wrong way.
#[inline]
pub fn f32_round_to_odd(v: f64) -> f32 {
    let r = v as f32;
    if r as f64 == v || v.is_nan() {
        return r;
    }
    let mut bits = r.to_bits();
    if (r as f64).abs() > v.abs() {
        // Rounded away from zero (possibly to infinity): step back toward zero.
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// Integer element types with wrapping arithmetic.
pub trait Int: Element + Ord + Eq {
    const BITS: u32;
    const MIN: Self;
    const MAX: Self;
    fn wadd(self, o: Self) -> Self;
    fn wsub(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
    /// Truncating division; `o` must not be zero (`MIN / -1` wraps).
    fn wdiv(self, o: Self) -> Self;
    /// Remainder of the truncating division; `o` must not be zero.
    fn wrem(self, o: Self) -> Self;
    fn wneg(self) -> Self;
    fn wabs(self) -> Self;
    fn signum(self) -> Self;
    /// Shifts by `n < BITS` bits; right shifts of signed values are arithmetic.
    fn shl(self, n: u32) -> Self;
    fn shr(self, n: u32) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn not(self) -> Self;
    fn to_i128(self) -> i128;
    /// Keeps the low bits (C-style wrapping).
    fn from_i128(v: i128) -> Self;
    fn is_negative(self) -> bool {
        self < Self::zero()
    }
}

macro_rules! int_impl {
    ($($t:ty),*) => {$(
        impl Int for $t {
            const BITS: u32 = <$t>::BITS;
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            #[inline]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline]
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline]
            fn wdiv(self, o: Self) -> Self {
                self.wrapping_div(o)
            }
            #[inline]
            fn wrem(self, o: Self) -> Self {
                self.wrapping_rem(o)
            }
            #[inline]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline]
            fn wabs(self) -> Self {
                if self < Self::default() {
                    self.wrapping_neg()
                } else {
                    self
                }
            }
            #[inline]
            fn signum(self) -> Self {
                if self > 0 as $t {
                    1 as $t
                } else if self == 0 as $t {
                    0 as $t
                } else {
                    (0 as $t).wrapping_sub(1 as $t)
                }
            }
            #[inline]
            fn shl(self, n: u32) -> Self {
                self.wrapping_shl(n)
            }
            #[inline]
            fn shr(self, n: u32) -> Self {
                self.wrapping_shr(n)
            }
            #[inline]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline]
            fn or(self, o: Self) -> Self {
                self | o
            }
            #[inline]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline]
            fn not(self) -> Self {
                !self
            }
            #[inline]
            fn to_i128(self) -> i128 {
                self as i128
            }
            #[inline]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
        }
    )*};
}

int_impl!(i8, i16, i32, i64, u8, u16, u32, u64);

/// `base ^ exp` with wrapping multiplication (exact where it does not overflow).
pub fn int_pow<T: Int>(base: T, exp: u128) -> T {
    let mut result = T::one();
    let mut b = base;
    let mut e = exp;
    while e > 0 {
        if e & 1 == 1 {
            result = result.wmul(b);
        }
        e >>= 1;
        if e > 0 {
            b = b.wmul(b);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_types_round_once() {
        // Just above the midpoint between two bf16 (f16) values, by less than an f32
        // ulp: rounding through a nearest f32 would land on the tie and round down.
        let v = 1.0 + 2f64.powi(-8) + 2f64.powi(-30);
        assert_eq!(bf16::round_from(v).to_f64(), 1.0 + 2f64.powi(-7));
        let w = 1.0 + 2f64.powi(-11) + 2f64.powi(-30);
        assert_eq!(f16::round_from(w).to_f64(), 1.0 + 2f64.powi(-10));
        assert_eq!(f16::round_from(1.0 + 2f64.powi(-11)).to_f64(), 1.0);
        assert_eq!(f16::round_from(-1e10).to_f64(), f64::NEG_INFINITY);
        assert_eq!(f16::round_from(65519.0).to_f64(), 65504.0);
        assert_eq!(f16::round_from(65520.0).to_f64(), f64::INFINITY);
        assert!(bf16::round_from(f64::NAN).is_nan());
        assert_eq!(bf16::round_from(1e300).to_f64(), f64::INFINITY);
        assert_eq!(f16::round_from(1e-30).to_f64(), 0.0);
    }

    #[test]
    fn wrapping_semantics() {
        assert_eq!(i8::MIN.wdiv(-1), i8::MIN);
        assert_eq!(i8::MIN.wrem(-1), 0);
        assert_eq!((-7i32).wdiv(2), -3);
        assert_eq!((-7i32).wrem(2), -1);
        assert_eq!(i8::MIN.wabs(), i8::MIN);
        assert_eq!((-5i16).signum(), -1);
        assert_eq!(200u8.wadd(100), 44);
        assert_eq!(int_pow(3i64, 4), 81);
        assert_eq!(int_pow(2u8, 9), 0);
        assert_eq!(int_pow(-2i32, 3), -8);
        assert_eq!((-8i8).shr(1), -4);
    }
}
