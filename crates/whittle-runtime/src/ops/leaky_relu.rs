//! LeakyRelu: `x` for `x >= 0`, `alpha * x` below (<https://onnx.ai/onnx/operators/onnx__LeakyRelu.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 16 only added bfloat16.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = X < 0 ? alpha * X : X`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakyRelu {
    pub alpha: f32,
}

impl Operator for LeakyRelu {
    const OP_TYPE: &'static str = "LeakyRelu";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(LeakyRelu { alpha: node.float("alpha", 0.01)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let alpha = f64::from(self.alpha);
        Ok(vec![map_float!(inputs.take(0)?, x => activation::leaky_relu(x, alpha))?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn negatives_are_scaled_by_the_default_alpha() {
        let out = run(&node("LeakyRelu", 1, 1, vec![]), 16, vec![f32_value(&[3], &[-2.0, 0.0, 3.0])]);
        assert_close(&out[0], &[3], &[-0.02, 0.0, 3.0]);
    }

    #[test]
    fn alpha_attribute() {
        let out = run(&node("LeakyRelu", 1, 1, vec![("alpha", AttrValue::Float(0.5))]), 6, vec![f32_value(&[2], &[-4.0, 1.0])]);
        assert_close(&out[0], &[2], &[-2.0, 1.0]);
        let err = try_run(&node("LeakyRelu", 1, 1, vec![("alpha", AttrValue::Int(1))]), 16, vec![f32_value(&[1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "node 'n' (LeakyRelu): attribute 'alpha': expected FLOAT, found INT");
    }
}
