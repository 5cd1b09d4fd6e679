//! ReduceProd: the product over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceProd.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Floats and integers; the product of no elements is 1.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = prod(data, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceProd(pub Reduction);

impl Operator for ReduceProd {
    const OP_TYPE: &'static str = "ReduceProd";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceProd)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::Prod, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn spec_example_axis_1() {
        // [3, 2, 2] holding 1..=12, axis 1: [1*3, 2*4], [5*7, 6*8], [9*11, 10*12].
        let data: Vec<f32> = (1..=12).map(|i| i as f32).collect();
        let out = run(&node("ReduceProd", 2, 1, vec![]), 18, vec![f32_value(&[3, 2, 2], &data), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[3, 1, 2], &[3.0, 8.0, 35.0, 48.0, 99.0, 120.0]);
        let out = run(&node("ReduceProd", 1, 1, vec![("keepdims", AttrValue::Int(0))]), 13, vec![i64_value(&[3], &[-2, 3, 1 << 20])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-6 << 20]);
    }

    #[test]
    fn empty_set_is_one() {
        let out = run(&node("ReduceProd", 2, 1, vec![]), 18, vec![f32_value(&[2, 0], &[]), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[2, 1], &[1.0, 1.0]);
    }
}
