//! Fidelity of one model's outputs to another's, accumulated over many feeds, and task accuracy.

use serde::Serialize;
use whittle_ir::Tensor;

use crate::{to_f64, MetricsError};

/// How closely one output follows its reference over all feeds seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fidelity {
    pub output: String,
    /// Largest `|candidate - reference|` over all elements.
    pub max_abs_error: f64,
    /// Mean `|candidate - reference|` over all elements.
    pub mean_abs_error: f64,
    /// Cosine similarity of candidate and reference, per sample (row of the last axis' leading
    /// dims flattened: one per batch item), averaged over samples.
    pub mean_cosine_similarity: f64,
    /// Fraction of samples whose arg-max over the last axis agrees; `None` for outputs of rank < 2.
    pub top1_agreement: Option<f64>,
    /// Signal-to-noise ratio in dB, `10 log10(sum(reference^2) / sum((candidate - reference)^2))`
    /// over all elements: how quantization error is usually judged per layer (30 dB is about 3% RMS
    /// error). `None` when the outputs are identical (no noise) or the reference is all zeros.
    pub sqnr_db: Option<f64>,
    pub elements: u64,
    pub samples: u64,
}

/// Collects the fidelity of one output feed by feed.
#[derive(Debug, Clone, Default)]
pub struct FidelityAccumulator {
    output: String,
    max_abs: f64,
    sum_abs: f64,
    elements: u64,
    cosine_sum: f64,
    samples: u64,
    agreeing: u64,
    rows_for_top1: u64,
    signal: f64,
    noise: f64,
}

impl FidelityAccumulator {
    pub fn new(output: impl Into<String>) -> FidelityAccumulator {
        FidelityAccumulator { output: output.into(), ..FidelityAccumulator::default() }
    }

    /// Adds one feed's reference and candidate values of this output.
    pub fn add(&mut self, reference: &Tensor, candidate: &Tensor) -> Result<(), MetricsError> {
        if reference.dims != candidate.dims {
            return Err(MetricsError::ShapeMismatch {
                output: self.output.clone(),
                expected: reference.dims.clone(),
                actual: candidate.dims.clone(),
            });
        }
        let unsupported = |tensor: &Tensor| MetricsError::Unsupported { output: self.output.clone(), dtype: tensor.dtype };
        let want = to_f64(reference).ok_or_else(|| unsupported(reference))?;
        let got = to_f64(candidate).ok_or_else(|| unsupported(candidate))?;
        for (&r, &c) in want.iter().zip(&got) {
            let diff = (c - r).abs();
            // NaN on either side is the worst error there is.
            let diff = if diff.is_nan() { f64::INFINITY } else { diff };
            self.max_abs = self.max_abs.max(diff);
            self.sum_abs += diff;
            self.signal += r * r;
            self.noise += diff * diff;
        }
        self.elements += want.len() as u64;
        let row = row_length(&reference.dims);
        if row > 0 {
            for (r, c) in want.chunks(row).zip(got.chunks(row)) {
                self.cosine_sum += cosine(r, c);
                self.samples += 1;
            }
            if reference.dims.len() >= 2 {
                let agree = argmax_rows(&want, row).zip(argmax_rows(&got, row)).filter(|(a, b)| a == b).count();
                self.agreeing += agree as u64;
                self.rows_for_top1 += (want.len() / row) as u64;
            }
        }
        Ok(())
    }

    pub fn finish(&self) -> Fidelity {
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        Fidelity {
            output: self.output.clone(),
            max_abs_error: self.max_abs,
            mean_abs_error: ratio(self.sum_abs, self.elements),
            mean_cosine_similarity: if self.samples == 0 { 1.0 } else { ratio(self.cosine_sum, self.samples) },
            top1_agreement: (self.rows_for_top1 > 0).then(|| ratio(self.agreeing as f64, self.rows_for_top1)),
            sqnr_db: (self.noise > 0.0 && self.signal > 0.0).then(|| 10.0 * (self.signal / self.noise).log10()),
            elements: self.elements,
            samples: self.samples,
        }
    }
}

/// Elements per sample: the last axis for rank >= 2, the whole tensor otherwise.
fn row_length(dims: &[i64]) -> usize {
    match dims {
        [] => 1,
        [single] => *single as usize,
        [.., last] => *last as usize,
    }
}

/// Cosine similarity of two vectors; two zero vectors are identical (1), one zero vector is not (0).
fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let norm_b = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    match (norm_a == 0.0, norm_b == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (norm_a * norm_b),
    }
}

/// The index of the largest value in each row of `row` elements (the first one on ties; NaN loses).
pub fn argmax_rows(values: &[f64], row: usize) -> impl Iterator<Item = usize> + '_ {
    values.chunks(row.max(1)).map(|chunk| {
        let mut best = 0;
        for (index, &value) in chunk.iter().enumerate() {
            if value > chunk[best] || chunk[best].is_nan() && !value.is_nan() {
                best = index;
            }
        }
        best
    })
}

/// Fraction of rows whose arg-max over the last axis of `scores` equals the label.
pub fn accuracy(what: &str, scores: &Tensor, labels: &[i64]) -> Result<f64, MetricsError> {
    let values = to_f64(scores).ok_or_else(|| MetricsError::Unsupported { output: what.into(), dtype: scores.dtype })?;
    // A rank-1 output holds predicted class ids already (classifiers' label outputs).
    let predictions: Vec<i64> = if scores.dims.len() <= 1 {
        values.iter().map(|&v| v as i64).collect()
    } else {
        argmax_rows(&values, row_length(&scores.dims)).map(|index| index as i64).collect()
    };
    if predictions.len() != labels.len() {
        return Err(MetricsError::LabelCount { what: what.into(), count: predictions.len(), labels: labels.len() });
    }
    let correct = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(if labels.is_empty() { 0.0 } else { correct as f64 / labels.len() as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: i64, values: &[f32]) -> Tensor {
        Tensor::from_f32("y", vec![rows, values.len() as i64 / rows], values).unwrap()
    }

    #[test]
    fn fidelity_of_a_perturbed_output() {
        let reference = matrix(2, &[1.0, 0.0, 0.0, 1.0]);
        let candidate = matrix(2, &[1.0, 0.5, 0.0, -1.0]);
        let mut acc = FidelityAccumulator::new("y");
        acc.add(&reference, &candidate).unwrap();
        let fidelity = acc.finish();
        assert_eq!(fidelity.max_abs_error, 2.0);
        assert_eq!(fidelity.mean_abs_error, 2.5 / 4.0);
        // Row 1: cos((1,0),(1,0.5)) = 1/sqrt(1.25); row 2: cos((0,1),(0,-1)) = -1.
        let expected = (1.0 / 1.25f64.sqrt() - 1.0) / 2.0;
        assert!((fidelity.mean_cosine_similarity - expected).abs() < 1e-12);
        assert_eq!(fidelity.top1_agreement, Some(0.5));
        assert_eq!((fidelity.elements, fidelity.samples), (4, 2));
        // Signal 1 + 1 = 2, noise 0.25 + 4 = 4.25.
        assert!((fidelity.sqnr_db.unwrap() - 10.0 * (2.0f64 / 4.25).log10()).abs() < 1e-12);
    }

    #[test]
    fn identical_outputs_have_no_noise_figure() {
        let mut acc = FidelityAccumulator::new("y");
        acc.add(&matrix(1, &[1.0, 2.0]), &matrix(1, &[1.0, 2.0])).unwrap();
        assert_eq!(acc.finish().sqnr_db, None);
        // 1% relative error everywhere is 40 dB (up to f32 rounding of 1.01 and 2.02, about 1e-5 dB).
        let mut acc = FidelityAccumulator::new("y");
        acc.add(&matrix(1, &[1.0, -2.0]), &matrix(1, &[1.01, -2.02])).unwrap();
        assert!((acc.finish().sqnr_db.unwrap() - 40.0).abs() < 1e-4);
    }

    #[test]
    fn nan_counts_as_infinite_error() {
        let mut acc = FidelityAccumulator::new("y");
        acc.add(&matrix(1, &[1.0, 2.0]), &matrix(1, &[f32::NAN, 2.0])).unwrap();
        assert_eq!(acc.finish().max_abs_error, f64::INFINITY);
    }

    #[test]
    fn accuracy_from_scores_or_from_class_ids() {
        let scores = matrix(3, &[0.1, 0.9, 0.8, 0.2, 0.3, 0.7]);
        assert_eq!(accuracy("logits", &scores, &[1, 0, 0]).unwrap(), 2.0 / 3.0);
        let ids = Tensor::from_i64("label", vec![3], &[1, 0, 0]).unwrap();
        assert_eq!(accuracy("label", &ids, &[1, 0, 0]).unwrap(), 1.0);
        let err = accuracy("logits", &scores, &[1]).unwrap_err();
        assert_eq!(err.to_string(), "logits: 3 predictions for 1 labels");
    }

    #[test]
    fn ties_take_the_first_index() {
        assert_eq!(argmax_rows(&[1.0, 3.0, 3.0, f64::NAN, 0.0, -1.0], 3).collect::<Vec<_>>(), vec![1, 1]);
    }
}
