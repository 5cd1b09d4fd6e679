//! ReduceSumSquare: the sum of squares over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceSumSquare.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Floats and integers; over no elements it is 0.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = sum(data^2, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceSumSquare(pub Reduction);

impl Operator for ReduceSumSquare {
    const OP_TYPE: &'static str = "ReduceSumSquare";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceSumSquare)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::SumSquare, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn sum_of_squares() {
        let out = run(&node("ReduceSumSquare", 2, 1, vec![]), 18, vec![f32_value(&[2, 2], &[1.0, -2.0, 3.0, 4.0]), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[2, 1], &[5.0, 25.0]);
        let out = run(&node("ReduceSumSquare", 1, 1, vec![("keepdims", AttrValue::Int(0))]), 13, vec![i64_value(&[2], &[-3, 2])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![13]);
    }
}
