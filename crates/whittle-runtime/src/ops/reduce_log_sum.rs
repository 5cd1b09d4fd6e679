//! ReduceLogSum: the log of the sum over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceLogSum.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Opset 28 drops the integer types. Floats only; over no elements it is -inf.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = log(sum(data, axes))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceLogSum(pub Reduction);

impl Operator for ReduceLogSum {
    const OP_TYPE: &'static str = "ReduceLogSum";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceLogSum)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::LogSum, inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn log_of_the_sum() {
        let out = run(&node("ReduceLogSum", 2, 1, vec![]), 18, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), i64_value(&[1], &[0])]);
        assert_close(&out[0], &[1, 2], &[4f64.ln(), 6f64.ln()]);
        let out = run(&node("ReduceLogSum", 1, 1, vec![]), 28, vec![f32_value(&[0], &[])]);
        assert_eq!(out[0].to_f32_vec().unwrap(), vec![f32::NEG_INFINITY]);
    }
}
