//! Neg: `-x` elementwise (<https://onnx.ai/onnx/operators/onnx__Neg.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute and added the signed integer types; 13
//! only added bfloat16. The spec lists no unsigned types, so they are an error here. Negating the
//! smallest signed integer wraps to itself, as in numpy.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::unary::map_numeric;
use crate::value::Value;

/// `Y = -X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neg;

impl Operator for Neg {
    const OP_TYPE: &'static str = "Neg";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Neg)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        if matches!(x.dtype(), DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64) {
            fail!("Neg is not defined on unsigned {} tensors", x.dtype());
        }
        Ok(vec![map_numeric!(x, t => t.neg())?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::DataType;

    use crate::ops::test_support::*;

    #[test]
    fn floats_and_int64() {
        let out = run(&node("Neg", 1, 1, vec![]), 13, vec![f32_value(&[3], &[-1.5, 0.0, 2.0])]);
        assert_close(&out[0], &[3], &[1.5, 0.0, -2.0]);
        let out = run(&node("Neg", 1, 1, vec![]), 13, vec![i64_value(&[3], &[-(1 << 60), 0, i64::MIN])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1 << 60, 0, i64::MIN]);
    }

    #[test]
    fn unsigned_input_is_an_error() {
        let err = try_run(&node("Neg", 1, 1, vec![]), 13, vec![typed_value(DataType::U8, &[1], vec![3])]);
        assert_eq!(err.unwrap_err(), "Neg is not defined on unsigned u8 tensors");
    }
}
