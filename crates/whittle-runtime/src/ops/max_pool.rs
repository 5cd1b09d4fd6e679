//! MaxPool: the maximum over sliding windows (<https://onnx.ai/onnx/operators/onnx__MaxPool.html>).
//!
//! Opset 8 added the optional Indices output and `storage_order`, 10 `ceil_mode` and `dilations`,
//! 11 the current padding rules, 12 and 22 types; opsets 1 to 7 are the same op without those
//! (their attributes are refused there). Strides default to 1 (not to the kernel size, as in
//! torch). Padded positions never win the maximum. 1-, 2- and 3-D pooling, shared with AveragePool
//! in `spatial.rs`; int8 and uint8 through an exact f32 copy. Indices (flat positions in X, row- or
//! with `storage_order` column-major within each plane) come from burn's 2-D pooling with indices,
//! so they are available for 1-D and 2-D inputs only; 3-D with Indices is a run-time error.
//!
//! On burn-flex, f32 1-D and 2-D pooling without Indices runs on whittle's own kernel
//! ([`crate::kernels::elementwise::max_pool`]).

use std::ops::RangeInclusive;

use burn_tensor::{FloatDType, IntDType};
use whittle_ir::DataType;

use crate::kernels::{self, elementwise};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{max_pool_with_indices, pool, refuse_newer_attributes, Pooling, Window};
use crate::value::{with_rank, ElementKind, Value};

/// `Y = max over each window of X`, and optionally where each maximum is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool {
    pub window: Window,
    pub ceil_mode: bool,
    /// Whether Indices count within a plane column-major (`storage_order` 1).
    pub column_major: bool,
    pub indices: bool,
}

impl Operator for MaxPool {
    const OP_TYPE: &'static str = "MaxPool";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        refuse_newer_attributes(node, &[("storage_order", 8), ("ceil_mode", 10), ("dilations", 10)])?;
        let indices = node.node.outputs.get(1).is_some_and(|name| !name.is_empty());
        if indices && node.opset < 8 {
            fail!("the Indices output exists from opset 8 on");
        }
        let window = Window::parse(node)?;
        if window.kernel.is_none() {
            return Err(OpError::attribute("kernel_shape", "is required"));
        }
        Ok(MaxPool {
            window,
            ceil_mode: node.flag("ceil_mode", false)?,
            column_major: node.flag("storage_order", false)?,
            indices,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        if !(3..=5).contains(&shape.len()) {
            fail!("X {shape:?} must have 1 to 3 spatial axes");
        }
        let window = self.window.resolve(&shape[2..], self.window.kernel.as_deref().unwrap_or_default())?;
        if let Some(tensor) = kernels::flex_f32(&x).filter(|_| !self.indices && shape.len() <= 4 && shape[0] * shape[1] > 0) {
            let output = window.output_sizes(&shape[2..], self.ceil_mode);
            let ((h, w), (oh, ow)) = match (&shape[2..], &output[..]) {
                ([h, w], [oh, ow]) => ((*h, *w), (*oh, *ow)),
                ([w], [ow]) => ((1, *w), (1, *ow)),
                _ => fail!("X {shape:?} does not match its window"),
            };
            let y = elementwise::max_pool(&kernels::contiguous(&tensor), [shape[0], shape[1], h, w], &window, [oh, ow]);
            let mut y_shape = shape[..2].to_vec();
            y_shape.extend_from_slice(&output);
            return Ok(vec![kernels::output(y, &y_shape)?]);
        }
        // burn pools float tensors only. A maximum returns one of its elements unchanged and every
        // int8 and uint8 value (the integer types MaxPool allows) is exact in f32, so pooling an
        // f32 copy and casting back is exact.
        let x = match dtype {
            DataType::I8 | DataType::U8 => {
                with_rank!(x.burn_rank(), D => Value::from_float(x.int::<D>()?.cast(FloatDType::F32), DataType::F32)?)
            }
            _ if x.kind() == ElementKind::Float => x,
            _ => fail!("MaxPool is not defined on {dtype} (it takes floats, int8 and uint8)"),
        };
        let (y, indices) = if self.indices {
            let (y, indices) = max_pool_with_indices(x, &window, self.ceil_mode, self.column_major)?;
            (y, Some(indices))
        } else {
            (pool(x, &window, self.ceil_mode, Pooling::Max)?, None)
        };
        let y = match dtype {
            DataType::I8 | DataType::U8 => {
                let int_dtype = if dtype == DataType::I8 { IntDType::I8 } else { IntDType::U8 };
                with_rank!(y.burn_rank(), D => Value::from_int(y.float::<D>()?.cast(int_dtype), dtype)?)
            }
            _ => y,
        };
        Ok(std::iter::once(y).chain(indices).collect())
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
    fn indices_count_across_batch_and_channels_in_either_storage_order() {
        // x [2, 1, 2, 3]: kernel 2x2 over each 2x3 plane gives 1x2; the maxima sit where the ramp
        // puts them, i.e. the bottom-right of each window: row 1, columns 1 and 2.
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let pool = node("MaxPool", 1, 2, vec![("kernel_shape", ints(&[2, 2]))]);
        let out = run(&pool, 12, vec![f32_value(&[2, 1, 2, 3], &x)]);
        assert_close(&out[0], &[2, 1, 1, 2], &[4.0, 5.0, 10.0, 11.0]);
        assert_eq!(out[1].dtype(), DataType::I64);
        // Row-major: plane offset 6 per batch, then 1 * 3 + column.
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![4, 5, 10, 11]);
        let column_major = node("MaxPool", 1, 2, vec![("kernel_shape", ints(&[2, 2])), ("storage_order", AttrValue::Int(1))]);
        let out = run(&column_major, 12, vec![f32_value(&[2, 1, 2, 3], &x)]);
        // Column-major within the plane: column * 2 + row.
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![3, 5, 9, 11]);
    }

    #[test]
    fn opsets_before_8_refuse_the_later_attributes() {
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2])), ("dilations", ints(&[2]))]);
        let err = parse(&pool, 8, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (MaxPool): attribute 'dilations': exists from opset 10 on");
        let out = run(&node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2]))]), 1, vec![f32_value(&[1, 1, 3], &[1.0, 3.0, 2.0])]);
        assert_close(&out[0], &[1, 1, 2], &[3.0, 3.0]);
    }

    #[test]
    fn three_dimensional_max() {
        // 2x2x3 ramp 0..12, kernel 2x2x2: windows end at (1, 1, 1) and (1, 1, 2), values 10, 11.
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let pool = node("MaxPool", 1, 1, vec![("kernel_shape", ints(&[2, 2, 2]))]);
        let out = run(&pool, 12, vec![f32_value(&[1, 1, 2, 2, 3], &x)]);
        assert_close(&out[0], &[1, 1, 1, 1, 2], &[10.0, 11.0]);
        let with_indices = node("MaxPool", 1, 2, vec![("kernel_shape", ints(&[2, 2, 2]))]);
        let err = try_run(&with_indices, 12, vec![f32_value(&[1, 1, 2, 2, 3], &x)]).unwrap_err();
        assert_eq!(err, "the Indices output is implemented for 1-D and 2-D pooling only, not 3-D");
    }
}
