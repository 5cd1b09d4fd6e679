//! MatMulInteger: `(A - a_zero_point) @ (B - b_zero_point)` in int32, with numpy semantics
//! (<https://onnx.ai/onnx/operators/onnx__MatMulInteger.html>).
//!
//! Opset 10, the only version. A and B are u8 or i8; a zero point is one value, one per row of A
//! (`[M]` or `[batch..., M, 1]`) or one per column of B (`[N]` or `[batch..., 1, N]`). Shapes
//! follow MatMul's (`mat_mul::MatMulLayout`); the product is `quant::integer_matmul`.

use std::ops::RangeInclusive;

use crate::ops::mat_mul::MatMulLayout;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::kernels::int8::ConstantIntRhs;
use crate::quant::integer_matmul_packed;
use crate::value::Value;

/// `Y = (A - a_zero_point) @ (B - b_zero_point)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatMulInteger {
    /// B packed for the int8 kernel, when it is a constant u8 or i8 matrix.
    pub(crate) packed: Option<ConstantIntRhs>,
}

impl Operator for MatMulInteger {
    const OP_TYPE: &'static str = "MatMulInteger";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(MatMulInteger { packed: node.constant_input(1).and_then(ConstantIntRhs::pack) })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        let (a_zero, b_zero) = (inputs.take_optional(2), inputs.take_optional(3));
        let layout = MatMulLayout::new(a.shape(), b.shape())?;
        let a_zero = a_zero.map(|zero| layout.row_parameter(zero, "a_zero_point")).transpose()?;
        let b_zero = b_zero.map(|zero| layout.column_parameter(zero, "b_zero_point")).transpose()?;
        let product = integer_matmul_packed(layout.lhs(a)?, a_zero, layout.rhs(b)?, b_zero, self.packed.as_ref())?;
        layout.output(product)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::DataType;

    use crate::ops::test_support::*;


    /// `(a - za[row]) @ (b - zb[col])` over row-major `[batch, m, k]` and `[batch, k, n]`, in i64.
    fn reference(a: &[i64], za: &[i64], b: &[i64], zb: &[i64], [batch, m, k, n]: [usize; 4]) -> Vec<i64> {
        let mut out = Vec::new();
        for t in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let za = za[i % za.len()];
                    let zb = zb[j % zb.len()];
                    out.push((0..k).map(|p| (a[(t * m + i) * k + p] - za) * (b[(t * k + p) * n + j] - zb)).sum());
                }
            }
        }
        out
    }

    #[test]
    fn uint8_by_int8_with_per_row_and_per_column_zero_points() {
        let a: Vec<i64> = (0..6).map(|i| (i * 53) % 256).collect();
        let b: Vec<i64> = (0..12).map(|i| (i * 37) % 256 - 128).collect();
        let inputs = vec![
            int_value(DataType::U8, &[2, 3], &a),
            int_value(DataType::I8, &[3, 4], &b),
            int_value(DataType::U8, &[2], &[255, 7]),
            int_value(DataType::I8, &[4], &[-128, 0, 5, 127]),
        ];
        let out = run(&node("MatMulInteger", 4, 1, vec![]), 10, inputs);
        assert_eq!(out[0].dtype(), DataType::I32);
        assert_eq!(out[0].shape(), &[2, 4]);
        assert_eq!(out[0].to_i64_vec().unwrap(), reference(&a, &[255, 7], &b, &[-128, 0, 5, 127], [1, 2, 3, 4]));
    }

    #[test]
    fn batched_and_vector_operands() {
        // [2, 2, 3] x [3] -> [2, 2], no zero points.
        let a: Vec<i64> = (0..12).collect();
        let out = run(&node("MatMulInteger", 2, 1, vec![]), 10, vec![int_value(DataType::U8, &[2, 2, 3], &a), int_value(DataType::U8, &[3], &[1, 2, 3])]);
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].to_i64_vec().unwrap(), reference(&a, &[0], &[1, 2, 3], &[0], [1, 4, 3, 1]));
    }

    #[test]
    fn bad_zero_points_and_dtypes_are_errors() {
        let a = int_value(DataType::U8, &[2, 3], &[0; 6]);
        let b = int_value(DataType::U8, &[3, 4], &[0; 12]);
        let err = try_run(&node("MatMulInteger", 3, 1, vec![]), 10, vec![a.clone(), b.clone(), int_value(DataType::U8, &[3], &[0; 3])]);
        assert_eq!(err.unwrap_err(), "a_zero_point [3] must hold one value or one per row of [2, 3]");
        let err = try_run(&node("MatMulInteger", 2, 1, vec![]), 10, vec![a, i64_value(&[3, 1], &[0; 3])]);
        assert_eq!(err.unwrap_err(), "B must be u8 or i8, got i64");
    }
}
