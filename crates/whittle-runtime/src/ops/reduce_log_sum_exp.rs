//! ReduceLogSumExp: the log of the sum of exponentials over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceLogSumExp.html>).
//!
//! The axes are an attribute before opset 18 and an optional input from 18 on; the axes,
//! `keepdims` and `noop_with_empty_axes` rules, shared by every reduction, are in `reduce.rs`.
//! Opset 28 drops the integer types. Floats only, computed shifted by the maximum so that large
//! values do not overflow; over no elements it is -inf.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = log(sum(exp(data), axes))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceLogSumExp(pub Reduction);

impl Operator for ReduceLogSumExp {
    const OP_TYPE: &'static str = "ReduceLogSumExp";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceLogSumExp)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::LogSumExp, inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_the_direct_formula_and_does_not_overflow() {
        let x = [1.0f32, 2.0, 3.0, 0.5];
        let direct = |a: f32, b: f32| (f64::from(a).exp() + f64::from(b).exp()).ln();
        let out = run(&node("ReduceLogSumExp", 2, 1, vec![]), 18, vec![f32_value(&[2, 2], &x), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[2, 1], &[direct(1.0, 2.0), direct(3.0, 0.5)]);
        // exp(1000) overflows f32; the result is 1000 + ln 2.
        let out = run(&node("ReduceLogSumExp", 1, 1, vec![]), 18, vec![f32_value(&[2], &[1000.0, 1000.0])]);
        assert_close(&out[0], &[1], &[1000.0 + 2f64.ln()]);
    }
}
