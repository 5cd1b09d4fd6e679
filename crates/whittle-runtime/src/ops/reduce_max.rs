//! ReduceMax: the maximum over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceMax.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Opset 20 adds bool data (the maximum is `any`). Floats, integers and bools; the maximum of no
//! elements is -inf (false for bools) and undefined for integers, an error here.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = max(data, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceMax(pub Reduction);

impl Operator for ReduceMax {
    const OP_TYPE: &'static str = "ReduceMax";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceMax)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::Max, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    // The spec's example data: shape [3, 2, 2].
    const DATA: [f32; 12] = [5.0, 1.0, 20.0, 2.0, 30.0, 1.0, 40.0, 2.0, 55.0, 1.0, 60.0, 2.0];

    #[test]
    fn spec_example_axis_1() {
        let out = run(&node("ReduceMax", 2, 1, vec![]), 18, vec![f32_value(&[3, 2, 2], &DATA), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[3, 1, 2], &[20.0, 2.0, 40.0, 2.0, 60.0, 2.0]);
        let out = run(&node("ReduceMax", 1, 1, vec![("keepdims", AttrValue::Int(0))]), 18, vec![i64_value(&[3], &[-5, 7, 2])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![7]);
    }

    #[test]
    fn bools_and_empty_sets() {
        let bools = bool_value(&[2, 2], &[true, false, false, false]);
        let out = run(&node("ReduceMax", 2, 1, vec![]), 20, vec![bools, i64_value(&[1], &[1])]);
        assert_eq!(out[0].to_ir("o").unwrap().bytes().unwrap(), &[1, 0]);
        let out = run(&node("ReduceMax", 2, 1, vec![]), 20, vec![f32_value(&[2, 0], &[]), i64_value(&[1], &[1])]);
        assert_eq!(out[0].to_f32_vec().unwrap(), vec![f32::NEG_INFINITY; 2]);
        let err = try_run(&node("ReduceMax", 2, 1, vec![]), 20, vec![i64_value(&[2, 0], &[]), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "Max of an empty set of i64 is undefined");
    }
}
