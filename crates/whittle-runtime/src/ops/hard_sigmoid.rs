//! HardSigmoid: `max(0, min(1, alpha * x + beta))` elementwise
//! (<https://onnx.ai/onnx/operators/onnx__HardSigmoid.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 22 only added bfloat16.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = max(0, min(1, alpha * X + beta))`.
#[derive(Debug, Clone, PartialEq)]
pub struct HardSigmoid {
    pub alpha: f32,
    pub beta: f32,
}

impl Operator for HardSigmoid {
    const OP_TYPE: &'static str = "HardSigmoid";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha", "beta"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(HardSigmoid { alpha: node.float("alpha", 0.2)?, beta: node.float("beta", 0.5)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (alpha, beta) = (f64::from(self.alpha), f64::from(self.beta));
        Ok(vec![map_float!(inputs.take(0)?, x => activation::hard_sigmoid(x, alpha, beta))?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn hard_sigmoid(x: f64, alpha: f64, beta: f64) -> f64 {
        (alpha * x + beta).clamp(0.0, 1.0)
    }

    #[test]
    fn defaults_clip_both_ends() {
        let x = [-5.0, -1.0, 0.0, 1.0, 5.0];
        let out = run(&node("HardSigmoid", 1, 1, vec![]), 6, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| hard_sigmoid(f64::from(v), 0.2, 0.5)));
    }

    #[test]
    fn alpha_and_beta_attributes() {
        let attributes = vec![("alpha", AttrValue::Float(0.5)), ("beta", AttrValue::Float(0.25))];
        let x = [-1.0, 0.5, 2.0];
        let out = run(&node("HardSigmoid", 1, 1, attributes), 22, vec![f32_value(&[3], &x)]);
        assert_close(&out[0], &[3], &x.map(|v: f32| hard_sigmoid(f64::from(v), 0.5, 0.25)));
    }
}
