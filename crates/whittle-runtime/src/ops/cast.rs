//! Cast: converts a tensor to the element type `to` (<https://onnx.ai/onnx/operators/onnx__Cast.html>).
//!
//! Opset 6 made `to` an INT; later versions only added element types (strings in 9, bfloat16 in 13,
//! float8 with `saturate` in 19, int4 in 21, float4 in 23, e8m0 with `round_mode` in 24), so 6 to
//! the newest opset are one semantics among the types burn holds: f32, f64, f16, bf16, the signed
//! and unsigned integers of 8 to 64 bits, and bool. Strings, float8, float4 and 4-bit integers
//! have no burn type and are a plan-time error; `saturate` and `round_mode` only apply to them, so
//! they are parsed and checked but change nothing here.
//!
//! Conversions follow numpy's `astype`, which the spec's reference uses: float to float rounds to
//! nearest even, integer to integer wraps (keeps the low bits), anything to bool is `x != 0` (NaN is
//! true), bool is 0 or 1. Float to integer truncates toward zero; the spec leaves out-of-range
//! values undefined, and here they saturate to the target's range, NaN giving 0.

use std::ops::RangeInclusive;

use burn_tensor::{FloatDType, IntDType};
use whittle_ir::DataType;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, with_rank, ElementKind, Value};

/// `Y = X` converted to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    pub to: DataType,
}

impl Operator for Cast {
    const OP_TYPE: &'static str = "Cast";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["to", "saturate", "round_mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let Some(code) = node.optional_int("to")? else {
            return Err(OpError::attribute("to", "is required"));
        };
        parse_float8_attributes(node)?;
        let to = i32::try_from(code).map(DataType::from_code).unwrap_or(DataType::Other(-1));
        if burn_dtype(to).is_none() {
            return Err(OpError::attribute("to", format!("casting to {} is not supported (code {code})", to.name())));
        }
        Ok(Cast { to })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![cast(inputs.take(0)?, self.to)?])
    }
}

/// Checks `saturate` and `round_mode`, which only apply to float8 targets and so change nothing.
pub(crate) fn parse_float8_attributes(node: &NodeContext<'_>) -> Result<(), OpError> {
    node.flag("saturate", true)?;
    let round_mode = node.string("round_mode", "up")?;
    if !["up", "down", "nearest"].contains(&round_mode.as_str()) {
        return Err(OpError::attribute("round_mode", format!("must be up, down or nearest, found \"{round_mode}\"")));
    }
    Ok(())
}

/// `value` converted to `to` (one of the dtypes [`burn_dtype`] knows), by the rules of the file's
/// documentation.
pub(crate) fn cast(value: Value, to: DataType) -> Result<Value, OpError> {
    if value.dtype() == to {
        return Ok(value);
    }
    let Some((target, target_kind)) = burn_dtype(to) else {
        fail!("casting to {to} is not supported");
    };
    let shape = value.shape().to_vec();
    let result = with_rank!(value.burn_rank(), D => match (value.kind(), target_kind) {
        (ElementKind::Float, ElementKind::Float) => Value::from_float(value.float::<D>()?.cast(FloatDType::from(target)), to)?,
        (ElementKind::Float, ElementKind::Int) => Value::from_int(value.float::<D>()?.cast(IntDType::from(target)), to)?,
        (ElementKind::Float, ElementKind::Bool) => Value::from_bool(value.float::<D>()?.not_equal_elem(0.0))?,
        (ElementKind::Int, ElementKind::Float) => Value::from_float(value.int::<D>()?.cast(FloatDType::from(target)), to)?,
        (ElementKind::Int, ElementKind::Int) => Value::from_int(value.int::<D>()?.cast(IntDType::from(target)), to)?,
        (ElementKind::Int, ElementKind::Bool) => Value::from_bool(value.int::<D>()?.not_equal_elem(0))?,
        (ElementKind::Bool, ElementKind::Float) => Value::from_float(value.bool::<D>()?.cast(FloatDType::from(target)), to)?,
        (ElementKind::Bool, ElementKind::Int) => Value::from_int(value.bool::<D>()?.cast(IntDType::from(target)), to)?,
        // Bool has one dtype, so equal dtypes returned above.
        (ElementKind::Bool, ElementKind::Bool) => value,
    });
    result.reshape(&shape)
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;
    use crate::value::Value;

    fn cast_to(to: DataType, input: Value) -> Value {
        run(&node("Cast", 1, 1, vec![("to", AttrValue::Int(i64::from(to.code())))]), 21, vec![input]).remove(0)
    }

    fn bytes(value: &Value) -> Vec<u8> {
        value.to_ir("t").unwrap().bytes().unwrap().to_vec()
    }

    #[test]
    fn float_to_integers_truncates_toward_zero_and_saturates() {
        let input = || f32_value(&[5], &[2.7, -2.7, 1e10, -1e10, f32::NAN]);
        let out = cast_to(DataType::I64, input());
        assert_eq!(out.dtype(), DataType::I64);
        assert_eq!(out.to_i64_vec().unwrap(), vec![2, -2, 10_000_000_000, -10_000_000_000, 0]);
        let out = cast_to(DataType::U8, input());
        assert_eq!(bytes(&out), vec![2, 0, 255, 0, 0]);
    }

    #[test]
    fn integers_wrap_to_narrower_integers() {
        let out = cast_to(DataType::I8, i64_value(&[3], &[300, -129, 5]));
        // 300 = 0x12c keeps 0x2c = 44; -129 = 0x..ff7f keeps 0x7f = 127.
        assert_eq!(out.to_i64_vec().unwrap(), vec![44, 127, 5]);
    }

    #[test]
    fn to_and_from_bool() {
        let out = cast_to(DataType::Bool, f32_value(&[4], &[0.0, -0.0, 0.5, f32::NAN]));
        assert_eq!(bools(&out), vec![false, false, true, true]);
        let out = cast_to(DataType::Bool, i64_value(&[2, 1], &[0, -3]));
        assert_eq!(out.shape(), &[2, 1]);
        assert_eq!(bools(&out), vec![false, true]);
        let out = cast_to(DataType::F32, bool_value(&[], &[true]));
        assert_close(&out, &[], &[1.0]);
        let out = cast_to(DataType::I32, bool_value(&[2], &[true, false]));
        assert_eq!(out.dtype(), DataType::I32);
        assert_eq!(out.to_i64_vec().unwrap(), vec![1, 0]);
    }

    #[test]
    fn float_widths_round_to_nearest_even() {
        // 1 + 2^-11 is halfway between the f16 values 1 and 1 + 2^-10 and rounds to the even 1;
        // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9 and rounds up to 1 + 2^-9.
        let out = cast_to(DataType::F16, f32_value(&[2], &[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)]));
        assert_eq!(out.dtype(), DataType::F16);
        let halves: Vec<u16> = bytes(&out).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(halves, vec![0x3c00, 0x3c02]);
        let back = cast_to(DataType::F32, out);
        assert_close(&back, &[2], &[1.0, 1.0 + 2f64.powi(-9)]);
        let out = cast_to(DataType::F64, i64_value(&[1], &[-(1 << 40)]));
        assert_eq!(bytes(&out), (-(2f64.powi(40))).to_le_bytes().to_vec());
    }

    #[test]
    fn unsupported_targets_are_plan_time_errors() {
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(8))]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'to': casting to string is not supported (code 8)");
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(17))]), 21, &[]).unwrap_err();
        assert!(err.to_string().contains("is not supported (code 17)"), "{err}");
        let err = parse(&node("Cast", 1, 1, vec![]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'to': is required");
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(1)), ("saturate", AttrValue::Int(2))]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'saturate': must be 0 or 1, found 2");
    }
}
