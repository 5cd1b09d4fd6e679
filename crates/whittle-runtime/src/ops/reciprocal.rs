//! Reciprocal: `1 / x` elementwise (<https://onnx.ai/onnx/operators/onnx__Reciprocal.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16.

use crate::unary::unary_op;

unary_op!(
    /// `Y = reciprocal(X)`.
    Reciprocal, 6..=super::NEWEST_OPSET, float, x => x.recip()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-4.0, 0.5, 3.0, 1e-3];
        let out = run(&node("Reciprocal", 1, 1, vec![]), 13, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| {
            let v = f64::from(v);
            1.0 / v
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Reciprocal", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
