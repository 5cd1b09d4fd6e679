//! Size: a tensor's element count as an int64 scalar (<https://onnx.ai/onnx/operators/onnx__Size.html>).
//!
//! Every version (1 to 25) differs only in types.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `size = prod(data.shape)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size;

impl Operator for Size {
    const OP_TYPE: &'static str = "Size";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Size)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let data = inputs.take(0)?;
        Ok(vec![Value::from_i64s(&[], vec![data.element_count() as i64], &data.device())?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn counts_elements_of_any_shape() {
        for (dims, count) in [(&[3, 4, 5][..], 60), (&[], 1), (&[2, 0], 0)] {
            let values = vec![0.0; count];
            let out = run(&node("Size", 1, 1, vec![]), 21, vec![f32_value(dims, &values)]);
            assert_eq!(out[0].shape(), &[] as &[usize]);
            assert_eq!(out[0].to_i64_vec().unwrap(), vec![count as i64]);
        }
    }
}
