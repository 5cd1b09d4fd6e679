//! ConvTranspose: the transposed (fractionally strided) convolution (<https://onnx.ai/onnx/operators/onnx__ConvTranspose.html>).
//!
//! Opsets 1, 11 and 22 differ only in types and in how the spec words the padding rules, which 11
//! fixed to what runtimes did. Inputs: X `[N, C, spatial...]`, W `[C, M / group, kernel...]`,
//! optional B `[M]`. 1-D and 2-D run on burn's conv_transpose2d (1-D with a height of 1), 3-D on
//! conv_transpose3d.
//!
//! burn pads symmetrically only, so the transposed convolution runs unpadded (full size
//! `(input - 1) * stride + (kernel - 1) * dilation + 1` per axis) and the ONNX output is cut from
//! it: `Y[i] = full[i + pad_begin]`, zeros where that falls outside (output_padding, or an
//! output_shape larger than the full result), then B is added everywhere.

use std::ops::RangeInclusive;

use burn_tensor::module;
use burn_tensor::ops::{ConvTransposeOptions, PadMode};
use burn_tensor::Tensor;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{AutoPad, Window};
use crate::value::Value;

/// `Y = conv_transpose(X, W) + B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvTranspose {
    /// kernel_shape, strides, dilations, pads and auto_pad; `resolve` is not used (its SAME rule is
    /// the forward convolution's).
    pub window: Window,
    pub group: usize,
    pub output_padding: Option<Vec<usize>>,
    pub output_shape: Option<Vec<usize>>,
}

impl Operator for ConvTranspose {
    const OP_TYPE: &'static str = "ConvTranspose";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] =
        &["auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let group = node.int("group", 1)?;
        if group < 1 {
            return Err(OpError::attribute("group", format!("must be 1 or more, found {group}")));
        }
        let sizes = |name: &str| -> Result<Option<Vec<usize>>, OpError> {
            match node.ints(name)? {
                None => Ok(None),
                Some(values) if values.iter().all(|&value| value >= 0) => Ok(Some(values.iter().map(|&value| value as usize).collect())),
                Some(values) => Err(OpError::attribute(name, format!("values must be 0 or more, found {values:?}"))),
            }
        };
        Ok(ConvTranspose {
            window: Window::parse(node)?,
            group: group as usize,
            output_padding: sizes("output_padding")?,
            output_shape: sizes("output_shape")?,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, w, b) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let dtype = x.dtype();
        if w.dtype() != dtype || b.as_ref().is_some_and(|b| b.dtype() != dtype) {
            fail!(
                "X, W and B must share one dtype, got {}, {} and {}",
                dtype,
                w.dtype(),
                b.as_ref().map_or("none".into(), |b| b.dtype().to_string())
            );
        }
        let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
        if !(3..=5).contains(&x_shape.len()) || w_shape.len() != x_shape.len() {
            fail!("X {x_shape:?} and W {w_shape:?} must have the same rank, with 1 to 3 spatial axes");
        }
        let (channels, filters) = (x_shape[1], w_shape[1] * self.group);
        if w_shape[0] != channels || channels % self.group != 0 {
            fail!("W {w_shape:?} with group {} does not fit X {x_shape:?} of {channels} channels", self.group);
        }
        if let Some(b) = &b {
            if b.shape() != [filters] {
                fail!("B {:?} must have one value per output channel ({filters})", b.shape());
            }
        }
        let kernel = &w_shape[2..];
        if let Some(declared) = &self.window.kernel {
            if declared.as_slice() != kernel {
                fail!("kernel_shape {declared:?} does not match W {w_shape:?}");
            }
        }
        let input = &x_shape[2..];
        if x.element_count() == 0 || w.element_count() == 0 {
            fail!("X {x_shape:?} and W {w_shape:?} must not be empty");
        }
        let crops = self.crops(input, kernel)?;
        let spatial = input.len();
        let per_axis = |values: &Option<Vec<usize>>| values.clone().unwrap_or_else(|| vec![1; spatial]);
        let (strides, dilations) = (per_axis(&self.window.strides), per_axis(&self.window.dilations));
        let y = if spatial == 3 {
            let options = ConvTransposeOptions::new(
                [strides[0], strides[1], strides[2]],
                [0; 3],
                [0; 3],
                [dilations[0], dilations[1], dilations[2]],
                self.group,
            );
            let full = module::conv_transpose3d(x.float::<5>()?, w.float::<5>()?, None, options);
            Value::from_float(finish(full, &crops, b)?, dtype)?
        } else {
            let as_4d = |value: Value, shape: &[usize]| -> Result<Value, OpError> {
                if spatial == 1 {
                    value.reshape(&[shape[0], shape[1], 1, shape[2]])
                } else {
                    Ok(value)
                }
            };
            let pair = |values: &[usize]| if spatial == 1 { [1, values[0]] } else { [values[0], values[1]] };
            let options = ConvTransposeOptions::new(pair(&strides), [0; 2], [0; 2], pair(&dilations), self.group);
            let full = module::conv_transpose2d(as_4d(x, &x_shape)?.float::<4>()?, as_4d(w, &w_shape)?.float::<4>()?, None, options);
            let crops = if spatial == 1 { vec![(0, 1), crops[0]] } else { crops };
            let y = Value::from_float(finish(full, &crops, b)?, dtype)?;
            if spatial == 1 {
                let [n, m, _, width] = y.shape() else { fail!("conv_transpose2d returned shape {:?}", y.shape()) };
                let shape = [*n, *m, *width];
                y.reshape(&shape)?
            } else {
                y
            }
        };
        Ok(vec![y])
    }
}

impl ConvTranspose {
    /// For each spatial axis, where the output starts in the full result (negative: zeros first)
    /// and its size, from pads, auto_pad or output_shape as the spec gives them.
    fn crops(&self, input: &[usize], kernel: &[usize]) -> Result<Vec<(i64, usize)>, OpError> {
        let axes = input.len();
        let per_axis = |name: &str, values: &Option<Vec<usize>>, default: usize| -> Result<Vec<usize>, OpError> {
            match values {
                None => Ok(vec![default; axes]),
                Some(values) if values.len() == axes => Ok(values.clone()),
                Some(values) => fail!("{name} {values:?} has {} values for {axes} spatial axes", values.len()),
            }
        };
        if kernel.len() != axes {
            fail!("kernel {kernel:?} has {} sizes for {axes} spatial axes", kernel.len());
        }
        let strides = per_axis("strides", &self.window.strides, 1)?;
        let dilations = per_axis("dilations", &self.window.dilations, 1)?;
        let output_padding = per_axis("output_padding", &self.output_padding, 0)?;
        // output_shape may also be given with the batch and channel axes in front.
        let output_shape = match &self.output_shape {
            Some(shape) if shape.len() == axes + 2 => Some(shape[2..].to_vec()),
            other => other.as_ref().map(|_| per_axis("output_shape", other, 0)).transpose()?,
        };
        let mut crops = Vec::with_capacity(axes);
        for axis in 0..axes {
            let full = ((input[axis] - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1) as i64;
            let padded_full = full + output_padding[axis] as i64;
            let target = match (&output_shape, self.window.auto_pad) {
                (Some(shape), _) => Some(shape[axis] as i64),
                (None, AutoPad::SameUpper | AutoPad::SameLower) => Some((input[axis] * strides[axis]) as i64),
                (None, _) => None,
            };
            let (begin, size) = match target {
                // The total padding may be negative (output_shape larger than the full result):
                // the split below then puts zeros at the ends.
                Some(size) => {
                    let total = padded_full - size;
                    let begin = if self.window.auto_pad == AutoPad::SameUpper { total.div_euclid(2) } else { total - total.div_euclid(2) };
                    (begin, size)
                }
                None => {
                    let (begin, end) = match (&self.window.pads, self.window.auto_pad) {
                        (Some(pads), _) if pads.len() == 2 * axes => (pads[axis] as i64, pads[axes + axis] as i64),
                        (Some(pads), _) => fail!("pads {pads:?} has {} values for {axes} spatial axes", pads.len()),
                        (None, _) => (0, 0),
                    };
                    (begin, padded_full - begin - end)
                }
            };
            if size < 1 {
                fail!("spatial axis {axis} of the output would have size {size}");
            }
            crops.push((begin, size as usize));
        }
        Ok(crops)
    }
}

/// Cuts each spatial axis of `full` to `(begin, size)` (zeros outside the full result) and adds
/// the bias.
fn finish<const D: usize>(full: Tensor<D>, crops: &[(i64, usize)], bias: Option<Value>) -> Result<Tensor<D>, OpError> {
    let mut y = full;
    for (index, &(begin, size)) in crops.iter().enumerate() {
        let dim = D - crops.len() + index;
        let available = y.dims()[dim] as i64;
        let start = begin.max(0);
        let stop = (begin + size as i64).min(available);
        let lead = (-begin).clamp(0, size as i64) as usize;
        let take = (stop - start).max(0) as usize;
        if take == 0 {
            let mut dims = y.dims();
            dims[dim] = size;
            y = Tensor::zeros(dims, (&y.device(), y.dtype()));
            continue;
        }
        y = y.narrow(dim, start as usize, take);
        let trail = size - lead - take;
        if lead > 0 || trail > 0 {
            let mut pairs = vec![(0, 0); D];
            pairs[dim] = (lead, trail);
            y = y.pad(pairs, PadMode::Constant(0.0));
        }
    }
    if let Some(bias) = bias {
        let channels = bias.shape()[0];
        let mut dims = [1; D];
        dims[1] = channels;
        y = y + bias.float::<1>()?.reshape(dims);
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn ints(values: &[i64]) -> AttrValue {
        AttrValue::Ints(values.to_vec())
    }

    /// Direct 1-D transposed convolution in f64: `x [c, l]`, `w [c, m, k]`, one group;
    /// `full[o, i * stride + j * dilation] += x[c, i] * w[c, o, j]`, then `out[o, t] = full[o, t + begin]`.
    #[allow(clippy::too_many_arguments)]
    fn reference(x: &[f32], c: usize, l: usize, w: &[f32], m: usize, k: usize, stride: usize, dilation: usize, begin: i64, size: usize, bias: &[f32]) -> Vec<f64> {
        let full_len = (l - 1) * stride + (k - 1) * dilation + 1;
        let mut full = vec![0.0; m * full_len];
        for ci in 0..c {
            for i in 0..l {
                for o in 0..m {
                    for j in 0..k {
                        full[o * full_len + i * stride + j * dilation] += f64::from(x[ci * l + i]) * f64::from(w[(ci * m + o) * k + j]);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for o in 0..m {
            for t in 0..size as i64 {
                let index = t + begin;
                let value = if (0..full_len as i64).contains(&index) { full[o * full_len + index as usize] } else { 0.0 };
                out.push(value + f64::from(bias.get(o).copied().unwrap_or(0.0)));
            }
        }
        out
    }

    fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| ((i * 5) % 7) as f32 * scale - 0.4).collect()
    }

    #[test]
    fn strided_dilated_with_pads_and_output_padding() {
        // l 4, k 3, stride 2, dilation 2: full 11; pads (1, 2), output_padding 1 -> 11 + 1 - 3 = 9.
        let (x, w, b) = (ramp(2 * 4, 0.3), ramp(2 * 3 * 3, 0.2), vec![0.5, -1.0, 0.25]);
        let conv = node(
            "ConvTranspose",
            3,
            1,
            vec![("strides", ints(&[2])), ("dilations", ints(&[2])), ("pads", ints(&[1, 2])), ("output_padding", ints(&[1]))],
        );
        let out = run(&conv, 22, vec![f32_value(&[1, 2, 4], &x), f32_value(&[2, 3, 3], &w), f32_value(&[3], &b)]);
        assert_close(&out[0], &[1, 3, 9], &reference(&x, 2, 4, &w, 3, 3, 2, 2, 1, 9, &b));
    }

    #[test]
    fn output_shape_larger_than_the_full_result_pads_with_zeros_plus_bias() {
        // l 2, k 2, stride 1: full 3; output_shape 6 -> total padding -3, begin = -3 - (-2) = -1.
        let (x, w, b) = (vec![1.0, 2.0], vec![1.0, -1.0], vec![0.5]);
        let conv = node("ConvTranspose", 3, 1, vec![("output_shape", ints(&[6]))]);
        let out = run(&conv, 22, vec![f32_value(&[1, 1, 2], &x), f32_value(&[1, 1, 2], &w), f32_value(&[1], &b)]);
        assert_close(&out[0], &[1, 1, 6], &reference(&x, 1, 2, &w, 1, 2, 1, 1, -1, 6, &b));
    }

    #[test]
    fn two_dimensional_groups_are_independent() {
        // Two groups of one channel each, 1x1 input, 2x2 kernel: each output channel is its
        // input value times its own kernel.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let conv = node("ConvTranspose", 2, 1, vec![("group", AttrValue::Int(2))]);
        let out = run(&conv, 22, vec![f32_value(&[1, 2, 1, 1], &[2.0, -1.0]), f32_value(&[2, 1, 2, 2], &w)]);
        assert_close(&out[0], &[1, 2, 2, 2], &[2.0, 4.0, 6.0, 8.0, -5.0, -6.0, -7.0, -8.0]);
    }

    #[test]
    fn same_upper_gives_input_times_stride() {
        // l 3, stride 2, k 3: full 7, target 6, total 1 -> SAME_UPPER begins at 0.
        let (x, w) = (ramp(3, 0.5), ramp(3, 0.25));
        let conv = node("ConvTranspose", 2, 1, vec![("strides", ints(&[2])), ("auto_pad", AttrValue::String(b"SAME_UPPER".to_vec()))]);
        let out = run(&conv, 22, vec![f32_value(&[1, 1, 3], &x), f32_value(&[1, 1, 3], &w)]);
        assert_close(&out[0], &[1, 1, 6], &reference(&x, 1, 3, &w, 1, 3, 2, 1, 0, 6, &[]));
    }

    #[test]
    fn empty_input_is_an_error() {
        let conv = node("ConvTranspose", 2, 1, vec![]);
        let err = try_run(&conv, 22, vec![f32_value(&[1, 1, 0], &[]), f32_value(&[1, 1, 1], &[1.0])]).unwrap_err();
        assert_eq!(err, "X [1, 1, 0] and W [1, 1, 1] must not be empty");
    }

    #[test]
    fn channel_mismatch_is_an_error() {
        let conv = node("ConvTranspose", 2, 1, vec![]);
        let err = try_run(&conv, 22, vec![f32_value(&[1, 2, 2], &[0.0; 4]), f32_value(&[1, 1, 1], &[1.0])]).unwrap_err();
        assert_eq!(err, "W [1, 1, 1] with group 1 does not fit X [1, 2, 2] of 2 channels");
    }
}
