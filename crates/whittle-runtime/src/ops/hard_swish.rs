//! HardSwish: `x * max(0, min(1, x / 6 + 1 / 2))` elementwise
//! (<https://onnx.ai/onnx/operators/onnx__HardSwish.html>).
//!
//! Opset 14 introduced the op; 22 only added bfloat16.

use burn_tensor::activation;

use crate::unary::unary_op;

unary_op!(
    /// `Y = X * HardSigmoid<alpha = 1/6, beta = 0.5>(X)`.
    HardSwish, 14..=super::NEWEST_OPSET, float, x => activation::hard_swish(x)
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn is_zero_below_minus_3_and_identity_above_3() {
        let x = [-4.0, -3.0, -1.0, 0.0, 1.5, 3.0, 7.0];
        let out = run(&node("HardSwish", 1, 1, vec![]), 14, vec![f32_value(&[7], &x)]);
        let expected = x.map(|v: f32| f64::from(v) * (f64::from(v) / 6.0 + 0.5).clamp(0.0, 1.0));
        assert_close(&out[0], &[7], &expected);
    }
}
