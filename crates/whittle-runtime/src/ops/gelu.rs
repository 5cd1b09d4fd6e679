//! Gelu: the Gaussian error linear unit, exact or tanh-approximated
//! (<https://onnx.ai/onnx/operators/onnx__Gelu.html>).
//!
//! Opset 20 introduced the op, the only version. f32 values on burn-flex take the kernels'
//! vectorized erf and tanh ([`crate::kernels::activation`]), one pass in place; other devices and
//! dtypes burn's gelu.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::kernels::{self, activation::Map};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = X * Phi(X)`, with `Phi` the standard normal CDF or its tanh approximation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gelu {
    /// `approximate = "tanh"`: `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`.
    pub tanh: bool,
}

impl Operator for Gelu {
    const OP_TYPE: &'static str = "Gelu";
    const OPSETS: RangeInclusive<i64> = 20..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["approximate"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        match node.string("approximate", "none")?.as_str() {
            "none" => Ok(Gelu { tanh: false }),
            "tanh" => Ok(Gelu { tanh: true }),
            other => Err(OpError::attribute("approximate", format!("must be \"none\" or \"tanh\", found \"{other}\""))),
        }
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let map = if self.tanh { Map::GeluTanh } else { Map::Gelu };
        let x = match kernels::map_in_place(inputs.take(0)?, |values| map.apply(values)) {
            Ok(y) => return Ok(vec![y?]),
            Err(x) => *x,
        };
        let y = if self.tanh {
            map_float!(x, t => activation::gelu_approximate(t))?
        } else {
            map_float!(x, t => activation::gelu(t))?
        };
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    const X: [f32; 5] = [-3.0, -0.5, 0.0, 1.0, 2.5];

    #[test]
    fn exact_by_default() {
        // Phi(x) = (1 + erf(x / sqrt 2)) / 2, and erf(x / sqrt 2) = 2 Phi(x) - 1 from the normal
        // probability table (Abramowitz and Stegun 26.1): 0.9973002039 for x = 3, 0.3829249225 for
        // 0.5, 0.6826894921 for 1, 0.9875806693 for 2.5.
        let erf = [-0.9973002039, -0.3829249225, 0.0, 0.6826894921, 0.9875806693];
        let expected: Vec<f64> = X.iter().zip(erf).map(|(&x, e)| f64::from(x) * 0.5 * (1.0 + e)).collect();
        let out = run(&node("Gelu", 1, 1, vec![]), 20, vec![f32_value(&[5], &X)]);
        assert_close(&out[0], &[5], &expected);
    }

    #[test]
    fn tanh_approximation() {
        let expected = X.map(|x: f32| {
            let x = f64::from(x);
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        });
        let out = run(&node("Gelu", 1, 1, vec![("approximate", AttrValue::String(b"tanh".to_vec()))]), 20, vec![f32_value(&[5], &X)]);
        assert_close(&out[0], &[5], &expected);
    }

    #[test]
    fn unknown_approximation_is_an_error() {
        let err = parse(&node("Gelu", 1, 1, vec![("approximate", AttrValue::String(b"erf".to_vec()))]), 20, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Gelu): attribute 'approximate': must be \"none\" or \"tanh\", found \"erf\"");
    }
}
