//! LpPool: the p-norm over sliding windows (<https://onnx.ai/onnx/operators/onnx__LpPool.html>).
//!
//! `Y = (sum over the window of |X|^p)^(1/p)`, padding counting as 0. Opset 2 made `p` an integer
//! (opset 1's float `p` is not implemented), 11 the current padding rules, 18 added `ceil_mode` and
//! `dilations`, 22 types (an attribute given before its opset is refused). 1-, 2- and 3-D
//! windows, through the sum pooling of `spatial.rs`.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{lp_norm, pool, refuse_newer_attributes, Pooling, Window};
use crate::value::Value;

/// `Y = p-norm of each window of X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LpPool {
    pub window: Window,
    pub ceil_mode: bool,
    pub p: i64,
}

impl Operator for LpPool {
    const OP_TYPE: &'static str = "LpPool";
    const OPSETS: RangeInclusive<i64> = 2..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["auto_pad", "ceil_mode", "dilations", "kernel_shape", "p", "pads", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        refuse_newer_attributes(node, &[("ceil_mode", 18), ("dilations", 18)])?;
        let window = Window::parse(node)?;
        if window.kernel.is_none() {
            return Err(OpError::attribute("kernel_shape", "is required"));
        }
        let p = node.int("p", 2)?;
        if p < 1 {
            return Err(OpError::attribute("p", format!("must be 1 or more, found {p}")));
        }
        Ok(LpPool { window, ceil_mode: node.flag("ceil_mode", false)?, p })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let shape = x.shape().to_vec();
        if !(3..=5).contains(&shape.len()) {
            fail!("X {shape:?} must have 1 to 3 spatial axes");
        }
        let window = self.window.resolve(&shape[2..], self.window.kernel.as_deref().unwrap_or_default())?;
        Ok(vec![lp_norm(x, self.p, |powered| pool(powered, &window, self.ceil_mode, Pooling::Sum))?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn p_norm_of_each_window_with_zero_padding() {
        // x = [3, -4, 12], kernel 2, pads (0, 1), p 2: sqrt(9 + 16) = 5, sqrt(16 + 144), sqrt(144 + 0).
        let pool = node("LpPool", 1, 1, vec![("kernel_shape", AttrValue::Ints(vec![2])), ("pads", AttrValue::Ints(vec![0, 1]))]);
        let out = run(&pool, 18, vec![f32_value(&[1, 1, 3], &[3.0, -4.0, 12.0])]);
        assert_close(&out[0], &[1, 1, 3], &[5.0, 160f64.sqrt(), 12.0]);
        // p 1: sums of absolute values.
        let l1 = node("LpPool", 1, 1, vec![("kernel_shape", AttrValue::Ints(vec![2])), ("p", AttrValue::Int(1))]);
        let out = run(&l1, 18, vec![f32_value(&[1, 1, 3], &[3.0, -4.0, 12.0])]);
        assert_close(&out[0], &[1, 1, 2], &[7.0, 16.0]);
    }

    #[test]
    fn p_below_one_is_an_error() {
        let pool = node("LpPool", 1, 1, vec![("kernel_shape", AttrValue::Ints(vec![2])), ("p", AttrValue::Int(0))]);
        let err = parse(&pool, 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (LpPool): attribute 'p': must be 1 or more, found 0");
    }
}
