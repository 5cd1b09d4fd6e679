//! Less: elementwise `a < b` with multidirectional broadcasting, giving bool
//! (<https://onnx.ai/onnx/operators/onnx__Less.html>).
//!
//! Opset 7 replaced the `broadcast` attribute with multidirectional broadcasting; 9 added integer
//! and double types, 13 bfloat16. Float and integer operands compare; a NaN operand gives false.

use std::ops::RangeInclusive;

use crate::broadcast::{compare, Comparison};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `C = a < b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Less;

impl Operator for Less {
    const OP_TYPE: &'static str = "Less";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Less)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![compare(Comparison::Less, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_and_ints_with_broadcasting() {
        // [2, 1] < [3]
        let out = run(&node("Less", 2, 1, vec![]), 13, vec![f32_value(&[2, 1], &[1.0, f32::NAN]), f32_value(&[3], &[0.0, 1.0, 2.0])]);
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(bools(&out[0]), vec![false, false, true, false, false, false]);
        let out = run(&node("Less", 2, 1, vec![]), 13, vec![i64_value(&[3], &[-1 << 60, 0, 5]), i64_value(&[], &[0])]);
        assert_eq!(bools(&out[0]), vec![true, false, false]);
    }

    #[test]
    fn bool_operands_are_an_error() {
        let err = try_run(&node("Less", 2, 1, vec![]), 13, vec![bool_value(&[1], &[true]), bool_value(&[1], &[false])]);
        assert_eq!(err.unwrap_err(), "Less is not defined on bool tensors");
    }
}
