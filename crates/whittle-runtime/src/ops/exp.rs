//! Exp: `exp(x)` elementwise (<https://onnx.ai/onnx/operators/onnx__Exp.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute; 13 only added bfloat16.

use crate::unary::unary_op;

unary_op!(
    /// `Y = exp(X)`.
    Exp, 6..=super::NEWEST_OPSET, float, x => x.exp()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-3.0, 0.0, 1.0, 10.0];
        let out = run(&node("Exp", 1, 1, vec![]), 13, vec![f32_value(&[4], &x)]);
        assert_close(&out[0], &[4], &x.map(|v: f32| {
            let v = f64::from(v);
            v.exp()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Exp", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
