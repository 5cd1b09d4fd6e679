//! GlobalLpPool: the p-norm over all spatial axes (<https://onnx.ai/onnx/operators/onnx__GlobalLpPool.html>).
//!
//! Opset 2 made `p` an integer (opset 1's float `p` is not implemented); 22 only added types. X
//! `[N, C, spatial...]` gives `[N, C, 1, ...]` holding `(sum |X|^p)^(1/p)`.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{global_pool, lp_norm, Pooling};
use crate::value::Value;

/// `Y[n, c] = ||X[n, c, ...]||_p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLpPool {
    pub p: i64,
}

impl Operator for GlobalLpPool {
    const OP_TYPE: &'static str = "GlobalLpPool";
    const OPSETS: RangeInclusive<i64> = 2..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["p"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let p = node.int("p", 2)?;
        if p < 1 {
            return Err(OpError::attribute("p", format!("must be 1 or more, found {p}")));
        }
        Ok(GlobalLpPool { p })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![lp_norm(inputs.take(0)?, self.p, |powered| global_pool(powered, Pooling::Sum))?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn norm_per_channel() {
        // Channel 0 = [3, 4] (L2 5), channel 1 = [-1, 0] (L2 1); with p 1: 7 and 1.
        let x = || f32_value(&[1, 2, 2], &[3.0, 4.0, -1.0, 0.0]);
        let out = run(&node("GlobalLpPool", 1, 1, vec![]), 22, vec![x()]);
        assert_close(&out[0], &[1, 2, 1], &[5.0, 1.0]);
        let out = run(&node("GlobalLpPool", 1, 1, vec![("p", AttrValue::Int(1))]), 22, vec![x()]);
        assert_close(&out[0], &[1, 2, 1], &[7.0, 1.0]);
    }
}
