//! ConvInteger: `conv(x - x_zero_point, w - w_zero_point)` in int32
//! (<https://onnx.ai/onnx/operators/onnx__ConvInteger.html>).
//!
//! Opset 10, the only version. Attributes and shapes are Conv's (`conv::resolve_conv`); x and w
//! are u8 or i8, x's zero point is one value, w's one value or one per filter. Any number of
//! spatial axes: the convolution is lowered by im2col to the integer GEMM core
//! (`quant::integer_conv`).

use std::ops::RangeInclusive;

use crate::ops::conv::{resolve_conv, Conv};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::quant::integer_conv;
use crate::value::Value;

/// `y = conv(x - x_zero_point, w - w_zero_point)`; the window and group are Conv's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvInteger {
    pub conv: Conv,
}

impl Operator for ConvInteger {
    const OP_TYPE: &'static str = "ConvInteger";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = Conv::ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(ConvInteger { conv: Conv::parse(node)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, w) = (inputs.take(0)?, inputs.take(1)?);
        let (x_zero, w_zero) = (inputs.take_optional(2), inputs.take_optional(3));
        let Conv { window, group, .. } = &self.conv;
        let resolved = resolve_conv(window, *group, x.shape(), w.shape(), None)?;
        Ok(vec![integer_conv(x, x_zero, w, w_zero, &resolved, *group)?])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;


    /// Direct 2-D integer convolution in i64 with per-filter weight zero points:
    /// `x [n, c, h, w]`, `weights [m, c / group, kh, kw]`, one stride, padding and dilation.
    #[allow(clippy::too_many_arguments)]
    pub fn reference(
        x: &[i64],
        [n, c, h, w]: [usize; 4],
        x_zero: i64,
        weights: &[i64],
        [m, kh, kw]: [usize; 3],
        w_zero: &[i64],
        stride: usize,
        pad: usize,
        dilation: usize,
        group: usize,
    ) -> (Vec<i64>, [usize; 4]) {
        let extent = |k: usize| (k - 1) * dilation + 1;
        let oh = (h + 2 * pad - extent(kh)) / stride + 1;
        let ow = (w + 2 * pad - extent(kw)) / stride + 1;
        let out = reference_conv2d(
            [n, c, h, w],
            [m, c / group, kh, kw],
            [oh, ow],
            [stride; 2],
            [dilation; 2],
            [pad; 2],
            |_| 0,
            |xi, wi, f| (x[xi] - x_zero) * (weights[wi] - w_zero[f % w_zero.len()]),
        );
        (out, [n, m, oh, ow])
    }

    #[test]
    fn padded_strided_grouped_with_per_filter_zero_points() {
        // 4 channels in 2 groups, 4 filters, 3x3 kernel, stride 2, padding 1, dilation 1.
        let x: Vec<i64> = (0..2 * 4 * 5 * 5).map(|i| (i * 29) % 256).collect();
        let w: Vec<i64> = (0..4 * 2 * 3 * 3).map(|i| (i * 41) % 256 - 128).collect();
        let w_zero = [3, -7, 0, 127];
        let attributes = vec![("strides", AttrValue::Ints(vec![2, 2])), ("pads", AttrValue::Ints(vec![1, 1, 1, 1])), ("group", AttrValue::Int(2))];
        let inputs = vec![
            int_value(DataType::U8, &[2, 4, 5, 5], &x),
            int_value(DataType::I8, &[4, 2, 3, 3], &w),
            int_value(DataType::U8, &[], &[200]),
            int_value(DataType::I8, &[4], &w_zero),
        ];
        let out = run(&node("ConvInteger", 4, 1, attributes), 10, inputs);
        let (expected, dims) = reference(&x, [2, 4, 5, 5], 200, &w, [4, 3, 3], &w_zero, 2, 1, 1, 2);
        assert_eq!(out[0].dtype(), DataType::I32);
        assert_eq!(out[0].shape(), &dims);
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
    }

    #[test]
    fn dilated_without_zero_points() {
        let x: Vec<i64> = (0..6 * 6).map(|i| (i * 13) % 100 - 50).collect();
        let w: Vec<i64> = vec![1, -2, 3, -4];
        let inputs = vec![int_value(DataType::I8, &[1, 1, 6, 6], &x), int_value(DataType::I8, &[1, 1, 2, 2], &w)];
        let out = run(&node("ConvInteger", 2, 1, vec![("dilations", AttrValue::Ints(vec![2, 2]))]), 10, inputs);
        let (expected, dims) = reference(&x, [1, 1, 6, 6], 0, &w, [1, 2, 2], &[0], 1, 0, 2, 1);
        assert_eq!(out[0].shape(), &dims);
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
    }

    #[test]
    fn one_dimensional_and_three_dimensional() {
        // x [1, 1, 4] = [1, 2, 3, 4] - 1, kernel [1, -1], pads (1, 0): [0 - 0, 1 - 0, 2 - 1, 3 - 2]... written
        // out: padded [1(pad = zero point), 1, 2, 3, 4] - 1 = [0, 0, 1, 2, 3]; windows: 0 - 0, 0 - 1, 1 - 2, 2 - 3.
        let inputs = vec![int_value(DataType::U8, &[1, 1, 4], &[1, 2, 3, 4]), int_value(DataType::I8, &[1, 1, 2], &[1, -1]), int_value(DataType::U8, &[], &[1])];
        let out = run(&node("ConvInteger", 3, 1, vec![("pads", AttrValue::Ints(vec![1, 0]))]), 10, inputs);
        assert_eq!(out[0].shape(), &[1, 1, 4]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, -1, -1, -1]);
        // A 2x2x2 cube of ones under a 2x2x2 kernel of ones: one output, 8.
        let inputs = vec![int_value(DataType::U8, &[1, 1, 2, 2, 2], &[1; 8]), int_value(DataType::U8, &[1, 1, 2, 2, 2], &[1; 8])];
        let out = run(&node("ConvInteger", 2, 1, vec![]), 10, inputs);
        assert_eq!(out[0].shape(), &[1, 1, 1, 1, 1]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![8]);
    }

    #[test]
    fn bad_zero_points_and_shapes_are_errors() {
        let x = int_value(DataType::U8, &[1, 2, 3, 3], &[0; 18]);
        let w = int_value(DataType::U8, &[2, 2, 1, 1], &[0; 4]);
        let err = try_run(&node("ConvInteger", 3, 1, vec![]), 10, vec![x.clone(), w.clone(), int_value(DataType::U8, &[2], &[0, 0])]);
        assert_eq!(err.unwrap_err(), "x_zero_point [2] must be a scalar");
        let err = try_run(&node("ConvInteger", 4, 1, vec![]), 10, vec![x.clone(), w.clone(), int_value(DataType::U8, &[], &[0]), int_value(DataType::U8, &[3], &[0; 3])]);
        assert_eq!(err.unwrap_err(), "w_zero_point [3] must be a scalar or have one value per filter (2)");
        let err = try_run(&node("ConvInteger", 3, 1, vec![]), 10, vec![x.clone(), w, int_value(DataType::I8, &[], &[0])]);
        assert_eq!(err.unwrap_err(), "x_zero_point must be u8 like x, got i8");
        let err = try_run(&node("ConvInteger", 2, 1, vec![]), 10, vec![x, int_value(DataType::U8, &[1, 1, 1, 1], &[0])]);
        assert_eq!(err.unwrap_err(), "W [1, 1, 1, 1] with group 1 does not fit X [1, 2, 3, 3] of 2 channels");
    }
}
