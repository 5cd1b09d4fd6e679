//! Resize: nearest, linear and cubic resampling (<https://onnx.ai/onnx/operators/onnx__Resize.html>).
//!
//! Opset 11 added the roi input, `coordinate_transformation_mode`, cubic mode and its attributes,
//! and `nearest_mode`; 13 made roi and scales optional; 18 added `axes`, `antialias` and
//! `keep_aspect_ratio_policy`; 19 the `half_pixel_symmetric` mode. Opsets 11 to 28 are implemented
//! as one definition (absent attributes take their defaults), and opset 10, whose Resize is
//! Upsample under a new name (inputs X and scales, `mode` only), as Upsample: asymmetric
//! coordinates, nearest rounding down. `tf_crop_and_resize` reads the region of interest from the
//! roi input and fills output positions that map outside the input with `extrapolation_value`.
//!
//! Resampling is separable, so it runs one axis at a time, on any rank: the weights of each output
//! position over the input positions are computed on the host in f64 (the spec's coordinate
//! transforms, rounding rules and kernels, edge clamping, `exclude_outside` and antialiasing), then
//! applied as a gather (nearest: exact, any dtype) or a matrix product along the axis (linear and
//! cubic, floats only). Upsample reuses [`resample`].

use std::ops::RangeInclusive;

use burn_tensor::{Int, Tensor, TensorData};

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, with_rank, ElementKind, Value};

/// How output values are interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nearest,
    Linear,
    Cubic,
}

/// How an output coordinate maps to an input coordinate (`coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

/// How nearest mode rounds a fractional input coordinate (`nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// How sizes for several axes keep the aspect ratio (`keep_aspect_ratio_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Everything about resampling except the sizes: shared by Resize and Upsample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub mode: Mode,
    pub transform: Transform,
    pub rounding: Rounding,
    pub cubic_coeff_a: f64,
    pub exclude_outside: bool,
    pub antialias: bool,
    /// The value of positions outside the input in `tf_crop_and_resize` mode.
    pub extrapolation_value: f64,
}

impl Sampling {
    /// Upsample's (and Resize 10's) sampling: asymmetric coordinates, nearest rounding down.
    pub(crate) fn upsample(mode: Mode) -> Sampling {
        Sampling {
            mode,
            transform: Transform::Asymmetric,
            rounding: Rounding::Floor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            antialias: false,
            extrapolation_value: 0.0,
        }
    }
}

/// Parses `mode` as nearest or linear (Upsample and Resize 10), or also cubic.
pub(crate) fn parse_mode(node: &NodeContext<'_>, cubic: bool) -> Result<Mode, OpError> {
    match node.string("mode", "nearest")?.as_str() {
        "nearest" => Ok(Mode::Nearest),
        "linear" => Ok(Mode::Linear),
        "cubic" if cubic => Ok(Mode::Cubic),
        other => Err(OpError::attribute("mode", format!("unknown or unsupported value '{other}'"))),
    }
}

/// `Y = X` resampled to new sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    pub sampling: Sampling,
    pub axes: Option<Vec<i64>>,
    pub policy: AspectPolicy,
    /// Opset 10: inputs X and scales only.
    pub legacy: bool,
}

impl Operator for Resize {
    const OP_TYPE: &'static str = "Resize";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[
        "antialias",
        "axes",
        "coordinate_transformation_mode",
        "cubic_coeff_a",
        "exclude_outside",
        "extrapolation_value",
        "keep_aspect_ratio_policy",
        "mode",
        "nearest_mode",
    ];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset < 11 {
            if let Some(other) = node.node.attributes.iter().find(|attribute| attribute.name != "mode") {
                return Err(OpError::attribute(&other.name, "exists from opset 11 on"));
            }
            let sampling = Sampling::upsample(parse_mode(node, false)?);
            return Ok(Resize { sampling, axes: None, policy: AspectPolicy::Stretch, legacy: true });
        }
        let transform = match node.string("coordinate_transformation_mode", "half_pixel")?.as_str() {
            "half_pixel" => Transform::HalfPixel,
            "half_pixel_symmetric" if node.opset >= 19 => Transform::HalfPixelSymmetric,
            "pytorch_half_pixel" => Transform::PytorchHalfPixel,
            "align_corners" => Transform::AlignCorners,
            "asymmetric" => Transform::Asymmetric,
            "tf_crop_and_resize" => Transform::TfCropAndResize,
            other => return Err(OpError::attribute("coordinate_transformation_mode", format!("unknown value '{other}'"))),
        };
        let rounding = match node.string("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => Rounding::RoundPreferFloor,
            "round_prefer_ceil" => Rounding::RoundPreferCeil,
            "floor" => Rounding::Floor,
            "ceil" => Rounding::Ceil,
            other => return Err(OpError::attribute("nearest_mode", format!("unknown value '{other}'"))),
        };
        let policy = match node.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
            "stretch" => AspectPolicy::Stretch,
            "not_larger" => AspectPolicy::NotLarger,
            "not_smaller" => AspectPolicy::NotSmaller,
            other => return Err(OpError::attribute("keep_aspect_ratio_policy", format!("unknown value '{other}'"))),
        };
        let mode = parse_mode(node, true)?;
        let antialias = node.flag("antialias", false)?;
        if antialias && mode == Mode::Nearest {
            return Err(OpError::attribute("antialias", "applies to linear and cubic modes only"));
        }
        let sampling = Sampling {
            mode,
            transform,
            rounding,
            cubic_coeff_a: f64::from(node.float("cubic_coeff_a", -0.75)?),
            exclude_outside: node.flag("exclude_outside", false)?,
            antialias,
            extrapolation_value: f64::from(node.float("extrapolation_value", 0.0)?),
        };
        Ok(Resize { sampling, axes: node.ints("axes")?, policy, legacy: false })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let shape = x.shape().to_vec();
        let rank = shape.len();
        // An input given as an empty tensor counts as absent (opsets 11 and 12 required the names).
        let present = |value: Option<Value>| value.filter(|value| value.element_count() > 0);
        let (roi, scales, sizes) = if self.legacy {
            (None, present(inputs.take_optional(1)), None)
        } else {
            (present(inputs.take_optional(1)), present(inputs.take_optional(2)), present(inputs.take_optional(3)))
        };
        let axes = match &self.axes {
            None => (0..rank).collect::<Vec<_>>(),
            Some(axes) => {
                let axes = axes.iter().map(|&axis| normalize_axis(axis, rank)).collect::<Result<Vec<_>, _>>()?;
                if (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
                    fail!("axes {:?} repeat an axis", self.axes.as_deref().unwrap_or_default());
                }
                axes
            }
        };
        let mut scale = vec![1.0; rank];
        let mut size = shape.clone();
        match (scales, sizes) {
            (Some(scales), None) => {
                let scales = scales.to_f64_vec()?;
                if scales.len() != axes.len() {
                    fail!("scales {scales:?} has {} values for {} axes", scales.len(), axes.len());
                }
                for (&axis, &value) in axes.iter().zip(&scales) {
                    if !(value > 0.0 && value.is_finite()) {
                        fail!("scales {scales:?} must be positive");
                    }
                    scale[axis] = value;
                    size[axis] = (shape[axis] as f64 * value).floor() as usize;
                }
            }
            (None, Some(sizes)) => {
                let sizes = sizes.to_i64_vec()?;
                if sizes.len() != axes.len() || sizes.iter().any(|&value| value < 0) {
                    fail!("sizes {sizes:?} must give one size of 0 or more for each of {} axes", axes.len());
                }
                let ratios: Vec<f64> = axes.iter().zip(&sizes).map(|(&axis, &value)| value as f64 / shape[axis] as f64).collect();
                let common = match self.policy {
                    AspectPolicy::Stretch => None,
                    AspectPolicy::NotLarger => ratios.iter().copied().reduce(f64::min),
                    AspectPolicy::NotSmaller => ratios.iter().copied().reduce(f64::max),
                };
                for (index, &axis) in axes.iter().enumerate() {
                    match common {
                        None => {
                            scale[axis] = ratios[index];
                            size[axis] = sizes[index] as usize;
                        }
                        Some(common) => {
                            scale[axis] = common;
                            // Rounded half up, as the spec's policies do.
                            size[axis] = (common * shape[axis] as f64 + 0.5).floor() as usize;
                        }
                    }
                }
            }
            (Some(_), Some(_)) => fail!("only one of scales and sizes may be given"),
            (None, None) => fail!("one of scales and sizes must be given"),
        }
        // The region of interest, `[starts..., ends...]` over the resized axes; only
        // tf_crop_and_resize reads it.
        let mut region = vec![(0.0, 1.0); rank];
        if let (Transform::TfCropAndResize, Some(roi)) = (self.sampling.transform, roi) {
            let roi = roi.to_f64_vec()?;
            if roi.len() != 2 * axes.len() {
                fail!("roi {roi:?} has {} values, expected {} for {} axes", roi.len(), 2 * axes.len(), axes.len());
            }
            for (index, &axis) in axes.iter().enumerate() {
                region[axis] = (roi[index], roi[axes.len() + index]);
            }
        } else if self.sampling.transform == Transform::TfCropAndResize {
            fail!("tf_crop_and_resize needs the roi input");
        }
        Ok(vec![resample(x, &self.sampling, &scale, &size, &region)?])
    }
}

/// Resamples `x` to `sizes`, with `scales` the per-axis factors the coordinate transforms use and
/// `region` the `(start, end)` of each axis that tf_crop_and_resize reads. Axes whose size, scale
/// and region stay the same are left alone.
pub(crate) fn resample(x: Value, sampling: &Sampling, scales: &[f64], sizes: &[usize], region: &[(f64, f64)]) -> Result<Value, OpError> {
    let shape = x.shape().to_vec();
    let mut y = x;
    for axis in 0..shape.len() {
        let whole = sampling.transform != Transform::TfCropAndResize || region[axis] == (0.0, 1.0);
        if sizes[axis] == shape[axis] && scales[axis] == 1.0 && whole {
            continue;
        }
        if shape[axis] == 0 || sizes[axis] == 0 {
            fail!("cannot resize axis {axis} from {} to {}", shape[axis], sizes[axis]);
        }
        let taps = taps(sampling, shape[axis], sizes[axis], scales[axis], region[axis]);
        y = apply(y, axis, sampling, &taps, sizes[axis])?;
    }
    Ok(y)
}

/// For each output position, the input positions (clamped to the axis) and their weights; none
/// for a position that tf_crop_and_resize extrapolates.
fn taps(sampling: &Sampling, input: usize, output: usize, scale: f64, (start, end): (f64, f64)) -> Vec<Vec<(usize, f64)>> {
    // The length the scale would give unrounded, which the spec's transforms use.
    let resized = scale * input as f64;
    let (input_f, output_f) = (input as f64, output as f64);
    let coordinate = |y: f64| -> f64 {
        match sampling.transform {
            Transform::HalfPixel => (y + 0.5) / scale - 0.5,
            Transform::HalfPixelSymmetric => {
                let offset = input_f / 2.0 * (1.0 - output_f / resized);
                offset + (y + 0.5) / scale - 0.5
            }
            // onnx's reference gives -0.5 for a single output; the spec's text says 0. Both clamp
            // linear and nearest sampling to the first element.
            Transform::PytorchHalfPixel if resized == 1.0 => -0.5,
            Transform::PytorchHalfPixel => (y + 0.5) / scale - 0.5,
            Transform::AlignCorners if resized == 1.0 => 0.0,
            Transform::AlignCorners => y * (input_f - 1.0) / (resized - 1.0),
            Transform::Asymmetric => y / scale,
            Transform::TfCropAndResize if resized == 1.0 => (end - start) * (input_f - 1.0) / 2.0 + start * (input_f - 1.0),
            Transform::TfCropAndResize => y * (end - start) * (input_f - 1.0) / (resized - 1.0) + start * (input_f - 1.0),
        }
    };
    let clamp = |index: i64| index.clamp(0, input as i64 - 1) as usize;
    (0..output)
        .map(|y| {
            let x = coordinate(y as f64);
            if sampling.transform == Transform::TfCropAndResize && !(0.0..=input_f - 1.0).contains(&x) {
                return Vec::new();
            }
            // The input position at or left of x and the fraction past it, in (0, 1]: an exact
            // position counts as a fraction of 1 past the one before, as the spec's kernels expect.
            let floor = x.floor();
            let (base, ratio) = if x == floor { (floor as i64 - 1, 1.0) } else { (floor as i64, x - floor) };
            if sampling.mode == Mode::Nearest {
                let up = ratio == 1.0
                    || match sampling.rounding {
                        Rounding::RoundPreferFloor => ratio > 0.5,
                        Rounding::RoundPreferCeil => ratio >= 0.5,
                        Rounding::Floor => false,
                        Rounding::Ceil => true,
                    };
                return vec![(clamp(base + i64::from(up)), 1.0)];
            }
            // Antialiasing widens the kernel by 1 / scale when shrinking.
            let stretch = if sampling.antialias { scale.min(1.0) } else { 1.0 };
            let (support, kernel): (f64, Box<dyn Fn(f64) -> f64>) = match sampling.mode {
                Mode::Linear => (1.0, Box::new(|d: f64| (1.0 - d.abs()).max(0.0))),
                _ => {
                    let a = sampling.cubic_coeff_a;
                    (
                        2.0,
                        Box::new(move |d: f64| {
                            let d = d.abs();
                            if d <= 1.0 {
                                ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                            } else if d < 2.0 {
                                ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                            } else {
                                0.0
                            }
                        }),
                    )
                }
            };
            let start = (-support / stretch).floor() as i64 + 1;
            let mut weights: Vec<(i64, f64)> = (start..2 - start).map(|i| (base + i, kernel((i as f64 - ratio) * stretch))).collect();
            if sampling.exclude_outside {
                for (index, weight) in &mut weights {
                    if !(0..input as i64).contains(index) {
                        *weight = 0.0;
                    }
                }
            }
            if sampling.antialias || sampling.exclude_outside {
                let sum: f64 = weights.iter().map(|(_, weight)| weight).sum();
                if sum != 0.0 {
                    weights.iter_mut().for_each(|(_, weight)| *weight /= sum);
                }
            }
            weights.into_iter().map(|(index, weight)| (clamp(index), weight)).collect()
        })
        .collect()
}

/// Applies `taps` along `axis` of `x`: a gather for nearest mode, else a matrix product; then
/// fills the positions without taps with the extrapolation value.
fn apply(x: Value, axis: usize, sampling: &Sampling, taps: &[Vec<(usize, f64)>], output: usize) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let device = x.device();
    let extrapolated: Vec<f64> = taps.iter().map(|taps| if taps.is_empty() { 1.0 } else { 0.0 }).collect();
    let y = interpolate(x, axis, sampling.mode, taps, output)?;
    if !extrapolated.contains(&1.0) {
        return Ok(y);
    }
    if y.kind() != ElementKind::Float {
        fail!("tf_crop_and_resize extrapolates floats only, not {dtype}");
    }
    let mut mask_shape = vec![1; y.rank()];
    mask_shape[axis] = output;
    let mask = Value::float_from_f64(extrapolated, &mask_shape, dtype, &device)?;
    let value = sampling.extrapolation_value;
    Ok(with_rank!(y.rank(), D => {
        let y = y.float::<D>()?;
        let mask = mask.float::<D>()?.expand(y.dims()).equal_elem(1.0);
        Value::from_float(y.mask_fill(mask, value), dtype)?
    }))
}

fn interpolate(x: Value, axis: usize, mode: Mode, taps: &[Vec<(usize, f64)>], output: usize) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let device = x.device();
    let input = x.shape()[axis];
    let rank = x.rank();
    if mode == Mode::Nearest {
        // An extrapolated position reads element 0 and is overwritten afterwards.
        let indices: Vec<i64> = taps.iter().map(|taps| taps.first().map_or(0, |tap| tap.0 as i64)).collect();
        let indices = Tensor::<1, Int>::from_data(TensorData::new(indices, [output]), (&device, burn_tensor::DType::I64));
        return Ok(with_rank!(rank, D => match x.kind() {
            ElementKind::Float => Value::from_float(x.float::<D>()?.select(axis, indices), dtype)?,
            ElementKind::Int => Value::from_int(x.int::<D>()?.select(axis, indices), dtype)?,
            ElementKind::Bool => fail!("Resize of bool tensors is not implemented"),
        }));
    }
    if x.kind() != ElementKind::Float {
        fail!("linear and cubic Resize take floats, not {dtype}");
    }
    let mut matrix = vec![0.0; input * output];
    for (column, taps) in taps.iter().enumerate() {
        for &(row, weight) in taps {
            matrix[row * output + column] += weight;
        }
    }
    let Some((burn, _)) = burn_dtype(dtype) else { fail!("dtype {dtype} has no burn type") };
    let matrix = Tensor::<2>::from_data(TensorData::new(matrix, [input, output]), (&device, burn));
    Ok(with_rank!(rank, D => {
        // The axis goes last, the others fold into rows, and one product resamples them all.
        let moved = x.float::<D>()?.swap_dims(axis, D - 1);
        let mut dims = moved.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let resampled = moved.reshape([rows, input]).matmul(matrix);
        dims[D - 1] = output;
        Value::from_float(resampled.reshape(dims).swap_dims(axis, D - 1), dtype)?
    }))
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn text(value: &str) -> AttrValue {
        AttrValue::String(value.as_bytes().to_vec())
    }

    fn scales(values: &[f32]) -> crate::value::Value {
        f32_value(&[values.len() as i64], values)
    }

    #[test]
    fn nearest_upsample_repeats_elements() {
        // half_pixel, round_prefer_floor, scale 2: output j maps to (j + 0.5) / 2 - 0.5, i.e.
        // -0.25, 0.25, 0.75, 1.25 -> 0, 0, 1, 1.
        let resize = node("Resize", 3, 1, vec![("mode", text("nearest"))]);
        let out = run(&resize, 19, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[0], &[]), scales(&[1.0, 2.0])]);
        assert_close(&out[0], &[1, 4], &[1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn linear_half_pixel_and_align_corners() {
        // [0, 3] to 4 with half_pixel: coordinates -0.25, 0.25, 0.75, 1.25 clamp to [0, 0.75, 2.25, 3].
        let x = || f32_value(&[1, 2], &[0.0, 3.0]);
        let half = node("Resize", 3, 1, vec![("mode", text("linear"))]);
        let out = run(&half, 19, vec![x(), f32_value(&[0], &[]), scales(&[1.0, 2.0])]);
        assert_close(&out[0], &[1, 4], &[0.0, 0.75, 2.25, 3.0]);
        // align_corners: coordinates j * (2 - 1) / (4 - 1) = 0, 1/3, 2/3, 1 -> 0, 1, 2, 3.
        let corners = node("Resize", 4, 1, vec![("mode", text("linear")), ("coordinate_transformation_mode", text("align_corners"))]);
        let out = run(&corners, 19, vec![x(), f32_value(&[0], &[]), f32_value(&[0], &[]), i64_value(&[2], &[1, 4])]);
        assert_close(&out[0], &[1, 4], &[0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn cubic_asymmetric_matches_the_keys_kernel() {
        // x = [0, 1, 8, 27] (j^3), scale 2, asymmetric: output 1 sits at 0.5 between inputs 0 and 1,
        // with taps -1..=2 (clamped: index -1 reads x[0]) and A = -0.75 weights at distances
        // 1.5, 0.5, 0.5, 1.5.
        let a = -0.75f64;
        let near = |d: f64| ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
        let far = |d: f64| ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a;
        let x = [0.0f32, 1.0, 8.0, 27.0];
        let xf = x.map(f64::from);
        let resize = node("Resize", 3, 1, vec![("mode", text("cubic")), ("coordinate_transformation_mode", text("asymmetric"))]);
        let out = run(&resize, 19, vec![f32_value(&[4], &x), f32_value(&[0], &[]), scales(&[2.0])]);
        let at_half = far(1.5) * xf[0] + near(0.5) * xf[0] + near(0.5) * xf[1] + far(1.5) * xf[2];
        let values = out[0].to_f32_vec().unwrap();
        assert_eq!(out[0].shape(), &[8]);
        assert!((f64::from(values[1]) - at_half).abs() < 1e-5, "{values:?} vs {at_half}");
        // Exact positions reproduce the input.
        assert_eq!([values[0], values[2], values[4], values[6]], [0.0, 1.0, 8.0, 27.0]);
    }

    #[test]
    fn nearest_keeps_integer_dtypes_and_axes_select_the_resized_ones() {
        let resize = node("Resize", 4, 1, vec![("axes", AttrValue::Ints(vec![-1]))]);
        let x = i64_value(&[2, 2], &[1, 2, 3, 4]);
        let out = run(&resize, 19, vec![x, f32_value(&[0], &[]), f32_value(&[0], &[]), i64_value(&[1], &[1])]);
        // Width 2 -> 1 with scale 0.5: coordinate (0 + 0.5) / 0.5 - 0.5 = 0.5, rounded down to 0.
        assert_eq!(out[0].shape(), &[2, 1]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 3]);
    }

    #[test]
    fn crop_and_resize_extrapolates_outside_the_region() {
        // x = [0, 10, 20], roi [0.5, 1.5] to 3 outputs, linear: coordinates
        // j * (1.5 - 0.5) * 2 / 2 + 0.5 * 2 = 1, 2, 3; the last is past the input and gets -1.
        let crop = node(
            "Resize",
            4,
            1,
            vec![
                ("mode", text("linear")),
                ("coordinate_transformation_mode", text("tf_crop_and_resize")),
                ("extrapolation_value", AttrValue::Float(-1.0)),
            ],
        );
        let out = run(&crop, 19, vec![f32_value(&[3], &[0.0, 10.0, 20.0]), f32_value(&[2], &[0.5, 1.5]), f32_value(&[0], &[]), i64_value(&[1], &[3])]);
        assert_close(&out[0], &[3], &[10.0, 20.0, -1.0]);
    }

    #[test]
    fn errors() {
        let crop = node("Resize", 3, 1, vec![("coordinate_transformation_mode", text("tf_crop_and_resize"))]);
        let err = try_run(&crop, 19, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[0], &[]), scales(&[2.0])]).unwrap_err();
        assert_eq!(err, "tf_crop_and_resize needs the roi input");
        let resize = node("Resize", 3, 1, vec![]);
        let err = try_run(&resize, 19, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[0], &[]), scales(&[1.0, 2.0])]).unwrap_err();
        assert_eq!(err, "scales [1.0, 2.0] has 2 values for 1 axes");
        let err = try_run(&resize, 19, vec![f32_value(&[2], &[1.0, 2.0])]).unwrap_err();
        assert_eq!(err, "one of scales and sizes must be given");
        let linear = node("Resize", 3, 1, vec![("mode", text("linear"))]);
        let err = try_run(&linear, 19, vec![i64_value(&[2], &[1, 2]), f32_value(&[0], &[]), scales(&[2.0])]).unwrap_err();
        assert_eq!(err, "linear and cubic Resize take floats, not i64");
    }
}
