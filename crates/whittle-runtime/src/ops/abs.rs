//! Abs: `|x|` elementwise (<https://onnx.ai/onnx/operators/onnx__Abs.html>).
//!
//! Opset 6 dropped the legacy `consumed_inputs` attribute and added integer types; 13 only added
//! bfloat16. Float and integer inputs; unsigned ones come back unchanged.

use crate::unary::unary_op;

unary_op!(
    /// `Y = |X|`.
    Abs, 6..=super::NEWEST_OPSET, numeric, x => x.abs()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn floats_and_int64() {
        let out = run(&node("Abs", 1, 1, vec![]), 13, vec![f32_value(&[3], &[-1.5, 0.0, 2.0])]);
        assert_close(&out[0], &[3], &[1.5, 0.0, 2.0]);
        let out = run(&node("Abs", 1, 1, vec![]), 13, vec![i64_value(&[3], &[-(1 << 60), 0, 7])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1 << 60, 0, 7]);
    }

    #[test]
    fn bool_input_is_an_error() {
        let err = try_run(&node("Abs", 1, 1, vec![]), 13, vec![bool_value(&[1], &[true])]);
        assert_eq!(err.unwrap_err(), "expected a numeric tensor, got bool");
    }
}
