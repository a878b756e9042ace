//! Every elementwise operation on every tier this CPU runs, against f64 math on
//! random lengths (0, 1, odd sizes, tails that are no multiple of 16) and values
//! (negatives, ±100 around the exp overflow and underflow edges, zeros of both signs,
//! infinities, NaN, subnormals).

mod reduce;
mod streaming;

use crate::cpu::{CpuFeatures, Tier};
use crate::table::KernelTable;

/// The table of every tier available here.
pub(super) fn tables() -> Vec<KernelTable> {
    let f = CpuFeatures::detect();
    Tier::ALL
        .into_iter()
        .filter(|t| t.is_available(&f))
        .map(|t| KernelTable::for_tier(t).unwrap())
        .collect()
}

/// A xorshift generator seeded by proptest, so failures shrink to a seed.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A value from a mix meant to reach every branch of the kernels.
    pub(super) fn value(&mut self, specials: bool) -> f32 {
        match self.below(if specials { 12 } else { 8 }) {
            0..=2 => self.range(-1.0, 1.0),
            3 | 4 => self.range(-10.0, 10.0),
            5 => self.range(-110.0, 110.0),
            6 => self.range(86.0, 90.0) * if self.below(2) == 0 { 1.0 } else { -1.0 },
            7 => self.range(-1e-3, 1e-3),
            8 => [0.0, -0.0, 1.0, -1.0, 0.5, -0.5][self.below(6)],
            9 => [f32::INFINITY, f32::NEG_INFINITY, f32::NAN][self.below(3)],
            10 => self.range(-1e-39, 1e-39),
            _ => self.range(-1e30, 1e30),
        }
    }

    pub(super) fn values(&mut self, n: usize, specials: bool) -> Vec<f32> {
        (0..n).map(|_| self.value(specials)).collect()
    }
}

/// Whether `got` is within `tol` (plus one subnormal step, since relative bounds stop
/// at the normal range) of the f64 value `want`; NaN must meet NaN and an infinite
/// (after rounding to f32) `want` must be met exactly.
pub(super) fn close(got: f32, want: f64, tol: f64) -> bool {
    let w32 = want as f32;
    if want.is_nan() {
        return got.is_nan();
    }
    if w32.is_infinite() || got.is_infinite() {
        return got == w32;
    }
    ((got as f64) - want).abs() <= tol + 1.5e-45
}

/// A length: mostly small, sometimes past several vectors, sometimes 0 or 1.
pub(super) fn length(rng: &mut Rng) -> usize {
    match rng.below(8) {
        0 => rng.below(2),
        1..=4 => rng.below(70),
        _ => rng.below(700),
    }
}

/// `erf` in f64: its Maclaurin series below 3, a continued fraction for `erfc` above.
pub(super) fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let z = a * a;
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-18 * sum.abs() {
            n += 1.0;
            term *= -z / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        let mut t = a;
        for k in (1..=80).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    if x.is_nan() {
        f64::NAN
    } else {
        r.copysign(x)
    }
}

#[test]
fn erf64_matches_known_values() {
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.5, 0.999_593_047_982_555),
        (3.5, 0.999_999_256_901_627_7),
    ] {
        assert!((erf64(x) - want).abs() < 1e-14, "{x}: {}", erf64(x));
        assert!((erf64(-x) + want).abs() < 1e-14);
    }
}

#[test]
fn picks_name_every_slot() {
    for t in tables() {
        let picks = t.eltwise.picks();
        assert_eq!(picks.len(), 7);
        for (slot, name) in picks {
            assert!(name.starts_with(slot), "{slot} {name}");
        }
    }
}
