//! Squeeze: removes axes of size 1 (<https://onnx.ai/onnx/operators/onnx__Squeeze.html>).
//!
//! The axes are an attribute before opset 13 and an optional input from 13 on; without them every
//! axis of size 1 goes. Opset 11 allows negative axes (accepted for every opset since earlier ones
//! leave them undefined); later versions only add types.

use std::ops::RangeInclusive;

use crate::ops::{normalize_axis, Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::Value;

/// `squeezed = data` without the listed axes of size 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squeeze {
    pub axes: IntsInput,
}

impl Operator for Squeeze {
    const OP_TYPE: &'static str = "Squeeze";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axes"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Squeeze { axes: IntsInput::moved(node, "axes", 1, 13)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let axes = self.axes.read(&mut inputs)?;
        let data = inputs.take(0)?;
        let rank = data.rank();
        let mut removed = vec![false; rank];
        match &axes {
            None => removed.iter_mut().zip(data.shape()).for_each(|(removed, &size)| *removed = size == 1),
            Some(axes) => {
                for &axis in axes {
                    let index = normalize_axis(axis, rank)?;
                    if data.shape()[index] != 1 {
                        fail!("axis {axis} of {:?} has size {}, not 1", data.shape(), data.shape()[index]);
                    }
                    removed[index] = true;
                }
            }
        }
        let shape: Vec<usize> = data.shape().iter().zip(&removed).filter(|(_, &removed)| !removed).map(|(&size, _)| size).collect();
        Ok(vec![data.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Tensor};

    use crate::ops::test_support::*;
    use crate::ops::IntsInput;

    #[test]
    fn axes_from_input_attribute_or_all_ones() {
        let x = f32_value(&[1, 3, 1, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = run(&node("Squeeze", 2, 1, vec![]), 13, vec![x.clone(), i64_value(&[1], &[-2])]);
        assert_eq!(out[0].shape(), &[1, 3, 2]);
        let out = run(&node("Squeeze", 1, 1, vec![("axes", AttrValue::Ints(vec![0]))]), 11, vec![x.clone()]);
        assert_eq!(out[0].shape(), &[3, 1, 2]);
        let out = run(&node("Squeeze", 1, 1, vec![]), 13, vec![x]);
        assert_close(&out[0], &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn constant_axes_are_read_at_plan_time() {
        let squeeze = node("Squeeze", 2, 1, vec![]);
        let op = parse(&squeeze, 21, &[(1, Tensor::from_i64("axes", vec![1], &[0]).unwrap())]).unwrap();
        assert_eq!(op, crate::ops::Op::Squeeze(super::Squeeze { axes: IntsInput::Constant(vec![0]) }));
    }

    #[test]
    fn axes_of_size_other_than_one_are_errors() {
        let err = try_run(&node("Squeeze", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[1], &[0])]);
        assert_eq!(err.unwrap_err(), "axis 0 of [2] has size 2, not 1");
        let err = parse(&node("Squeeze", 1, 1, vec![("axes", AttrValue::Ints(vec![0]))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Squeeze): attribute 'axes': is an input from opset 13 on");
    }
}
