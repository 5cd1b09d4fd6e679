//! Mul: elementwise `a * b` with multidirectional broadcasting (<https://onnx.ai/onnx/operators/onnx__Mul.html>).
//!
//! Opsets 7 to 14 share these semantics (6 and earlier had a `broadcast` attribute; 13 and 14 added
//! types).

use std::ops::RangeInclusive;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{NodeContext, OpError, Operator, Inputs};
use crate::value::Value;

/// `C = a * b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mul;

impl Operator for Mul {
    const OP_TYPE: &'static str = "Mul";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Mul)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![arithmetic(Arithmetic::Mul, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn row_broadcasts_over_matrix() {
        // [2, 3] * [3]
        let out = run(&node("Mul", 2, 1, vec![]), 14, vec![f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), f32_value(&[3], &[10.0, 20.0, 30.0])]);
        assert_close(&out[0], &[2, 3], &[10.0, 40.0, 90.0, 40.0, 100.0, 180.0]);
    }

    #[test]
    fn scalar_times_tensor() {
        let out = run(&node("Mul", 2, 1, vec![]), 18, vec![f32_value(&[], &[0.5]), f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
        assert_close(&out[0], &[2, 2], &[0.5, 1.0, 1.5, 2.0]);
    }
}
