//! GreaterOrEqual: elementwise `a >= b` with multidirectional broadcasting, giving bool
//! (<https://onnx.ai/onnx/operators/onnx__GreaterOrEqual.html>).
//!
//! Opset 12 introduced the op; 16 only added bfloat16. Float and integer operands compare; a NaN
//! operand gives false.

use std::ops::RangeInclusive;

use crate::broadcast::{compare, Comparison};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `C = a >= b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreaterOrEqual;

impl Operator for GreaterOrEqual {
    const OP_TYPE: &'static str = "GreaterOrEqual";
    const OPSETS: RangeInclusive<i64> = 12..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(GreaterOrEqual)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![compare(Comparison::GreaterOrEqual, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_and_ints_with_broadcasting() {
        let out = run(&node("GreaterOrEqual", 2, 1, vec![]), 16, vec![f32_value(&[2, 1], &[1.0, f32::NAN]), f32_value(&[3], &[0.0, 1.0, 2.0])]);
        assert_eq!(bools(&out[0]), vec![true, true, false, false, false, false]);
        let out = run(&node("GreaterOrEqual", 2, 1, vec![]), 16, vec![i64_value(&[3], &[-1 << 60, 0, 5]), i64_value(&[], &[0])]);
        assert_eq!(bools(&out[0]), vec![false, true, true]);
    }
}
