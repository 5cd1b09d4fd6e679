//! ReduceL2: the Euclidean norm over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceL2.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Floats only; over no elements it is 0.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = sqrt(sum(data^2, axes))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceL2(pub Reduction);

impl Operator for ReduceL2 {
    const OP_TYPE: &'static str = "ReduceL2";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceL2)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::L2, inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn euclidean_norm() {
        let out = run(&node("ReduceL2", 2, 1, vec![]), 18, vec![f32_value(&[2, 2], &[3.0, -4.0, 1.0, 1.0]), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[2, 1], &[5.0, 2f64.sqrt()]);
        let err = try_run(&node("ReduceL2", 1, 1, vec![]), 18, vec![i64_value(&[2], &[3, 4])]);
        assert_eq!(err.unwrap_err(), "L2 of i64 is not implemented");
    }
}
