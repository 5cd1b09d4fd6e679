//! Equal: elementwise `a == b` with multidirectional broadcasting, giving bool
//! (<https://onnx.ai/onnx/operators/onnx__Equal.html>).
//!
//! Opset 7 replaced the `broadcast` attribute with multidirectional broadcasting; 11 added bool and
//! float types, 13 bfloat16, 19 strings (not held by this runtime). Float, integer and bool
//! operands compare; NaN equals nothing.

use std::ops::RangeInclusive;

use crate::broadcast::{compare, Comparison};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `C = a == b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equal;

impl Operator for Equal {
    const OP_TYPE: &'static str = "Equal";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Equal)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![compare(Comparison::Equal, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_broadcast_and_nan_equals_nothing() {
        // [2, 2] == [2]
        let out = run(&node("Equal", 2, 1, vec![]), 19, vec![f32_value(&[2, 2], &[1.0, 2.0, f32::NAN, 4.0]), f32_value(&[2], &[1.0, 4.0])]);
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(bools(&out[0]), vec![true, false, false, true]);
        let out = run(&node("Equal", 2, 1, vec![]), 19, vec![f32_value(&[1], &[f32::NAN]), f32_value(&[1], &[f32::NAN])]);
        assert_eq!(bools(&out[0]), vec![false]);
    }

    #[test]
    fn int64_and_bool_compare_exactly() {
        // 2^53 + 1 and 2^53 are one f64; as int64 they differ.
        let big = (1i64 << 53) + 1;
        let out = run(&node("Equal", 2, 1, vec![]), 19, vec![i64_value(&[2], &[big, 3]), i64_value(&[], &[big - 1])]);
        assert_eq!(bools(&out[0]), vec![false, false]);
        let out = run(&node("Equal", 2, 1, vec![]), 19, vec![i64_value(&[], &[big]), i64_value(&[], &[big])]);
        assert_eq!(out[0].shape(), &[] as &[usize]);
        assert_eq!(bools(&out[0]), vec![true]);
        let out = run(&node("Equal", 2, 1, vec![]), 19, vec![bool_value(&[3], &[true, false, true]), bool_value(&[1], &[true])]);
        assert_eq!(bools(&out[0]), vec![true, false, true]);
    }

    #[test]
    fn mismatched_dtypes_and_shapes_are_errors() {
        let err = try_run(&node("Equal", 2, 1, vec![]), 19, vec![f32_value(&[1], &[1.0]), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "operands have different dtypes f32 and i64");
        let err = try_run(&node("Equal", 2, 1, vec![]), 19, vec![i64_value(&[2], &[1, 2]), i64_value(&[3], &[1, 2, 3])]);
        assert_eq!(err.unwrap_err(), "shapes [2] and [3] do not broadcast");
    }
}
