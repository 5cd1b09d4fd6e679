//! LogSoftmax: `log(softmax(x))` along an axis (<https://onnx.ai/onnx/operators/onnx__LogSoftmax.html>).
//!
//! Shares Softmax's code and its opset rules: from 13 along `axis` (default -1), before on the
//! input viewed as a matrix split at `axis` (default 1); 1 to 12 differ from 13 only there.

use std::ops::RangeInclusive;

use crate::ops::softmax::{normalize, parse_axis};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = X - log(sum(exp(X)))` along `axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSoftmax {
    pub axis: i64,
    /// Opsets before 13: over the flattened axes `axis..`.
    pub coerce_to_matrix: bool,
}

impl Operator for LogSoftmax {
    const OP_TYPE: &'static str = "LogSoftmax";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let (axis, coerce_to_matrix) = parse_axis(node)?;
        Ok(LogSoftmax { axis, coerce_to_matrix })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![normalize(inputs.take(0)?, self.axis, self.coerce_to_matrix, true)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn log_softmax(row: &[f64]) -> Vec<f64> {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        row.iter().map(|x| x - max - log_sum).collect()
    }

    #[test]
    fn last_axis_from_opset_13_stable_for_large_logits() {
        let out = run(&node("LogSoftmax", 1, 1, vec![]), 13, vec![f32_value(&[2, 2], &[1000.0, 1001.0, -1.0, 2.0])]);
        assert_close(&out[0], &[2, 2], &[log_softmax(&[0.0, 1.0]), log_softmax(&[-1.0, 2.0])].concat());
    }

    #[test]
    fn opset_11_flattens_from_the_axis() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let out = run(&node("LogSoftmax", 1, 1, vec![("axis", AttrValue::Int(1))]), 11, vec![f32_value(&[1, 2, 2], &x)]);
        assert_close(&out[0], &[1, 2, 2], &log_softmax(&x.map(f64::from)));
    }

    #[test]
    fn bad_axis_and_scalar_are_errors() {
        let err = try_run(&node("LogSoftmax", 1, 1, vec![("axis", AttrValue::Int(2))]), 13, vec![f32_value(&[2, 2], &[0.0; 4])]);
        assert_eq!(err.unwrap_err(), "axis 2 is out of range for rank 2");
        let err = try_run(&node("LogSoftmax", 1, 1, vec![]), 13, vec![f32_value(&[], &[0.0])]);
        assert_eq!(err.unwrap_err(), "the input needs rank 1 or more");
    }
}
