//! Softsign: `x / (1 + |x|)` elementwise (<https://onnx.ai/onnx/operators/onnx__Softsign.html>).
//!
//! Opset 1 is the first version and 22 only added bfloat16.

use burn_tensor::activation;

use crate::unary::unary_op;

unary_op!(
    /// `Y = softsign(X)`.
    Softsign, 1..=super::NEWEST_OPSET, float, x => activation::softsign(x)
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-3.0, -0.5, 0.0, 1.0, 100.0];
        let out = run(&node("Softsign", 1, 1, vec![]), 13, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| {
            let v = f64::from(v);
            v / (1.0 + v.abs())
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Softsign", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
