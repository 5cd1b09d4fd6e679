//! Concat: joins tensors along an axis (<https://onnx.ai/onnx/operators/onnx__Concat.html>).
//!
//! Opsets 1 to 13: opset 1 defaults `axis` to 1, from 4 it is required, 11 allows negative axes
//! (accepted here for every opset since earlier ones leave them undefined), 13 only adds types.
//! Inputs must agree in dtype, rank and every size but the axis; empty inputs take part with their
//! zero size.

use std::ops::RangeInclusive;

use burn_tensor::Tensor;

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{with_kind, with_rank, Value};

/// `concat_result = concat(inputs, axis)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concat {
    pub axis: i64,
}

impl Operator for Concat {
    const OP_TYPE: &'static str = "Concat";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let axis = match (node.optional_int("axis")?, node.opset) {
            (Some(axis), _) => axis,
            (None, opset) if opset < 4 => 1,
            (None, _) => return Err(OpError::attribute("axis", "is required from opset 4 on")),
        };
        Ok(Concat { axis })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let device = inputs.device()?;
        let values = inputs.take_present();
        let Some(first) = values.first() else { fail!("Concat needs at least one input") };
        let (dtype, rank) = (first.dtype(), first.rank());
        if rank == 0 {
            fail!("inputs must have rank 1 or more");
        }
        let axis = normalize_axis(self.axis, rank)?;
        let mut shape = first.shape().to_vec();
        shape[axis] = 0;
        for value in &values {
            let same_other_sizes =
                value.rank() == rank && value.shape().iter().enumerate().all(|(index, &size)| index == axis || size == shape[index]);
            if value.dtype() != dtype || !same_other_sizes {
                fail!("input {} {:?} does not match {dtype} {:?} outside axis {axis}", value.dtype(), value.shape(), first.shape());
            }
            shape[axis] += value.shape()[axis];
        }
        if shape.contains(&0) {
            return Ok(vec![Value::empty(dtype, &shape, &device)?]);
        }
        // burn's cat refuses empty parts; they add nothing, so they are left out.
        let parts: Vec<Value> = values.into_iter().filter(|value| value.shape()[axis] > 0).collect();
        let kind = parts[0].kind();
        let joined = with_rank!(rank, D => with_kind!(kind, K => {
            let tensors = parts.into_iter().map(|part| part.typed::<D, K>()).collect::<Result<Vec<_>, _>>()?;
            Value::from_typed(Tensor::cat(tensors, axis), dtype)?
        }));
        Ok(vec![joined])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn joins_along_a_negative_axis() {
        // [[1, 2], [3, 4]] and [[5], [6]] along the last axis: [[1, 2, 5], [3, 4, 6]].
        let concat = node("Concat", 2, 1, vec![("axis", AttrValue::Int(-1))]);
        let out = run(&concat, 13, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[2, 1], &[5.0, 6.0])]);
        assert_close(&out[0], &[2, 3], &[1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    }

    #[test]
    fn int64_shapes_stay_exact_and_empty_parts_are_skipped() {
        let concat = node("Concat", 3, 1, vec![("axis", AttrValue::Int(0))]);
        let big = 1 << 40;
        let out = run(&concat, 13, vec![i64_value(&[1], &[big]), i64_value(&[0], &[]), i64_value(&[2], &[-1, 7])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![big, -1, 7]);
        let out = run(&concat, 13, vec![i64_value(&[0], &[]), i64_value(&[0], &[]), i64_value(&[0], &[])]);
        assert_eq!(out[0].shape(), &[0]);
    }

    #[test]
    fn mismatched_inputs_and_missing_axis_are_errors() {
        let concat = node("Concat", 2, 1, vec![("axis", AttrValue::Int(0))]);
        let err = try_run(&concat, 13, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[1, 3], &[1.0, 2.0, 3.0])]).unwrap_err();
        assert_eq!(err, "input f32 [1, 3] does not match f32 [1, 2] outside axis 0");
        let err = parse(&node("Concat", 2, 1, vec![]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Concat): attribute 'axis': is required from opset 4 on");
        // Opset 1 defaults the axis to 1.
        let out = run(&node("Concat", 2, 1, vec![]), 1, vec![f32_value(&[1, 1], &[1.0]), f32_value(&[1, 1], &[2.0])]);
        assert_close(&out[0], &[1, 2], &[1.0, 2.0]);
    }
}
