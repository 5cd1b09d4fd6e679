//! Shape: a tensor's shape as an int64 vector (<https://onnx.ai/onnx/operators/onnx__Shape.html>).
//!
//! Opset 15 added `start` and `end`, which pick a range of the axes (negative counts from the end,
//! both clamped to the rank); the other versions only add types.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `shape = data.shape[start..end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub start: i64,
    pub end: Option<i64>,
}

impl Operator for Shape {
    const OP_TYPE: &'static str = "Shape";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["start", "end"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset < 15 {
            if let Some(name) = ["start", "end"].into_iter().find(|name| node.node.attribute(name).is_some()) {
                return Err(OpError::attribute(name, "exists from opset 15 on"));
            }
        }
        Ok(Shape { start: node.int("start", 0)?, end: node.optional_int("end")? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let data = inputs.take(0)?;
        let rank = data.rank() as i64;
        let clamp = |index: i64| (if index < 0 { index + rank } else { index }).clamp(0, rank) as usize;
        let (start, end) = (clamp(self.start), clamp(self.end.unwrap_or(rank)));
        let sizes: Vec<i64> = data.shape()[start..end.max(start)].iter().map(|&size| size as i64).collect();
        Ok(vec![Value::from_i64s(&[sizes.len()], sizes, &data.device())?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn start_and_end_pick_axes_with_clamping() {
        let x = f32_value(&[3, 4, 5], &[0.0; 60]);
        let shape = |attributes: Vec<(&str, AttrValue)>| run(&node("Shape", 1, 1, attributes), 21, vec![x.clone()])[0].to_i64_vec().unwrap();
        assert_eq!(shape(vec![]), vec![3, 4, 5]);
        assert_eq!(shape(vec![("start", AttrValue::Int(-1))]), vec![5]);
        assert_eq!(shape(vec![("start", AttrValue::Int(-10)), ("end", AttrValue::Int(10))]), vec![3, 4, 5]);
        assert_eq!(shape(vec![("start", AttrValue::Int(1)), ("end", AttrValue::Int(-1))]), vec![4]);
        assert_eq!(shape(vec![("start", AttrValue::Int(2)), ("end", AttrValue::Int(1))]), Vec::<i64>::new());
    }

    #[test]
    fn scalars_have_an_empty_shape_and_start_needs_opset_15() {
        let out = run(&node("Shape", 1, 1, vec![]), 13, vec![f32_value(&[], &[1.0])]);
        assert_eq!(out[0].shape(), &[0]);
        assert_eq!(out[0].dtype(), whittle_ir::DataType::I64);
        let err = parse(&node("Shape", 1, 1, vec![("start", AttrValue::Int(1))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Shape): attribute 'start': exists from opset 15 on");
    }
}
