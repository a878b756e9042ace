//! Metrics comparing a model's outputs with a reference's.
//!
//! Slices of different lengths are compared over their common prefix; callers check
//! shapes first.

/// Cosine similarity of two vectors; exactly `1.0` when they are equal (including two
/// all-zero vectors), `0.0` when exactly one is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a == b {
        return 1.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 && nb == 0.0 {
        1.0
    } else if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Signal-to-quantization-noise ratio in dB: `10 * log10(sum r^2 / sum (r - t)^2)`;
/// `+inf` when the two are equal (including two empty slices), `-inf` when the reference
/// is all zeros and the test is not.
pub fn sqnr_db(reference: &[f32], test: &[f32]) -> f64 {
    let (signal, noise) = energies(reference, test);
    sqnr_from_energies(signal, noise)
}

/// `(sum r^2, sum (r - t)^2)`, the two sums [`sqnr_db`] divides, for accumulating over
/// many samples.
pub fn energies(reference: &[f32], test: &[f32]) -> (f64, f64) {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&r, &t) in reference.iter().zip(test) {
        let (r, t) = (r as f64, t as f64);
        signal += r * r;
        noise += (r - t) * (r - t);
    }
    (signal, noise)
}

/// [`sqnr_db`] from accumulated energies.
pub fn sqnr_from_energies(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// Largest `|a - b|`; `0.0` for empty slices.
pub fn max_abs_error(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}

/// Fraction of rows (last axis = classes, `classes` wide) whose argmax agrees; `1.0`
/// when there are no rows or `classes` is 0.
pub fn argmax_agreement(a: &[f32], b: &[f32], classes: usize) -> f64 {
    let (agree, rows) = argmax_agreement_count(a, b, classes);
    if rows == 0 {
        1.0
    } else {
        agree as f64 / rows as f64
    }
}

/// `(rows whose argmax agrees, rows)`, for accumulating over many samples.
pub fn argmax_agreement_count(a: &[f32], b: &[f32], classes: usize) -> (usize, usize) {
    if classes == 0 {
        return (0, 0);
    }
    let rows = a.len().min(b.len()) / classes;
    let agree = a
        .chunks_exact(classes)
        .zip(b.chunks_exact(classes))
        .take(rows)
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    (agree, rows)
}

/// Index of the largest element (the first one on ties; NaN counts as the largest);
/// `0` for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate().skip(1) {
        if x.total_cmp(&row[best]).is_gt() && !row[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_cases() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        let v = [0.1f32, 0.7, -0.3];
        assert_eq!(cosine(&v, &v), 1.0);
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn sqnr_cases() {
        assert_eq!(sqnr_db(&[1.0, 2.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(sqnr_db(&[], &[]), f64::INFINITY);
        // signal 1+1 = 2, noise 0.01+0.01 = 0.02: ratio 100 = 20 dB.
        let s = sqnr_db(&[1.0, -1.0], &[1.1, -0.9]);
        assert!((s - 20.0).abs() < 1e-5, "{s}");
        assert_eq!(sqnr_db(&[0.0], &[1.0]), f64::NEG_INFINITY);
    }

    #[test]
    fn max_abs_cases() {
        assert_eq!(max_abs_error(&[], &[]), 0.0);
        assert!((max_abs_error(&[1.0, -2.0, 3.0], &[1.5, -2.0, 2.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn argmax_cases() {
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[1.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[2.0, 2.0]), 0);
        assert_eq!(argmax(&[-5.0, -1.0]), 1);
        assert_eq!(argmax(&[1.0, f32::NAN, 2.0]), 1);
    }

    #[test]
    fn agreement_cases() {
        let a = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        let b = [2.0, 0.0, 1.0, 0.0, 1.0, 9.0];
        assert!((argmax_agreement(&a, &b, 2) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(argmax_agreement(&a, &a, 3), 1.0);
        assert_eq!(argmax_agreement(&[], &[], 4), 1.0);
        assert_eq!(argmax_agreement(&a, &b, 0), 1.0);
    }
}
