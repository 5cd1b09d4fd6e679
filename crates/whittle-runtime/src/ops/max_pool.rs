//! MaxPool: the maximum over sliding windows (<https://onnx.ai/onnx/operators/onnx__MaxPool.html>).
//!
//! Opset 8 added the optional Indices output and `storage_order`, 10 `ceil_mode` and `dilations`,
//! 11 the current padding rules, 12 and 22 types. Strides default to 1 (not to the kernel size, as in
//! torch). Padded positions never win the maximum. 1-D and 2-D pooling run on burn's max_pool2d;
//! the Indices output is refused at plan time.

use std::ops::RangeInclusive;

use burn_tensor::module;
use burn_tensor::ops::MaxPoolOptions;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::Window;
use crate::value::Value;

/// `Y = max over each window of X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool {
    pub window: Window,
    pub ceil_mode: bool,
}

impl Operator for MaxPool {
    const OP_TYPE: &'static str = "MaxPool";
    const OPSETS: RangeInclusive<i64> = 8..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.node.outputs.get(1).is_some_and(|name| !name.is_empty()) {
            fail!("the Indices output is not implemented");
        }
        let window = Window::parse(node)?;
        if window.kernel.is_none() {
            return Err(OpError::attribute("kernel_shape", "is required"));
        }
        // storage_order only affects Indices, which is refused above; it is still validated.
        node.flag("storage_order", false)?;
        Ok(MaxPool { window, ceil_mode: node.flag("ceil_mode", false)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        let spatial = shape.len().saturating_sub(2);
        if !(1..=2).contains(&spatial) {
            fail!("{spatial}-D pooling is not implemented (X {shape:?})");
        }
        let kernel = self.window.kernel.as_deref().unwrap_or_default();
        let window = self.window.resolve(&shape[2..], kernel)?;
        let window = window.as_2d();
        let x = if spatial == 1 { x.reshape(&[shape[0], shape[1], 1, shape[2]])? } else { x };
        let options = MaxPoolOptions::new(window.kernel)
            .with_stride(window.strides)
            .with_padding_pairs(window.padding)
            .with_dilation(window.dilations)
            .with_ceil_mode(self.ceil_mode);
        let y = Value::from_float(module::max_pool2d(x.float::<4>()?, options), dtype)?;
        if spatial == 1 {
            let [n, c, _, width] = y.shape() else { fail!("max_pool2d returned shape {:?}", y.shape()) };
            let shape = [*n, *c, *width];
            return Ok(vec![y.reshape(&shape)?]);
        }
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn ints(values: &[i64]) -> AttrValue {
        AttrValue::Ints(values.to_vec())
    }

    #[test]
    fn two_by_two_stride_two() {
        // 4x4 ramp 1..16: each 2x2 block's maximum is its bottom-right element.
        let x: Vec<f32> = (1..=16).map(|i| i as f32).collect();
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]);
        let out = run(&pool, 18, vec![f32_value(&[1, 1, 4, 4], &x)]);
        assert_close(&out[0], &[1, 1, 2, 2], &[6.0, 8.0, 14.0, 16.0]);
    }

    #[test]
    fn spec_example_pads_with_negative_values() {
        // ONNX spec maxpool_2d_pads: 5x5 ramp 1..25, kernel 3, pads 2, stride 1 -> 7x7. Padding never
        // wins even though every window here overlaps it; with all-negative input it must not be 0.
        let x: Vec<f32> = (1..=25).map(|i| -(i as f32)).collect();
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[3, 3])), ("pads", ints(&[2, 2, 2, 2]))]);
        let out = run(&pool, 18, vec![f32_value(&[1, 1, 5, 5], &x)]);
        let mut expected = Vec::new();
        for i in 0..7i64 {
            for j in 0..7i64 {
                // Window rows i-2..=i, cols j-2..=j clipped to the input; the max of -(5r + c + 1)
                // is at the smallest row and column inside.
                let (r, c) = ((i - 2).max(0), (j - 2).max(0));
                expected.push(-((5 * r + c + 1) as f64));
            }
        }
        assert_close(&out[0], &[1, 1, 7, 7], &expected);
    }

    #[test]
    fn ceil_mode_keeps_the_partial_window() {
        // Spec maxpool_2d_ceil: 4x4 ramp, kernel 3, stride 2, ceil_mode -> 2x2 [[11, 12], [15, 16]].
        let x: Vec<f32> = (1..=16).map(|i| i as f32).collect();
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("ceil_mode", AttrValue::Int(1))]);
        let out = run(&pool, 18, vec![f32_value(&[1, 1, 4, 4], &x)]);
        assert_close(&out[0], &[1, 1, 2, 2], &[11.0, 12.0, 15.0, 16.0]);
    }

    #[test]
    fn indices_output_is_refused_at_plan_time() {
        let pool = node("MaxPool", 1, 2, vec![("kernel_shape", ints(&[2, 2]))]);
        let err = parse(&pool, 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (MaxPool): the Indices output is not implemented");
    }
}
