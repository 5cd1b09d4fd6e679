//! Pad: grows (or, with negative pads, crops) a tensor at both ends of its axes
//! (<https://onnx.ai/onnx/operators/onnx__Pad.html>).
//!
//! Opset 2 takes `pads` and the fill `value` as attributes (float data only); from 11 they are
//! inputs (`pads`, optional `constant_value` of the data's dtype), 18 adds the optional `axes`
//! input and 19 the `wrap` mode; the other versions only add types. `pads` holds every begin
//! amount, then every end amount. Modes: `constant`, `reflect` (mirror without the edge), `edge`
//! (repeat the edge) and `wrap` (continue from the other end). Reflect and wrap padding wider than
//! the axis, which numpy fills by repeating the pattern, is refused. Opset 1's `paddings` is not
//! implemented.

use std::ops::RangeInclusive;

use burn_tensor::kind::Basic;
use burn_tensor::{Slice as BurnSlice, Tensor};

use crate::ops::{normalize_axis, Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, with_kind, with_rank, ElementKind, Value};

/// How the new elements are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// `output = pad(data, pads)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    pub mode: PadMode,
    pub pads: IntsInput,
    pub axes: IntsInput,
    /// The fill value of opsets 2 to 10 (from 11 it is input 2).
    pub value: f32,
}

impl Operator for Pad {
    const OP_TYPE: &'static str = "Pad";
    const OPSETS: RangeInclusive<i64> = 2..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["mode", "pads", "value"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let mode = match node.string("mode", "constant")?.as_str() {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            "wrap" if node.opset >= 19 => PadMode::Wrap,
            other => return Err(OpError::attribute("mode", format!("unsupported mode '{other}' at opset {}", node.opset))),
        };
        if node.opset < 11 {
            let pads = IntsInput::attribute(node, "pads")?;
            if pads == IntsInput::Absent {
                return Err(OpError::attribute("pads", "is required"));
            }
            return Ok(Pad { mode, pads, axes: IntsInput::Absent, value: node.float("value", 0.0)? });
        }
        if let Some(name) = ["pads", "value"].into_iter().find(|name| node.node.attribute(name).is_some()) {
            return Err(OpError::attribute(name, "is an input from opset 11 on"));
        }
        let axes = if node.opset >= 18 { IntsInput::input(node, 3)? } else { IntsInput::Absent };
        Ok(Pad { mode, pads: IntsInput::input(node, 1)?, axes, value: 0.0 })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let device = inputs.device()?;
        let raw_pads = self.pads.read(&mut inputs)?.unwrap_or_default();
        let axes = self.axes.read(&mut inputs)?;
        let constant = if matches!(self.pads, IntsInput::Absent) { None } else { inputs.take_optional(2) };
        let data = inputs.take(0)?;
        let (dtype, kind, rank) = (data.dtype(), data.kind(), data.rank());
        let axes = axes.unwrap_or_else(|| (0..rank as i64).collect());
        if raw_pads.len() != 2 * axes.len() {
            fail!("pads {raw_pads:?} must hold 2 values per axis of {axes:?}");
        }
        // (begin, end) per axis of the data.
        let mut pads = vec![(0i64, 0i64); rank];
        for (index, &axis) in axes.iter().enumerate() {
            pads[normalize_axis(axis, rank)?] = (raw_pads[index], raw_pads[axes.len() + index]);
        }
        let mut shape = Vec::with_capacity(rank);
        for (&size, &(begin, end)) in data.shape().iter().zip(&pads) {
            let padded = size as i64 + begin + end;
            if padded < 0 || (size as i64 + begin.min(0) + end.min(0)) < 0 {
                fail!("pads {raw_pads:?} crop more than the {size} elements of an axis of {:?}", data.shape());
            }
            shape.push(padded as usize);
        }
        if shape.contains(&0) {
            return Ok(vec![Value::empty(dtype, &shape, &device)?]);
        }
        // The fill as a tensor of one element of the data's rank, expanded where it is needed.
        let fill = match constant {
            Some(value) if value.dtype() != dtype || value.element_count() != 1 => {
                fail!("constant_value must be one element of {dtype}, found {} {:?}", value.dtype(), value.shape())
            }
            Some(value) => Some(value.reshape(&vec![1; rank.max(1)])?),
            None if self.value != 0.0 && kind != ElementKind::Float => fail!("a non-zero value attribute needs float data"),
            None => None,
        };
        if data.element_count() == 0 && self.mode != PadMode::Constant {
            fail!("{:?} padding needs data, found shape {:?}", self.mode, data.shape());
        }
        let (mode, value) = (self.mode, self.value);
        let Some((burn_type, _)) = burn_dtype(dtype) else { fail!("dtype {dtype} is not supported") };
        let padded = with_rank!(data.burn_rank(), D => with_kind!(kind, K => {
            let mut dims = [1usize; D];
            dims.copy_from_slice(&shape);
            let fill = match fill {
                Some(fill) => fill.typed::<D, K>()?,
                // Only float data may have a non-zero fill here (checked above); zeros suit every kind.
                None if value != 0.0 => Tensor::<D, K>::full([1; D], value, (&device, burn_type)),
                None => Tensor::<D, K>::zeros([1; D], (&device, burn_type)),
            };
            let tensor = if data.element_count() == 0 {
                fill.expand(dims)
            } else {
                pad_tensor(data.typed::<D, K>()?, &pads, mode, fill)?
            };
            Value::from_typed(tensor, dtype)?
        }));
        Ok(vec![padded])
    }
}

/// Pads `x` (not empty) one axis after the other; `fill` is the one-element constant.
fn pad_tensor<const D: usize, K: Basic>(mut x: Tensor<D, K>, pads: &[(i64, i64)], mode: PadMode, fill: Tensor<D, K>) -> Result<Tensor<D, K>, OpError> {
    for (axis, &(begin, end)) in pads.iter().enumerate() {
        // Negative pads crop first, so that the padding below reads the cropped data.
        let (crop_begin, crop_end) = ((-begin).max(0) as usize, (-end).max(0) as usize);
        if crop_begin + crop_end > 0 {
            let size = x.dims()[axis];
            if crop_begin + crop_end >= size {
                fail!("pads crop all {size} elements of axis {axis}");
            }
            x = x.narrow(axis, crop_begin, size - crop_begin - crop_end);
        }
        let (begin, end) = (begin.max(0) as usize, end.max(0) as usize);
        if begin + end == 0 {
            continue;
        }
        let size = x.dims()[axis];
        let too_wide = match mode {
            PadMode::Reflect => begin.max(end) >= size,
            PadMode::Wrap => begin.max(end) > size,
            PadMode::Constant | PadMode::Edge => false,
        };
        if too_wide {
            fail!("{mode:?} padding of {begin} and {end} is wider than axis {axis} of size {size}");
        }
        let piece = |x: &Tensor<D, K>, width: usize, at_begin: bool| -> Tensor<D, K> {
            let mut dims = x.dims();
            dims[axis] = width;
            match mode {
                PadMode::Constant => fill.clone().expand(dims),
                PadMode::Edge => x.clone().narrow(axis, if at_begin { 0 } else { size - 1 }, 1).expand(dims),
                PadMode::Wrap => x.clone().narrow(axis, if at_begin { size - width } else { 0 }, width),
                PadMode::Reflect => {
                    // The mirror without the edge: indices width..=1 before, size-2..=size-1-width after.
                    let (low, high) = if at_begin { (1, width + 1) } else { (size - 1 - width, size - 1) };
                    let mut slices = vec![BurnSlice::full(); D];
                    slices[axis] = BurnSlice::new(low as isize, Some(high as isize), -1);
                    x.clone().slice(slices.as_slice())
                }
            }
        };
        let mut parts = Vec::with_capacity(3);
        if begin > 0 {
            parts.push(piece(&x, begin, true));
        }
        if end > 0 {
            let after = piece(&x, end, false);
            parts.push(x);
            parts.push(after);
        } else {
            parts.push(x);
        }
        x = Tensor::cat(parts, axis);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn mode(name: &str) -> Vec<(&str, AttrValue)> {
        vec![("mode", AttrValue::String(name.as_bytes().to_vec()))]
    }

    #[test]
    fn every_mode_on_one_axis() {
        // [1, 2, 3] padded by 2 before and 1 after along its only axis.
        let x = i64_value(&[3], &[1, 2, 3]);
        let pads = || i64_value(&[2], &[2, 1]);
        let cases = [("reflect", vec![3, 2, 1, 2, 3, 2]), ("edge", vec![1, 1, 1, 2, 3, 3]), ("wrap", vec![2, 3, 1, 2, 3, 1])];
        for (name, expected) in cases {
            let out = run(&node("Pad", 2, 1, mode(name)), 19, vec![x.clone(), pads()]);
            assert_eq!(out[0].to_i64_vec().unwrap(), expected, "{name}");
        }
        let out = run(&node("Pad", 3, 1, vec![]), 19, vec![x.clone(), pads(), i64_value(&[], &[-7])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-7, -7, 1, 2, 3, -7]);
        let out = run(&node("Pad", 2, 1, vec![]), 19, vec![x, pads()]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 0, 1, 2, 3, 0]);
    }

    #[test]
    fn axes_input_and_negative_pads_crop() {
        // [2, 3] padded on axis -1 only: one column of 9 before, the last column cropped.
        let x = f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = run(&node("Pad", 4, 1, vec![]), 18, vec![x, i64_value(&[2], &[1, -1]), f32_value(&[], &[9.0]), i64_value(&[1], &[-1])]);
        assert_close(&out[0], &[2, 3], &[9.0, 1.0, 2.0, 9.0, 4.0, 5.0]);
    }

    #[test]
    fn opset_2_attributes_and_2d_reflect() {
        let attributes = vec![("pads", AttrValue::Ints(vec![1, 0, 0, 1])), ("value", AttrValue::Float(0.5))];
        let out = run(&node("Pad", 1, 1, attributes), 2, vec![f32_value(&[1, 2], &[1.0, 2.0])]);
        assert_close(&out[0], &[2, 3], &[0.5, 0.5, 0.5, 1.0, 2.0, 0.5]);
        // [[1, 2], [3, 4]] reflected by 1 on every side.
        let out = run(&node("Pad", 2, 1, mode("reflect")), 13, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), i64_value(&[4], &[1, 1, 1, 1])]);
        let expected = [4.0, 3.0, 4.0, 3.0, 2.0, 1.0, 2.0, 1.0, 4.0, 3.0, 4.0, 3.0, 2.0, 1.0, 2.0, 1.0];
        assert_close(&out[0], &[4, 4], &expected);
    }

    #[test]
    fn empty_data_takes_constant_padding_only() {
        let out = run(&node("Pad", 2, 1, vec![]), 13, vec![f32_value(&[0], &[]), i64_value(&[2], &[1, 1])]);
        assert_close(&out[0], &[2], &[0.0, 0.0]);
        let err = try_run(&node("Pad", 2, 1, mode("edge")), 13, vec![f32_value(&[0], &[]), i64_value(&[2], &[1, 1])]);
        assert_eq!(err.unwrap_err(), "Edge padding needs data, found shape [0]");
    }

    #[test]
    fn bad_pads_and_modes_are_errors() {
        let x = || f32_value(&[2], &[1.0, 2.0]);
        let err = try_run(&node("Pad", 2, 1, mode("reflect")), 13, vec![x(), i64_value(&[2], &[2, 0])]);
        assert_eq!(err.unwrap_err(), "Reflect padding of 2 and 0 is wider than axis 0 of size 2");
        let err = try_run(&node("Pad", 2, 1, vec![]), 13, vec![x(), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "pads [1] must hold 2 values per axis of [0]");
        let err = try_run(&node("Pad", 2, 1, vec![]), 13, vec![x(), i64_value(&[2], &[-2, -1])]);
        assert_eq!(err.unwrap_err(), "pads [-2, -1] crop more than the 2 elements of an axis of [2]");
        let err = parse(&node("Pad", 2, 1, mode("wrap")), 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Pad): attribute 'mode': unsupported mode 'wrap' at opset 18");
    }
}
