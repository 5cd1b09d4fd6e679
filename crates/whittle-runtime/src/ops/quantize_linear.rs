//! QuantizeLinear: `y = saturate(round(x / y_scale) + y_zero_point)`
//! (<https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html>).
//!
//! Opsets 10 to 28. 10 quantizes per tensor; 13 adds `axis` (per-axis scales); 19 `saturate` (for
//! float8 outputs only) and f16/bf16 inputs; 21 `block_size` (blocked scales), `output_dtype` and
//! 16-bit and 4-bit outputs; 23 `precision` (the dtype of the division) and float4; 24, 25 and 28
//! only add types (float8e8m0 scales, 2-bit and float6 outputs). The integer semantics never
//! changed, so one implementation covers them all, each attribute accepted from the opset that
//! defines it. Outputs are u8, i8, u16, i16, u4, i4, u2, i2 (rounding half to even, then
//! saturating), float8 (rounding to nearest even with `saturate`, as Cast) and float4 (always
//! saturating); float8 and float4 zero points must be zero, as the spec requires. float6 outputs
//! are refused: an `output_dtype` naming one at plan time, a zero point of one when its tensor is
//! loaded. The division is done in
//! `precision`'s dtype, else the scale's (the rule since 23; before, x and the scale share one type),
//! as the ONNX reference implementation does; ONNX Runtime 1.31 divides f16 by f16 in f32, so an
//! f16 quotient that rounds to a tie can come out one step apart (checked on random f16 data).

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::codes::is_float_code;
use crate::quant::{
    attribute_since, float_type_attribute, quantization_parameter, quantize, quantize_to_float_code, quantized_type_attribute, to_float,
};
use crate::value::{ElementKind, Value};

/// `y = saturate(round(x / y_scale) + y_zero_point)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeLinear {
    /// The axis of per-axis and blocked scales (negative counts from the end).
    pub axis: i64,
    /// The block size of blocked scales; 0 for per-tensor and per-axis ones.
    pub block_size: usize,
    pub output_dtype: Option<DataType>,
    /// The dtype of the division; the scale's when `None`.
    pub precision: Option<DataType>,
    /// Opset 10 defines scalar scales only.
    pub per_tensor_only: bool,
    /// Whether float8 outputs saturate (opset 19's `saturate`).
    pub saturate: bool,
}

impl Operator for QuantizeLinear {
    const OP_TYPE: &'static str = "QuantizeLinear";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis", "block_size", "output_dtype", "precision", "saturate"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        attribute_since(node, "axis", 13)?;
        attribute_since(node, "saturate", 19)?;
        attribute_since(node, "block_size", 21)?;
        attribute_since(node, "output_dtype", 21)?;
        attribute_since(node, "precision", 23)?;
        let block_size = node.int("block_size", 0)?;
        if block_size < 0 {
            return Err(OpError::attribute("block_size", format!("must be 0 or more, found {block_size}")));
        }
        let output_dtype = match node.int("output_dtype", 0)? {
            0 => None,
            code => Some(quantized_type_attribute("output_dtype", code)?),
        };
        let precision = match node.int("precision", 0)? {
            0 => None,
            code => Some(float_type_attribute("precision", code)?),
        };
        Ok(QuantizeLinear {
            axis: node.int("axis", 1)?,
            block_size: block_size as usize,
            output_dtype,
            precision,
            per_tensor_only: node.opset < 13,
            saturate: node.flag("saturate", true)?,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, scale, zero_point) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        if x.kind() != ElementKind::Float && x.dtype() != DataType::I32 {
            fail!("x must be a float or i32 tensor, got {}", x.dtype());
        }
        if scale.kind() != ElementKind::Float {
            fail!("y_scale must be a float tensor, got {}", scale.dtype());
        }
        if self.per_tensor_only && scale.element_count() != 1 {
            fail!("y_scale {:?} must be a scalar before opset 13", scale.shape());
        }
        let dtype = match (&zero_point, self.output_dtype) {
            (Some(zero_point), Some(declared)) if zero_point.dtype() != declared => {
                fail!("y_zero_point is {} but output_dtype is {declared}", zero_point.dtype())
            }
            (Some(zero_point), _) => zero_point.dtype(),
            (None, Some(declared)) => declared,
            (None, None) => DataType::U8,
        };
        if let Some(zero_point) = &zero_point {
            // One-element parameters are per tensor whatever their shape; the backend tests pair a
            // [1] zero point with a scalar scale.
            if zero_point.shape() != scale.shape() && (zero_point.element_count(), scale.element_count()) != (1, 1) {
                fail!("y_zero_point {:?} and y_scale {:?} must have one shape", zero_point.shape(), scale.shape());
            }
        }
        let shape = x.shape().to_vec();
        let division = self.precision.unwrap_or(scale.dtype());
        let scale = quantization_parameter(scale, &shape, self.axis, self.block_size, "y_scale")?;
        let zero_point =
            zero_point.map(|zero_point| quantization_parameter(zero_point, &shape, self.axis, self.block_size, "y_zero_point")).transpose()?;
        let (x, scale) = (to_float(x, division)?, to_float(scale, division)?);
        let y = if is_float_code(dtype) {
            quantize_to_float_code(x, scale, zero_point, dtype, self.saturate)?
        } else {
            quantize(x, scale, zero_point, dtype)?
        };
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;


    #[test]
    fn rounds_half_to_even_and_saturates() {
        // x / 2 = [0, 0.5, 1.5, 2.5, -0.5, 200, -200]; rounded half to even [0, 0, 2, 2, -0, 200, -200];
        // plus 10: [10, 10, 12, 12, 10, 210, -190] clamped to i8: [..., 127, -128].
        let x = f32_value(&[7], &[0.0, 1.0, 3.0, 5.0, -1.0, 400.0, -400.0]);
        let out = run(&node("QuantizeLinear", 3, 1, vec![]), 21, vec![x, f32_value(&[], &[2.0]), int_value(DataType::I8, &[], &[10])]);
        assert_eq!(out[0].dtype(), DataType::I8);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![10, 10, 12, 12, 10, 127, -128]);
    }

    #[test]
    fn without_zero_point_quantizes_to_uint8_or_output_dtype() {
        let x = f32_value(&[3], &[-1.0, 70000.0, 3.0]);
        let out = run(&node("QuantizeLinear", 2, 1, vec![]), 21, vec![x.clone(), f32_value(&[], &[1.0])]);
        assert_eq!(out[0].dtype(), DataType::U8);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 255, 3]);
        let quantize = node("QuantizeLinear", 2, 1, vec![("output_dtype", AttrValue::Int(5))]);
        let out = run(&quantize, 21, vec![x, f32_value(&[], &[1.0])]);
        assert_eq!(out[0].dtype(), DataType::I16);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-1, 32767, 3]);
    }

    #[test]
    fn per_axis_scales_follow_the_axis() {
        // x [2, 2], axis 0: row 0 / 1 + 0, row 1 / 4 + 100.
        let x = f32_value(&[2, 2], &[3.0, -3.0, 10.0, 6.0]);
        let quantize = node("QuantizeLinear", 3, 1, vec![("axis", AttrValue::Int(0))]);
        let out = run(&quantize, 13, vec![x, f32_value(&[2], &[1.0, 4.0]), int_value(DataType::U8, &[2], &[0, 100])]);
        // 10 / 4 = 2.5 rounds to 2, 6 / 4 = 1.5 rounds to 2.
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![3, 0, 102, 102]);
    }

    #[test]
    fn float16_inputs_divide_in_the_scale_dtype() {
        let tensor = whittle_ir::Tensor::from_bytes("x", DataType::F16, vec![2], [0x3c00u16, 0x4500].iter().flat_map(|h| h.to_le_bytes()).collect()).unwrap();
        let x = crate::value::Value::from_ir(&tensor, &device()).unwrap();
        // f16 1.0 and 5.0 divided by 2: 0.5 -> 0, 2.5 -> 2.
        let out = run(&node("QuantizeLinear", 2, 1, vec![]), 23, vec![x, f32_value(&[], &[2.0])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 2]);
    }

    #[test]
    fn float16_scales_divide_in_float16() {
        // f16 21.28125 (0x4d52) / f16 0.3701171875 (0x35ec) = 57.4987 in f32, which f16 rounds to
        // 57.5 (its spacing there is 1/32); half to even gives 58, where an f32 division gives 57.
        let f16 = |bits: u16| {
            let tensor = whittle_ir::Tensor::from_bytes("t", DataType::F16, vec![], bits.to_le_bytes().to_vec()).unwrap();
            crate::value::Value::from_ir(&tensor, &device()).unwrap()
        };
        let out = run(&node("QuantizeLinear", 2, 1, vec![]), 21, vec![f16(0x4d52), f16(0x35ec)]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![58]);
    }

    #[test]
    fn int4_outputs_saturate_to_their_range_and_pack() {
        // rint(x) + 1 = [-19, -1, 3, 21] clamps to [-8, -1, 3, 7]; the zero point is int4 1.
        let x = f32_value(&[4], &[-20.0, -1.5, 2.5, 20.0]);
        let zero_point = code_value(DataType::I4, &[], &[0x01]);
        let out = run(&node("QuantizeLinear", 3, 1, vec![]), 21, vec![x, f32_value(&[], &[1.0]), zero_point]);
        assert_eq!(out[0].dtype(), DataType::I4);
        assert_eq!(packed_bytes(&out[0]), vec![0xf8, 0x73]);
    }

    #[test]
    fn float8_outputs_round_like_cast_with_saturate() {
        // x / 2 = [0.5, 500, -500]: 0.5 is 0x30; 500 rounds to 512, past 448, so it saturates to
        // 0x7e, or is NaN (0x7f) without saturation.
        let x = || f32_value(&[3], &[1.0, 1000.0, -1000.0]);
        let zero = || code_value(DataType::F8E4M3FN, &[], &[0x00]);
        let out = run(&node("QuantizeLinear", 3, 1, vec![]), 21, vec![x(), f32_value(&[], &[2.0]), zero()]);
        assert_eq!(packed_bytes(&out[0]), vec![0x30, 0x7e, 0xfe]);
        let quantize = node("QuantizeLinear", 3, 1, vec![("saturate", AttrValue::Int(0))]);
        let out = run(&quantize, 21, vec![x(), f32_value(&[], &[2.0]), zero()]);
        assert_eq!(packed_bytes(&out[0]), vec![0x30, 0x7f, 0xff]);
        let err = try_run(&node("QuantizeLinear", 3, 1, vec![]), 21, vec![x(), f32_value(&[], &[2.0]), code_value(DataType::F8E4M3FN, &[], &[0x38])]);
        assert_eq!(err.unwrap_err(), "y_zero_point of type f8e4m3fn must be zero");
    }

    #[test]
    fn bad_attributes_and_shapes_are_errors() {
        let err = parse(&node("QuantizeLinear", 2, 1, vec![("output_dtype", AttrValue::Int(24))]), 24, &[]).unwrap_err();
        assert!(err.to_string().contains("quantizing to f8e8m0 (code 24) is not implemented"), "{err}");
        let err = parse(&node("QuantizeLinear", 2, 1, vec![("block_size", AttrValue::Int(2))]), 19, &[]).unwrap_err();
        assert!(err.to_string().contains("is defined from opset 21, the model imports opset 19"), "{err}");
        let err = parse(&node("QuantizeLinear", 2, 1, vec![("precision", AttrValue::Int(6))]), 23, &[]).unwrap_err();
        assert!(err.to_string().contains("must name f32, f16 or bf16, found i32"), "{err}");
        let err = try_run(&node("QuantizeLinear", 2, 1, vec![]), 10, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[2], &[1.0, 2.0])]);
        assert_eq!(err.unwrap_err(), "y_scale [2] must be a scalar before opset 13");
        let quantize = node("QuantizeLinear", 3, 1, vec![("output_dtype", AttrValue::Int(3))]);
        let err = try_run(&quantize, 21, vec![f32_value(&[1], &[1.0]), f32_value(&[], &[1.0]), int_value(DataType::U8, &[], &[0])]);
        assert_eq!(err.unwrap_err(), "y_zero_point is u8 but output_dtype is i8");
    }
}
