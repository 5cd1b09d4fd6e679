//! GlobalMaxPool: the maximum over all spatial axes (<https://onnx.ai/onnx/operators/onnx__GlobalMaxPool.html>).
//!
//! Opset 1's definition; 22 only added types. X `[N, C, spatial...]` of any number of spatial
//! axes gives `[N, C, 1, ...]`.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{global_pool, Pooling};
use crate::value::Value;

/// `Y[n, c] = max(X[n, c, ...])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalMaxPool;

impl Operator for GlobalMaxPool {
    const OP_TYPE: &'static str = "GlobalMaxPool";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(GlobalMaxPool)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![global_pool(inputs.take(0)?, Pooling::Max)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn max_per_channel_over_three_spatial_axes() {
        // Channel 0 holds -8..0 (max -1), channel 1 holds 0..8 (max 7).
        let x: Vec<f32> = (-8..8).map(|i| i as f32).collect();
        let out = run(&node("GlobalMaxPool", 1, 1, vec![]), 22, vec![f32_value(&[1, 2, 2, 2, 2], &x)]);
        assert_close(&out[0], &[1, 2, 1, 1, 1], &[-1.0, 7.0]);
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("GlobalMaxPool", 1, 1, vec![]), 22, vec![i64_value(&[1, 1, 1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
