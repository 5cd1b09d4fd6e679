//! Range: an arithmetic sequence (<https://onnx.ai/onnx/operators/onnx__Range.html>).
//!
//! Opset 11 defines it for f32, f64, i16, i32 and i64; 27 adds f16 and bf16 with `stash_type`, the
//! precision of the computation (1, f32, the only value defined). The count is
//! `max(ceil((limit - start) / delta), 0)` and element `i` is `start + i * delta`, computed here in
//! f64 (exact i64 for integers) and rounded once to the output dtype.

use std::ops::RangeInclusive;

use burn_tensor::{Float, Int, Tensor, TensorData};

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, ElementKind, Value};

/// `output = [start, start + delta, ...]` up to `limit`, exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range;

impl Operator for Range {
    const OP_TYPE: &'static str = "Range";
    const OPSETS: RangeInclusive<i64> = 11..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["stash_type"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset < 27 && node.node.attribute("stash_type").is_some() {
            return Err(OpError::attribute("stash_type", "exists from opset 27 on"));
        }
        match node.int("stash_type", 1)? {
            1 => Ok(Range),
            other => Err(OpError::attribute("stash_type", format!("only 1 (float) is defined, found {other}"))),
        }
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (start, limit, delta) = (inputs.take(0)?, inputs.take(1)?, inputs.take(2)?);
        let dtype = start.dtype();
        for (name, value) in [("start", &start), ("limit", &limit), ("delta", &delta)] {
            if value.dtype() != dtype || value.element_count() != 1 {
                fail!("{name} must be a scalar of {dtype}, found {} {:?}", value.dtype(), value.shape());
            }
        }
        let device = start.device();
        let Some((burn_type, kind)) = burn_dtype(dtype) else { fail!("dtype {dtype} is not supported") };
        let (data, count) = match kind {
            ElementKind::Int => {
                let (start, limit, delta) = (start.to_i64_vec()?[0], limit.to_i64_vec()?[0], delta.to_i64_vec()?[0]);
                if delta == 0 {
                    fail!("delta must not be 0");
                }
                // ceil((limit - start) / delta) in i128, where the difference cannot overflow: the
                // truncated quotient, plus one when a remainder lies in the direction of delta.
                let (span, step) = (i128::from(limit) - i128::from(start), i128::from(delta));
                let (quotient, remainder) = (span / step, span % step);
                let count = (quotient + i128::from(remainder != 0 && (remainder > 0) == (step > 0))).max(0) as usize;
                let values: Vec<i64> = (0..count as i64).map(|i| start + i * delta).collect();
                (TensorData::new(values, [count]), count)
            }
            ElementKind::Float => {
                let (start, limit, delta) = (start.to_f64_vec()?[0], limit.to_f64_vec()?[0], delta.to_f64_vec()?[0]);
                let count = ((limit - start) / delta).ceil();
                if !count.is_finite() {
                    fail!("start {start}, limit {limit} and delta {delta} give no finite count");
                }
                let count = count.max(0.0) as usize;
                let values: Vec<f64> = (0..count).map(|i| start + i as f64 * delta).collect();
                (TensorData::new(values, [count]), count)
            }
            ElementKind::Bool => fail!("Range of bool is not defined"),
        };
        if count == 0 {
            return Ok(vec![Value::empty(dtype, &[0], &device)?]);
        }
        let data = data.convert_dtype(burn_type);
        let output = match kind {
            ElementKind::Float => Value::from_float(Tensor::<1, Float>::from_data(data, (&device, burn_type)), dtype)?,
            _ => Value::from_int(Tensor::<1, Int>::from_data(data, (&device, burn_type)), dtype)?,
        };
        Ok(vec![output])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{DataType, Tensor};

    use crate::ops::test_support::*;
    use crate::value::Value;

    fn i32_scalar(value: i32) -> Value {
        let host = Tensor::from_bytes("t", DataType::I32, vec![], value.to_le_bytes().to_vec()).unwrap();
        Value::from_ir(&host, &device()).unwrap()
    }

    #[test]
    fn spec_examples() {
        // start 3, limit 9, delta 3 gives [3, 6]; start 10, limit 4, delta -2 gives [10, 8, 6].
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![i64_value(&[], &[3]), i64_value(&[], &[9]), i64_value(&[], &[3])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![3, 6]);
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![i32_scalar(10), i32_scalar(4), i32_scalar(-2)]);
        assert_eq!(out[0].dtype(), DataType::I32);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![10, 8, 6]);
        // node/test_range_int32_type_negative_delta: 10 down to 6 by 3 is [10, 7].
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![i32_scalar(10), i32_scalar(6), i32_scalar(-3)]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![10, 7]);
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![i64_value(&[], &[0]), i64_value(&[], &[-5]), i64_value(&[], &[2])]);
        assert_eq!(out[0].shape(), &[0]);
    }

    #[test]
    fn floats_and_empty_ranges() {
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![f32_value(&[], &[1.0]), f32_value(&[], &[2.0]), f32_value(&[], &[0.3])]);
        assert_close(&out[0], &[4], &[1.0, 1.3, 1.6, 1.9]);
        let out = run(&node("Range", 3, 1, vec![]), 11, vec![f32_value(&[], &[5.0]), f32_value(&[], &[1.0]), f32_value(&[], &[1.0])]);
        assert_eq!(out[0].shape(), &[0]);
    }

    #[test]
    fn zero_delta_and_mixed_dtypes_are_errors() {
        let err = try_run(&node("Range", 3, 1, vec![]), 11, vec![i64_value(&[], &[0]), i64_value(&[], &[1]), i64_value(&[], &[0])]);
        assert_eq!(err.unwrap_err(), "delta must not be 0");
        let err = try_run(&node("Range", 3, 1, vec![]), 11, vec![i64_value(&[], &[0]), f32_value(&[], &[1.0]), i64_value(&[], &[1])]);
        assert_eq!(err.unwrap_err(), "limit must be a scalar of i64, found f32 []");
    }
}
