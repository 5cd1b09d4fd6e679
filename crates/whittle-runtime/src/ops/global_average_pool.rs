//! GlobalAveragePool: the mean over all spatial axes (<https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html>).
//!
//! Opset 1's definition; 22 only added types. X `[N, C, spatial...]` of any number of spatial
//! axes gives `[N, C, 1, ...]`. An f32 input on flex runs on whittle's trailing-axis mean
//! ([`crate::kernels::elementwise::mean_rows`]).

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{global_pool, Pooling};
use crate::value::Value;

/// `Y[n, c] = mean(X[n, c, ...])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalAveragePool;

impl Operator for GlobalAveragePool {
    const OP_TYPE: &'static str = "GlobalAveragePool";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(GlobalAveragePool)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![global_pool(inputs.take(0)?, Pooling::Average { include_pad: false })?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn mean_per_channel() {
        // Channel 0 = [1, 2, 3, 6] (mean 3), channel 1 = [-1, 1, 0, 0] (mean 0).
        let x = f32_value(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 6.0, -1.0, 1.0, 0.0, 0.0]);
        let out = run(&node("GlobalAveragePool", 1, 1, vec![]), 22, vec![x]);
        assert_close(&out[0], &[1, 2, 1, 1], &[3.0, 0.0]);
    }

    #[test]
    fn rank_two_is_an_error() {
        let err = try_run(&node("GlobalAveragePool", 1, 1, vec![]), 22, vec![f32_value(&[1, 2], &[1.0, 2.0])]).unwrap_err();
        assert_eq!(err, "X [1, 2] must have rank 3 or more (N, C and spatial axes)");
    }
}
