//! Sin: the sine elementwise (<https://onnx.ai/onnx/operators/onnx__Sin.html>).
//!
//! Opset 7 introduced the op; 22 only added bfloat16.

use crate::unary::unary_op;

unary_op!(
    /// `Y = sin(X)`.
    Sin, 7..=super::NEWEST_OPSET, float, x => x.sin()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-3.0, 0.0, 0.5, std::f32::consts::FRAC_PI_2, 100.0];
        let out = run(&node("Sin", 1, 1, vec![]), 13, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| {
            let v = f64::from(v);
            v.sin()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Sin", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
