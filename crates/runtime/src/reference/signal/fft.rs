//! A complex FFT of any length in `f64`: mixed radix over the prime factors of the
//! length, and Bluestein's chirp-z transform (on a power-of-two FFT) when a prime
//! factor is large. Twiddle factors come from one table indexed modulo the length,
//! so each is computed once, directly from its angle.

/// A complex number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Complex {
    pub const ZERO: Complex = Complex { re: 0.0, im: 0.0 };

    pub fn new(re: f64, im: f64) -> Self {
        Complex { re, im }
    }

    #[inline]
    pub fn conj(self) -> Complex {
        Complex::new(self.re, -self.im)
    }

    #[inline]
    pub fn scale(self, s: f64) -> Complex {
        Complex::new(self.re * s, self.im * s)
    }
}

impl std::ops::Mul for Complex {
    type Output = Complex;

    #[inline]
    fn mul(self, o: Complex) -> Complex {
        Complex::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

impl std::ops::Add for Complex {
    type Output = Complex;

    #[inline]
    fn add(self, o: Complex) -> Complex {
        Complex::new(self.re + o.re, self.im + o.im)
    }
}

/// Largest prime factor handled by the mixed-radix path; lengths with a larger one
/// go through Bluestein's algorithm.
const MAX_RADIX: usize = 61;

/// A plan for transforms of one length.
pub struct Fft {
    n: usize,
    kind: Kind,
}

enum Kind {
    MixedRadix {
        /// `twiddles[j] = exp(-2 pi i j / n)`.
        twiddles: Vec<Complex>,
        factors: Vec<usize>,
    },
    Bluestein {
        inner: Box<Fft>,
        /// `chirp[j] = exp(i pi j^2 / n)` for `j < n`.
        chirp: Vec<Complex>,
        /// The forward transform of the chirp laid out for a circular convolution.
        kernel: Vec<Complex>,
    },
}

/// Prime factors of `n` in increasing order.
fn factorize(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 2;
    while p * p <= n {
        while n.is_multiple_of(p) {
            out.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        out.push(n);
    }
    out
}

fn unit(angle: f64) -> Complex {
    let (s, c) = angle.sin_cos();
    Complex::new(c, s)
}

impl Fft {
    /// A plan for length `n` (at least 1).
    pub fn new(n: usize) -> Fft {
        let n = n.max(1);
        let factors = factorize(n);
        if factors.last().copied().unwrap_or(1) <= MAX_RADIX {
            let step = -2.0 * std::f64::consts::PI / n as f64;
            let twiddles = (0..n).map(|j| unit(step * j as f64)).collect();
            return Fft {
                n,
                kind: Kind::MixedRadix { twiddles, factors },
            };
        }
        let m = (2 * n - 1).next_power_of_two();
        let inner = Box::new(Fft::new(m));
        let two_n = 2 * n as u128;
        let chirp: Vec<Complex> = (0..n)
            .map(|j| {
                let k = (j as u128 * j as u128) % two_n;
                unit(std::f64::consts::PI * k as f64 / n as f64)
            })
            .collect();
        let mut kernel = vec![Complex::ZERO; m];
        kernel[0] = chirp[0];
        for j in 1..n {
            kernel[j] = chirp[j];
            kernel[m - j] = chirp[j];
        }
        inner.forward(&mut kernel);
        Fft {
            n,
            kind: Kind::Bluestein {
                inner,
                chirp,
                kernel,
            },
        }
    }

    /// In place `X[k] = sum_t x[t] exp(-2 pi i k t / n)`; `data.len()` must be `n`.
    pub fn forward(&self, data: &mut [Complex]) {
        debug_assert_eq!(data.len(), self.n);
        match &self.kind {
            Kind::MixedRadix { twiddles, factors } => {
                let input = data.to_vec();
                mixed_radix(&input, 1, data, twiddles, 1, factors);
            }
            Kind::Bluestein {
                inner,
                chirp,
                kernel,
            } => {
                let m = kernel.len();
                let mut a = vec![Complex::ZERO; m];
                for j in 0..self.n {
                    a[j] = data[j] * chirp[j].conj();
                }
                inner.forward(&mut a);
                for (x, k) in a.iter_mut().zip(kernel) {
                    *x = *x * *k;
                }
                inner.inverse(&mut a);
                let s = 1.0 / m as f64;
                for k in 0..self.n {
                    data[k] = (a[k] * chirp[k].conj()).scale(s);
                }
            }
        }
    }

    /// In place `x[t] = sum_k X[k] exp(2 pi i k t / n)` (not divided by `n`).
    pub fn inverse(&self, data: &mut [Complex]) {
        for x in data.iter_mut() {
            *x = x.conj();
        }
        self.forward(data);
        for x in data.iter_mut() {
            *x = x.conj();
        }
    }
}

/// Writes the DFT of `input[0], input[stride], ...` (`out.len()` elements) to `out`.
/// `twiddles` is the table of the top-level length; this level's length is that
/// divided by `ts`, so its `exp(-2 pi i j / len)` is `twiddles[j * ts]`.
fn mixed_radix(
    input: &[Complex],
    stride: usize,
    out: &mut [Complex],
    twiddles: &[Complex],
    ts: usize,
    factors: &[usize],
) {
    let n = out.len();
    if n == 1 {
        out[0] = input[0];
        return;
    }
    let p = factors[0];
    let m = n / p;
    if m == 1 {
        for (k, o) in out.iter_mut().enumerate() {
            let mut acc = Complex::ZERO;
            for t in 0..p {
                acc = acc + input[t * stride] * twiddles[(k * t % p) * ts];
            }
            *o = acc;
        }
        return;
    }
    for r in 0..p {
        mixed_radix(
            &input[r * stride..],
            stride * p,
            &mut out[r * m..(r + 1) * m],
            twiddles,
            ts * p,
            &factors[1..],
        );
    }
    // X[k + q m] = sum_r W_n^(r k) W_p^(r q) Y_r[k], where W_p = W_n^m.
    let mut y = vec![Complex::ZERO; p];
    for k in 0..m {
        for (r, yr) in y.iter_mut().enumerate() {
            *yr = out[r * m + k] * twiddles[(r * k % n) * ts];
        }
        for q in 0..p {
            let mut acc = y[0];
            for (r, yr) in y.iter().enumerate().skip(1) {
                acc = acc + *yr * twiddles[(r * q % p) * m * ts];
            }
            out[q * m + k] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[Complex]) -> Vec<Complex> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter().enumerate().fold(Complex::ZERO, |acc, (t, v)| {
                    let a = -2.0 * std::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
                    acc + *v * unit(a)
                })
            })
            .collect()
    }

    #[test]
    fn matches_the_definition_for_many_lengths() {
        for n in [
            1usize, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 30, 61, 67, 97, 128, 134, 200,
        ] {
            let x: Vec<Complex> = (0..n)
                .map(|i| Complex::new((i as f64 * 0.37).sin() + 0.5, (i as f64 * 1.3).cos()))
                .collect();
            let want = naive(&x);
            let plan = Fft::new(n);
            let mut got = x.clone();
            plan.forward(&mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.re - w.re).abs() < 1e-9 && (g.im - w.im).abs() < 1e-9,
                    "n={n}: {g:?} vs {w:?}"
                );
            }
            plan.inverse(&mut got);
            for (g, v) in got.iter().zip(&x) {
                let g = g.scale(1.0 / n as f64);
                assert!(
                    (g.re - v.re).abs() < 1e-12 && (g.im - v.im).abs() < 1e-12,
                    "n={n}"
                );
            }
        }
    }

    #[test]
    fn small_transform_by_hand() {
        // DFT of [1, 2, 3, 4] is [10, -2+2i, -2, -2-2i].
        let mut x: Vec<Complex> = [1.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|&v| Complex::new(v, 0.0))
            .collect();
        Fft::new(4).forward(&mut x);
        let want = [(10.0, 0.0), (-2.0, 2.0), (-2.0, 0.0), (-2.0, -2.0)];
        for (g, (re, im)) in x.iter().zip(want) {
            assert!(
                (g.re - re).abs() < 1e-12 && (g.im - im).abs() < 1e-12,
                "{x:?}"
            );
        }
    }
}
