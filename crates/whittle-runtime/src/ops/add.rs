//! Add: elementwise `a + b` with multidirectional broadcasting (<https://onnx.ai/onnx/operators/onnx__Add.html>).
//!
//! Opsets 7 to 14 share these semantics (6 and earlier had a `broadcast` attribute; 13 and 14 added
//! types).

use std::ops::RangeInclusive;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{NodeContext, OpError, Operator, Inputs};
use crate::value::Value;

/// `C = a + b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add;

impl Operator for Add {
    const OP_TYPE: &'static str = "Add";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Add)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![arithmetic(Arithmetic::Add, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn row_broadcasts_over_matrix() {
        // [2, 3] + [3]
        let out = run(&node("Add", 2, 1, vec![]), 14, vec![f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), f32_value(&[3], &[10.0, 20.0, 30.0])]);
        assert_close(&out[0], &[2, 3], &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    }

    #[test]
    fn both_operands_broadcast_and_scalars_stay_scalars() {
        // [2, 1] + [1, 3] -> [2, 3]: each side stretches along the other's axis.
        let out = run(&node("Add", 2, 1, vec![]), 18, vec![f32_value(&[2, 1], &[1.0, 2.0]), f32_value(&[1, 3], &[10.0, 20.0, 30.0])]);
        assert_close(&out[0], &[2, 3], &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
        let out = run(&node("Add", 2, 1, vec![]), 18, vec![f32_value(&[], &[1.5]), f32_value(&[], &[2.0])]);
        assert_close(&out[0], &[], &[3.5]);
    }

    #[test]
    fn int64_adds_exactly() {
        let big = 1i64 << 40;
        let out = run(&node("Add", 2, 1, vec![]), 18, vec![i64_value(&[2], &[big, -1]), i64_value(&[], &[1])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![big + 1, 0]);
    }

    #[test]
    fn mismatched_shapes_and_dtypes_are_errors() {
        let err = try_run(&node("Add", 2, 1, vec![]), 18, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[3], &[1.0, 2.0, 3.0])]);
        assert_eq!(err.unwrap_err(), "shapes [2] and [3] do not broadcast");
        let err = try_run(&node("Add", 2, 1, vec![]), 18, vec![f32_value(&[1], &[1.0]), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "operands have different dtypes f32 and i64");
    }
}
