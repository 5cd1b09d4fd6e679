//! Erf: the Gauss error function elementwise (<https://onnx.ai/onnx/operators/onnx__Erf.html>).
//!
//! Exporters spell exact GELU as `x * 0.5 * (1 + erf(x / sqrt 2))`, so its accuracy carries into
//! every transformer MLP. f32 values on burn-flex take the vectorized kernel
//! ([`crate::kernels::activation::erf`]); other devices and dtypes burn's erf.

use std::ops::RangeInclusive;

use crate::kernels::{self, activation::Map};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = erf(X)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erf;

impl Operator for Erf {
    const OP_TYPE: &'static str = "Erf";
    const OPSETS: RangeInclusive<i64> = 9..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Erf)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        match kernels::map_in_place(inputs.take(0)?, |values| Map::Erf.apply(values)) {
            Ok(y) => Ok(vec![y?]),
            Err(x) => Ok(vec![map_float!(*x, x => x.erf())?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn matches_reference_values() {
        // erf values from Abramowitz and Stegun, table 7.1 (10 digits), and erf(-x) = -erf(x).
        let out = run(&node("Erf", 1, 1, vec![]), 13, vec![f32_value(&[5], &[0.0, 0.5, 1.0, -1.5, 3.0])]);
        assert_close(&out[0], &[5], &[0.0, 0.5204998778, 0.8427007929, -0.9661051465, 0.9999779095]);
    }

    #[test]
    fn scalars_and_empty_tensors_keep_their_shapes() {
        let out = run(&node("Erf", 1, 1, vec![]), 13, vec![f32_value(&[], &[1.0])]);
        assert_close(&out[0], &[], &[0.8427007929]);
        let out = run(&node("Erf", 1, 1, vec![]), 13, vec![f32_value(&[0, 2], &[])]);
        assert_eq!(out[0].shape(), &[0, 2]);
    }
}
