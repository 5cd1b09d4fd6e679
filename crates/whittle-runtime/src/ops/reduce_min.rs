//! ReduceMin: the minimum over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceMin.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Opset 20 adds bool data (the minimum is `all`). Floats, integers and bools; the minimum of no
//! elements is +inf (true for bools) and undefined for integers, an error here.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = min(data, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceMin(pub Reduction);

impl Operator for ReduceMin {
    const OP_TYPE: &'static str = "ReduceMin";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceMin)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::Min, inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    // The spec's example data: shape [3, 2, 2].
    const DATA: [f32; 12] = [5.0, 1.0, 20.0, 2.0, 30.0, 1.0, 40.0, 2.0, 55.0, 1.0, 60.0, 2.0];

    #[test]
    fn spec_example_axis_1_and_all_axes() {
        let out = run(&node("ReduceMin", 2, 1, vec![]), 18, vec![f32_value(&[3, 2, 2], &DATA), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[3, 1, 2], &[5.0, 1.0, 30.0, 1.0, 55.0, 1.0]);
        let out = run(&node("ReduceMin", 1, 1, vec![]), 13, vec![f32_value(&[3, 2, 2], &DATA)]);
        assert_close(&out[0], &[1, 1, 1], &[1.0]);
    }

    #[test]
    fn bools_and_empty_sets() {
        let bools = bool_value(&[2, 2], &[true, true, true, false]);
        let out = run(&node("ReduceMin", 2, 1, vec![]), 20, vec![bools, i64_value(&[1], &[1])]);
        assert_eq!(out[0].to_ir("o").unwrap().bytes().unwrap(), &[1, 0]);
        let out = run(&node("ReduceMin", 2, 1, vec![]), 20, vec![bool_value(&[0, 2], &[]), i64_value(&[1], &[0])]);
        assert_eq!(out[0].to_ir("o").unwrap().bytes().unwrap(), &[1, 1]);
        let out = run(&node("ReduceMin", 2, 1, vec![]), 20, vec![f32_value(&[2, 0], &[]), i64_value(&[1], &[1])]);
        assert_eq!(out[0].to_f32_vec().unwrap(), vec![f32::INFINITY; 2]);
    }
}
