//! Unsqueeze: inserts axes of size 1 (<https://onnx.ai/onnx/operators/onnx__Unsqueeze.html>).
//!
//! The axes (required, in any order) index the output; they are an attribute before opset 13 and an
//! input from 13 on. Opset 11 allows negative axes (accepted for every opset since earlier ones
//! leave them undefined); later versions only add types.

use std::ops::RangeInclusive;

use crate::ops::{normalize_axis, Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::Value;

/// `expanded = data` with size-1 axes at `axes` of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsqueeze {
    pub axes: IntsInput,
}

impl Operator for Unsqueeze {
    const OP_TYPE: &'static str = "Unsqueeze";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axes"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let axes = IntsInput::moved(node, "axes", 1, 13)?;
        if axes == IntsInput::Absent {
            return Err(if node.opset < 13 { OpError::attribute("axes", "is required") } else { OpError::new("input 'axes' is required") });
        }
        Ok(Unsqueeze { axes })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let axes = self.axes.read(&mut inputs)?.unwrap_or_default();
        let data = inputs.take(0)?;
        let rank = data.rank() + axes.len();
        let mut inserted = vec![false; rank];
        for &axis in &axes {
            if std::mem::replace(&mut inserted[normalize_axis(axis, rank)?], true) {
                fail!("axes {axes:?} repeat axis {axis}");
            }
        }
        let mut sizes = data.shape().iter();
        let shape: Vec<usize> = inserted.iter().map(|&inserted| if inserted { 1 } else { *sizes.next().unwrap_or(&1) }).collect();
        Ok(vec![data.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn unsorted_and_negative_axes_index_the_output() {
        // [3, 4, 5] with axes [5, 4, 2] (spec test unsorted_axes): [3, 4, 1, 5, 1, 1].
        let x = f32_value(&[3, 4, 5], &[0.0; 60]);
        let out = run(&node("Unsqueeze", 2, 1, vec![]), 13, vec![x.clone(), i64_value(&[3], &[5, 4, 2])]);
        assert_eq!(out[0].shape(), &[3, 4, 1, 5, 1, 1]);
        let out = run(&node("Unsqueeze", 2, 1, vec![]), 13, vec![x.clone(), i64_value(&[1], &[-1])]);
        assert_eq!(out[0].shape(), &[3, 4, 5, 1]);
        let out = run(&node("Unsqueeze", 1, 1, vec![("axes", AttrValue::Ints(vec![0]))]), 11, vec![x]);
        assert_eq!(out[0].shape(), &[1, 3, 4, 5]);
        // A scalar becomes a vector.
        let out = run(&node("Unsqueeze", 2, 1, vec![]), 13, vec![i64_value(&[], &[7]), i64_value(&[1], &[0])]);
        assert_eq!((out[0].shape(), out[0].to_i64_vec().unwrap()), (&[1][..], vec![7]));
    }

    #[test]
    fn repeated_or_missing_axes_are_errors() {
        let err = try_run(&node("Unsqueeze", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[2], &[0, -3])]);
        assert_eq!(err.unwrap_err(), "axes [0, -3] repeat axis -3");
        let err = parse(&node("Unsqueeze", 1, 1, vec![]), 11, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Unsqueeze): attribute 'axes': is required");
    }
}
