//! MaxPool: the maximum over sliding windows (<https://onnx.ai/onnx/operators/onnx__MaxPool.html>).
//!
//! Opset 8 added the optional Indices output and `storage_order`, 10 `ceil_mode` and `dilations`,
//! 11 the current padding rules, 12 and 22 types. Strides default to 1 (not to the kernel size, as in
//! torch). Padded positions never win the maximum. 1-D and 2-D pooling run on burn's max_pool2d,
//! int8 and uint8 through an exact f32 copy; the Indices output is refused at plan time.

use std::ops::RangeInclusive;

use burn_tensor::ops::MaxPoolOptions;
use burn_tensor::{module, FloatDType, IntDType};
use whittle_ir::DataType;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::Window;
use crate::value::{ElementKind, Value};

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
        let y = match dtype {
            // burn pools float tensors only. A maximum returns one of its elements unchanged and
            // every int8 and uint8 value (the integer types MaxPool allows) is exact in f32, so
            // pooling an f32 copy and casting back is exact.
            DataType::I8 | DataType::U8 => {
                let int_dtype = if dtype == DataType::I8 { IntDType::I8 } else { IntDType::U8 };
                let pooled = module::max_pool2d(x.int::<4>()?.cast(FloatDType::F32), options);
                Value::from_int(pooled.cast(int_dtype), dtype)?
            }
            _ if x.kind() == ElementKind::Float => Value::from_float(module::max_pool2d(x.float::<4>()?, options), dtype)?,
            _ => fail!("MaxPool is not defined on {dtype} (it takes floats, int8 and uint8)"),
        };
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
    use whittle_ir::{AttrValue, DataType};

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

    fn u8_value(dims: &[i64], values: &[u8]) -> crate::value::Value {
        let tensor = whittle_ir::Tensor::from_bytes("x", DataType::U8, dims.to_vec(), values.to_vec()).unwrap();
        crate::value::Value::from_ir(&tensor, &device()).unwrap()
    }

    #[test]
    fn uint8_pools_exactly_and_keeps_its_dtype() {
        // Values above 127 and up to 255 would go wrong through i8; padding must not win over 0.
        let x: Vec<u8> = vec![0, 200, 3, 255, 17, 128, 0, 0, 1];
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2, 2])), ("pads", ints(&[0, 0, 1, 1]))]);
        let out = run(&pool, 12, vec![u8_value(&[1, 1, 3, 3], &x)]);
        let host = out[0].to_ir("y").unwrap();
        assert_eq!(host.dtype, DataType::U8);
        assert_eq!(host.dims, vec![1, 1, 3, 3]);
        // The maximum of each 2x2 window clipped to the 3x3 input, computed here by hand.
        let expected: Vec<u8> = (0..3)
            .flat_map(|row| (0..3).map(move |col| (row, col)))
            .map(|(row, col)| {
                let window = (row..(row + 2).min(3)).flat_map(|r| (col..(col + 2).min(3)).map(move |c| (r, c)));
                window.map(|(r, c)| x[r * 3 + c]).max().unwrap()
            })
            .collect();
        assert_eq!(host.bytes().unwrap(), &expected[..]);
    }

    #[test]
    fn int8_padding_never_wins_over_negative_values() {
        // [-128, -5] with kernel 2 and one padded position on each side: [-128, -5, -5].
        let bytes: Vec<u8> = [-128i8, -5].iter().map(|&value| value as u8).collect();
        let tensor = whittle_ir::Tensor::from_bytes("x", DataType::I8, vec![1, 1, 2], bytes).unwrap();
        let x = crate::value::Value::from_ir(&tensor, &device()).unwrap();
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2])), ("pads", ints(&[1, 1]))]);
        let out = run(&pool, 12, vec![x]);
        assert_eq!(out[0].dtype(), DataType::I8);
        assert_eq!(out[0].shape(), &[1, 1, 3]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-128, -5, -5]);
    }

    #[test]
    fn integer_types_other_than_8_bit_are_refused() {
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[1, 1]))]);
        let err = try_run(&pool, 18, vec![i64_value(&[1, 1, 1, 1], &[3])]).unwrap_err();
        assert_eq!(err, "MaxPool is not defined on i64 (it takes floats, int8 and uint8)");
    }

    #[test]
    fn indices_output_is_refused_at_plan_time() {
        let pool = node("MaxPool", 1, 2, vec![("kernel_shape", ints(&[2, 2]))]);
        let err = parse(&pool, 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (MaxPool): the Indices output is not implemented");
    }
}
