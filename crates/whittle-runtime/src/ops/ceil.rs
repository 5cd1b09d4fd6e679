//! Ceil: rounds up elementwise (<https://onnx.ai/onnx/operators/onnx__Ceil.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16.

use crate::unary::unary_op;

unary_op!(
    /// `Y = ceil(X)`.
    Ceil, 6..=super::NEWEST_OPSET, float, x => x.ceil()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-1.5, -0.5, 0.0, 2.2];
        let out = run(&node("Ceil", 1, 1, vec![]), 13, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| {
            let v = f64::from(v);
            v.ceil()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Ceil", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
