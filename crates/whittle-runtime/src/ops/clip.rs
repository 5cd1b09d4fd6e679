//! Clip: limits every element to `[min, max]` (<https://onnx.ai/onnx/operators/onnx__Clip.html>).
//!
//! Opsets 6 to 10 take the bounds as FLOAT attributes (defaults: the lowest and highest f32);
//! opset 11 moved them to optional scalar inputs of the input's type, 12 added integer types and 13
//! bfloat16. Both forms are implemented. With `min > max` every element becomes `max`, as the
//! spec says; NaN elements stay NaN.

use std::ops::RangeInclusive;

use crate::broadcast::{extremum, Extremum};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = min(max(X, min), max)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The bounds of opsets 6 to 10; `None` from opset 11, where they are inputs.
    pub attributes: Option<(f32, f32)>,
}

impl Operator for Clip {
    const OP_TYPE: &'static str = "Clip";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["min", "max"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset >= 11 {
            if let Some(attribute) = node.node.attributes.first() {
                return Err(OpError::attribute(&attribute.name, "is an input from opset 11 on"));
            }
            return Ok(Clip { attributes: None });
        }
        Ok(Clip { attributes: Some((node.float("min", f32::MIN)?, node.float("max", f32::MAX)?)) })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        if let Some((min, max)) = self.attributes {
            // min(max(x, min), max) in this order, so that min > max gives max.
            return Ok(vec![map_float!(x, t => t.clamp_min(min).clamp_max(max))?]);
        }
        let mut y = x;
        for (index, bound) in [(1, Extremum::Max), (2, Extremum::Min)] {
            if let Some(limit) = inputs.take_optional(index) {
                if limit.element_count() != 1 {
                    fail!("bound {index} must be a scalar, got shape {:?}", limit.shape());
                }
                // A one-element bound of rank 1 must not turn a scalar input into shape [1].
                y = extremum(bound, y, limit.reshape(&[])?)?;
            }
        }
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    const X: [f32; 5] = [-3.0, -1.0, 0.0, 2.0, 5.0];

    #[test]
    fn bounds_from_inputs() {
        let out = run(&node("Clip", 3, 1, vec![]), 13, vec![f32_value(&[5], &X), f32_value(&[], &[-1.5]), f32_value(&[], &[2.5])]);
        assert_close(&out[0], &[5], &[-1.5, -1.0, 0.0, 2.0, 2.5]);
    }

    #[test]
    fn omitted_bounds_and_scalars() {
        let mut clip = node("Clip", 3, 1, vec![]);
        clip.inputs[1] = String::new();
        let op = parse(&clip, 13, &[]).unwrap();
        let inputs = crate::ops::Inputs::new(vec![Some(f32_value(&[5], &X)), None, Some(f32_value(&[1], &[1.0]))]);
        let out = op.eval(inputs).unwrap();
        assert_close(&out[0], &[5], &[-3.0, -1.0, 0.0, 1.0, 1.0]);
        let out = run(&node("Clip", 1, 1, vec![]), 13, vec![f32_value(&[], &[7.0])]);
        assert_close(&out[0], &[], &[7.0]);
    }

    #[test]
    fn min_above_max_gives_max() {
        let out = run(&node("Clip", 3, 1, vec![]), 13, vec![f32_value(&[5], &X), f32_value(&[], &[2.0]), f32_value(&[], &[1.0])]);
        assert_close(&out[0], &[5], &[1.0; 5]);
        let attributes = vec![("min", AttrValue::Float(2.0)), ("max", AttrValue::Float(1.0))];
        let out = run(&node("Clip", 1, 1, attributes), 6, vec![f32_value(&[5], &X)]);
        assert_close(&out[0], &[5], &[1.0; 5]);
    }

    #[test]
    fn integers_and_nan() {
        let out = run(&node("Clip", 3, 1, vec![]), 13, vec![i64_value(&[3], &[-5, 3, 9]), i64_value(&[], &[0]), i64_value(&[], &[4])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 3, 4]);
        let out = run(&node("Clip", 3, 1, vec![]), 13, vec![f32_value(&[1], &[f32::NAN]), f32_value(&[], &[0.0]), f32_value(&[], &[1.0])]);
        assert!(out[0].to_f32_vec().unwrap()[0].is_nan());
    }

    #[test]
    fn opset_6_attributes_default_to_the_f32_range() {
        let out = run(&node("Clip", 1, 1, vec![("min", AttrValue::Float(-1.0))]), 6, vec![f32_value(&[5], &X)]);
        assert_close(&out[0], &[5], &[-1.0, -1.0, 0.0, 2.0, 5.0]);
    }

    #[test]
    fn bad_bounds_are_errors() {
        let err = try_run(&node("Clip", 2, 1, vec![]), 13, vec![f32_value(&[5], &X), f32_value(&[2], &[0.0, 1.0])]);
        assert_eq!(err.unwrap_err(), "bound 1 must be a scalar, got shape [2]");
        let err = try_run(&node("Clip", 2, 1, vec![]), 13, vec![f32_value(&[5], &X), i64_value(&[], &[0])]);
        assert_eq!(err.unwrap_err(), "operands have different dtypes f32 and i64");
        let err = parse(&node("Clip", 1, 1, vec![("min", AttrValue::Float(0.0))]), 11, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Clip): attribute 'min': is an input from opset 11 on");
    }
}
