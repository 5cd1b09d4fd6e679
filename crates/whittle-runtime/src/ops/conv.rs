//! Conv: N-D convolution with groups, dilations and padding (<https://onnx.ai/onnx/operators/onnx__Conv.html>).
//!
//! Opsets 1, 11 and 22 differ only in types. Inputs: X `[N, C, spatial...]`, W
//! `[M, C / group, kernel...]`, optional B `[M]`. This runtime runs 1-D and 2-D convolutions on
//! burn's conv2d (1-D as 2-D with a height of 1, a free reshape) and 3-D ones on conv3d, which
//! pads symmetrically only: asymmetric 3-D padding is applied to X first, as zeros.
//!
//! On burn-flex, f32 1-D and 2-D convolutions run on whittle's own kernel instead
//! ([`crate::kernels::conv`]), with constant weights packed once here at plan time; 3-D ones,
//! other dtypes and other devices stay on burn.

use std::ops::RangeInclusive;

use burn_tensor::module;
use burn_tensor::ops::{ConvOptions, PadMode};

use crate::kernels::conv::{self as kernel, Conv2d, PackedConv, Weights};
use crate::kernels::{self, activate_burn, Activation};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{Resolved, Window, Window2d};
use crate::value::Value;

/// `Y = conv(X, W) + B`, then the activation fused into it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    pub window: Window,
    pub group: usize,
    /// The weights packed for the f32 kernel, when they are a constant of 1-D or 2-D shape.
    pub(crate) packed: Option<PackedConv>,
    /// An activation the planner fused into this node (see `crate::fuse`).
    pub(crate) activation: Option<Activation>,
}

impl Operator for Conv {
    const OP_TYPE: &'static str = "Conv";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let group = node.int("group", 1)?;
        if group < 1 {
            return Err(OpError::attribute("group", format!("must be 1 or more, found {group}")));
        }
        let group = group as usize;
        let packed = node
            .constant_input(1)
            .and_then(kernels::constant_f32)
            .and_then(|(weights, dims)| pack_constant_weights(&weights, &dims, group));
        Ok(Conv { window: Window::parse(node)?, group, packed, activation: None })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, w, b) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let dtype = x.dtype();
        if w.dtype() != dtype || b.as_ref().is_some_and(|b| b.dtype() != dtype) {
            fail!("X, W and B must share one dtype, got {}, {} and {}", dtype, w.dtype(), b.as_ref().map_or("none".into(), |b| b.dtype().to_string()));
        }
        let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
        let window = resolve_conv(&self.window, self.group, &x_shape, &w_shape, b.as_ref().map(Value::shape))?;
        let spatial = x_shape.len() - 2;
        if spatial > 3 {
            fail!("{spatial}-D convolution is not implemented (X {x_shape:?})");
        }
        if spatial == 3 {
            let three = |values: &[usize]| [values[0], values[1], values[2]];
            let (mut x, mut padding) = (x.float::<5>()?, [0; 3]);
            if window.padding.iter().all(|(begin, end)| begin == end) {
                padding = three(&window.padding.iter().map(|&(begin, _)| begin).collect::<Vec<_>>());
            } else {
                x = x.pad(window.padding.clone(), PadMode::Constant(0.0));
            }
            let options = ConvOptions::new(three(&window.strides), padding, three(&window.dilations), self.group);
            let b = b.map(|b| b.float::<1>()).transpose()?;
            let y = Value::from_float(module::conv3d(x, w.float::<5>()?, b, options), dtype)?;
            return Ok(vec![activate_burn(y, self.activation)?]);
        }
        let window = window.as_2d();
        let four = |shape: &[usize]| if spatial == 1 { [shape[0], shape[1], 1, shape[2]] } else { [shape[0], shape[1], shape[2], shape[3]] };
        if let Some(y) = self.run_kernel(&x, &w, b.as_ref(), four(&x_shape), four(&w_shape), window)? {
            let [n, m, _, width] = y.shape() else { fail!("the conv kernel returned shape {:?}", y.shape()) };
            let shape = [*n, *m, *width];
            return Ok(vec![if spatial == 1 { y.reshape(&shape)? } else { y }]);
        }
        let as_4d = |value: Value, shape: &[usize]| -> Result<Value, OpError> {
            if spatial == 1 {
                value.reshape(&[shape[0], shape[1], 1, shape[2]])
            } else {
                Ok(value)
            }
        };
        let x = as_4d(x, &x_shape)?.float::<4>()?;
        let w = as_4d(w, &w_shape)?.float::<4>()?;
        let b = b.map(|b| b.float::<1>()).transpose()?;
        let y = module::conv2d(x, w, b, ConvOptions::new_with_padding(window.strides, window.padding, window.dilations, self.group));
        let y = activate_burn(Value::from_float(y, dtype)?, self.activation)?;
        if spatial == 1 {
            let [n, m, _, width] = y.shape() else { fail!("conv2d returned shape {:?}", y.shape()) };
            let shape = [*n, *m, *width];
            return Ok(vec![y.reshape(&shape)?]);
        }
        Ok(vec![y])
    }
}

impl Conv {
    /// Runs a checked 1-D or 2-D convolution (as 2-D, shapes `x_shape` and `w_shape`) on whittle's
    /// f32 kernel; `None` when it does not apply (not flex, not f32, an image too large for its
    /// offsets), and burn's conv2d runs instead.
    fn run_kernel(
        &self,
        x: &Value,
        w: &Value,
        b: Option<&Value>,
        x_shape: [usize; 4],
        w_shape: [usize; 4],
        window: Window2d,
    ) -> Result<Option<Value>, OpError> {
        let Some(x_tensor) = kernels::flex_f32(x) else { return Ok(None) };
        let bias_tensor = match b.map(kernels::flex_f32) {
            Some(None) => return Ok(None),
            bias => bias.flatten(),
        };
        if !kernel::fits_offsets(x_shape, w_shape, &window) {
            return Ok(None);
        }
        let packed = self.packed.as_ref().filter(|packed| packed.shape == w_shape);
        let w_tensor = match packed {
            Some(_) => None,
            None => match kernels::flex_f32(w) {
                Some(tensor) => Some(tensor),
                None => return Ok(None),
            },
        };
        let w_values = w_tensor.as_ref().map(kernels::contiguous);
        let weights = match (packed, &w_values) {
            (Some(packed), _) => Weights::Packed(packed),
            (None, Some(values)) => Weights::Plain(values),
            (None, None) => return Ok(None),
        };
        let (x_values, bias_values) = (kernels::contiguous(&x_tensor), bias_tensor.as_ref().map(kernels::contiguous));
        let conv = Conv2d {
            x: &x_values,
            x_shape,
            weights,
            w_shape,
            bias: bias_values.as_deref(),
            window,
            group: self.group,
            activation: self.activation,
        };
        Ok(Some(kernels::output(conv.run()?, &conv.output_shape())?))
    }
}

/// Packs constant f32 weights of `dims` for the kernel, when they are 1-D or 2-D convolution
/// weights that `group` divides; `None` otherwise (the op then reads W at run time).
pub(crate) fn pack_constant_weights(weights: &[f32], dims: &[usize], group: usize) -> Option<PackedConv> {
    let shape = match dims[..] {
        [m, c, kh, kw] => [m, c, kh, kw],
        [m, c, k] => [m, c, 1, k],
        _ => return None,
    };
    let fits = shape[0] % group == 0 && !shape.contains(&0) && weights.len() == shape.iter().product::<usize>();
    fits.then(|| kernel::pack_weights(weights, shape, group))
}

/// Checks the shapes of a convolution's data `x` `[N, C, spatial...]`, weights `w`
/// `[M, C / group, kernel...]` and optional bias `[M]`, and resolves the window for them. Shared by
/// Conv, ConvInteger and QLinearConv.
pub(crate) fn resolve_conv(
    window: &Window,
    group: usize,
    x_shape: &[usize],
    w_shape: &[usize],
    b_shape: Option<&[usize]>,
) -> Result<Resolved, OpError> {
    if x_shape.len() < 3 || w_shape.len() != x_shape.len() {
        fail!("X {x_shape:?} and W {w_shape:?} must have the same rank, 3 or more");
    }
    let (channels, filters) = (x_shape[1], w_shape[0]);
    if w_shape[1] * group != channels || filters % group != 0 {
        fail!("W {w_shape:?} with group {group} does not fit X {x_shape:?} of {channels} channels");
    }
    if let Some(b_shape) = b_shape {
        if b_shape != [filters] {
            fail!("B {b_shape:?} must have one value per filter ({filters})");
        }
    }
    let kernel = &w_shape[2..];
    if kernel.contains(&0) {
        fail!("W {w_shape:?} has an empty kernel");
    }
    if let Some(declared) = &window.kernel {
        if declared.as_slice() != kernel {
            fail!("kernel_shape {declared:?} does not match W {w_shape:?}");
        }
    }
    window.resolve(&x_shape[2..], kernel)
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    /// Direct 2-D convolution in f64: `x [n, c, h, w]`, `weights [m, c / group, kh, kw]`.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        weights: &[f32],
        [m, kh, kw]: [usize; 3],
        bias: &[f32],
        stride: usize,
        pad: (usize, usize),
        dilation: usize,
        group: usize,
    ) -> (Vec<f64>, [usize; 4]) {
        let extent = |k: usize| (k - 1) * dilation + 1;
        let oh = (h + 2 * pad.0 - extent(kh)) / stride + 1;
        let ow = (w + 2 * pad.1 - extent(kw)) / stride + 1;
        let out = reference_conv2d(
            [n, c, h, w],
            [m, c / group, kh, kw],
            [oh, ow],
            [stride; 2],
            [dilation; 2],
            [pad.0, pad.1],
            |f| f64::from(bias.get(f).copied().unwrap_or(0.0)),
            |xi, wi, _| f64::from(x[xi]) * f64::from(weights[wi]),
        );
        (out, [n, m, oh, ow])
    }

    fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| ((i * 7) % 11) as f32 * scale - 0.5).collect()
    }

    #[test]
    fn padded_3x3_like_the_cnn_fixture() {
        let (x, w, b) = (ramp(2 * 2 * 5 * 5, 0.1), ramp(3 * 2 * 3 * 3, 0.05), vec![0.5, -0.25, 0.0]);
        let conv = node("Conv", 3, 1, vec![("pads", AttrValue::Ints(vec![1, 1, 1, 1])), ("kernel_shape", AttrValue::Ints(vec![3, 3]))]);
        let out = run(&conv, 18, vec![f32_value(&[2, 2, 5, 5], &x), f32_value(&[3, 2, 3, 3], &w), f32_value(&[3], &b)]);
        let (expected, dims) = reference(&x, [2, 2, 5, 5], &w, [3, 3, 3], &b, 1, (1, 1), 1, 1);
        assert_close(&out[0], &dims, &expected);
    }

    #[test]
    fn strided_dilated_grouped() {
        // 4 channels in 2 groups, 2 filters per group, stride 2, dilation 2, no bias.
        let (x, w) = (ramp(4 * 7 * 7, 0.1), ramp(4 * 2 * 2 * 2, 0.05));
        let conv = node(
            "Conv",
            2,
            1,
            vec![("strides", AttrValue::Ints(vec![2, 2])), ("dilations", AttrValue::Ints(vec![2, 2])), ("group", AttrValue::Int(2))],
        );
        let out = run(&conv, 18, vec![f32_value(&[1, 4, 7, 7], &x), f32_value(&[4, 2, 2, 2], &w)]);
        let (expected, dims) = reference(&x, [1, 4, 7, 7], &w, [4, 2, 2], &[], 2, (0, 0), 2, 2);
        assert_close(&out[0], &dims, &expected);
    }

    #[test]
    fn one_dimensional_runs_as_two_dimensional() {
        // x = [1, 2, 3, 4], kernel [1, -1], pads (1, 0): [0 - 1, 1 - 2, 2 - 3, 3 - 4] = [-1, -1, -1, -1].
        let conv = node("Conv", 2, 1, vec![("pads", AttrValue::Ints(vec![1, 0]))]);
        let out = run(&conv, 18, vec![f32_value(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[1, 1, 2], &[1.0, -1.0])]);
        assert_close(&out[0], &[1, 1, 4], &[-1.0, -1.0, -1.0, -1.0]);
    }

    #[test]
    fn three_dimensional_with_asymmetric_pads() {
        // A 1x1x2 kernel [1, -1] over a 2x1x3 ramp, pads 1 before the width axis only: each row
        // [a, b, c] gives [0 - a, a - b, b - c] = [-a, -1, -1].
        let conv = node("Conv", 2, 1, vec![("pads", AttrValue::Ints(vec![0, 0, 1, 0, 0, 0]))]);
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let out = run(&conv, 22, vec![f32_value(&[1, 1, 2, 1, 3], &x), f32_value(&[1, 1, 1, 1, 2], &[1.0, -1.0])]);
        assert_close(&out[0], &[1, 1, 2, 1, 3], &[0.0, -1.0, -1.0, -3.0, -1.0, -1.0]);
    }

    #[test]
    fn channel_mismatch_is_an_error() {
        let err = try_run(&node("Conv", 2, 1, vec![]), 18, vec![f32_value(&[1, 2, 3, 3], &[0.0; 18]), f32_value(&[1, 1, 1, 1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "W [1, 1, 1, 1] with group 1 does not fit X [1, 2, 3, 3] of 2 channels");
    }
}
