//! Sum: the elementwise sum of any number of inputs with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__Sum.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 8 added broadcasting (6 and 7 needed
//! equal shapes, a special case) and 13 bfloat16.

use std::ops::RangeInclusive;

use crate::broadcast::{arithmetic, fold, Arithmetic};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// The the elementwise sum of the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum;

impl Operator for Sum {
    const OP_TYPE: &'static str = "Sum";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Sum)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![fold(inputs.take_all()?, |a, b| arithmetic(Arithmetic::Add, a, b))?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn three_inputs_broadcast_and_one_passes_through() {
        // [2, 2] + [2] + scalar
        let inputs = vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[2], &[10.0, 20.0]), f32_value(&[], &[0.5])];
        let out = run(&node("Sum", 3, 1, vec![]), 13, inputs);
        assert_close(&out[0], &[2, 2], &[11.5, 22.5, 13.5, 24.5]);
        let out = run(&node("Sum", 1, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0])]);
        assert_close(&out[0], &[2], &[1.0, 2.0]);
    }

    #[test]
    fn no_inputs_and_mismatches_are_errors() {
        assert_eq!(try_run(&node("Sum", 0, 1, vec![]), 13, vec![]).unwrap_err(), "needs at least one input");
        let err = try_run(&node("Sum", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[3], &[1.0; 3])]);
        assert_eq!(err.unwrap_err(), "shapes [2] and [3] do not broadcast");
    }
}
