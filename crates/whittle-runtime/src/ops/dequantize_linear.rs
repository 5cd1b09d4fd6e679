//! DequantizeLinear: `y = (x - x_zero_point) * x_scale`
//! (<https://onnx.ai/onnx/operators/onnx__DequantizeLinear.html>).
//!
//! Opsets 10 to 28. 10 dequantizes per tensor; 13 adds `axis` (per-axis scales); 19 f16/bf16
//! scales and float8 inputs; 21 `block_size` (blocked scales) and 16-bit and 4-bit inputs; 23
//! `output_dtype` and float4; 24, 25 and 28 only add types. The integer semantics never changed, so
//! one implementation covers them all, each attribute accepted from the opset that defines it.
//! Inputs are u8, i8, u16, i16, i32, u4, i4, u2, i2, float8 or float4 (the code types decode
//! exactly to f32); float8 and float4 zero points must be zero, as the spec requires (the reference
//! checks it for float8); float6 inputs are refused when their tensors are loaded. The arithmetic
//! is f32, as in the reference implementation, then converted to `output_dtype`, else to the
//! scale's dtype.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::codes::{code_storage, is_float_code};
use crate::quant::{attribute_since, float_type_attribute, quantization_parameter, require_zero, to_float};
use crate::value::{ElementKind, Value};

/// `y = (x - x_zero_point) * x_scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DequantizeLinear {
    /// The axis of per-axis and blocked scales (negative counts from the end).
    pub axis: i64,
    /// The block size of blocked scales; 0 for per-tensor and per-axis ones.
    pub block_size: usize,
    pub output_dtype: Option<DataType>,
    /// Opset 10 defines scalar scales only.
    pub per_tensor_only: bool,
}

impl Operator for DequantizeLinear {
    const OP_TYPE: &'static str = "DequantizeLinear";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis", "block_size", "output_dtype"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        attribute_since(node, "axis", 13)?;
        attribute_since(node, "block_size", 21)?;
        attribute_since(node, "output_dtype", 23)?;
        let block_size = node.int("block_size", 0)?;
        if block_size < 0 {
            return Err(OpError::attribute("block_size", format!("must be 0 or more, found {block_size}")));
        }
        let output_dtype = match node.int("output_dtype", 0)? {
            0 => None,
            code => Some(float_type_attribute("output_dtype", code)?),
        };
        Ok(DequantizeLinear { axis: node.int("axis", 1)?, block_size: block_size as usize, output_dtype, per_tensor_only: node.opset < 13 })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, scale, zero_point) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let code = code_storage(x.dtype()).is_some() && x.dtype() != DataType::F8E8M0;
        if !code && !matches!(x.dtype(), DataType::U8 | DataType::I8 | DataType::U16 | DataType::I16 | DataType::I32) {
            fail!("x must be u8, i8, u16, i16, i32, u4, i4, u2, i2, float8 or float4, got {}", x.dtype());
        }
        if scale.kind() != ElementKind::Float {
            fail!("x_scale must be a float tensor, got {}", scale.dtype());
        }
        if self.per_tensor_only && scale.element_count() != 1 {
            fail!("x_scale {:?} must be a scalar before opset 13", scale.shape());
        }
        if let Some(zero_point) = &zero_point {
            if zero_point.dtype() != x.dtype() {
                fail!("x_zero_point must be {} like x, got {}", x.dtype(), zero_point.dtype());
            }
            // One-element parameters are per tensor whatever their shape; the backend tests pair a
            // [1] zero point with a scalar scale.
            if zero_point.shape() != scale.shape() && (zero_point.element_count(), scale.element_count()) != (1, 1) {
                fail!("x_zero_point {:?} and x_scale {:?} must have one shape", zero_point.shape(), scale.shape());
            }
        }
        let output = self.output_dtype.unwrap_or(scale.dtype());
        let shape = x.shape().to_vec();
        let scale = quantization_parameter(scale, &shape, self.axis, self.block_size, "x_scale")?;
        let float_codes = is_float_code(x.dtype());
        let x = to_float(x, DataType::F32)?;
        let centered = match zero_point {
            Some(zero_point) if float_codes => {
                require_zero(zero_point, "x_zero_point")?;
                x
            }
            Some(zero_point) => {
                let zero_point = quantization_parameter(zero_point, &shape, self.axis, self.block_size, "x_zero_point")?;
                arithmetic(Arithmetic::Sub, x, to_float(zero_point, DataType::F32)?)?
            }
            None => x,
        };
        let y = arithmetic(Arithmetic::Mul, centered, to_float(scale, DataType::F32)?)?;
        Ok(vec![to_float(y, output)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;


    #[test]
    fn per_tensor_subtracts_then_scales() {
        // (x - 128) * 0.5 for x = [0, 127, 255].
        let x = int_value(DataType::U8, &[3], &[0, 127, 255]);
        let out = run(&node("DequantizeLinear", 3, 1, vec![]), 21, vec![x, f32_value(&[], &[0.5]), int_value(DataType::U8, &[], &[128])]);
        assert_close(&out[0], &[3], &[-64.0, -0.5, 63.5]);
    }

    #[test]
    fn int32_without_zero_point() {
        let x = int_value(DataType::I32, &[2], &[-1 << 20, 7]);
        let out = run(&node("DequantizeLinear", 2, 1, vec![]), 13, vec![x, f32_value(&[], &[0.25])]);
        assert_close(&out[0], &[2], &[-262144.0, 1.75]);
    }

    #[test]
    fn blocked_scales_repeat_along_the_axis() {
        // x [1, 3] int16 in blocks of 2 along axis 1: scales [2, 10] cover [0, 1] and [2].
        let x = int_value(DataType::I16, &[1, 3], &[-300, 1, 2]);
        let dequantize = node("DequantizeLinear", 2, 1, vec![("axis", AttrValue::Int(1)), ("block_size", AttrValue::Int(2))]);
        let out = run(&dequantize, 21, vec![x, f32_value(&[1, 2], &[2.0, 10.0])]);
        assert_close(&out[0], &[1, 3], &[-600.0, 2.0, 20.0]);
    }

    #[test]
    fn output_dtype_converts_the_result() {
        let dequantize = node("DequantizeLinear", 2, 1, vec![("output_dtype", AttrValue::Int(10))]);
        let out = run(&dequantize, 23, vec![int_value(DataType::I8, &[1], &[-3]), f32_value(&[], &[1.5])]);
        assert_eq!(out[0].dtype(), DataType::F16);
        assert_eq!(out[0].to_ir("y").unwrap().bytes().unwrap(), &(0xc480u16).to_le_bytes()[..]); // -4.5
    }

    #[test]
    fn code_type_inputs_decode_exactly() {
        // uint4 [15, 0, 9] with zero point 8, scale 0.5: [3.5, -4, 0.5].
        let x = code_value(DataType::U4, &[3], &[0x0f, 0x09]);
        let out = run(&node("DequantizeLinear", 3, 1, vec![]), 21, vec![x, f32_value(&[], &[0.5]), code_value(DataType::U4, &[], &[0x08])]);
        assert_close(&out[0], &[3], &[3.5, -4.0, 0.5]);
        // E4M3FN 0x30 = 0.5 and 0x7e = 448, scale 2; a float8 zero point must be zero.
        let x = || code_value(DataType::F8E4M3FN, &[2], &[0x30, 0x7e]);
        let out = run(&node("DequantizeLinear", 2, 1, vec![]), 21, vec![x(), f32_value(&[], &[2.0])]);
        assert_close(&out[0], &[2], &[1.0, 896.0]);
        let err = try_run(&node("DequantizeLinear", 3, 1, vec![]), 21, vec![x(), f32_value(&[], &[2.0]), code_value(DataType::F8E4M3FN, &[], &[0x01])]);
        assert_eq!(err.unwrap_err(), "x_zero_point of type f8e4m3fn must be zero");
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let dequantize = node("DequantizeLinear", 3, 1, vec![]);
        let err = try_run(&dequantize, 21, vec![int_value(DataType::U8, &[1], &[1]), f32_value(&[], &[1.0]), int_value(DataType::I8, &[], &[0])]);
        assert_eq!(err.unwrap_err(), "x_zero_point must be u8 like x, got i8");
        let err = try_run(&dequantize, 21, vec![int_value(DataType::U8, &[2, 2], &[1; 4]), f32_value(&[3], &[1.0; 3]), int_value(DataType::U8, &[3], &[0; 3])]);
        assert_eq!(err.unwrap_err(), "x_scale [3] must be a scalar or have one value per index of axis 1 of x [2, 2] (2)");
        let err = try_run(&node("DequantizeLinear", 2, 1, vec![]), 21, vec![f32_value(&[1], &[1.0]), f32_value(&[], &[1.0])]);
        assert_eq!(err.unwrap_err(), "x must be u8, i8, u16, i16, i32, u4, i4, u2, i2, float8 or float4, got f32");
    }
}
