//! Round: rounds to the nearest integer, halves to even, elementwise
//! (<https://onnx.ai/onnx/operators/onnx__Round.html>).
//!
//! Opset 11 introduced the op; 22 only added bfloat16. Halves round to the even neighbour, as the
//! spec says (`round(2.5) = 2`, `round(-1.5) = -2`).

use crate::unary::unary_op;

unary_op!(
    /// `Y = round(X)`.
    Round, 11..=super::NEWEST_OPSET, float, x => x.round()
);

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_f64() {
        let x = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.4];
        let out = run(&node("Round", 1, 1, vec![]), 13, vec![f32_value(&[8], &x)]);
        assert_close(&out[0], &[8], &x.map(|v: f32| {
            let v = f64::from(v);
            v.round_ties_even()
        }));
    }

    #[test]
    fn integer_input_is_an_error() {
        let err = try_run(&node("Round", 1, 1, vec![]), 13, vec![i64_value(&[1], &[1])]).unwrap_err();
        assert_eq!(err, "expected a Float tensor, got i64");
    }
}
