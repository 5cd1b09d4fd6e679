//! Sigmoid: `1 / (1 + exp(-x))` elementwise (<https://onnx.ai/onnx/operators/onnx__Sigmoid.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16.

use burn_tensor::activation;

use crate::unary::unary_op;

unary_op!(
    /// `Y = 1 / (1 + exp(-X))`.
    Sigmoid, 6..=super::NEWEST_OPSET, float, x => activation::sigmoid(x)
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64_logistic_without_overflow() {
        // exp(100) overflows f32: a naive 1 / (1 + exp(-x)) still works for -100, the check is
        // that neither tail turns into NaN.
        let x = [-100.0, -1.0, 0.0, 2.0, 100.0];
        let out = run(&node("Sigmoid", 1, 1, vec![]), 13, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| 1.0 / (1.0 + (-f64::from(v)).exp())));
    }
}
