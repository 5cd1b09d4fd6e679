//! Elu: `x` for `x >= 0`, `alpha * (exp(x) - 1)` below (<https://onnx.ai/onnx/operators/onnx__Elu.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 22 only added bfloat16.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = X < 0 ? alpha * (exp(X) - 1) : X`.
#[derive(Debug, Clone, PartialEq)]
pub struct Elu {
    pub alpha: f32,
}

impl Operator for Elu {
    const OP_TYPE: &'static str = "Elu";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Elu { alpha: node.float("alpha", 1.0)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let alpha = f64::from(self.alpha);
        Ok(vec![map_float!(inputs.take(0)?, x => activation::elu(x, alpha))?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn elu(x: f64, alpha: f64) -> f64 {
        if x < 0.0 {
            alpha * (x.exp() - 1.0)
        } else {
            x
        }
    }

    #[test]
    fn default_and_given_alpha() {
        let x = [-3.0, -0.5, 0.0, 2.0];
        let out = run(&node("Elu", 1, 1, vec![]), 6, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| elu(f64::from(v), 1.0)));
        let out = run(&node("Elu", 1, 1, vec![("alpha", AttrValue::Float(2.0))]), 22, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| elu(f64::from(v), 2.0)));
    }
}
