//! QLinearConv: a convolution of quantized tensors, requantized to the output's scale and zero
//! point (<https://onnx.ai/onnx/operators/onnx__QLinearConv.html>).
//!
//! Opset 10, the only version. Attributes and shapes are Conv's (`conv::resolve_conv`).
//! `acc = conv(x - x_zero_point, w - w_zero_point) + B` in int32 (`quant::integer_conv`, im2col
//! into the integer GEMM core), then `y = saturate(round(acc * x_scale * w_scale / y_scale) +
//! y_zero_point)` with the multiplier and product in f32 as in ONNX Runtime, rounding half to
//! even. w's scale and zero point are per tensor or per filter, the others per tensor.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::conv::{resolve_conv, Conv};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::quant::{integer_conv, output_multiplier, requantize};
use crate::value::Value;

/// `y = quantize(conv(dequantize(x), dequantize(w)) + dequantize(B))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QLinearConv {
    pub conv: Conv,
}

impl Operator for QLinearConv {
    const OP_TYPE: &'static str = "QLinearConv";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = Conv::ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(QLinearConv { conv: Conv::parse(node)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let values: Vec<Value> = (0..8).map(|index| inputs.take(index)).collect::<Result<_, _>>()?;
        let [x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero]: [Value; 8] =
            values.try_into().map_err(|_| OpError::new("QLinearConv takes 8 inputs and a bias"))?;
        let bias = inputs.take_optional(8);
        for (name, scale, zero) in [("x", &x_scale, &x_zero), ("w", &w_scale, &w_zero), ("y", &y_scale, &y_zero)] {
            if scale.shape() != zero.shape() {
                fail!("{name}_scale {:?} and {name}_zero_point {:?} must have one shape", scale.shape(), zero.shape());
            }
        }
        for (name, scale) in [("x_scale", &x_scale), ("y_scale", &y_scale)] {
            if scale.element_count() != 1 {
                fail!("{name} {:?} must be a scalar", scale.shape());
            }
        }
        let dtype = y_zero.dtype();
        if !matches!(dtype, DataType::U8 | DataType::I8) {
            fail!("y_zero_point must be u8 or i8, got {dtype}");
        }
        if let Some(bias) = &bias {
            if bias.dtype() != DataType::I32 {
                fail!("B must be i32, got {}", bias.dtype());
            }
        }
        let Conv { window, group, .. } = &self.conv;
        let resolved = resolve_conv(window, *group, x.shape(), w.shape(), bias.as_ref().map(Value::shape))?;
        let filters = w.shape()[0];
        // Per-filter values broadcast along axis 1 of the output [N, M, spatial...].
        let rank = x.rank();
        let ones = vec![1; rank];
        let mut per_filter = ones.clone();
        per_filter[1] = filters;
        let w_scale = match w_scale.element_count() {
            1 => w_scale.reshape(&ones)?,
            count if count == filters && w_scale.rank() == 1 => w_scale.reshape(&per_filter)?,
            _ => fail!("w_scale {:?} must be a scalar or have one value per filter ({filters})", w_scale.shape()),
        };
        let mut accumulator = integer_conv(x, Some(x_zero), w, Some(w_zero), &resolved, *group)?;
        if let Some(bias) = bias {
            accumulator = arithmetic(Arithmetic::Add, accumulator, bias.reshape(&per_filter)?)?;
        }
        let multiplier = output_multiplier(x_scale.reshape(&ones)?, w_scale, y_scale.reshape(&ones)?)?;
        Ok(vec![requantize(accumulator, multiplier, Some(y_zero.reshape(&ones)?), dtype)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::conv_integer::tests::reference;
    use crate::ops::test_support::*;

    #[test]
    fn requantizes_per_filter_with_bias() {
        // 2 filters over 1 channel, 2x2 kernel, padding 1; w scales [0.5, 0.25], y scale 4.
        let x: Vec<i64> = (0..9).map(|i| (i * 31) % 256).collect();
        let w: Vec<i64> = vec![1, -2, 3, -4, 5, 6, -7, 8];
        let (w_zero, bias) = ([0, 2], [10, -20]);
        let inputs = vec![
            int_value(DataType::U8, &[1, 1, 3, 3], &x),
            f32_value(&[], &[2.0]),
            int_value(DataType::U8, &[], &[100]),
            int_value(DataType::I8, &[2, 1, 2, 2], &w),
            f32_value(&[2], &[0.5, 0.25]),
            int_value(DataType::I8, &[2], &w_zero),
            f32_value(&[], &[4.0]),
            int_value(DataType::I8, &[], &[-3]),
            int_value(DataType::I32, &[2], &bias),
        ];
        let out = run(&node("QLinearConv", 9, 1, vec![("pads", AttrValue::Ints(vec![1, 1, 1, 1]))]), 10, inputs);
        let (accumulators, dims) = reference(&x, [1, 1, 3, 3], 100, &w, [2, 2, 2], &w_zero, 1, 1, 1, 1);
        let positions = dims[2] * dims[3];
        // Multipliers 2 * 0.5 / 4 = 0.25 and 2 * 0.25 / 4 = 0.125 are exact; f64 is the reference.
        let expected: Vec<i64> = accumulators
            .iter()
            .enumerate()
            .map(|(index, &acc)| {
                let filter = index / positions;
                let multiplier = [0.25, 0.125][filter];
                let scaled = ((acc + bias[filter]) as f64 * multiplier).round_ties_even();
                (scaled as i64 - 3).clamp(-128, 127)
            })
            .collect();
        assert_eq!(out[0].dtype(), DataType::I8);
        assert_eq!(out[0].shape(), &dims);
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
    }

    #[test]
    fn scales_must_be_per_tensor_or_per_filter() {
        let inputs = vec![
            int_value(DataType::U8, &[1, 1, 2, 2], &[1, 2, 3, 4]),
            f32_value(&[], &[1.0]),
            int_value(DataType::U8, &[], &[0]),
            int_value(DataType::U8, &[1, 1, 1, 1], &[1]),
            f32_value(&[2], &[1.0, 1.0]),
            int_value(DataType::U8, &[2], &[0, 0]),
            f32_value(&[], &[1.0]),
            int_value(DataType::U8, &[], &[0]),
        ];
        let err = try_run(&node("QLinearConv", 8, 1, vec![]), 10, inputs);
        assert_eq!(err.unwrap_err(), "w_scale [2] must be a scalar or have one value per filter (1)");
    }
}
