//! Mean: the elementwise mean of any number of inputs with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__Mean.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 8 added broadcasting (6 and 7 needed
//! equal shapes, a special case) and 13 bfloat16. Float inputs only, as the spec lists.

use std::ops::RangeInclusive;

use crate::broadcast::{arithmetic, fold, Arithmetic};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// The the elementwise mean of the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mean;

impl Operator for Mean {
    const OP_TYPE: &'static str = "Mean";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Mean)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let inputs = inputs.take_all()?;
        let count = inputs.len() as f64;
        let sum = fold(inputs, |a, b| arithmetic(Arithmetic::Add, a, b))?;
        Ok(vec![map_float!(sum, t => t.div_scalar(count))?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn mean_of_three_with_broadcasting() {
        let inputs = vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[2], &[10.0, 20.0]), f32_value(&[], &[1.0])];
        let out = run(&node("Mean", 3, 1, vec![]), 13, inputs);
        assert_close(&out[0], &[2, 2], &[4.0, 23.0 / 3.0, 14.0 / 3.0, 25.0 / 3.0]);
    }

    #[test]
    fn integer_inputs_are_an_error() {
        let err = try_run(&node("Mean", 2, 1, vec![]), 13, vec![i64_value(&[1], &[1]), i64_value(&[1], &[2])]);
        assert_eq!(err.unwrap_err(), "expected a Float tensor, got i64");
    }
}
