//! Not: elementwise logical negation of a bool tensor (<https://onnx.ai/onnx/operators/onnx__Not.html>).
//!
//! Opset 1 is the only version.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `Y = not X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Not;

impl Operator for Not {
    const OP_TYPE: &'static str = "Not";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Not)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        if x.kind() != ElementKind::Bool {
            fail!("expected a bool tensor, got {}", x.dtype());
        }
        let shape = x.shape().to_vec();
        let y = with_rank!(x.burn_rank(), D => Value::from_bool(x.bool::<D>()?.bool_not())?);
        Ok(vec![y.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn negates_and_keeps_scalars() {
        let out = run(&node("Not", 1, 1, vec![]), 1, vec![bool_value(&[3], &[true, false, false])]);
        assert_eq!(bools(&out[0]), vec![false, true, true]);
        let out = run(&node("Not", 1, 1, vec![]), 1, vec![bool_value(&[], &[false])]);
        assert_eq!(out[0].shape(), &[] as &[usize]);
        assert_eq!(bools(&out[0]), vec![true]);
    }

    #[test]
    fn non_bool_input_is_an_error() {
        let err = try_run(&node("Not", 1, 1, vec![]), 1, vec![f32_value(&[1], &[0.0])]);
        assert_eq!(err.unwrap_err(), "expected a bool tensor, got f32");
    }
}
