//! Identity: the input unchanged (<https://onnx.ai/onnx/operators/onnx__Identity.html>).
//!
//! Every version (1 to the newest) has these semantics on tensors; 14 and 16 added sequence and
//! optional inputs, which this runtime does not hold as values. The value is passed on without a
//! copy.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity;

impl Operator for Identity {
    const OP_TYPE: &'static str = "Identity";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Identity)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![inputs.take(0)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn passes_any_dtype_through() {
        let out = run(&node("Identity", 1, 1, vec![]), 21, vec![i64_value(&[2], &[i64::MIN, 7])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![i64::MIN, 7]);
        let out = run(&node("Identity", 1, 1, vec![]), 21, vec![bool_value(&[], &[true])]);
        assert_eq!(bools(&out[0]), vec![true]);
    }
}
