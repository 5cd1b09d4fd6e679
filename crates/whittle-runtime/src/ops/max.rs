//! Max: the elementwise maximum of any number of inputs with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__Max.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 8 added broadcasting (6 and 7 needed
//! equal shapes, a special case), 12 integer types and 13 bfloat16. A NaN in any input gives NaN.

use std::ops::RangeInclusive;

use crate::broadcast::{extremum, fold, Extremum};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// The the elementwise maximum of the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Max;

impl Operator for Max {
    const OP_TYPE: &'static str = "Max";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Max)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![fold(inputs.take_all()?, |a, b| extremum(Extremum::Max, a, b))?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_broadcast_and_nan_propagates() {
        let inputs = vec![f32_value(&[2, 2], &[1.0, 5.0, f32::NAN, 4.0]), f32_value(&[2], &[3.0, f32::NAN]), f32_value(&[], &[2.0])];
        let out = run(&node("Max", 3, 1, vec![]), 13, inputs);
        let values = out[0].to_f32_vec().unwrap();
        assert_eq!(values[0], 3.0);
        assert!(values[1].is_nan() && values[2].is_nan() && values[3].is_nan());
    }

    #[test]
    fn int64_exactly() {
        let big = (1i64 << 53) + 1;
        let out = run(&node("Max", 2, 1, vec![]), 13, vec![i64_value(&[2], &[big, -3]), i64_value(&[2], &[big - 1, -4])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![big, -3]);
    }
}
