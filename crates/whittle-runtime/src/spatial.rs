//! The window attributes Conv and the pooling ops share (kernel, strides, dilations, pads,
//! auto_pad), and the pooling kernels themselves.
//!
//! Pooling runs on burn's 2-D kernels for 1, 2 and 3 spatial axes: 1-D as 2-D with a height of 1,
//! 3-D in two passes (height and width, then depth), which is exact because a maximum or a sum over
//! a box is the maximum or sum over one axis of those over the others. Output sizes (floor or ceil
//! mode) are computed here and the ceil-mode extra is passed to burn as end padding, so that burn
//! only ever pools in floor mode and every op gets ONNX's size rule.

use burn_tensor::ops::{ConvOptions, MaxPoolOptions};
use burn_tensor::{module, Int, IntDType, Tensor};
use whittle_ir::DataType;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{fail, NodeContext, OpError};
use crate::value::Value;

/// How padding is chosen (`auto_pad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPad {
    /// The `pads` attribute.
    NotSet,
    /// Output size `ceil(input / stride)`, the odd extra pad at the end.
    SameUpper,
    /// Output size `ceil(input / stride)`, the odd extra pad at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Sliding-window attributes over `spatial` axes, validated at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub auto_pad: AutoPad,
    /// From `kernel_shape`; Conv may infer it from its weights (`None`).
    pub kernel: Option<Vec<usize>>,
    pub strides: Option<Vec<usize>>,
    pub dilations: Option<Vec<usize>>,
    /// `[begin_0, begin_1, ..., end_0, end_1, ...]`, as ONNX orders them.
    pub pads: Option<Vec<usize>>,
}

impl Window {
    pub(crate) fn parse(node: &NodeContext<'_>) -> Result<Window, OpError> {
        let auto_pad = match node.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(OpError::attribute("auto_pad", format!("unknown value '{other}'"))),
        };
        let positive = |name: &str| -> Result<Option<Vec<usize>>, OpError> {
            match node.ints(name)? {
                None => Ok(None),
                Some(values) if values.iter().all(|&value| value >= 1) => {
                    Ok(Some(values.iter().map(|&value| value as usize).collect()))
                }
                Some(values) => Err(OpError::attribute(name, format!("values must be 1 or more, found {values:?}"))),
            }
        };
        let pads = match node.ints("pads")? {
            None => None,
            Some(pads) if pads.iter().all(|&pad| pad >= 0) => Some(pads.iter().map(|&pad| pad as usize).collect()),
            Some(pads) => return Err(OpError::attribute("pads", format!("values must be 0 or more, found {pads:?}"))),
        };
        if pads.is_some() && auto_pad != AutoPad::NotSet {
            return Err(OpError::attribute("pads", "cannot be combined with auto_pad"));
        }
        Ok(Window {
            auto_pad,
            kernel: positive("kernel_shape")?,
            strides: positive("strides")?,
            dilations: positive("dilations")?,
            pads,
        })
    }

    /// The window for an input whose spatial sizes are `input`, with `kernel` (from `kernel_shape`
    /// or the weights). Checks lengths, and that the dilated kernel fits the padded input.
    pub(crate) fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<Resolved, OpError> {
        let axes = input.len();
        let per_axis = |name: &str, values: &Option<Vec<usize>>| -> Result<Vec<usize>, OpError> {
            match values {
                None => Ok(vec![1; axes]),
                Some(values) if values.len() == axes => Ok(values.clone()),
                Some(values) => fail!("{name} {values:?} has {} values for {axes} spatial axes", values.len()),
            }
        };
        if kernel.len() != axes {
            fail!("kernel {kernel:?} has {} sizes for {axes} spatial axes", kernel.len());
        }
        let strides = per_axis("strides", &self.strides)?;
        let dilations = per_axis("dilations", &self.dilations)?;
        let mut padding = Vec::with_capacity(axes);
        for axis in 0..axes {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1;
            padding.push(match self.auto_pad {
                AutoPad::NotSet => match &self.pads {
                    None => (0, 0),
                    Some(pads) if pads.len() == 2 * axes => (pads[axis], pads[axes + axis]),
                    Some(pads) => fail!("pads {pads:?} has {} values for {axes} spatial axes", pads.len()),
                },
                AutoPad::Valid => (0, 0),
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let output = input[axis].div_ceil(strides[axis]);
                    let total = ((output.max(1) - 1) * strides[axis] + extent).saturating_sub(input[axis]);
                    let (small, large) = (total / 2, total - total / 2);
                    if self.auto_pad == AutoPad::SameUpper {
                        (small, large)
                    } else {
                        (large, small)
                    }
                }
            });
            let (begin, end) = padding[axis];
            if input[axis] + begin + end < extent {
                fail!(
                    "window of extent {extent} does not fit spatial axis {axis} of size {} padded by ({begin}, {end})",
                    input[axis]
                );
            }
        }
        Ok(Resolved { kernel: kernel.to_vec(), strides, dilations, padding })
    }
}

/// Refuses each `(attribute, opset)` given in a model whose opset predates it: the pooling ops
/// gained attributes over time, and an older model naming one is malformed.
pub(crate) fn refuse_newer_attributes(node: &NodeContext<'_>, since: &[(&str, i64)]) -> Result<(), OpError> {
    for &(attribute, opset) in since {
        if node.opset < opset && node.node.attribute(attribute).is_some() {
            return Err(OpError::attribute(attribute, format!("exists from opset {opset} on")));
        }
    }
    Ok(())
}

/// A window resolved for one input: one entry per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `(begin, end)`.
    pub padding: Vec<(usize, usize)>,
}

/// A window over exactly two spatial axes, in the array form burn's 2-D kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window2d {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: [(usize, usize); 2],
}

impl Resolved {
    /// The same window as a 2-D one: 1-D windows get a leading axis of size 1, so that the ops can
    /// run every 1-D and 2-D case through burn's 2-D kernels. Callers check that there are at most
    /// two spatial axes.
    pub fn as_2d(&self) -> Window2d {
        let pair = |values: &[usize]| if values.len() == 1 { [1, values[0]] } else { [values[0], values[1]] };
        let padding = if self.padding.len() == 1 { [(0, 0), self.padding[0]] } else { [self.padding[0], self.padding[1]] };
        Window2d { kernel: pair(&self.kernel), strides: pair(&self.strides), dilations: pair(&self.dilations), padding }
    }
}

impl Resolved {
    /// The output size of each axis for `input`: `floor` or, in `ceil_mode`, `ceil` of
    /// `(input + pads - extent) / stride + 1`, where a ceil-mode window that would start inside the
    /// end padding is dropped (ONNX's and torch's rule).
    pub fn output_sizes(&self, input: &[usize], ceil_mode: bool) -> Vec<usize> {
        (0..input.len())
            .map(|axis| {
                let (begin, end) = self.padding[axis];
                let stride = self.strides[axis];
                // `resolve` checked that the extent fits the padded input.
                let span = input[axis] + begin + end - self.extent(axis);
                let mut size = if ceil_mode { span.div_ceil(stride) + 1 } else { span / stride + 1 };
                if ceil_mode && size > 1 && (size - 1) * stride >= input[axis] + begin {
                    size -= 1;
                }
                size
            })
            .collect()
    }

    /// The dilated kernel size along `axis`.
    pub fn extent(&self, axis: usize) -> usize {
        (self.kernel[axis] - 1) * self.dilations[axis] + 1
    }

    /// The padding that gives `output` sizes in floor mode: the ceil-mode extra goes to the end.
    fn floor_padding(&self, input: &[usize], output: &[usize]) -> Vec<(usize, usize)> {
        (0..input.len())
            .map(|axis| {
                let (begin, end) = self.padding[axis];
                let needed = (output[axis] - 1) * self.strides[axis] + self.extent(axis);
                (begin, end + needed.saturating_sub(input[axis] + begin + end))
            })
            .collect()
    }

    /// For each axis, how many window taps of each output position fall on the input (or, with
    /// `include_pad`, on the input or its `pads`, but never on the ceil-mode extra): the divisor of
    /// an average.
    fn tap_counts(&self, input: &[usize], output: &[usize], include_pad: bool) -> Vec<Vec<usize>> {
        (0..input.len())
            .map(|axis| {
                let (begin, end) = self.padding[axis];
                let (low, high) = if include_pad { (0, input[axis] + begin + end) } else { (begin, begin + input[axis]) };
                (0..output[axis])
                    .map(|position| {
                        let start = position * self.strides[axis];
                        (0..self.kernel[axis])
                            .map(|tap| start + tap * self.dilations[axis])
                            .filter(|index| (low..high).contains(index))
                            .count()
                    })
                    .collect()
            })
            .collect()
    }
}

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// The largest element; padding never wins.
    Max,
    /// The mean over the taps on the input, or with `include_pad` also over those on the pads.
    Average { include_pad: bool },
    /// The sum over the taps; pads add 0.
    Sum,
}

/// Pools the float value `x` `[N, C, spatial...]` with 1 to 3 spatial axes over `window` (resolved
/// for `x`), in floor or ceil mode.
pub(crate) fn pool(x: Value, window: &Resolved, ceil_mode: bool, pooling: Pooling) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let shape = x.shape().to_vec();
    let input = &shape[2..];
    let output = window.output_sizes(input, ceil_mode);
    let padding = window.floor_padding(input, &output);
    let (n, c) = (shape[0], shape[1]);
    if n == 0 || c == 0 {
        // burn's kernels refuse zero channels (a convolution of zero groups).
        fail!("X {shape:?} has no samples or channels to pool");
    }
    let axis = |axis: usize| (window.kernel[axis], window.strides[axis], window.dilations[axis], padding[axis]);
    let one = (1, 1, 1, (0, 0));
    let sum = pooling != Pooling::Max;
    let pooled = match input.len() {
        1 => {
            let x = x.reshape(&[n, c, 1, input[0]])?.float::<4>()?;
            Value::from_float(pool2d(x, [one, axis(0)], sum), dtype)?.reshape(&[n, c, output[0]])?
        }
        2 => Value::from_float(pool2d(x.float::<4>()?, [axis(0), axis(1)], sum), dtype)?,
        3 => {
            // Height and width first, with depth folded into the channels, then depth, with height
            // and width folded into one axis.
            let x = x.reshape(&[n, c * input[0], input[1], input[2]])?.float::<4>()?;
            let planes = pool2d(x, [axis(1), axis(2)], sum).reshape([n * c, 1, input[0], output[1] * output[2]]);
            Value::from_float(pool2d(planes, [axis(0), one], sum).reshape([n, c, output[0], output[1], output[2]]), dtype)?
        }
        axes => fail!("{axes}-D pooling is not implemented (X {shape:?})"),
    };
    let Pooling::Average { include_pad } = pooling else {
        return Ok(pooled);
    };
    // The divisor of each output position is the product of its tap counts along the axes.
    let counts = window.tap_counts(input, &output, include_pad);
    let mut divisor = vec![1.0f64];
    for axis_counts in &counts {
        divisor = divisor.iter().flat_map(|&outer| axis_counts.iter().map(move |&count| outer * count as f64)).collect();
    }
    let mut divisor_shape = vec![1, 1];
    divisor_shape.extend_from_slice(&output);
    let divisor = Value::float_from_f64(divisor, &divisor_shape, dtype, &pooled.device())?;
    arithmetic(Arithmetic::Div, pooled, divisor)
}

/// The p-norm of each window, `(sum |x|^p)^(1/p)`, with `sum` the pooling of `|x|^p` (windowed or
/// global): LpPool and GlobalLpPool, which check at plan time that `p` is 1 or more.
pub(crate) fn lp_norm(x: Value, p: i64, sum: impl FnOnce(Value) -> Result<Value, OpError>) -> Result<Value, OpError> {
    let p = p as f64;
    let powered = crate::value::map_float!(x, t => t.abs().powf_scalar(p))?;
    crate::value::map_float!(sum(powered)?, t => t.powf_scalar(1.0 / p))
}

/// Pools the float value `x` `[N, C, spatial...]` over all its spatial axes at once (the Global
/// pooling ops): `[N, C, 1, ...]`. Averages divide by the spatial size.
pub(crate) fn global_pool(x: Value, pooling: Pooling) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let shape = x.shape().to_vec();
    if shape.len() < 3 {
        fail!("X {shape:?} must have rank 3 or more (N, C and spatial axes)");
    }
    let (n, c, size) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    if size == 0 {
        fail!("X {shape:?} has no spatial elements to pool");
    }
    let mut output_shape = vec![n, c];
    output_shape.resize(shape.len(), 1);
    if matches!(pooling, Pooling::Average { .. }) {
        let reduced: Vec<bool> = (0..shape.len()).map(|axis| axis >= 2).collect();
        if let Some(y) = crate::kernels::elementwise::trailing_mean(&x, &reduced, &output_shape)? {
            return Ok(y);
        }
    }
    let x = x.reshape(&[n, c, size])?.float::<3>()?;
    let y = match pooling {
        Pooling::Max => x.max_dim(2),
        Pooling::Average { .. } => x.mean_dim(2),
        Pooling::Sum => x.sum_dim(2),
    };
    Value::from_float(y, dtype)?.reshape(&output_shape)
}

/// Max pooling of the float value `x` `[N, C, spatial...]` with 1 or 2 spatial axes, with the
/// position of each maximum as int64: its flat index in `x`, counting within each plane row-major,
/// or column-major when `column_major`.
pub(crate) fn max_pool_with_indices(
    x: Value,
    window: &Resolved,
    ceil_mode: bool,
    column_major: bool,
) -> Result<(Value, Value), OpError> {
    let dtype = x.dtype();
    let shape = x.shape().to_vec();
    let input = &shape[2..];
    if input.len() > 2 {
        fail!("the Indices output is implemented for 1-D and 2-D pooling only, not {}-D", input.len());
    }
    let output = window.output_sizes(input, ceil_mode);
    let padding = window.floor_padding(input, &output);
    let (n, c) = (shape[0], shape[1]);
    let (height, width) = if input.len() == 1 { (1, input[0]) } else { (input[0], input[1]) };
    let axis = |axis: usize| (window.kernel[axis], window.strides[axis], window.dilations[axis], padding[axis]);
    let [(kh, sh, dh, ph), (kw, sw, dw, pw)] = if input.len() == 1 { [(1, 1, 1, (0, 0)), axis(0)] } else { [axis(0), axis(1)] };
    let options = MaxPoolOptions::new([kh, kw]).with_stride([sh, sw]).with_padding_pairs([ph, pw]).with_dilation([dh, dw]);
    let x = x.reshape(&[n, c, height, width])?.float::<4>()?;
    let device = x.device();
    let (y, indices) = module::max_pool2d_with_indices(x, options);
    // burn counts row-major within each plane, in the device's default integer type.
    let mut indices = indices.cast(IntDType::I64);
    if column_major {
        let (row, column) = (indices.clone().div_scalar(width as i64), indices.remainder_scalar(width as i64));
        indices = column.mul_scalar(height as i64).add(row);
    }
    let planes =
        Tensor::<1, Int>::arange(0..(n * c) as i64, (&device, burn_tensor::DType::I64)).mul_scalar((height * width) as i64);
    let indices = indices.add(planes.reshape([n, c, 1, 1]));
    let mut output_shape = vec![n, c];
    output_shape.extend_from_slice(&output);
    let y = Value::from_float(y, dtype)?.reshape(&output_shape)?;
    let indices = Value::from_int(indices, DataType::I64)?.reshape(&output_shape)?;
    Ok((y, indices))
}

/// One kernel, stride, dilation and `(begin, end)` padding per axis.
type Axis = (usize, usize, usize, (usize, usize));

/// Max or sum pooling of `x [N, C, H, W]` in floor mode. Sums are a depthwise convolution with a
/// kernel of ones (exact, and it takes dilations, which burn's average pooling does not).
fn pool2d(x: Tensor<4>, [height, width]: [Axis; 2], sum: bool) -> Tensor<4> {
    let kernel = [height.0, width.0];
    let strides = [height.1, width.1];
    let dilations = [height.2, width.2];
    let padding = [height.3, width.3];
    if sum {
        let channels = x.dims()[1];
        let ones = Tensor::<4>::ones([channels, 1, kernel[0], kernel[1]], (&x.device(), x.dtype()));
        module::conv2d(x, ones, None, ConvOptions::new_with_padding(strides, padding, dilations, channels))
    } else {
        let options = MaxPoolOptions::new(kernel).with_stride(strides).with_padding_pairs(padding).with_dilation(dilations);
        module::max_pool2d(x, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(auto_pad: AutoPad, strides: Option<Vec<usize>>) -> Window {
        Window { auto_pad, kernel: None, strides, dilations: None, pads: None }
    }

    #[test]
    fn same_padding_puts_the_odd_pad_where_asked() {
        // Input 5, kernel 4, stride 2: output ceil(5 / 2) = 3 needs (3 - 1) * 2 + 4 - 5 = 3 pads.
        let upper = window(AutoPad::SameUpper, Some(vec![2])).resolve(&[5], &[4]).unwrap();
        assert_eq!(upper.padding, vec![(1, 2)]);
        let lower = window(AutoPad::SameLower, Some(vec![2])).resolve(&[5], &[4]).unwrap();
        assert_eq!(lower.padding, vec![(2, 1)]);
    }

    #[test]
    fn pads_are_begins_then_ends() {
        let window = Window { pads: Some(vec![1, 2, 3, 4]), ..window(AutoPad::NotSet, None) };
        assert_eq!(window.resolve(&[8, 8], &[3, 3]).unwrap().padding, vec![(1, 3), (2, 4)]);
        let err = window.resolve(&[8], &[3]).unwrap_err();
        assert_eq!(err.reason, "pads [1, 2, 3, 4] has 4 values for 1 spatial axes");
    }

    #[test]
    fn kernel_larger_than_the_input_is_an_error() {
        let err = window(AutoPad::Valid, None).resolve(&[2], &[3]).unwrap_err();
        assert_eq!(err.reason, "window of extent 3 does not fit spatial axis 0 of size 2 padded by (0, 0)");
    }
}
