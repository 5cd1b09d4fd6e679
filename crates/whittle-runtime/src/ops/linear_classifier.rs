//! LinearClassifier (ai.onnx.ml): `scores = X * coefficients^T + intercepts`, a post transform, and the
//! label of the best score (<https://onnx.ai/onnx/operators/onnx_aionnxml_LinearClassifier.html>).
//!
//! ai.onnx.ml opset 1, the only version. A host op: its labels may be strings, which burn cannot
//! hold, and its post transforms are per-row scalar code, so it computes on the host (as ONNX
//! Runtime's CPU kernel does) after one download of X, and uploads the scores and integer labels.
//! With one coefficient row and two class labels (a binary model) the scores get two columns,
//! `[-s, s]`, before the transform, as the onnx reference implementation does. `multi_class` is
//! accepted and, as in the reference implementation and ONNX Runtime, does not change the result.

use std::ops::RangeInclusive;

use burn_tensor::{DType, Int, Tensor, TensorData};
use whittle_ir::{DataType, HostValue};

use crate::host::{Entry, HostInputs};
use crate::ops::normalizer::as_f32_matrix;
use crate::ops::{HostOperator, NodeContext, OpError};
use crate::value::Value;

/// Class labels given as integers or as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl ClassLabels {
    pub(crate) fn len(&self) -> usize {
        match self {
            ClassLabels::Ints(labels) => labels.len(),
            ClassLabels::Strings(labels) => labels.len(),
        }
    }

    /// Exactly one of the INTS attribute `ints` and the STRINGS attribute `strings`, as the
    /// classic-ML ops require.
    pub(crate) fn parse(node: &NodeContext<'_>, ints: &str, strings: &str) -> Result<ClassLabels, OpError> {
        match (node.ints(ints)?, node.strings(strings)?) {
            (Some(labels), None) => Ok(ClassLabels::Ints(labels)),
            (None, Some(labels)) => Ok(ClassLabels::Strings(labels)),
            (Some(_), Some(_)) => Err(OpError::attribute(strings, format!("only one of {ints} and {strings} may be given"))),
            (None, None) => Err(OpError::attribute(ints, format!("one of {ints} and {strings} is required"))),
        }
    }
}

/// The transform applied to each row of scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(node: &NodeContext<'_>) -> Result<PostTransform, OpError> {
        Ok(match node.string("post_transform", "NONE")?.as_str() {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => {
                return Err(OpError::attribute(
                    "post_transform",
                    format!("must be NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO or PROBIT, found '{other}'"),
                ))
            }
        })
    }

    /// Transforms one row of scores in place, with the formulas of the onnx reference implementation.
    pub(crate) fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|score| *score = logistic(*score)),
            PostTransform::Softmax => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                row.iter_mut().for_each(|score| *score = (*score - max).exp());
                let sum: f32 = row.iter().sum();
                row.iter_mut().for_each(|score| *score /= sum);
            }
            PostTransform::SoftmaxZero => {
                // Like softmax, except that scores of (almost) zero stay (almost) zero.
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp_neg_max = (-max).exp();
                for score in row.iter_mut() {
                    *score = if score.abs() > 1e-7 { (*score - max).exp() } else { *score * exp_neg_max };
                }
                let sum: f32 = row.iter().sum();
                if sum == 0.0 {
                    row.iter_mut().for_each(|score| *score = 0.5);
                } else {
                    row.iter_mut().for_each(|score| *score /= sum);
                }
            }
            PostTransform::Probit => row.iter_mut().for_each(|score| *score = probit(*score)),
        }
    }
}

/// `1 / (1 + exp(-x))`, computed from `|x|` so that large negative scores do not overflow.
fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// `sqrt(2) * erfinv(2p - 1)`, with the closed-form erfinv approximation (a = 0.147) that the onnx
/// reference implementation and ONNX Runtime use.
fn probit(p: f32) -> f32 {
    let x = 2.0 * f64::from(p) - 1.0;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let one_minus_x2 = (1.0 - x) * (1.0 + x);
    if one_minus_x2 == 0.0 {
        return 0.0;
    }
    let log = one_minus_x2.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = log / 0.147;
    (std::f64::consts::SQRT_2 * sign * (-v + (v * v - v2).sqrt()).sqrt()) as f32
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// Row-major `[classes, features]`; the feature count comes from X at run time.
    pub coefficients: Vec<f32>,
    pub intercepts: Option<Vec<f32>>,
    pub labels: ClassLabels,
    pub post_transform: PostTransform,
}

impl HostOperator for LinearClassifier {
    const OP_TYPE: &'static str = "LinearClassifier";
    const DOMAIN: &'static str = "ai.onnx.ml";
    const OPSETS: RangeInclusive<i64> = 1..=1;
    const ATTRIBUTES: &'static [&'static str] =
        &["classlabels_ints", "classlabels_strings", "coefficients", "intercepts", "multi_class", "post_transform"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let coefficients = node.floats("coefficients")?.ok_or_else(|| OpError::attribute("coefficients", "is required"))?;
        if coefficients.is_empty() {
            return Err(OpError::attribute("coefficients", "is empty"));
        }
        let multi_class = node.int("multi_class", 0)?;
        if !(0..=1).contains(&multi_class) {
            return Err(OpError::attribute("multi_class", format!("must be 0 or 1, found {multi_class}")));
        }
        Ok(LinearClassifier {
            coefficients,
            intercepts: node.floats("intercepts")?,
            labels: ClassLabels::parse(node, "classlabels_ints", "classlabels_strings")?,
            post_transform: PostTransform::parse(node)?,
        })
    }

    fn host_output(&self, index: usize) -> bool {
        index == 0 && matches!(self.labels, ClassLabels::Strings(_))
    }

    fn eval(&self, mut inputs: HostInputs) -> Result<Vec<Entry>, OpError> {
        let x = inputs.take_tensor(0)?;
        let (rows, features) = match *x.shape() {
            [features] => (1, features),
            [rows, features] => (rows, features),
            _ => fail!("LinearClassifier takes X of shape [C] or [N, C], got {:?}", x.shape()),
        };
        if !matches!(x.dtype(), DataType::F32 | DataType::F64 | DataType::I64 | DataType::I32) {
            fail!("LinearClassifier takes float, double, int64 or int32, got {}", x.dtype());
        }
        if features == 0 || !self.coefficients.len().is_multiple_of(features) {
            fail!("{} coefficients do not form rows of the {features} features of X", self.coefficients.len());
        }
        let classes = self.coefficients.len() / features;
        if let Some(intercepts) = self.intercepts.as_ref().filter(|intercepts| intercepts.len() != classes) {
            fail!("{} intercepts for {classes} coefficient rows", intercepts.len());
        }
        let labels = self.labels.len();
        let binary = classes == 1 && labels == 2;
        if !binary && labels != classes {
            fail!("{labels} class labels for {classes} coefficient rows");
        }
        if classes == 1 && labels == 1 && matches!(self.labels, ClassLabels::Strings(_)) {
            fail!("a single score column with a string label is not supported");
        }

        let matrix = as_f32_matrix(x.reshape(&[rows, features])?)?;
        let device = matrix.device();
        let data = matrix.into_data();
        let x: &[f32] = data.as_slice().map_err(|err| OpError::new(format!("reading X failed: {err:?}")))?;
        let columns = if binary { 2 } else { classes };
        let mut scores = vec![0f32; rows * columns];
        let mut best = vec![0usize; rows];
        let mut positive = vec![false; rows];
        for row in 0..rows {
            let features_of_row = &x[row * features..(row + 1) * features];
            let raw: Vec<f32> = (0..classes)
                .map(|class| {
                    let weights = &self.coefficients[class * features..(class + 1) * features];
                    let dot: f32 = features_of_row.iter().zip(weights).map(|(a, b)| a * b).sum();
                    dot + self.intercepts.as_ref().map_or(0.0, |intercepts| intercepts[class])
                })
                .collect();
            let out = &mut scores[row * columns..(row + 1) * columns];
            if binary {
                out.copy_from_slice(&[-raw[0], raw[0]]);
            } else {
                out.copy_from_slice(&raw);
            }
            self.post_transform.apply(out);
            // The first maximum wins ties, as numpy's argmax does.
            best[row] = out.iter().enumerate().fold(0, |best, (index, &score)| if score > out[best] { index } else { best });
            let threshold = if self.post_transform == PostTransform::None { 0.0 } else { 0.5 };
            positive[row] = out[0] >= threshold;
        }

        let label = match &self.labels {
            ClassLabels::Ints(names) => {
                let ids: Vec<i64> = (0..rows)
                    .map(|row| if columns > 1 { names[best[row]] } else if positive[row] { names[0] } else { 0 })
                    .collect();
                let tensor = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows]), (&device, DType::I64));
                Entry::Tensor(Value::from_int(tensor, DataType::I64)?)
            }
            ClassLabels::Strings(names) => {
                let strings = best.iter().map(|&index| names[index].as_bytes().to_vec()).collect();
                Entry::Host(HostValue::Tensor(whittle_ir::Tensor {
                    name: String::new(),
                    dtype: DataType::String,
                    dims: vec![rows as i64],
                    data: whittle_ir::TensorData::Strings(strings),
                    doc_string: String::new(),
                    metadata_props: Vec::new(),
                    segment: None,
                }))
            }
        };
        let scores = Tensor::<2>::from_data(TensorData::new(scores, [rows, columns]), (&device, DType::F32));
        Ok(vec![label, Entry::Tensor(Value::from_float(scores, DataType::F32)?)])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType, HostValue};

    use super::probit;
    use crate::host::Entry;
    use crate::ops::test_support::*;

    fn classifier(post_transform: &str, coefficients: &[f32], labels: AttrValue, intercepts: Option<&[f32]>) -> whittle_ir::Node {
        let labels_name = if matches!(labels, AttrValue::Ints(_)) { "classlabels_ints" } else { "classlabels_strings" };
        let mut attributes = vec![
            ("coefficients", AttrValue::Floats(coefficients.to_vec())),
            ("post_transform", AttrValue::String(post_transform.as_bytes().to_vec())),
            (labels_name, labels),
        ];
        if let Some(intercepts) = intercepts {
            attributes.push(("intercepts", AttrValue::Floats(intercepts.to_vec())));
        }
        let mut node = node("LinearClassifier", 1, 2, attributes);
        node.domain = "ai.onnx.ml".into();
        node
    }

    /// Three classes over two features: raw scores are [1, -0.5, 0.5] and [0, 2, -1.5].
    fn three_classes(post_transform: &str) -> (Vec<i64>, Vec<f32>) {
        let node = classifier(
            post_transform,
            &[1.0, 0.0, 0.5, -1.0, -1.0, 1.0],
            AttrValue::Ints(vec![10, 20, 30]),
            Some(&[0.0, 1.0, -0.5]),
        );
        let outputs = try_run_host(&node, 1, vec![f32_value(&[2, 2], &[1.0, 2.0, 0.0, -1.0])]).unwrap();
        let (Entry::Tensor(labels), Entry::Tensor(scores)) = (&outputs[0], &outputs[1]) else { panic!("tensor outputs") };
        assert_eq!(labels.dtype(), DataType::I64);
        assert_eq!(scores.shape(), &[2, 3]);
        (labels.to_i64_vec().unwrap(), scores.to_f32_vec().unwrap())
    }

    fn assert_all_close(actual: &[f32], expected: &[f64]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((f64::from(*a) - e).abs() < 1e-5, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn raw_logistic_and_softmax_scores_with_integer_labels() {
        let raw = [1.0, -0.5, 0.5, 0.0, 2.0, -1.5];
        let (labels, scores) = three_classes("NONE");
        assert_eq!(labels, vec![10, 20]);
        assert_all_close(&scores, &raw);
        let (_, scores) = three_classes("LOGISTIC");
        let logistic: Vec<f64> = raw.iter().map(|v: &f64| 1.0 / (1.0 + (-v).exp())).collect();
        assert_all_close(&scores, &logistic);
        let (labels, scores) = three_classes("SOFTMAX");
        assert_eq!(labels, vec![10, 20]);
        let softmax: Vec<f64> = raw
            .chunks(3)
            .flat_map(|row| {
                let sum: f64 = row.iter().map(|v| v.exp()).sum();
                row.iter().map(move |v| v.exp() / sum)
            })
            .collect();
        assert_all_close(&scores, &softmax);
    }

    #[test]
    fn softmax_zero_keeps_zero_scores_at_zero_and_probit_inverts_the_normal_cdf() {
        let node = classifier("SOFTMAX_ZERO", &[1.0, 3f32.ln()], AttrValue::Ints(vec![0, 1]), None);
        // One feature of value 0, then of value 1: scores [0, 0] and [1, ln 3].
        let outputs = try_run_host(&node, 1, vec![f32_value(&[2, 1], &[0.0, 1.0])]).unwrap();
        let Entry::Tensor(scores) = &outputs[1] else { panic!("scores") };
        // Row 0 is all zeros: a zero sum gives 0.5 everywhere. Row 1: exp(1 - ln 3) and exp(0).
        let e = (1.0 - 3f64.ln()).exp();
        assert_all_close(&scores.to_f32_vec().unwrap(), &[0.5, 0.5, e / (e + 1.0), 1.0 / (e + 1.0)]);
        // Phi(1) = 0.8413447, Phi(-2) = 0.0227501; the erfinv approximation is good to a few 1e-3.
        assert!((probit(0.841_344_7) - 1.0).abs() < 5e-3);
        assert!((probit(0.022_750_1) + 2.0).abs() < 5e-3);
        assert_eq!(probit(0.5), 0.0);
    }

    #[test]
    fn a_binary_model_gets_two_score_columns_and_string_labels_stay_on_the_host() {
        let labels = AttrValue::Strings(vec![b"no".to_vec(), b"yes".to_vec()]);
        let node = classifier("NONE", &[1.0, -1.0], labels, None);
        let outputs = try_run_host(&node, 1, vec![f32_value(&[2, 2], &[1.0, 2.0, 0.0, -1.0])]).unwrap();
        let Entry::Host(HostValue::Tensor(labels)) = &outputs[0] else { panic!("string labels on the host") };
        assert_eq!(labels.data, whittle_ir::TensorData::Strings(vec![b"no".to_vec(), b"yes".to_vec()]));
        let Entry::Tensor(scores) = &outputs[1] else { panic!("scores") };
        assert_eq!(scores.shape(), &[2, 2]);
        assert_all_close(&scores.to_f32_vec().unwrap(), &[1.0, -1.0, -1.0, 1.0]);
    }

    #[test]
    fn inconsistent_attributes_and_inputs_are_errors() {
        let err = try_run_host(&classifier("SOFTMAX", &[1.0; 6], AttrValue::Ints(vec![0, 1]), None), 1, vec![f32_value(&[1, 2], &[1.0, 2.0])])
            .unwrap_err();
        assert!(err.contains("2 class labels for 3 coefficient rows"), "{err}");
        let err = try_run_host(&classifier("NONE", &[1.0; 3], AttrValue::Ints(vec![0, 1, 2]), None), 1, vec![f32_value(&[1, 2], &[1.0, 2.0])])
            .unwrap_err();
        assert!(err.contains("do not form rows of the 2 features"), "{err}");
        let err = try_run_host(&classifier("EXP", &[1.0], AttrValue::Ints(vec![0, 1]), None), 1, vec![]).unwrap_err();
        assert!(err.contains("post_transform") && err.contains("found 'EXP'"), "{err}");
        let mut both = classifier("NONE", &[1.0], AttrValue::Ints(vec![0, 1]), None);
        both.attributes.push(whittle_ir::Attribute::new("classlabels_strings", AttrValue::Strings(vec![b"a".to_vec()])));
        let err = try_run_host(&both, 1, vec![]).unwrap_err();
        assert!(err.contains("only one of classlabels_ints and classlabels_strings"), "{err}");
    }
}
