//! Sign: -1, 0 or 1 by the sign of each element (<https://onnx.ai/onnx/operators/onnx__Sign.html>).
//!
//! Opset 9 introduced the op; 13 only added bfloat16. Float and integer inputs; NaN gives 0, as
//! burn defines it (the spec does not say, numpy gives NaN).

use crate::unary::unary_op;

unary_op!(
    /// `Y = sign(X)`.
    Sign, 9..=super::NEWEST_OPSET, numeric, x => x.sign()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_and_int64() {
        let out = run(&node("Sign", 1, 1, vec![]), 13, vec![f32_value(&[4], &[-2.5, 0.0, -0.0, 1e-30])]);
        assert_close(&out[0], &[4], &[-1.0, 0.0, 0.0, 1.0]);
        let out = run(&node("Sign", 1, 1, vec![]), 13, vec![i64_value(&[3], &[-(1 << 60), 0, 7])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-1, 0, 1]);
    }
}
