//! Activation ranges from streamed batches: min/max, percentile and entropy calibration.
//!
//! Calibration sees one batch at a time and keeps, per tensor, its min, max and (for the histogram
//! methods) a fixed-size histogram, never the activations themselves: memory per tensor is
//! `2 * HISTOGRAM_BINS` counters (32 KiB) however many samples stream through.

use std::str::FromStr;

use serde::Serialize;

use crate::entropy::{entropy_threshold, QUANTIZED_BINS};
use crate::QuantError;

/// Histogram bins on each side of zero. 2048 is the resolution TensorRT's entropy calibration uses;
/// with 128 quantized bins it leaves 16 histogram bins per int8 step at the widest threshold.
pub const HISTOGRAM_BINS: usize = 2048;

/// How a tensor's range is chosen from what calibration observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "method", content = "percentile")]
pub enum CalibrationMethod {
    /// The observed minimum and maximum.
    MinMax,
    /// The range that holds this percentage of the absolute values (e.g. 99.99), clipping outliers.
    Percentile(f64),
    /// The clipping threshold whose int8 quantization loses the least information (the KL
    /// divergence between the clipped and the quantized distribution of |x| is smallest).
    Entropy,
}

impl CalibrationMethod {
    fn needs_histogram(self) -> bool {
        !matches!(self, CalibrationMethod::MinMax)
    }
}

impl FromStr for CalibrationMethod {
    type Err = QuantError;

    /// `minmax`, `percentile:<p>` with p in (0, 100], or `entropy`.
    fn from_str(text: &str) -> Result<CalibrationMethod, QuantError> {
        match text {
            "minmax" => Ok(CalibrationMethod::MinMax),
            "entropy" => Ok(CalibrationMethod::Entropy),
            _ => {
                let unknown = || QuantError::UnknownMethod { method: text.to_string() };
                let value = text.strip_prefix("percentile:").ok_or_else(unknown)?;
                let percentile: f64 = value.parse().map_err(|_| unknown())?;
                if !(percentile > 0.0 && percentile <= 100.0) {
                    return Err(QuantError::BadPercentile { percentile });
                }
                Ok(CalibrationMethod::Percentile(percentile))
            }
        }
    }
}

/// Counts of values in `2 * HISTOGRAM_BINS` equal bins over `[-bound, bound)`.
///
/// When a value beyond the bound arrives, the bound doubles and neighbouring bins merge pairwise,
/// which is exact (no count is split or guessed), so streaming gives the histogram a single pass
/// over all the data would have had at the final bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bound: f64,
    counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram over `[-bound, bound)`; a bound of zero becomes the smallest positive f32.
    pub fn new(bound: f32) -> Histogram {
        Histogram { bound: f64::from(bound.abs().max(f32::MIN_POSITIVE)), counts: vec![0; 2 * HISTOGRAM_BINS] }
    }

    /// The current bound.
    pub fn bound(&self) -> f64 {
        self.bound
    }

    /// The width of one bin.
    pub fn bin_width(&self) -> f64 {
        self.bound / HISTOGRAM_BINS as f64
    }

    /// Counts `values`; non-finite ones are skipped (the observer counts them).
    pub fn add(&mut self, values: &[f32]) {
        let largest = values.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
        while largest > self.bound {
            self.double();
        }
        let width = self.bin_width();
        let last = self.counts.len() - 1;
        for &v in values.iter().filter(|v| v.is_finite()) {
            let index = ((f64::from(v) + self.bound) / width).floor();
            // `bound` itself falls one past the end: it belongs to the last bin.
            self.counts[(index.max(0.0) as usize).min(last)] += 1;
        }
    }

    fn double(&mut self) {
        // Old bin i starts at -2*bound + (N + i) * width; with N even, bins i and i + 1 (N + i even)
        // make new bin (N + i) / 2 of twice the width.
        let mut merged = vec![0; self.counts.len()];
        for (i, &count) in self.counts.iter().enumerate() {
            merged[(HISTOGRAM_BINS + i) / 2] += count;
        }
        self.counts = merged;
        self.bound *= 2.0;
    }

    /// The histogram of |x|: bin i counts |x| in `[i * width, (i + 1) * width)` (negative values
    /// land on the side where `-x` would have, up to bin edges).
    pub fn abs_counts(&self) -> Vec<u64> {
        let n = HISTOGRAM_BINS;
        (0..n).map(|i| self.counts[n + i] + self.counts[n - 1 - i]).collect()
    }
}

/// Observes one tensor over the calibration batches and gives its range.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeObserver {
    method: CalibrationMethod,
    min: f32,
    max: f32,
    finite: u64,
    non_finite: u64,
    histogram: Option<Histogram>,
}

impl RangeObserver {
    pub fn new(method: CalibrationMethod) -> RangeObserver {
        RangeObserver { method, min: f32::INFINITY, max: f32::NEG_INFINITY, finite: 0, non_finite: 0, histogram: None }
    }

    /// Takes one batch of the tensor's values.
    pub fn observe(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
                self.finite += 1;
            } else {
                self.non_finite += 1;
            }
        }
        if self.method.needs_histogram() && self.finite > 0 {
            let bound = self.min.abs().max(self.max.abs());
            self.histogram.get_or_insert_with(|| Histogram::new(bound)).add(values);
        }
    }

    /// How many finite values were seen.
    pub fn count(&self) -> u64 {
        self.finite
    }

    /// How many NaN and infinite values were seen (left out of the range).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// The observed minimum and maximum of the finite values.
    pub fn min_max(&self) -> Result<(f32, f32), QuantError> {
        if self.finite == 0 {
            return Err(QuantError::NoData);
        }
        Ok((self.min, self.max))
    }

    /// The calibrated range: the observed one, clipped symmetrically at the method's threshold.
    pub fn range(&self) -> Result<(f32, f32), QuantError> {
        let (min, max) = self.min_max()?;
        let Some(histogram) = &self.histogram else { return Ok((min, max)) };
        let counts = histogram.abs_counts();
        let bins = match self.method {
            CalibrationMethod::MinMax => return Ok((min, max)),
            CalibrationMethod::Percentile(percentile) => percentile_bins(&counts, percentile),
            CalibrationMethod::Entropy => entropy_threshold(&counts, QUANTIZED_BINS),
        };
        let threshold = (bins as f64 * histogram.bin_width()) as f32;
        Ok((min.max(-threshold), max.min(threshold)))
    }
}

/// The number of leading bins that hold `percentile` percent of the counts.
fn percentile_bins(counts: &[u64], percentile: f64) -> usize {
    let total: u64 = counts.iter().sum();
    let wanted = percentile / 100.0 * total as f64;
    let mut seen = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        seen += count;
        if seen as f64 >= wanted {
            return i + 1;
        }
    }
    counts.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_bad_ones_are_named() {
        assert_eq!("minmax".parse::<CalibrationMethod>(), Ok(CalibrationMethod::MinMax));
        assert_eq!("entropy".parse::<CalibrationMethod>(), Ok(CalibrationMethod::Entropy));
        assert_eq!("percentile:99.9".parse::<CalibrationMethod>(), Ok(CalibrationMethod::Percentile(99.9)));
        let err = "kl".parse::<CalibrationMethod>().unwrap_err();
        assert_eq!(err.to_string(), "unknown calibration method 'kl' (expected minmax, percentile:<p> or entropy)");
        assert!(matches!("percentile:0".parse::<CalibrationMethod>(), Err(QuantError::BadPercentile { .. })));
        assert!(matches!("percentile:x".parse::<CalibrationMethod>(), Err(QuantError::UnknownMethod { .. })));
    }

    #[test]
    fn minmax_streams_and_skips_non_finite_values() {
        let mut observer = RangeObserver::new(CalibrationMethod::MinMax);
        assert_eq!(observer.range(), Err(QuantError::NoData));
        observer.observe(&[0.5, -2.0, f32::NAN]);
        observer.observe(&[3.0, f32::INFINITY]);
        assert_eq!(observer.range(), Ok((-2.0, 3.0)));
        assert_eq!((observer.count(), observer.non_finite()), (3, 2));
    }

    #[test]
    fn streaming_histogram_equals_one_pass_at_the_final_bound() {
        let values: Vec<f32> = (0..5000).map(|i| ((i * 7919) % 2001) as f32 / 100.0 - 10.0).collect();
        let mut streamed = Histogram::new(0.25);
        for chunk in values.chunks(333) {
            streamed.add(chunk);
        }
        // The bound doubled from 0.25 until it held 10.0: 0.25 * 2^6 = 16.
        assert_eq!(streamed.bound(), 16.0);
        let mut once = Histogram::new(16.0);
        once.add(&values);
        assert_eq!(streamed, once);
        assert_eq!(streamed.abs_counts().iter().sum::<u64>(), 5000);
    }

    #[test]
    fn abs_counts_fold_both_sides() {
        let mut h = Histogram::new(HISTOGRAM_BINS as f32);
        // Width 1: 2.5 and -2.5 both land in |x| bin 2; 0.0 in bin 0.
        h.add(&[2.5, -2.5, 0.0]);
        let abs = h.abs_counts();
        assert_eq!((abs[0], abs[2]), (1, 2));
        assert_eq!(abs.iter().sum::<u64>(), 3);
    }

    #[test]
    fn percentile_clips_rare_outliers() {
        // 9990 values in [0, 1) and 10 at 100: the 99.5th percentile of |x| is near 0.995.
        let mut values: Vec<f32> = (0..9990).map(|i| i as f32 / 9990.0).collect();
        values.extend([100.0; 10]);
        let mut observer = RangeObserver::new(CalibrationMethod::Percentile(99.5));
        observer.observe(&values);
        let (min, max) = observer.range().unwrap();
        assert_eq!(min, 0.0);
        // One bin is 100 / 2048 wide, so the threshold is within a bin of 0.995.
        assert!((max - 0.995).abs() <= 100.0 / 2048.0, "max {max}");
        let mut all = RangeObserver::new(CalibrationMethod::Percentile(100.0));
        all.observe(&values);
        assert_eq!(all.range().unwrap().1, 100.0);
    }
}
