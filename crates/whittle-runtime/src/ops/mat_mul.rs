//! MatMul: matrix product with numpy semantics (<https://onnx.ai/onnx/operators/onnx__MatMul.html>).
//!
//! 1-D operands are promoted (a vector on the left is a row, on the right a column) and the
//! promoted axis removed from the result; leading batch axes broadcast. Opsets 1 to 13 differ only
//! in types.

use std::ops::RangeInclusive;

use crate::broadcast::broadcast_shape;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, Value};

/// `Y = A @ B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatMul;

impl Operator for MatMul {
    const OP_TYPE: &'static str = "MatMul";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(MatMul)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = a.dtype();
        if b.dtype() != dtype {
            fail!("operands have different dtypes {dtype} and {}", b.dtype());
        }
        if a.rank() == 0 || b.rank() == 0 {
            fail!("operands must have rank 1 or more, got shapes {:?} and {:?}", a.shape(), b.shape());
        }
        let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
        let a = if a.rank() == 1 { a.reshape(&[1, a_shape[0]])? } else { a };
        let b = if b.rank() == 1 { b.reshape(&[b_shape[0], 1])? } else { b };
        let (a_rank, b_rank) = (a.rank(), b.rank());
        let (m, k) = (a.shape()[a_rank - 2], a.shape()[a_rank - 1]);
        let (k_b, n) = (b.shape()[b_rank - 2], b.shape()[b_rank - 1]);
        if k != k_b {
            fail!("shapes {a_shape:?} and {b_shape:?} do not multiply: inner sizes {k} and {k_b}");
        }
        let batch = broadcast_shape(&a.shape()[..a_rank - 2], &b.shape()[..b_rank - 2])
            .map_err(|_| OpError::new(format!("batch axes of {a_shape:?} and {b_shape:?} do not broadcast")))?;
        let rank = batch.len() + 2;
        let (a, b) = (a.unsqueeze_to(rank)?, b.unsqueeze_to(rank)?);
        // burn's matmul broadcasts size-1 batch axes of same-rank operands.
        let product = with_rank!(rank, D => Value::from_float(a.float::<D>()?.matmul(b.float::<D>()?), dtype)?);
        let mut shape = batch;
        if a_shape.len() > 1 {
            shape.push(m);
        }
        if b_shape.len() > 1 {
            shape.push(n);
        }
        Ok(vec![product.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    /// Reference batched matmul in f64 over row-major buffers: `[batch, m, k] x [batch, k, n]`.
    fn reference(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; batch * m * n];
        for t in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    out[(t * m + i) * n + j] =
                        (0..k).map(|p| f64::from(a[(t * m + i) * k + p]) * f64::from(b[(t * k + p) * n + j])).sum();
                }
            }
        }
        out
    }

    fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| (i as f32 - count as f32 / 2.0) * scale).collect()
    }

    #[test]
    fn batched_operands_match_a_reference_product() {
        let (a, b) = (ramp(2 * 3 * 4, 0.25), ramp(2 * 4 * 5, 0.5));
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3, 4], &a), f32_value(&[2, 4, 5], &b)]);
        assert_close(&out[0], &[2, 3, 5], &reference(&a, &b, 2, 3, 4, 5));
    }

    #[test]
    fn matrix_on_the_right_broadcasts_over_the_batch() {
        // [2, 3, 4] x [4, 5]: the weight matrix is shared by both batch entries.
        let (a, b) = (ramp(24, 0.25), ramp(20, 0.5));
        let b_twice: Vec<f32> = b.iter().chain(&b).copied().collect();
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3, 4], &a), f32_value(&[4, 5], &b)]);
        assert_close(&out[0], &[2, 3, 5], &reference(&a, &b_twice, 2, 3, 4, 5));
    }

    #[test]
    fn vectors_are_promoted_and_squeezed() {
        // [3] x [3, 2] -> [2]; [2, 3] x [3] -> [2]; [3] x [3] -> [].
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[3], &[1.0, 1.0, 1.0]), f32_value(&[3, 2], &m)]);
        assert_close(&out[0], &[2], &[9.0, 12.0]);
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3], &m), f32_value(&[3], &[1.0, 0.0, -1.0])]);
        assert_close(&out[0], &[2], &[-2.0, -2.0]);
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[3], &[1.0, 2.0, 3.0]), f32_value(&[3], &[4.0, 5.0, 6.0])]);
        assert_close(&out[0], &[], &[32.0]);
    }

    #[test]
    fn mismatched_inner_sizes_are_an_error() {
        let err = try_run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3], &[0.0; 6]), f32_value(&[2, 3], &[0.0; 6])]);
        assert_eq!(err.unwrap_err(), "shapes [2, 3] and [2, 3] do not multiply: inner sizes 3 and 2");
    }
}
