//! ConstantOfShape: a tensor of a given shape filled with one value
//! (<https://onnx.ai/onnx/operators/onnx__ConstantOfShape.html>).
//!
//! Opsets 9 to 25 differ only in the value's allowed types. The value is a one-element tensor
//! attribute (f32 0 by default) whose dtype the output takes; the shape is an int64 input.

use std::ops::RangeInclusive;

use whittle_ir::{AttrValue, Tensor};

use crate::ops::{Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, Value};

/// `output = full(shape, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantOfShape {
    /// The fill value, one element.
    pub value: Tensor,
    pub shape: IntsInput,
}

impl Operator for ConstantOfShape {
    const OP_TYPE: &'static str = "ConstantOfShape";
    const OPSETS: RangeInclusive<i64> = 9..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["value"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let value = match node.node.attribute("value").map(|attribute| &attribute.value) {
            None => Tensor::from_f32("value", vec![1], &[0.0]).map_err(|err| OpError::new(err.to_string()))?,
            Some(AttrValue::Tensor(tensor)) => tensor.clone(),
            Some(other) => return Err(OpError::attribute("value", format!("expected TENSOR, found {}", other.type_name()))),
        };
        let one_element = value.dims.iter().product::<i64>() == 1;
        if !one_element || burn_dtype(value.dtype).is_none() || value.bytes().is_none() {
            return Err(OpError::attribute("value", format!("must be one element of a supported dtype, found {} {:?}", value.dtype, value.dims)));
        }
        Ok(ConstantOfShape { value, shape: IntsInput::input(node, 0)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let device = inputs.device()?;
        let dims = self.shape.read(&mut inputs)?.unwrap_or_default();
        if dims.iter().any(|&size| size < 0) {
            fail!("shape {dims:?} has a negative size");
        }
        let count = dims.iter().product::<i64>() as usize;
        // Filled on the host: one copy of the element's bytes per element, uploaded once, exact for
        // every dtype (burn's `full` goes through a scalar conversion per kind).
        let element = self.value.bytes().unwrap_or_default();
        let host = Tensor::from_bytes("output", self.value.dtype, dims, element.repeat(count)).map_err(|err| OpError::new(err.to_string()))?;
        Ok(vec![Value::from_ir(&host, &device)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType, Tensor};

    use crate::ops::test_support::*;

    #[test]
    fn fills_with_the_value_and_its_dtype() {
        let out = run(&node("ConstantOfShape", 1, 1, vec![]), 20, vec![i64_value(&[2], &[2, 3])]);
        assert_close(&out[0], &[2, 3], &[0.0; 6]);
        let value = Tensor::from_i64("v", vec![1], &[1 << 40]).unwrap();
        let fill = node("ConstantOfShape", 1, 1, vec![("value", AttrValue::Tensor(value))]);
        let out = run(&fill, 20, vec![i64_value(&[1], &[3])]);
        assert_eq!((out[0].dtype(), out[0].to_i64_vec().unwrap()), (DataType::I64, vec![1 << 40; 3]));
        let out = run(&fill, 20, vec![i64_value(&[1], &[0])]);
        assert_eq!(out[0].shape(), &[0]);
        // An empty shape is a scalar.
        let out = run(&fill, 20, vec![i64_value(&[0], &[])]);
        assert_eq!(out[0].shape(), &[] as &[usize]);
    }

    #[test]
    fn value_must_be_one_element() {
        let value = Tensor::from_f32("v", vec![2], &[1.0, 2.0]).unwrap();
        let err = parse(&node("ConstantOfShape", 1, 1, vec![("value", AttrValue::Tensor(value))]), 20, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (ConstantOfShape): attribute 'value': must be one element of a supported dtype, found f32 [2]");
        let err = try_run(&node("ConstantOfShape", 1, 1, vec![]), 20, vec![i64_value(&[1], &[-1])]).unwrap_err();
        assert_eq!(err, "shape [-1] has a negative size");
    }
}
