//! Slice: a strided window of a tensor (<https://onnx.ai/onnx/operators/onnx__Slice.html>).
//!
//! Opset 1 takes `starts`, `ends` and `axes` as attributes; from 10 they are inputs, with `steps`
//! (negative steps walk backwards); 11 allows negative axes and 13 only adds types. Starts and ends
//! count from the end when negative and are clamped to the axis, so huge values such as `i64::MAX`
//! mean "to the end".

use std::ops::RangeInclusive;

use burn_tensor::Slice as BurnSlice;

use crate::ops::{normalize_axis, Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::{with_kind, with_rank, Value};

/// `output = data[starts:ends:steps]` along `axes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub starts: IntsInput,
    pub ends: IntsInput,
    pub axes: IntsInput,
    pub steps: IntsInput,
}

impl Operator for Slice {
    const OP_TYPE: &'static str = "Slice";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["starts", "ends", "axes"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let slice = if node.opset < 10 {
            Slice {
                starts: IntsInput::attribute(node, "starts")?,
                ends: IntsInput::attribute(node, "ends")?,
                axes: IntsInput::attribute(node, "axes")?,
                steps: IntsInput::Absent,
            }
        } else {
            if let Some(name) = Self::ATTRIBUTES.iter().find(|name| node.node.attribute(name).is_some()) {
                return Err(OpError::attribute(name, "is an input from opset 10 on"));
            }
            Slice {
                starts: IntsInput::input(node, 1)?,
                ends: IntsInput::input(node, 2)?,
                axes: IntsInput::input(node, 3)?,
                steps: IntsInput::input(node, 4)?,
            }
        };
        if slice.starts == IntsInput::Absent || slice.ends == IntsInput::Absent {
            return Err(OpError::new("starts and ends are required"));
        }
        Ok(slice)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let starts = self.starts.read(&mut inputs)?.unwrap_or_default();
        let ends = self.ends.read(&mut inputs)?.unwrap_or_default();
        let axes = self.axes.read(&mut inputs)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = self.steps.read(&mut inputs)?.unwrap_or_else(|| vec![1; starts.len()]);
        let data = inputs.take(0)?;
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            fail!("starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length");
        }
        let rank = data.rank();
        // Per axis: the first index read, the step, and how many indices are read.
        let mut windows: Vec<(usize, i64, usize)> = data.shape().iter().map(|&size| (0, 1, size)).collect();
        let mut sliced = vec![false; rank];
        for (((&start, &end), &axis), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
            let index = normalize_axis(axis, rank)?;
            if std::mem::replace(&mut sliced[index], true) {
                fail!("axes {axes:?} repeat axis {axis}");
            }
            windows[index] = window(start, end, step, data.shape()[index])?;
        }
        let shape: Vec<usize> = windows.iter().map(|&(_, _, count)| count).collect();
        if shape.contains(&0) {
            return Ok(vec![Value::empty(data.dtype(), &shape, &data.device())?]);
        }
        if shape == data.shape() && windows.iter().all(|&(_, step, _)| step == 1) {
            return Ok(vec![data]);
        }
        // burn's slice takes the range of indices read and walks it backwards for a negative step.
        let slices: Vec<BurnSlice> = windows
            .iter()
            .map(|&(first, step, count)| {
                let last = first as i64 + (count as i64 - 1) * step;
                let (low, high) = ((first as i64).min(last), (first as i64).max(last) + 1);
                BurnSlice::new(low as isize, Some(high as isize), step as isize)
            })
            .collect();
        let (dtype, kind) = (data.dtype(), data.kind());
        let result = with_rank!(data.burn_rank(), D => with_kind!(kind, K => {
            Value::from_typed(data.typed::<D, K>()?.slice(slices.as_slice()), dtype)?
        }));
        Ok(vec![result])
    }
}

/// The first index, step and count of `start:end:step` on an axis of `size`, clamped as ONNX says.
fn window(start: i64, end: i64, step: i64, size: usize) -> Result<(usize, i64, usize), OpError> {
    if step == 0 {
        fail!("steps must not be 0");
    }
    let size = size as i64;
    let from_end = |index: i64| if index < 0 { index.saturating_add(size) } else { index };
    let (start, end) = (from_end(start), from_end(end));
    let (start, count) = if step > 0 {
        let (start, end) = (start.clamp(0, size), end.clamp(0, size));
        (start, ((end - start).max(0) as u64).div_ceil(step as u64))
    } else {
        let (start, end) = (start.clamp(0, size - 1), end.clamp(-1, size - 1));
        (start, ((start - end).max(0) as u64).div_ceil(step.unsigned_abs()))
    };
    Ok((start.max(0) as usize, step, count as usize))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Tensor};

    use super::window;
    use crate::ops::test_support::*;
    use crate::ops::IntsInput;

    fn grid() -> crate::value::Value {
        // [3, 4] holding 10 * row + column.
        i64_value(&[3, 4], &[0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23])
    }

    #[test]
    fn windows_clamp_like_the_spec() {
        assert_eq!(window(1, 1000, 1, 10).unwrap(), (1, 1, 9));
        assert_eq!(window(-3, -1, 1, 10).unwrap(), (7, 1, 2));
        assert_eq!(window(1000, 1001, 1, 10).unwrap().2, 0);
        assert_eq!(window(i64::MAX, i64::MIN, -1, 4).unwrap(), (3, -1, 4));
        assert_eq!(window(20, 0, -3, 10).unwrap(), (9, -3, 3));
        assert_eq!(window(0, 3, 2, 0).unwrap().2, 0);
        assert_eq!(window(0, 1, 0, 5).unwrap_err().reason, "steps must not be 0");
    }

    #[test]
    fn steps_and_negative_steps() {
        let slice = node("Slice", 5, 1, vec![]);
        let inputs = |starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]| {
            let n = [starts.len() as i64];
            vec![grid(), i64_value(&n, starts), i64_value(&n, ends), i64_value(&n, axes), i64_value(&n, steps)]
        };
        // Rows 0 and 2, columns 3, 2, 1, 0.
        let out = run(&slice, 13, inputs(&[0, -1], &[10, i64::MIN], &[0, 1], &[2, -1]));
        assert_eq!(out[0].shape(), &[2, 4]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![3, 2, 1, 0, 23, 22, 21, 20]);
        // Columns 3 and 1, walking backwards by 2 from the end.
        let out = run(&slice, 13, inputs(&[-1], &[-10], &[-1], &[-2]));
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![3, 1, 13, 11, 23, 21]);
        // An out of range start leaves nothing.
        let out = run(&slice, 13, inputs(&[5], &[10], &[0], &[1]));
        assert_eq!(out[0].shape(), &[0, 4]);
    }

    #[test]
    fn default_axes_and_steps_and_omitted_inputs() {
        // Trailing axes and steps omitted by empty names, as a model writes them.
        let mut slice = node("Slice", 5, 1, vec![]);
        slice.inputs[3].clear();
        slice.inputs[4].clear();
        let out = try_run_optional(
            &slice,
            13,
            vec![Some(grid()), Some(i64_value(&[1], &[1])), Some(i64_value(&[1], &[3])), None, None],
        )
        .unwrap();
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![10, 11, 12, 13, 20, 21, 22, 23]);
        let out = run(&node("Slice", 3, 1, vec![]), 10, vec![f32_value(&[3], &[1.0, 2.0, 3.0]), i64_value(&[1], &[1]), i64_value(&[1], &[2])]);
        assert_close(&out[0], &[1], &[2.0]);
    }

    #[test]
    fn opset_1_attributes_and_constant_inputs() {
        let attributes = vec![
            ("starts", AttrValue::Ints(vec![1])),
            ("ends", AttrValue::Ints(vec![i64::MAX])),
            ("axes", AttrValue::Ints(vec![1])),
        ];
        let out = run(&node("Slice", 1, 1, attributes.clone()), 1, vec![grid()]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 2, 3, 11, 12, 13, 21, 22, 23]);
        let err = parse(&node("Slice", 3, 1, attributes), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Slice): attribute 'starts': is an input from opset 10 on");
        let starts = Tensor::from_i64("s", vec![1], &[2]).unwrap();
        let op = parse(&node("Slice", 3, 1, vec![]), 13, &[(1, starts)]).unwrap();
        let crate::ops::Op::Slice(parsed) = op else { panic!() };
        assert_eq!((parsed.starts, parsed.ends), (IntsInput::Constant(vec![2]), IntsInput::Computed(2)));
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = try_run(&node("Slice", 3, 1, vec![]), 13, vec![grid(), i64_value(&[2], &[0, 0]), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "starts [0, 0], ends [1], axes [0, 1] and steps [1, 1] differ in length");
    }
}
