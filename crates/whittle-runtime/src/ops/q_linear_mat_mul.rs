//! QLinearMatMul: a matrix product of quantized tensors, requantized to the output's scale and
//! zero point (<https://onnx.ai/onnx/operators/onnx__QLinearMatMul.html>).
//!
//! Opsets 10 and 21 (21 adds f16/bf16 scales and float8 types, which burn lacks); numpy shapes as
//! in MatMul. `acc = (a - a_zero_point) @ (b - b_zero_point)` in int32 (`quant::integer_matmul`),
//! then `y = saturate(round(acc * a_scale * b_scale / y_scale) + y_zero_point)` with the
//! multiplier and product in f32 as in ONNX Runtime, rounding half to even. a's scale and zero
//! point are per tensor or per row, b's per tensor or per column, y's per tensor.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::ops::mat_mul::MatMulLayout;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::quant::{integer_matmul, output_multiplier, requantize};
use crate::value::Value;

/// `y = quantize(dequantize(a) @ dequantize(b))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QLinearMatMul;

impl Operator for QLinearMatMul {
    const OP_TYPE: &'static str = "QLinearMatMul";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(QLinearMatMul)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let values: Vec<Value> = (0..8).map(|index| inputs.take(index)).collect::<Result<_, _>>()?;
        let [a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero]: [Value; 8] =
            values.try_into().map_err(|_| OpError::new("QLinearMatMul takes 8 inputs"))?;
        for (name, scale, zero) in [("a", &a_scale, &a_zero), ("b", &b_scale, &b_zero), ("y", &y_scale, &y_zero)] {
            if scale.shape() != zero.shape() {
                fail!("{name}_scale {:?} and {name}_zero_point {:?} must have one shape", scale.shape(), zero.shape());
            }
        }
        if y_scale.element_count() != 1 {
            fail!("y_scale {:?} must be a scalar", y_scale.shape());
        }
        let dtype = y_zero.dtype();
        if !matches!(dtype, DataType::U8 | DataType::I8) {
            fail!("y_zero_point must be u8 or i8, got {dtype}");
        }
        let layout = MatMulLayout::new(a.shape(), b.shape())?;
        let (a_scale, a_zero) = (layout.row_parameter(a_scale, "a_scale")?, layout.row_parameter(a_zero, "a_zero_point")?);
        let (b_scale, b_zero) = (layout.column_parameter(b_scale, "b_scale")?, layout.column_parameter(b_zero, "b_zero_point")?);
        let ones = vec![1; layout.rank()];
        let accumulator = integer_matmul(layout.lhs(a)?, Some(a_zero), layout.rhs(b)?, Some(b_zero))?;
        let multiplier = output_multiplier(a_scale, b_scale, y_scale.reshape(&ones)?)?;
        let y = requantize(accumulator, multiplier, Some(y_zero.reshape(&ones)?), dtype)?;
        layout.output(y)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::DataType;

    use crate::ops::test_support::*;


    #[test]
    fn spec_example_int8() {
        // The ONNX backend case test_qlinearmatmul_2D_int8_float32, its expected output written out.
        let inputs = vec![
            int_value(DataType::I8, &[2, 4], &[81, 109, -127, 111, -124, 87, -128, -98]),
            f32_value(&[1], &[0.0066]),
            int_value(DataType::I8, &[1], &[-14]),
            int_value(DataType::I8, &[4, 3], &[25, -76, 117, -67, -101, -128, -127, 0, 119, 0, 127, 120]),
            f32_value(&[1], &[0.00705]),
            int_value(DataType::I8, &[1], &[-13]),
            f32_value(&[1], &[0.0107]),
            int_value(DataType::I8, &[1], &[-9]),
        ];
        let out = run(&node("QLinearMatMul", 8, 1, vec![]), 21, inputs);
        assert_eq!(out[0].dtype(), DataType::I8);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![41, -12, -9, 1, -75, -128]);
    }

    #[test]
    fn per_column_scales_of_b() {
        // a = [[3, 1]] - 1 = [[2, 0]]; b - 0 = [[10, 20], [0, 0]]: acc = [[20, 40]].
        // Column scales [0.5, 0.25], a_scale 1, y_scale 2: [20 * 0.25, 40 * 0.125] = [5, 5]; + 100.
        let inputs = vec![
            int_value(DataType::U8, &[1, 2], &[3, 1]),
            f32_value(&[], &[1.0]),
            int_value(DataType::U8, &[], &[1]),
            int_value(DataType::U8, &[2, 2], &[10, 20, 0, 0]),
            f32_value(&[2], &[0.5, 0.25]),
            int_value(DataType::U8, &[2], &[0, 0]),
            f32_value(&[], &[2.0]),
            int_value(DataType::U8, &[], &[100]),
        ];
        let out = run(&node("QLinearMatMul", 8, 1, vec![]), 10, inputs);
        assert_eq!(out[0].dtype(), DataType::U8);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![105, 105]);
    }

    #[test]
    fn mismatched_scale_and_zero_point_shapes_are_errors() {
        let inputs = vec![
            int_value(DataType::U8, &[1, 2], &[3, 1]),
            f32_value(&[1], &[1.0]),
            int_value(DataType::U8, &[], &[1]),
            int_value(DataType::U8, &[2, 2], &[10, 20, 0, 0]),
            f32_value(&[], &[1.0]),
            int_value(DataType::U8, &[], &[0]),
            f32_value(&[], &[2.0]),
            int_value(DataType::U8, &[], &[100]),
        ];
        let err = try_run(&node("QLinearMatMul", 8, 1, vec![]), 10, inputs);
        assert_eq!(err.unwrap_err(), "a_scale [1] and a_zero_point [] must have one shape");
    }
}
