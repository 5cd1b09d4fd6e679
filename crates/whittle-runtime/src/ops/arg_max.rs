//! ArgMax: the index of the largest element along an axis
//! (<https://onnx.ai/onnx/operators/onnx__ArgMax.html>).
//!
//! Opset 11 allows a negative axis (accepted for every opset since earlier ones leave it undefined),
//! 12 adds `select_last_index`, 13 only adds types. The output is int64; the shared code, with
//! ArgMin's, is `ArgReduction` in `reduce.rs`.

use std::ops::RangeInclusive;

use crate::ops::{ArgReduction, Inputs, NodeContext, OpError, Operator};
use crate::reduce::ARG_ATTRIBUTES;
use crate::value::Value;

/// `reduced = argmax(data, axis)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMax(pub ArgReduction);

impl Operator for ArgMax {
    const OP_TYPE: &'static str = "ArgMax";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ARG_ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        ArgReduction::parse(node).map(ArgMax)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(true, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;

    #[test]
    fn first_or_last_of_equal_maxima() {
        // Spec example: [[2, 1], [3, 10]] along axis 1 gives [[0], [1]]; [[2, 2], [3, 10]] has a tie.
        let out = run(&node("ArgMax", 1, 1, vec![("axis", AttrValue::Int(1))]), 13, vec![f32_value(&[2, 2], &[2.0, 1.0, 3.0, 10.0])]);
        assert_eq!((out[0].dtype(), out[0].shape(), out[0].to_i64_vec().unwrap()), (DataType::I64, &[2, 1][..], vec![0, 1]));
        let ties = || f32_value(&[2, 2], &[2.0, 2.0, 3.0, 10.0]);
        let out = run(&node("ArgMax", 1, 1, vec![("axis", AttrValue::Int(1))]), 13, vec![ties()]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 1]);
        let last = node("ArgMax", 1, 1, vec![("axis", AttrValue::Int(-1)), ("select_last_index", AttrValue::Int(1)), ("keepdims", AttrValue::Int(0))]);
        let out = run(&last, 13, vec![ties()]);
        assert_eq!((out[0].shape(), out[0].to_i64_vec().unwrap()), (&[2][..], vec![1, 1]));
    }

    #[test]
    fn integers_along_axis_0_and_errors() {
        let out = run(&node("ArgMax", 1, 1, vec![]), 13, vec![i64_value(&[3, 2], &[1, 9, 7, 9, 7, 0])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 0]);
        let err = parse(&node("ArgMax", 1, 1, vec![("select_last_index", AttrValue::Int(1))]), 11, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (ArgMax): attribute 'select_last_index': exists from opset 12 on");
        let err = try_run(&node("ArgMax", 1, 1, vec![]), 13, vec![f32_value(&[0, 2], &[])]).unwrap_err();
        assert_eq!(err, "axis 0 of [0, 2] is empty: there is no extreme to index");
    }
}
