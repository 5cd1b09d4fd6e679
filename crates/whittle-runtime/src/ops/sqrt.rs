//! Sqrt: `sqrt(x)` elementwise (<https://onnx.ai/onnx/operators/onnx__Sqrt.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16. Negative inputs
//! give NaN, as the spec says.

use crate::unary::unary_op;

unary_op!(
    /// `Y = sqrt(X)`.
    Sqrt, 6..=super::NEWEST_OPSET, float, x => x.sqrt()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn square_roots_and_nan_for_negatives() {
        let out = run(&node("Sqrt", 1, 1, vec![]), 13, vec![f32_value(&[2, 2], &[0.0, 4.0, 2.0, 0.25])]);
        assert_close(&out[0], &[2, 2], &[0.0, 2.0, 2f64.sqrt(), 0.5]);
        let out = run(&node("Sqrt", 1, 1, vec![]), 13, vec![f32_value(&[], &[-1.0])]);
        assert!(out[0].to_f32_vec().unwrap()[0].is_nan());
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Sqrt", 1, 1, vec![]), 13, vec![i64_value(&[1], &[4])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
