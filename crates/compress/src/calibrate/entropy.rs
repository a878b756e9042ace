//! The KL-divergence threshold search over a magnitude histogram.

/// The number of bins (from zero) whose range, quantized to `levels` levels, loses
/// the least information: the threshold minimising `KL(P || Q)`, where `P` is the
/// histogram clipped at the threshold (outliers folded into its last bin) and `Q` is
/// `P` merged into `levels` groups and spread back over each group's non-empty bins.
pub(crate) fn threshold(hist: &[u64], levels: usize) -> usize {
    let bins = hist.len();
    let last_used = hist.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
    if last_used <= levels {
        return last_used.max(1);
    }
    let mut best = (f64::INFINITY, last_used);
    // candidate thresholds, coarse enough to stay cheap on 2048 bins
    let step = (bins / 256).max(1);
    let mut t = levels;
    while t <= last_used {
        let kl = divergence(hist, t, levels);
        if kl < best.0 {
            best = (kl, t);
        }
        t += step;
    }
    best.1
}

fn divergence(hist: &[u64], t: usize, levels: usize) -> f64 {
    let mut p: Vec<f64> = hist[..t].iter().map(|&c| c as f64).collect();
    let outliers: f64 = hist[t..].iter().map(|&c| c as f64).sum();
    p[t - 1] += outliers;
    let total: f64 = p.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    let mut q = vec![0.0f64; t];
    for g in 0..levels {
        let start = g * t / levels;
        let end = ((g + 1) * t / levels).max(start + 1).min(t);
        let mass: f64 = hist[start..end].iter().map(|&c| c as f64).sum::<f64>()
            + if end == t { outliers } else { 0.0 };
        let nonzero = (start..end).filter(|&i| p[i] > 0.0).count();
        if nonzero == 0 {
            continue;
        }
        let share = mass / nonzero as f64;
        for i in start..end {
            if p[i] > 0.0 {
                q[i] = share;
            }
        }
    }
    let mut kl = 0.0;
    for i in 0..t {
        if p[i] > 0.0 {
            let pi = p[i] / total;
            let qi = (q[i] / total).max(1e-12);
            kl += pi * (pi / qi).ln();
        }
    }
    kl
}
