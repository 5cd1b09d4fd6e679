//! Tanh: the hyperbolic tangent elementwise (<https://onnx.ai/onnx/operators/onnx__Tanh.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16.

use crate::unary::unary_op;

unary_op!(
    /// `Y = tanh(X)`.
    Tanh, 6..=super::NEWEST_OPSET, float, x => x.tanh()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64_tanh_and_saturates() {
        let x = [-20.0, -1.0, 0.0, 0.5, 3.0];
        let out = run(&node("Tanh", 1, 1, vec![]), 13, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| f64::from(v).tanh()));
    }
}
