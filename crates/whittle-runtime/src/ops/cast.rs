//! Cast: converts a tensor to the element type `to` (<https://onnx.ai/onnx/operators/onnx__Cast.html>).
//!
//! Opset 6 made `to` an INT; later versions only added element types (strings in 9, bfloat16 in 13,
//! float8 with `saturate` in 19, int4 in 21, float4 in 23, e8m0 with `round_mode` in 24, 2-bit
//! integers in 25), so 6 to the newest opset are one semantics. Every numeric type converts: the
//! ones burn holds (f32, f64, f16, bf16, the signed and unsigned integers of 8 to 64 bits, bool)
//! and the code types held as codes (float8, float4, e8m0, 4- and 2-bit integers; `codes.rs`).
//! Strings are a plan-time error.
//!
//! Conversions among burn's types follow numpy's `astype`, which the spec's reference uses: float
//! to float rounds to nearest even, integer to integer wraps (keeps the low bits), anything to bool
//! is `x != 0` (NaN is true), bool is 0 or 1. Float to integer truncates toward zero; the spec
//! leaves out-of-range values undefined, and here they saturate to the target's range, NaN giving 0.
//!
//! Code types go through burn's types: 4- and 2-bit integers compute as their u8/i8 storage (the
//! codes are their values), float codes decode to f32 on the device through a 256-entry table
//! (every float8, float4 and e8m0 value is exact in f32). Conversions to a code type run on the
//! host, one download and upload per Cast: float targets round from the exact f64 value with
//! `saturate` and `round_mode` (`codes.rs` has the rules), integer targets truncate to i64 as above
//! and keep the low bits, as the reference does for int4.

use std::ops::RangeInclusive;

use burn_tensor::{DType, Float, FloatDType, IntDType, Tensor, TensorData};
use whittle_ir::DataType;

use crate::codes::{code_storage, decode_float, encode_float, is_float_code, narrow_integer_range, wrap_narrow_integer, RoundMode};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, held_dtype, with_rank, ElementKind, Value};

/// `Y = X` converted to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    pub to: DataType,
    pub rounding: Rounding,
}

/// How a conversion to a float code type rounds: the `saturate` and `round_mode` attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rounding {
    /// Out-of-range values and infinities become the largest finite value (else Inf or NaN).
    pub saturate: bool,
    /// How e8m0 rounds what is not a power of two.
    pub round_mode: RoundMode,
}

impl Rounding {
    /// The spec's defaults: saturate, round up.
    pub const DEFAULT: Rounding = Rounding { saturate: true, round_mode: RoundMode::Up };
}

impl Operator for Cast {
    const OP_TYPE: &'static str = "Cast";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["to", "saturate", "round_mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let Some(code) = node.optional_int("to")? else {
            return Err(OpError::attribute("to", "is required"));
        };
        let rounding = parse_rounding(node)?;
        let to = i32::try_from(code).map(DataType::from_code).unwrap_or(DataType::Other(-1));
        if held_dtype(to).is_none() {
            return Err(OpError::attribute("to", format!("casting to {} is not supported (code {code})", to.name())));
        }
        Ok(Cast { to, rounding })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![cast_with(inputs.take(0)?, self.to, self.rounding)?])
    }
}

/// Parses `saturate` and `round_mode`, which only change conversions to float8 and e8m0.
pub(crate) fn parse_rounding(node: &NodeContext<'_>) -> Result<Rounding, OpError> {
    let saturate = node.flag("saturate", true)?;
    let round_mode = match node.string("round_mode", "up")?.as_str() {
        "up" => RoundMode::Up,
        "down" => RoundMode::Down,
        "nearest" => RoundMode::Nearest,
        other => return Err(OpError::attribute("round_mode", format!("must be up, down or nearest, found \"{other}\""))),
    };
    Ok(Rounding { saturate, round_mode })
}

/// `value` converted to `to` with the default rounding (see [`cast_with`]).
pub(crate) fn cast(value: Value, to: DataType) -> Result<Value, OpError> {
    cast_with(value, to, Rounding::DEFAULT)
}

/// `value` converted to `to` (one of the dtypes [`held_dtype`] knows), by the rules of the file's
/// documentation.
pub(crate) fn cast_with(value: Value, to: DataType, rounding: Rounding) -> Result<Value, OpError> {
    if value.dtype() == to {
        return Ok(value);
    }
    let value = to_burn_type(value)?;
    if burn_dtype(to).is_some() {
        return burn_cast(value, to);
    }
    if code_storage(to).is_none() {
        fail!("casting to {to} is not supported");
    }
    let (shape, device) = (value.shape().to_vec(), value.device());
    let codes: Vec<u8> = if narrow_integer_range(to).is_some() {
        burn_cast(value, DataType::I64)?.to_i64_vec()?.into_iter().map(|v| wrap_narrow_integer(to, v)).collect()
    } else {
        value.to_f64_vec()?.into_iter().map(|v| encode_float(to, v, rounding.saturate, rounding.round_mode)).collect()
    };
    Value::from_code_bytes(codes, to, &shape, &device)
}

/// A value of a code type as one of burn's types that holds its values exactly: 4- and 2-bit
/// integers as their u8/i8 storage, float codes decoded to f32; other values as they are.
pub(crate) fn to_burn_type(value: Value) -> Result<Value, OpError> {
    let dtype = value.dtype();
    let Some(storage) = code_storage(dtype) else {
        return Ok(value);
    };
    if !is_float_code(dtype) {
        return value.relabel(if storage == DType::I8 { DataType::I8 } else { DataType::U8 });
    }
    let (shape, device, count) = (value.shape().to_vec(), value.device(), value.element_count());
    if count == 0 {
        return Value::empty(DataType::F32, &shape, &device);
    }
    let table: Vec<f32> = (0..=255u8).map(|code| decode_float(dtype, code) as f32).collect();
    let table = Tensor::<1, Float>::from_data(TensorData::new(table, [256]), (&device, DType::F32));
    let index = with_rank!(value.burn_rank(), D => value.codes::<D>()?.reshape([count]).cast(IntDType::I64));
    Value::from_float(table.select(0, index), DataType::F32)?.reshape(&shape)
}

/// A conversion between two of burn's types.
fn burn_cast(value: Value, to: DataType) -> Result<Value, OpError> {
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

    fn cast_attributes(to: DataType, opset: i64, attributes: Vec<(&str, AttrValue)>, input: Value) -> Value {
        let mut all = vec![("to", AttrValue::Int(i64::from(to.code())))];
        all.extend(attributes);
        run(&node("Cast", 1, 1, all), opset, vec![input]).remove(0)
    }

    #[test]
    fn to_float8_rounds_to_nearest_even_and_saturates_unless_told_not_to() {
        // 0.3 = 1.2 * 2^-2: E4M3FN's spacing there is 2^-5, 0.3 / 2^-5 = 9.6 rounds to 10, so
        // 0.3125 = exponent field 5, mantissa 2: 0x2a. 1e6 is past 448 (0x7e).
        let input = || f32_value(&[5], &[1.0, 0.3, 1e6, f32::NEG_INFINITY, f32::NAN]);
        let out = cast_to(DataType::F8E4M3FN, input());
        assert_eq!(out.dtype(), DataType::F8E4M3FN);
        assert_eq!(bytes(&out), vec![0x38, 0x2a, 0x7e, 0xfe, 0x7f]);
        let out = cast_attributes(DataType::F8E4M3FN, 19, vec![("saturate", AttrValue::Int(0))], input());
        assert_eq!(bytes(&out), vec![0x38, 0x2a, 0x7f, 0xff, 0x7f]);
        // E5M2 keeps infinities without saturation.
        let out = cast_attributes(DataType::F8E5M2, 19, vec![("saturate", AttrValue::Int(0))], input());
        assert_eq!(bytes(&out)[2..4], [0x7c, 0xfc]);
    }

    #[test]
    fn from_float8_decodes_exactly() {
        let out = cast_to(DataType::F32, code_value(DataType::F8E4M3FNUZ, &[4], &[0x2a, 0x7f, 0xff, 0x80]));
        let values = out.to_f32_vec().unwrap();
        // FNUZ: bias 8, so 0x2a is 0.3125 / 2 and 0x7f is 240; 0x80 is the NaN.
        assert_eq!(values[..3], [0.15625, 240.0, -240.0]);
        assert!(values[3].is_nan());
        let out = cast_to(DataType::F16, code_value(DataType::F8E5M2, &[2], &[0x3c, 0x7b]));
        let halves: Vec<u16> = bytes(&out).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        // E5M2 is f16's top byte: 1.0 and 57344.
        assert_eq!(halves, vec![0x3c00, 0x7b00]);
        // float8 to float8 goes through the exact value: E4M3FN 448 saturates to E4M3FNUZ 240.
        let out = cast_to(DataType::F8E4M3FNUZ, code_value(DataType::F8E4M3FN, &[1], &[0x7e]));
        assert_eq!(bytes(&out), vec![0x7f]);
    }

    #[test]
    fn four_bit_integers_truncate_and_wrap_like_the_reference() {
        // -9 wraps to 7, 8 to -8, 15 to -1; 7.9 truncates to 7. Packed low nibble first.
        let out = cast_to(DataType::I4, f32_value(&[5], &[-9.0, -8.0, 7.9, 8.0, 15.0]));
        assert_eq!(out.dtype(), DataType::I4);
        assert_eq!(bytes(&out), vec![0x87, 0x87, 0x0f]);
        let back = cast_to(DataType::I8, out.clone());
        assert_eq!(back.to_i64_vec().unwrap(), vec![7, -8, 7, -8, -1]);
        assert_close(&cast_to(DataType::F32, out), &[5], &[7.0, -8.0, 7.0, -8.0, -1.0]);
        let out = cast_to(DataType::U2, i64_value(&[3], &[3, 4, -1]));
        assert_eq!(bytes(&out), vec![0b11_00_11]);
    }

    #[test]
    fn e8m0_follows_round_mode() {
        // 1.1 lies between 2^0 (code 127) and 2^1 (128).
        let input = || f32_value(&[2], &[1.1, 0.25]);
        assert_eq!(bytes(&cast_to(DataType::F8E8M0, input())), vec![128, 125]);
        let down = cast_attributes(DataType::F8E8M0, 24, vec![("round_mode", AttrValue::String(b"down".to_vec()))], input());
        assert_eq!(bytes(&down), vec![127, 125]);
        assert_close(&cast_to(DataType::F32, down), &[2], &[1.0, 0.25]);
    }

    #[test]
    fn unsupported_targets_are_plan_time_errors() {
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(8))]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'to': casting to string is not supported (code 8)");
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(14))]), 21, &[]).unwrap_err();
        assert!(err.to_string().contains("casting to c64 is not supported (code 14)"), "{err}");
        let err = parse(&node("Cast", 1, 1, vec![]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'to': is required");
        let err = parse(&node("Cast", 1, 1, vec![("to", AttrValue::Int(1)), ("saturate", AttrValue::Int(2))]), 21, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Cast): attribute 'saturate': must be 0 or 1, found 2");
    }
}
