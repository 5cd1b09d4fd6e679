//! Flatten: a tensor as a matrix (<https://onnx.ai/onnx/operators/onnx__Flatten.html>).
//!
//! The axes before `axis` (default 1) make the rows, the others the columns. Opset 11 allows a
//! negative axis (accepted here for every opset since earlier ones leave it undefined); the other
//! versions only add types.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `output = input` reshaped to `[prod(shape[..axis]), prod(shape[axis..])]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flatten {
    pub axis: i64,
}

impl Operator for Flatten {
    const OP_TYPE: &'static str = "Flatten";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Flatten { axis: node.int("axis", 1)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let input = inputs.take(0)?;
        let rank = input.rank() as i64;
        // The axis may equal the rank (everything in the rows), unlike an ordinary axis.
        let axis = if self.axis < 0 { self.axis + rank } else { self.axis };
        if !(0..=rank).contains(&axis) {
            fail!("axis {} is out of range for rank {rank}", self.axis);
        }
        let (rows, columns) = input.shape().split_at(axis as usize);
        let shape = [rows.iter().product(), columns.iter().product()];
        Ok(vec![input.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn axis_splits_rows_from_columns() {
        let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let expected: Vec<f64> = (0..24).map(f64::from).collect();
        for (axis, shape) in [(0, [1, 24]), (1, [2, 12]), (-1, [6, 4]), (3, [24, 1]), (-2, [2, 12]), (-3, [1, 24])] {
            let out = run(&node("Flatten", 1, 1, vec![("axis", AttrValue::Int(axis))]), 13, vec![f32_value(&[2, 3, 4], &x)]);
            assert_close(&out[0], &shape, &expected);
        }
        let out = run(&node("Flatten", 1, 1, vec![]), 13, vec![f32_value(&[2, 3, 4], &x)]);
        assert_eq!(out[0].shape(), &[2, 12]);
    }

    #[test]
    fn axis_beyond_the_rank_is_an_error() {
        let flatten = node("Flatten", 1, 1, vec![("axis", AttrValue::Int(4))]);
        assert_eq!(try_run(&flatten, 13, vec![f32_value(&[2, 3, 4], &[0.0; 24])]).unwrap_err(), "axis 4 is out of range for rank 3");
    }
}
