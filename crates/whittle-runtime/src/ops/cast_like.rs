//! CastLike: converts a tensor to the element type of a second one
//! (<https://onnx.ai/onnx/operators/onnx__CastLike.html>).
//!
//! Opset 15 introduced the op; later versions added element types and, as Cast, `saturate` (19,
//! for float8 targets) and `round_mode` (24, for e8m0). The conversion is Cast's, among the same
//! types, code types included.

use std::ops::RangeInclusive;

use crate::ops::cast::{cast_with, parse_rounding, Rounding};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `output = input` converted to the dtype of `target_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastLike {
    pub rounding: Rounding,
}

impl Operator for CastLike {
    const OP_TYPE: &'static str = "CastLike";
    const OPSETS: RangeInclusive<i64> = 15..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["saturate", "round_mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(CastLike { rounding: parse_rounding(node)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (input, target) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![cast_with(input, target.dtype(), self.rounding)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;

    #[test]
    fn takes_the_dtype_of_the_second_input() {
        let out = run(&node("CastLike", 2, 1, vec![]), 21, vec![f32_value(&[2], &[-2.5, 3.9]), i64_value(&[], &[0])]);
        assert_eq!(out[0].dtype(), DataType::I64);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-2, 3]);
        let out = run(&node("CastLike", 2, 1, vec![]), 21, vec![i64_value(&[2], &[0, 5]), bool_value(&[1], &[true])]);
        assert_eq!(bools(&out[0]), vec![false, true]);
    }

    #[test]
    fn bad_round_mode_is_an_error() {
        let err = parse(&node("CastLike", 2, 1, vec![("round_mode", AttrValue::String(b"odd".to_vec()))]), 24, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (CastLike): attribute 'round_mode': must be up, down or nearest, found \"odd\"");
    }
}
