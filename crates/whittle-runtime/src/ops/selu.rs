//! Selu: `gamma * x` for `x > 0`, `gamma * alpha * (exp(x) - 1)` otherwise
//! (<https://onnx.ai/onnx/operators/onnx__Selu.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 22 only added bfloat16. The defaults
//! are the spec's f32 constants, not burn's f64 ones, so that the attributes decide.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = X > 0 ? gamma * X : gamma * alpha * (exp(X) - 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Selu {
    pub alpha: f32,
    pub gamma: f32,
}

impl Operator for Selu {
    const OP_TYPE: &'static str = "Selu";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha", "gamma"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Selu { alpha: node.float("alpha", 1.673_263_2)?, gamma: node.float("gamma", 1.050_701)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (alpha, gamma) = (f64::from(self.alpha), f64::from(self.gamma));
        let y = map_float!(inputs.take(0)?, x => {
            let positive = x.clone().greater_elem(0.0);
            let negative = x.clone().exp().sub_scalar(1.0).mul_scalar(alpha * gamma);
            negative.mask_where(positive, x.mul_scalar(gamma))
        })?;
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn selu(x: f64, alpha: f64, gamma: f64) -> f64 {
        if x > 0.0 {
            gamma * x
        } else {
            gamma * alpha * (x.exp() - 1.0)
        }
    }

    #[test]
    fn spec_defaults() {
        // The spec's defaults: 1.67326319217681884765625 and 1.05070102214813232421875.
        let x = [-3.0, -0.5, 0.0, 2.0];
        let out = run(&node("Selu", 1, 1, vec![]), 6, vec![f32_value(&[4], &x)]);
        let expected = x.map(|v: f32| selu(f64::from(v), 1.673_263_192_176_818_8, 1.050_701_022_148_132_3));
        assert_close(&out[0], &[4], &expected);
    }

    #[test]
    fn given_alpha_and_gamma() {
        let attributes = vec![("alpha", AttrValue::Float(2.0)), ("gamma", AttrValue::Float(3.0))];
        let x = [-1.0, 0.0, 1.0];
        let out = run(&node("Selu", 1, 1, attributes), 22, vec![f32_value(&[3], &x)]);
        assert_close(&out[0], &[3], &x.map(|v: f32| selu(f64::from(v), 2.0, 3.0)));
    }
}
