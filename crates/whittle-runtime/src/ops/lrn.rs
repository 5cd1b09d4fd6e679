//! LRN: local response normalization across channels (<https://onnx.ai/onnx/operators/onnx__LRN.html>).
//!
//! Opset 1's definition; 13 only added bfloat16. For X `[N, C, ...]`,
//! `Y = X / (bias + alpha / size * square_sum) ^ beta`, where `square_sum[n, c, ...]` sums `X^2`
//! over the channels `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)` that exist. The
//! window sum runs as a 2-D sum pooling over `[N, 1, C, rest]` (`spatial.rs`), with zero padding
//! standing for the missing channels.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{pool, Pooling, Resolved};
use crate::value::{with_rank, Value};

/// Normalizes each element by the energy of its neighbouring channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrn {
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
    pub size: usize,
}

impl Operator for Lrn {
    const OP_TYPE: &'static str = "LRN";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha", "beta", "bias", "size"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let size = match node.optional_int("size")? {
            None => return Err(OpError::attribute("size", "is required")),
            Some(size) if size >= 1 => size as usize,
            Some(size) => return Err(OpError::attribute("size", format!("must be 1 or more, found {size}"))),
        };
        Ok(Lrn { alpha: node.float("alpha", 1e-4)?, beta: node.float("beta", 0.75)?, bias: node.float("bias", 1.0)?, size })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        if shape.len() < 2 {
            fail!("X {shape:?} must have rank 2 or more (N, C, ...)");
        }
        let (n, c, rest) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        if x.element_count() == 0 {
            return Ok(vec![x]);
        }
        let squares = map_square(x.clone())?.reshape(&[n, 1, c, rest])?;
        let window = Resolved {
            kernel: vec![self.size, 1],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            padding: vec![((self.size - 1) / 2, self.size / 2), (0, 0)],
        };
        let square_sum = pool(squares, &window, false, Pooling::Sum)?.reshape(&shape)?;
        // The spec's coefficient alpha / size, formed in f64 from the f32 attributes.
        let scale = f64::from(self.alpha) / self.size as f64;
        let (bias, beta) = (f64::from(self.bias), f64::from(self.beta));
        let y = with_rank!(x.burn_rank(), D => {
            let denominator = square_sum.float::<D>()?.mul_scalar(scale).add_scalar(bias).powf_scalar(beta);
            Value::from_float(x.float::<D>()? / denominator, dtype)?
        });
        Ok(vec![y])
    }
}

fn map_square(x: Value) -> Result<Value, OpError> {
    crate::value::map_float!(x, t => t.clone() * t)
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    /// The spec's formula in f64 over `x [n, c, rest]`.
    fn reference(x: &[f32], [n, c, rest]: [usize; 3], alpha: f64, beta: f64, bias: f64, size: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for b in 0..n {
            for ch in 0..c {
                for r in 0..rest {
                    let low = ch.saturating_sub((size - 1) / 2);
                    let high = (ch + size / 2).min(c - 1);
                    let sum: f64 = (low..=high).map(|i| f64::from(x[(b * c + i) * rest + r]).powi(2)).sum();
                    let value = f64::from(x[(b * c + ch) * rest + r]);
                    out.push(value / (bias + alpha / size as f64 * sum).powf(beta));
                }
            }
        }
        out
    }

    #[test]
    fn even_and_odd_sizes_match_the_formula() {
        let x: Vec<f32> = (0..2 * 5 * 3).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.0).collect();
        for size in [1, 2, 3, 4] {
            let lrn = node(
                "LRN",
                1,
                1,
                vec![
                    ("size", AttrValue::Int(size)),
                    ("alpha", AttrValue::Float(0.5)),
                    ("beta", AttrValue::Float(0.6)),
                    ("bias", AttrValue::Float(2.0)),
                ],
            );
            let out = run(&lrn, 13, vec![f32_value(&[2, 5, 3], &x)]);
            let expected = reference(&x, [2, 5, 3], f64::from(0.5f32), f64::from(0.6f32), 2.0, size as usize);
            assert_close(&out[0], &[2, 5, 3], &expected);
        }
    }

    #[test]
    fn empty_input_stays_empty() {
        let out = run(&node("LRN", 1, 1, vec![("size", AttrValue::Int(3))]), 13, vec![f32_value(&[1, 0, 2], &[])]);
        assert_eq!(out[0].shape(), &[1, 0, 2]);
    }

    #[test]
    fn size_is_required_and_positive() {
        let err = parse(&node("LRN", 1, 1, vec![]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (LRN): attribute 'size': is required");
        let err = parse(&node("LRN", 1, 1, vec![("size", AttrValue::Int(0))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (LRN): attribute 'size': must be 1 or more, found 0");
    }
}
