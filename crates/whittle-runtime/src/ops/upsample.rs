//! Upsample: the deprecated form of Resize (<https://onnx.ai/onnx/operators/onnx__Upsample.html>).
//!
//! Opsets 7 and 8 take the scales as an attribute, 9 as input 1 (10 deprecated the op without
//! changing it; it was removed from the spec in favour of Resize). Each axis grows to
//! `floor(size * scale)`, sampled at `output / scale` (asymmetric coordinates), nearest rounding
//! down or linear; the resampling itself is Resize's.

use std::ops::RangeInclusive;

use whittle_ir::AttrValue;

use super::resize::{parse_mode, resample, Sampling};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = X` resampled by `scales`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsample {
    pub sampling: Sampling,
    /// From the attribute (opsets 7 and 8); from input 1 otherwise.
    pub scales: Option<Vec<f64>>,
}

impl Operator for Upsample {
    const OP_TYPE: &'static str = "Upsample";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["mode", "scales"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let sampling = Sampling::upsample(parse_mode(node, false)?);
        let scales = match node.node.attribute("scales").map(|attribute| &attribute.value) {
            None if node.opset < 9 => return Err(OpError::attribute("scales", "is required before opset 9")),
            None => None,
            Some(_) if node.opset >= 9 => return Err(OpError::attribute("scales", "is an input from opset 9 on")),
            Some(AttrValue::Floats(values)) => Some(values.iter().map(|&value| f64::from(value)).collect()),
            Some(other) => return Err(OpError::attribute("scales", format!("expected FLOATS, found {}", other.type_name()))),
        };
        Ok(Upsample { sampling, scales })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let scales = match &self.scales {
            Some(scales) => scales.clone(),
            None => inputs.take(1)?.to_f64_vec()?,
        };
        let shape = x.shape().to_vec();
        if scales.len() != shape.len() || scales.iter().any(|&scale| !(scale >= 1.0 && scale.is_finite())) {
            fail!("scales {scales:?} must give one factor of 1 or more for each axis of X {shape:?}");
        }
        let sizes: Vec<usize> = shape.iter().zip(&scales).map(|(&size, &scale)| (size as f64 * scale).floor() as usize).collect();
        Ok(vec![resample(x, &self.sampling, &scales, &sizes, &vec![(0.0, 1.0); shape.len()])?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn nearest_repeats_and_linear_interpolates() {
        // [1, 2] by 2: nearest [1, 1, 2, 2]; linear at 0, 0.5, 1, 1.5 (clamped) [1, 1.5, 2, 2].
        let nearest = node("Upsample", 2, 1, vec![]);
        let out = run(&nearest, 9, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[2], &[1.0, 2.0])]);
        assert_close(&out[0], &[1, 4], &[1.0, 1.0, 2.0, 2.0]);
        let linear = node("Upsample", 1, 1, vec![("mode", AttrValue::String(b"linear".to_vec())), ("scales", AttrValue::Floats(vec![1.0, 2.0]))]);
        let out = run(&linear, 8, vec![f32_value(&[1, 2], &[1.0, 2.0])]);
        assert_close(&out[0], &[1, 4], &[1.0, 1.5, 2.0, 2.0]);
    }

    #[test]
    fn errors() {
        let err = parse(&node("Upsample", 1, 1, vec![]), 8, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Upsample): attribute 'scales': is required before opset 9");
        let err = try_run(&node("Upsample", 2, 1, vec![]), 9, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[1], &[0.5])]).unwrap_err();
        assert_eq!(err, "scales [0.5] must give one factor of 1 or more for each axis of X [2]");
    }
}
