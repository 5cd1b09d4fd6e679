//! Softplus: `log(exp(x) + 1)` elementwise (<https://onnx.ai/onnx/operators/onnx__Softplus.html>).
//!
//! Opset 1 has no `consumed_inputs` attribute, so every version has these semantics; 22 only
//! added bfloat16. burn returns `x` itself where `x > 20`, where the two differ by under
//! `exp(-20)`, so that `exp` cannot overflow.

use burn_tensor::activation;

use crate::unary::unary_op;

unary_op!(
    /// `Y = softplus(X)`.
    Softplus, 1..=super::NEWEST_OPSET, float, x => activation::softplus(x, 1.0)
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-20.0, -1.0, 0.0, 1.0, 30.0];
        let out = run(&node("Softplus", 1, 1, vec![]), 13, vec![f32_value(&[5], &x)]);
        assert_close(&out[0], &[5], &x.map(|v: f32| {
            let v = f64::from(v);
            (v.exp() + 1.0).ln()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Softplus", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
