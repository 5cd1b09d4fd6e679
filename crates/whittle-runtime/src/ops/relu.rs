//! Relu: `max(x, 0)` elementwise (<https://onnx.ai/onnx/operators/onnx__Relu.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 and 14 only added types.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = max(X, 0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relu;

impl Operator for Relu {
    const OP_TYPE: &'static str = "Relu";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Relu)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![map_float!(inputs.take(0)?, x => activation::relu(x))?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn negatives_become_zero() {
        let out = run(&node("Relu", 1, 1, vec![]), 14, vec![f32_value(&[2, 2], &[-1.5, 0.0, 2.0, -0.0])]);
        assert_close(&out[0], &[2, 2], &[0.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn scalar_keeps_its_shape() {
        let out = run(&node("Relu", 1, 1, vec![]), 14, vec![f32_value(&[], &[-3.0])]);
        assert_close(&out[0], &[], &[0.0]);
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Relu", 1, 1, vec![]), 14, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
