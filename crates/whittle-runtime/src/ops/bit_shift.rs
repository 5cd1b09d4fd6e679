//! BitShift: elementwise `x << y` or `x >> y` of integers with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__BitShift.html>).
//!
//! Opset 11 introduced the op on unsigned integers; 28 added the signed ones (the right shift is
//! arithmetic, the left one wraps) and defined shifts by a negative amount or by the bit width or
//! more: 0, or -1 for a right shift of a negative `x`. Those rules are applied at every opset
//! (before 28 such shifts were undefined, and signed inputs were not allowed), since burn's
//! wrapping shifts would take the amount modulo the width instead.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::broadcast::align;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `Z = X << Y` or `X >> Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitShift {
    pub left: bool,
}

impl Operator for BitShift {
    const OP_TYPE: &'static str = "BitShift";
    const OPSETS: RangeInclusive<i64> = 11..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["direction"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        match node.string("direction", "")?.as_str() {
            "LEFT" => Ok(BitShift { left: true }),
            "RIGHT" => Ok(BitShift { left: false }),
            "" => Err(OpError::attribute("direction", "is required")),
            other => Err(OpError::attribute("direction", format!("must be LEFT or RIGHT, found \"{other}\""))),
        }
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, y) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = x.dtype();
        if x.kind() != ElementKind::Int {
            fail!("BitShift needs integers, got {dtype}");
        }
        let signed = matches!(dtype, DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64);
        let bits = dtype.bit_width().unwrap_or(64) as i64;
        let (x, y, shape) = align(x, y)?;
        let z = with_rank!(x.burn_rank(), D => {
            let (x, y) = (x.int::<D>()?, y.int::<D>()?);
            let out_of_range = y.clone().lower_elem(0).bool_or(y.clone().greater_equal_elem(bits));
            let fill = if signed && !self.left {
                x.clone().zeros_like().mask_fill(x.clone().lower_elem(0), -1)
            } else {
                x.clone().zeros_like()
            };
            let shifted = if self.left { x.bitwise_left_shift(y) } else { x.bitwise_right_shift(y) };
            Value::from_int(shifted.mask_where(out_of_range, fill), dtype)?
        });
        Ok(vec![z.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;
    use crate::value::Value;

    fn u32s(dims: &[i64], values: &[u32]) -> Value {
        typed_value(DataType::U32, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn shift(direction: &str) -> whittle_ir::Node {
        node("BitShift", 2, 1, vec![("direction", AttrValue::String(direction.as_bytes().to_vec()))])
    }

    #[test]
    fn left_and_right_with_broadcasting() {
        let out = run(&shift("LEFT"), 11, vec![u32s(&[3], &[1, 3, 0x8000_0000]), u32s(&[], &[2])]);
        assert_eq!(out[0].dtype(), DataType::U32);
        // 0x8000_0000 << 2 drops the high bit: the shift is modulo 2^32.
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![4, 12, 0]);
        let out = run(&shift("RIGHT"), 11, vec![u32s(&[3], &[16, 7, 0xffff_ffff]), u32s(&[3], &[2, 1, 31])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![4, 3, 1]);
    }

    #[test]
    fn signed_shifts_and_out_of_range_amounts() {
        let x = || i64_value(&[5], &[-8, 5, -1, 3, i64::MIN]);
        let y = || i64_value(&[5], &[1, 64, 70, -1, 63]);
        let out = run(&shift("RIGHT"), 28, vec![x(), y()]);
        // -8 >> 1 = -4 (arithmetic); 5 >> 64 = 0; -1 >> 70 = -1; 3 >> -1 = 0; MIN >> 63 = -1.
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-4, 0, -1, 0, -1]);
        let out = run(&shift("LEFT"), 28, vec![x(), y()]);
        // -8 << 1 = -16; out of range gives 0; MIN << 63 wraps to 0.
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-16, 0, 0, 0, 0]);
        let out = run(&shift("LEFT"), 28, vec![u32s(&[1], &[1]), u32s(&[1], &[32])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0]);
    }

    #[test]
    fn bad_direction_and_signed_inputs_are_errors() {
        let err = parse(&shift("UP"), 11, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (BitShift): attribute 'direction': must be LEFT or RIGHT, found \"UP\"");
        let err = parse(&node("BitShift", 2, 1, vec![]), 11, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (BitShift): attribute 'direction': is required");
        let err = try_run(&shift("LEFT"), 11, vec![f32_value(&[1], &[1.0]), f32_value(&[1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "BitShift needs integers, got f32");
    }
}
