//! Log: the natural logarithm elementwise (<https://onnx.ai/onnx/operators/onnx__Log.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16. `log(0)` is
//! -inf and negative inputs give NaN.

use crate::unary::unary_op;

unary_op!(
    /// `Y = log(X)`.
    Log, 6..=super::NEWEST_OPSET, float, x => x.log()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [0.5, 1.0, 2.0, 1e6];
        let out = run(&node("Log", 1, 1, vec![]), 13, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| {
            let v = f64::from(v);
            v.ln()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Log", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
