//! ReduceSum: the sum over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceSum.html>).
//!
//! The axes are an attribute before opset 13 and an optional input from 13 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Axes became an input in opset 13 (with `noop_with_empty_axes`), five opsets before the other
//! reductions. Floats and integers.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = sum(data, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceSum(pub Reduction);

impl Operator for ReduceSum {
    const OP_TYPE: &'static str = "ReduceSum";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 13).map(ReduceSum)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::Sum, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn spec_example_and_integers() {
        // [3, 2, 2] holding 1..=12, axis 1 with keepdims: [[4, 6]], [[12, 14]], [[20, 22]].
        let data: Vec<f32> = (1..=12).map(|i| i as f32).collect();
        let out = run(&node("ReduceSum", 2, 1, vec![]), 13, vec![f32_value(&[3, 2, 2], &data), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[3, 1, 2], &[4.0, 6.0, 12.0, 14.0, 20.0, 22.0]);
        let big = 1 << 40;
        let out = run(&node("ReduceSum", 1, 1, vec![("keepdims", AttrValue::Int(0))]), 13, vec![i64_value(&[2], &[big, 1])]);
        assert_eq!((out[0].shape(), out[0].to_i64_vec().unwrap()), (&[][..], vec![big + 1]));
    }

    #[test]
    fn empty_sets_and_noop() {
        // Reducing an axis of size 0 gives 0; a non-reduced axis of size 0 gives an empty result.
        let out = run(&node("ReduceSum", 2, 1, vec![]), 13, vec![f32_value(&[2, 0, 4], &[]), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[2, 1, 4], &[0.0; 8]);
        let out = run(&node("ReduceSum", 2, 1, vec![]), 13, vec![f32_value(&[2, 0, 4], &[]), i64_value(&[1], &[2])]);
        assert_eq!(out[0].shape(), &[2, 0, 1]);
        let noop = node("ReduceSum", 2, 1, vec![("noop_with_empty_axes", AttrValue::Int(1))]);
        let out = run(&noop, 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[0], &[])]);
        assert_close(&out[0], &[2], &[1.0, 2.0]);
    }

    #[test]
    fn axes_rules_follow_the_opset() {
        let attribute = node("ReduceSum", 1, 1, vec![("axes", AttrValue::Ints(vec![0]))]);
        let out = run(&attribute, 11, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
        assert_close(&out[0], &[1, 2], &[4.0, 6.0]);
        let err = parse(&attribute, 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (ReduceSum): attribute 'axes': is an input from opset 13 on");
        let err = try_run(&node("ReduceSum", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[2], &[0, -1])]);
        assert_eq!(err.unwrap_err(), "axis 0 is listed twice in [0, -1]");
    }
}
