//! Gemm: `alpha * A' * B' + beta * C` on matrices (<https://onnx.ai/onnx/operators/onnx__Gemm.html>).
//!
//! Opset 7 replaced the `broadcast` attribute by unidirectional broadcasting of C; 11 made C optional;
//! 13 added types.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = alpha * A' * B' + beta * C`, where `X'` is `X` transposed when the flag says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Operator for Gemm {
    const OP_TYPE: &'static str = "Gemm";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha", "beta", "transA", "transB"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Gemm {
            alpha: node.float("alpha", 1.0)?,
            beta: node.float("beta", 1.0)?,
            trans_a: node.flag("transA", false)?,
            trans_b: node.flag("transB", false)?,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b, c) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let dtype = a.dtype();
        if a.rank() != 2 || b.rank() != 2 {
            fail!("A and B must be matrices, got shapes {:?} and {:?}", a.shape(), b.shape());
        }
        if b.dtype() != dtype {
            fail!("A is {dtype} but B is {}", b.dtype());
        }
        let mut a = a.float::<2>()?;
        let mut b = b.float::<2>()?;
        // Transposes are strided views; the matmul reads them in place.
        if self.trans_a {
            a = a.transpose();
        }
        if self.trans_b {
            b = b.transpose();
        }
        let ([m, k], [k_b, n]) = (a.dims(), b.dims());
        if k != k_b {
            fail!("A' is {m}x{k} but B' is {k_b}x{n}");
        }
        let mut y = a.matmul(b);
        if self.alpha != 1.0 {
            y = y.mul_scalar(self.alpha);
        }
        if let Some(c) = c.filter(|_| self.beta != 0.0) {
            if c.dtype() != dtype {
                fail!("A is {dtype} but C is {}", c.dtype());
            }
            // C broadcasts one way only: to [M, N], never the other way round.
            let fits = c.rank() <= 2
                && c.shape().iter().rev().zip([n, m]).all(|(&size, target)| size == target || size == 1);
            if !fits {
                fail!("C of shape {:?} does not broadcast to [{m}, {n}]", c.shape());
            }
            let mut c = c.unsqueeze_to(2)?.float::<2>()?;
            if self.beta != 1.0 {
                c = c.mul_scalar(self.beta);
            }
            y = y + c;
        }
        Ok(vec![Value::from_float(y, dtype)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn linear_layer_with_transposed_weights() {
        // torch's Linear exports as Gemm(x, W, b, transB=1): y = x W^T + b.
        // x = [[1, 2]], W = [[1, 0], [0, 1], [1, 1]], b = [0.5, -0.5, 0]: y = [1.5, 1.5, 3].
        let gemm = node("Gemm", 3, 1, vec![("transB", AttrValue::Int(1))]);
        let out = run(
            &gemm,
            13,
            vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), f32_value(&[3], &[0.5, -0.5, 0.0])],
        );
        assert_close(&out[0], &[1, 3], &[1.5, 1.5, 3.0]);
    }

    #[test]
    fn alpha_beta_and_transposed_a() {
        // A' = [[1, 3], [2, 4]] (A = [[1, 2], [3, 4]] transposed), B = I, C = [[1], [2]] broadcast over columns.
        // Y = 2 * A' + 0.5 * C = [[2.5, 6.5], [5, 9]].
        let gemm = node("Gemm", 3, 1, vec![("transA", AttrValue::Int(1)), ("alpha", AttrValue::Float(2.0)), ("beta", AttrValue::Float(0.5))]);
        let out = run(
            &gemm,
            13,
            vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[2, 2], &[1.0, 0.0, 0.0, 1.0]), f32_value(&[2, 1], &[1.0, 2.0])],
        );
        assert_close(&out[0], &[2, 2], &[2.5, 6.5, 5.0, 9.0]);
    }

    #[test]
    fn inner_dimension_mismatch_is_an_error() {
        let err = try_run(&node("Gemm", 2, 1, vec![]), 13, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3, 1], &[1.0, 2.0, 3.0])]);
        assert_eq!(err.unwrap_err(), "A' is 1x2 but B' is 3x1");
    }

    #[test]
    fn c_must_broadcast_to_the_output() {
        let err = try_run(
            &node("Gemm", 3, 1, vec![]),
            13,
            vec![f32_value(&[1, 1], &[1.0]), f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3], &[1.0, 2.0, 3.0])],
        );
        assert_eq!(err.unwrap_err(), "C of shape [3] does not broadcast to [1, 2]");
    }

    #[test]
    fn flags_must_be_zero_or_one() {
        let err = parse(&node("Gemm", 2, 1, vec![("transB", AttrValue::Int(2))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Gemm): attribute 'transB': must be 0 or 1, found 2");
    }
}
