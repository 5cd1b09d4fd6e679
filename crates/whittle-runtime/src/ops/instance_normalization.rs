//! InstanceNormalization: normalizes each channel of each sample (<https://onnx.ai/onnx/operators/onnx__InstanceNormalization.html>).
//!
//! `Y = scale * (X - mean) / sqrt(var + epsilon) + B`, with mean and (biased) variance over the
//! spatial axes of each `[n, c]`. Opset 6 dropped the legacy `consumed_inputs` attribute; 22 only
//! added types.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// Per-sample, per-channel normalization with a learned scale and bias.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceNormalization {
    pub epsilon: f32,
}

impl Operator for InstanceNormalization {
    const OP_TYPE: &'static str = "InstanceNormalization";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["epsilon"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(InstanceNormalization { epsilon: node.float("epsilon", 1e-5)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, scale, bias) = (inputs.take(0)?, inputs.take(1)?, inputs.take(2)?);
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        if shape.len() < 3 {
            fail!("X {shape:?} must have rank 3 or more (N, C and spatial axes)");
        }
        let (n, c, rest) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        for (name, value) in [("scale", &scale), ("B", &bias)] {
            if value.shape() != [c] || value.dtype() != dtype {
                fail!("{name} is {}{:?}, expected {dtype}[{c}] for X {shape:?}", value.dtype(), value.shape());
            }
        }
        if x.element_count() == 0 {
            return Ok(vec![x]);
        }
        let x = x.reshape(&[n, c, rest])?.float::<3>()?;
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let variance = (centered.clone() * centered.clone()).mean_dim(2);
        let normalized = centered / variance.add_scalar(f64::from(self.epsilon)).sqrt();
        let (scale, bias) = (scale.float::<1>()?.reshape([1, c, 1]), bias.float::<1>()?.reshape([1, c, 1]));
        let y = normalized * scale + bias;
        Ok(vec![Value::from_float(y, dtype)?.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn each_sample_and_channel_uses_its_own_statistics() {
        // x [2, 2, 2]: rows [1, 3], [0, 4], [2, 4], [-1, 1]; means 2, 2, 3, 0; variances 1, 4, 1, 1.
        // scale [2, 1], B [0, 1], epsilon 0.
        let inorm = node("InstanceNormalization", 3, 1, vec![("epsilon", AttrValue::Float(0.0))]);
        let x = f32_value(&[2, 2, 2], &[1.0, 3.0, 0.0, 4.0, 2.0, 4.0, -1.0, 1.0]);
        let out = run(&inorm, 22, vec![x, f32_value(&[2], &[2.0, 1.0]), f32_value(&[2], &[0.0, 1.0])]);
        // (x - 2) / 1 * 2 = [-2, 2]; (x - 2) / 2 + 1 = [0, 2]; (x - 3) / 1 * 2 = [-2, 2]; x / 1 + 1 = [0, 2].
        assert_close(&out[0], &[2, 2, 2], &[-2.0, 2.0, 0.0, 2.0, -2.0, 2.0, 0.0, 2.0]);
    }

    #[test]
    fn epsilon_keeps_constant_channels_finite() {
        // A constant channel has variance 0: (x - mean) / sqrt(epsilon) = 0, plus B.
        let inorm = node("InstanceNormalization", 3, 1, vec![("epsilon", AttrValue::Float(0.25))]);
        let out = run(&inorm, 22, vec![f32_value(&[1, 1, 3], &[5.0, 5.0, 5.0]), f32_value(&[1], &[3.0]), f32_value(&[1], &[0.5])]);
        assert_close(&out[0], &[1, 1, 3], &[0.5, 0.5, 0.5]);
    }

    #[test]
    fn scale_of_the_wrong_size_is_an_error() {
        let inorm = node("InstanceNormalization", 3, 1, vec![]);
        let err = try_run(&inorm, 22, vec![f32_value(&[1, 2, 1], &[1.0, 2.0]), f32_value(&[1], &[1.0]), f32_value(&[2], &[0.0, 0.0])]);
        assert_eq!(err.unwrap_err(), "scale is f32[1], expected f32[2] for X [1, 2, 1]");
    }
}
