//! DynamicQuantizeLinear: quantizes f32 to u8 with a scale and zero point computed from the data
//! (<https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html>).
//!
//! Opset 11, the only version. The range `[min(0, min(x)), max(0, max(x))]` maps onto `[0, 255]`:
//! `y_scale = (max - min) / 255`, `y_zero_point = round(saturate(0 - min / y_scale))` and
//! `y = saturate(round(x / y_scale) + y_zero_point)`, rounding half to even, all in f32. The two
//! extremes are read back to the host to compute the scalars there. For an all-zero x, where the
//! formula divides by a zero scale, the scale is `1 / 255` as in the ONNX reference implementation
//! (ONNX Runtime returns 1; y and the zero point are 0 either way).

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::kernels;
use crate::kernels::int8::ActivationQuant;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::quant::{quantize, upload};
use crate::value::Value;

/// `(y, y_scale, y_zero_point)` for a u8 quantization of x over its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicQuantizeLinear;

impl Operator for DynamicQuantizeLinear {
    const OP_TYPE: &'static str = "DynamicQuantizeLinear";
    const OPSETS: RangeInclusive<i64> = 11..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(DynamicQuantizeLinear)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        if x.dtype() != DataType::F32 {
            fail!("x must be f32, got {}", x.dtype());
        }
        let count = x.element_count();
        if count == 0 {
            fail!("x {:?} is empty: it has no range to quantize", x.shape());
        }
        if let Some(outputs) = quantize_on_flex(&x)? {
            return Ok(outputs);
        }
        let flat = x.clone().reshape(&[count])?.float::<1>()?;
        let extreme = |tensor: burn_tensor::Tensor<1>| -> Result<f32, OpError> {
            let data = tensor.try_into_data().map_err(|err| OpError::new(format!("reading the range of x failed: {err:?}")))?;
            let values = data.try_to_vec::<f32>().map_err(|err| OpError::new(format!("reading the range of x failed: {err:?}")))?;
            Ok(values[0])
        };
        let (scale, zero_point) = range_parameters(extreme(flat.clone().min())?, extreme(flat.max())?);
        let (scale, zero_point) = parameter_values(scale, zero_point, &x)?;
        let rank = x.rank();
        let y = quantize(x, scale.clone().reshape(&vec![1; rank])?, Some(zero_point.clone().reshape(&vec![1; rank])?), DataType::U8)?;
        Ok(vec![y, scale, zero_point])
    }
}

/// `(y_scale, y_zero_point)` for data whose extremes are `min` and `max`, in f32.
fn range_parameters(min: f32, max: f32) -> (f32, f32) {
    let parameters = ActivationQuant::dynamic(min, max);
    (parameters.scale, parameters.zero_point as f32)
}

/// The scale and zero point as the op's scalar outputs, next to `x`.
fn parameter_values(scale: f32, zero_point: f32, x: &Value) -> Result<(Value, Value), OpError> {
    let scale_tensor = whittle_ir::Tensor::from_f32("y_scale", vec![], &[scale]).map_err(|err| OpError::new(err.to_string()))?;
    let zero_point_tensor = whittle_ir::Tensor::from_bytes("y_zero_point", DataType::U8, vec![], vec![zero_point as u8])
        .map_err(|err| OpError::new(err.to_string()))?;
    Ok((upload(&scale_tensor, x)?, upload(&zero_point_tensor, x)?))
}

/// The op on a flex f32 x in two passes over its memory (range, then quantization) instead of the
/// eight burn ops and two host reads of the general path, which cost more than the int8 product
/// that follows on the small fixtures. The arithmetic is the general path's, element for element
/// (f32 division, round half to even, zero point added in f32, clamped). `None` off flex and for an x
/// holding NaN, whose range the general path defines.
fn quantize_on_flex(x: &Value) -> Result<Option<Vec<Value>>, OpError> {
    let Some(tensor) = kernels::flex_f32(x) else { return Ok(None) };
    let values = kernels::contiguous(&tensor);
    let Some(parameters) = ActivationQuant::dynamic_over(&values) else { return Ok(None) };
    let bytes = parameters.quantize(&values);
    let (scale, zero_point) = (parameters.scale, parameters.zero_point as f32);
    let dims = x.shape().iter().map(|&dim| dim as i64).collect();
    let y = whittle_ir::Tensor::from_bytes("y", DataType::U8, dims, bytes).map_err(|err| OpError::new(err.to_string()))?;
    let (scale, zero_point) = parameter_values(scale, zero_point, x)?;
    Ok(Some(vec![upload(&y, x)?, scale, zero_point]))
}

#[cfg(test)]
mod tests {
    use whittle_ir::DataType;

    use crate::ops::test_support::*;
    use crate::value::Value;

    #[test]
    fn range_includes_zero_and_maps_onto_uint8() {
        // min -1, max 3 (range 4): scale 4 / 255, zero point round(1 / (4 / 255)) = round(63.75) = 64.
        let x = f32_value(&[4], &[-1.0, 0.0, 1.0, 3.0]);
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![x]);
        let scale = 4.0f32 / 255.0;
        assert_close(&out[1], &[], &[f64::from(scale)]);
        assert_eq!(out[2].dtype(), DataType::U8);
        assert_eq!(out[2].to_i64_vec().unwrap(), vec![64]);
        let expected: Vec<i64> = [-1.0f32, 0.0, 1.0, 3.0].iter().map(|&v| ((v / scale).round_ties_even() + 64.0).clamp(0.0, 255.0) as i64).collect();
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
        assert_eq!(expected, vec![0, 64, 128, 255]);
    }

    #[test]
    fn all_positive_data_has_zero_point_zero() {
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![f32_value(&[2], &[2.0, 5.1])]);
        assert_eq!(out[2].to_i64_vec().unwrap(), vec![0]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![100, 255]);
    }

    #[test]
    fn all_zero_data_uses_a_nonzero_scale() {
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![f32_value(&[2], &[0.0, 0.0])]);
        assert_close(&out[1], &[], &[1.0 / 255.0]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 0]);
    }

    #[test]
    fn flex_and_burn_paths_agree_on_halves_and_extremes() {
        // Values that land on .5 steps of the scale 1 (min -100, max 155), the extremes, and a NaN
        // that sends the op to burn's path: both paths follow the formula written out here.
        let mut values: Vec<f32> = (0..64).map(|i| i as f32 * 2.5 - 100.0).collect();
        values.extend([-100.0, 155.0]);
        let expected: Vec<i64> = values.iter().map(|&v| ((v / 1.0).round_ties_even() + 100.0).clamp(0.0, 255.0) as i64).collect();
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![f32_value(&[2, 33], &values)]);
        assert_eq!(out[0].shape(), &[2, 33]);
        assert_eq!(out[2].to_i64_vec().unwrap(), vec![100]);
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
        let transposed = f32_value(&[33, 2], &values).float::<2>().unwrap().transpose();
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![Value::from_float(transposed, DataType::F32).unwrap()]);
        let expected_t: Vec<i64> = (0..66).map(|i| expected[(i % 33) * 2 + i / 33]).collect();
        assert_eq!(out[0].to_i64_vec().unwrap(), expected_t);
        let with_nan = f32_value(&[3], &[f32::NAN, -1.0, 3.0]);
        let out = run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![with_nan]);
        assert_eq!(out[0].shape(), &[3]);
    }

    #[test]
    fn other_dtypes_and_empty_inputs_are_errors() {
        let err = try_run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "x must be f32, got i64");
        let err = try_run(&node("DynamicQuantizeLinear", 1, 3, vec![]), 11, vec![f32_value(&[0], &[])]);
        assert_eq!(err.unwrap_err(), "x [0] is empty: it has no range to quantize");
    }
}
