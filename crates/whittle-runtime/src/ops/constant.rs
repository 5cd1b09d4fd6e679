//! Constant: a tensor given as an attribute (<https://onnx.ai/onnx/operators/onnx__Constant.html>).
//!
//! Exactly one value attribute: `value` (a tensor, every opset), and from opset 12 `value_float`,
//! `value_floats`, `value_int`, `value_ints` (f32 and int64 scalars and vectors). `sparse_value`
//! (11) and the string forms (12) are refused at plan time: the runtime holds neither sparse nor
//! string tensors. Later versions only add types.

use std::ops::RangeInclusive;

use whittle_ir::{AttrValue, Tensor};

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{held_dtype, Value};

/// `output = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// The host tensor, uploaded on each run: models keep large constants in initializers, which
    /// are uploaded once, and graph passes fold Constant nodes into them.
    pub value: Tensor,
}

impl Operator for Constant {
    const OP_TYPE: &'static str = "Constant";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] =
        &["value", "sparse_value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let [attribute] = node.node.attributes.as_slice() else {
            return Err(OpError::new(format!("expected exactly one value attribute, found {}", node.node.attributes.len())));
        };
        let name = attribute.name.as_str();
        if name != "value" && node.opset < 12 {
            return Err(OpError::attribute(name, "exists from opset 12 on"));
        }
        let wrong_type = || OpError::attribute(name, format!("has type {}", attribute.value.type_name()));
        let built = match (name, &attribute.value) {
            ("value", AttrValue::Tensor(tensor)) => Ok(tensor.clone()),
            ("value_float", AttrValue::Float(value)) => Tensor::from_f32("value", vec![], &[*value]),
            ("value_floats", AttrValue::Floats(values)) => Tensor::from_f32("value", vec![values.len() as i64], values),
            ("value_int", AttrValue::Int(value)) => Tensor::from_i64("value", vec![], &[*value]),
            ("value_ints", AttrValue::Ints(values)) => Tensor::from_i64("value", vec![values.len() as i64], values),
            ("sparse_value" | "value_string" | "value_strings", _) => {
                return Err(OpError::attribute(name, "sparse and string constants are not supported by the runtime"))
            }
            _ => return Err(wrong_type()),
        };
        let value = built.map_err(|err| OpError::attribute(name, err.to_string()))?;
        if held_dtype(value.dtype).is_none() || value.bytes().is_none() {
            return Err(OpError::attribute(name, format!("dtype {} is not supported by the runtime", value.dtype)));
        }
        Ok(Constant { value })
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![Value::from_ir(&self.value, &inputs.device()?)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType, Tensor};

    use crate::ops::test_support::*;

    #[test]
    fn every_value_form() {
        let tensor = Tensor::from_i64("t", vec![2], &[1 << 40, -3]).unwrap();
        let out = run(&node("Constant", 0, 1, vec![("value", AttrValue::Tensor(tensor))]), 9, vec![]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1 << 40, -3]);
        let out = run(&node("Constant", 0, 1, vec![("value_float", AttrValue::Float(2.5))]), 13, vec![]);
        assert_close(&out[0], &[], &[2.5]);
        let out = run(&node("Constant", 0, 1, vec![("value_floats", AttrValue::Floats(vec![1.0, 2.0]))]), 13, vec![]);
        assert_close(&out[0], &[2], &[1.0, 2.0]);
        let out = run(&node("Constant", 0, 1, vec![("value_int", AttrValue::Int(7))]), 13, vec![]);
        assert_eq!((out[0].dtype(), out[0].shape(), out[0].to_i64_vec().unwrap()), (DataType::I64, &[][..], vec![7]));
        let out = run(&node("Constant", 0, 1, vec![("value_ints", AttrValue::Ints(vec![]))]), 13, vec![]);
        assert_eq!(out[0].shape(), &[0]);
    }

    #[test]
    fn strings_sparse_and_several_values_are_refused() {
        let strings = node("Constant", 0, 1, vec![("value_strings", AttrValue::Strings(vec![b"a".to_vec()]))]);
        assert_eq!(
            parse(&strings, 13, &[]).unwrap_err().to_string(),
            "node 'n' (Constant): attribute 'value_strings': sparse and string constants are not supported by the runtime"
        );
        let two = node("Constant", 0, 1, vec![("value_int", AttrValue::Int(1)), ("value_float", AttrValue::Float(1.0))]);
        assert_eq!(parse(&two, 13, &[]).unwrap_err().to_string(), "node 'n' (Constant): expected exactly one value attribute, found 2");
        let old = node("Constant", 0, 1, vec![("value_int", AttrValue::Int(1))]);
        assert_eq!(parse(&old, 11, &[]).unwrap_err().to_string(), "node 'n' (Constant): attribute 'value_int': exists from opset 12 on");
    }
}
