//! Expand: broadcasts a tensor to a shape (<https://onnx.ai/onnx/operators/onnx__Expand.html>).
//!
//! Opsets 8 and 13 (types only). Broadcasting is bidirectional: the output shape is the broadcast
//! of the input's shape and the requested one, so a requested 1 keeps the input's size.

use std::ops::RangeInclusive;

use crate::broadcast::broadcast_shape;
use crate::ops::{Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::{with_kind, with_rank, Value};

/// `output = broadcast(input, shape)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    pub shape: IntsInput,
}

impl Operator for Expand {
    const OP_TYPE: &'static str = "Expand";
    const OPSETS: RangeInclusive<i64> = 8..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Expand { shape: IntsInput::input(node, 1)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let requested = self.shape.read(&mut inputs)?.unwrap_or_default();
        let input = inputs.take(0)?;
        let Ok(requested) = requested.iter().map(|&size| usize::try_from(size)).collect::<Result<Vec<usize>, _>>() else {
            fail!("shape {requested:?} has a negative size");
        };
        let shape = broadcast_shape(input.shape(), &requested)?;
        if shape.contains(&0) {
            return Ok(vec![Value::empty(input.dtype(), &shape, &input.device())?]);
        }
        if shape == input.shape() {
            return Ok(vec![input]);
        }
        let input = input.unsqueeze_to(shape.len())?;
        let (dtype, kind) = (input.dtype(), input.kind());
        // burn's expand gives a view with stride 0 on the broadcast axes; nothing is copied here.
        let expanded = with_rank!(shape.len(), D => with_kind!(kind, K => {
            let mut dims = [0usize; D];
            dims.copy_from_slice(&shape);
            Value::from_typed(input.typed::<D, K>()?.expand(dims), dtype)?
        }));
        Ok(vec![expanded])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn broadcasts_both_ways() {
        // [3, 1] to [2, 1, 6]: the 1 in the request keeps nothing, the input's 1 grows to 6.
        let out = run(&node("Expand", 2, 1, vec![]), 13, vec![f32_value(&[3, 1], &[1.0, 2.0, 3.0]), i64_value(&[3], &[2, 1, 6])]);
        let row = |v: f64| vec![v; 6];
        let expected: Vec<f64> = [row(1.0), row(2.0), row(3.0), row(1.0), row(2.0), row(3.0)].concat();
        assert_close(&out[0], &[2, 3, 6], &expected);
        // A requested shape shorter than the input keeps the input's shape.
        let out = run(&node("Expand", 2, 1, vec![]), 13, vec![i64_value(&[3, 1], &[1, 2, 3]), i64_value(&[1], &[1])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn incompatible_shapes_are_errors() {
        let err = try_run(&node("Expand", 2, 1, vec![]), 13, vec![f32_value(&[3], &[1.0, 2.0, 3.0]), i64_value(&[1], &[2])]);
        assert_eq!(err.unwrap_err(), "shapes [3] and [2] do not broadcast");
        let err = try_run(&node("Expand", 2, 1, vec![]), 13, vec![f32_value(&[1], &[1.0]), i64_value(&[1], &[-2])]);
        assert_eq!(err.unwrap_err(), "shape [-2] has a negative size");
    }
}
