//! Sub: elementwise `a - b` with multidirectional broadcasting (<https://onnx.ai/onnx/operators/onnx__Sub.html>).
//!
//! Opsets 7 to 14 share these semantics (6 and earlier had a `broadcast` attribute; 13 and 14 added
//! types).

use std::ops::RangeInclusive;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{NodeContext, OpError, Operator, Inputs};
use crate::value::Value;

/// `C = a - b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub;

impl Operator for Sub {
    const OP_TYPE: &'static str = "Sub";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Sub)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![arithmetic(Arithmetic::Sub, a, b)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn row_broadcasts_over_matrix() {
        // [2, 3] - [3]
        let out = run(&node("Sub", 2, 1, vec![]), 14, vec![f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), f32_value(&[3], &[10.0, 20.0, 30.0])]);
        assert_close(&out[0], &[2, 3], &[-9.0, -18.0, -27.0, -6.0, -15.0, -24.0]);
    }
}
