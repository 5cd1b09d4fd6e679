//! Entropy calibration: the clipping threshold that minimises the KL divergence between a
//! histogram of |x| clipped there and its quantization into int8 levels (the method TensorRT made
//! standard for int8 activations).

/// Quantized levels on one side of zero for int8.
pub const QUANTIZED_BINS: usize = 128;

/// Probability given to an empty candidate bin where the reference has mass, so that the
/// divergence stays finite; small enough that such a candidate always loses to one without holes.
const EMPTY_BIN: f64 = 1e-12;

/// `KL(p || q)` in nats of two count vectors of the same length, each normalised to sum 1.
/// Terms where `p` is 0 contribute nothing; where `q` is 0 and `p` is not, `q` counts as
/// [`EMPTY_BIN`].
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let (p_total, q_total): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if p_total == 0.0 || q_total == 0.0 {
        return 0.0;
    }
    p.iter()
        .zip(q)
        .filter(|(&p, _)| p > 0.0)
        .map(|(&p, &q)| {
            let (p, q) = (p / p_total, (q / q_total).max(EMPTY_BIN));
            p * (p / q).ln()
        })
        .sum()
}

/// The number of leading bins of `counts` (a histogram of |x|) to keep: for each candidate `i` from
/// `levels` to `counts.len()`, the reference is the first `i` bins with everything beyond added to
/// the last one (clipping), and the candidate spreads each of `levels` equal groups of those bins
/// evenly over the group's non-empty bins (what `levels` quantization steps can represent). The
/// `i` with the smallest divergence wins, the first on ties, so that the result is deterministic.
pub fn entropy_threshold(counts: &[u64], levels: usize) -> usize {
    let n = counts.len();
    if n <= levels {
        return n;
    }
    let counts: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
    let mut suffix = vec![0.0; n + 1];
    for i in (0..n).rev() {
        suffix[i] = suffix[i + 1] + counts[i];
    }
    let (mut best, mut best_divergence) = (n, f64::INFINITY);
    let mut reference = Vec::with_capacity(n);
    let mut candidate = Vec::with_capacity(n);
    for i in levels..=n {
        reference.clear();
        reference.extend_from_slice(&counts[..i]);
        reference[i - 1] += suffix[i];
        candidate.clear();
        candidate.resize(i, 0.0);
        for group in 0..levels {
            let (start, end) = (group * i / levels, (group + 1) * i / levels);
            let bins = &counts[start..end];
            let total: f64 = bins.iter().sum();
            let filled = reference[start..end].iter().filter(|&&c| c > 0.0).count();
            if filled == 0 {
                continue;
            }
            for (slot, &r) in candidate[start..end].iter_mut().zip(&reference[start..end]) {
                if r > 0.0 {
                    *slot = total / filled as f64;
                }
            }
        }
        let divergence = kl_divergence(&reference, &candidate);
        if divergence < best_divergence {
            (best, best_divergence) = (i, divergence);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_matches_the_formula() {
        assert_eq!(kl_divergence(&[1.0, 3.0], &[2.0, 6.0]), 0.0);
        // p = (1/2, 1/2), q = (1/4, 3/4): 1/2 ln 2 + 1/2 ln(2/3).
        let expected = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl_divergence(&[1.0, 1.0], &[1.0, 3.0]) - expected).abs() < 1e-15);
        // A hole in q where p has mass costs ln(p / 1e-12).
        let hole = kl_divergence(&[1.0, 1.0], &[1.0, 0.0]);
        assert!((hole - (0.5 * 0.5f64.ln() + 0.5 * (0.5f64 / 1e-12).ln())).abs() < 1e-12);
    }

    #[test]
    fn data_that_fits_is_not_clipped() {
        // Uniform over the first 1024 bins: 1024 = 8 bins per level reproduces it exactly, while
        // any smaller threshold piles the clipped mass into its last bin.
        let mut counts = vec![0u64; 2048];
        counts[..1024].fill(10);
        assert_eq!(entropy_threshold(&counts, QUANTIZED_BINS), 1024);
    }

    #[test]
    fn rare_outliers_are_clipped() {
        // A decaying bulk over 300 bins and one far outlier at bin 2000: spending int8's 128 levels
        // up to the outlier would flatten the bulk into a few levels, so the threshold lands at
        // the end of the bulk, far below the outlier.
        let mut counts: Vec<u64> =
            (0..2048).map(|i| if i < 300 { (10_000.0 * (-(i as f64) / 60.0).exp()) as u64 } else { 0 }).collect();
        counts[2000] = 1;
        let threshold = entropy_threshold(&counts, QUANTIZED_BINS);
        assert!((250..=350).contains(&threshold), "threshold {threshold}");
    }

    #[test]
    fn short_histograms_keep_every_bin() {
        assert_eq!(entropy_threshold(&[5, 0, 1], QUANTIZED_BINS), 3);
    }
}
