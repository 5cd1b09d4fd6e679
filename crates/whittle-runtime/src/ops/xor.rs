//! Xor: elementwise logical `a xor b` of two bool tensors with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__Xor.html>).
//!
//! Opset 7 replaced the `broadcast` attribute with multidirectional broadcasting, the one change.

use std::ops::RangeInclusive;

use crate::broadcast::{logic, Logic};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `C = a xor b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xor;

impl Operator for Xor {
    const OP_TYPE: &'static str = "Xor";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Xor)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![logic(Logic::Xor, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn truth_table_with_broadcasting() {
        // [4] op [2, 1]: row 0 against false, row 1 against true.
        let a = bool_value(&[4], &[false, true, false, true]);
        let out = run(&node("Xor", 2, 1, vec![]), 7, vec![a, bool_value(&[2, 1], &[false, true])]);
        assert_eq!(out[0].shape(), &[2, 4]);
        let truth = |a: bool, b: bool| a != b;
        let expected: Vec<bool> = [false, true].iter().flat_map(|&b| [false, true, false, true].map(|a| truth(a, b))).collect();
        assert_eq!(bools(&out[0]), expected);
    }

    #[test]
    fn non_bool_operands_are_an_error() {
        let err = try_run(&node("Xor", 2, 1, vec![]), 7, vec![i64_value(&[1], &[1]), i64_value(&[1], &[0])]);
        assert_eq!(err.unwrap_err(), "logical operands must be bool, got i64");
    }
}
