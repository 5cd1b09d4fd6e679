//! Tile: repeats a tensor along each axis (<https://onnx.ai/onnx/operators/onnx__Tile.html>).
//!
//! Opsets 6 and 13 (types only) take one repeat count per axis as an input; opset 1's
//! `tiles`/`axis` inputs are not implemented.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, IntsInput, NodeContext, OpError, Operator};
use crate::value::{with_kind, with_rank, Value};

/// `output = input` repeated `repeats[i]` times along axis `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub repeats: IntsInput,
}

impl Operator for Tile {
    const OP_TYPE: &'static str = "Tile";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Tile { repeats: IntsInput::input(node, 1)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let repeats = self.repeats.read(&mut inputs)?.unwrap_or_default();
        let input = inputs.take(0)?;
        if repeats.len() != input.rank() || repeats.iter().any(|&times| times < 0) {
            fail!("repeats {repeats:?} must be one count of 0 or more per axis of {:?}", input.shape());
        }
        let times: Vec<usize> = repeats.iter().map(|&times| times as usize).collect();
        let shape: Vec<usize> = input.shape().iter().zip(&times).map(|(&size, &times)| size * times).collect();
        if shape.contains(&0) {
            return Ok(vec![Value::empty(input.dtype(), &shape, &input.device())?]);
        }
        if input.rank() == 0 {
            return Ok(vec![input]);
        }
        let (dtype, kind) = (input.dtype(), input.kind());
        let tiled = with_rank!(input.rank(), D => with_kind!(kind, K => Value::from_typed(input.typed::<D, K>()?.repeat(&times), dtype)?));
        Ok(vec![tiled])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn repeats_whole_blocks_per_axis() {
        // [[0, 1], [2, 3]] tiled [2, 2]: the block repeated down and across.
        let out = run(&node("Tile", 2, 1, vec![]), 13, vec![f32_value(&[2, 2], &[0.0, 1.0, 2.0, 3.0]), i64_value(&[2], &[2, 2])]);
        let expected = [0.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 0.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 3.0];
        assert_close(&out[0], &[4, 4], &expected);
        let out = run(&node("Tile", 2, 1, vec![]), 13, vec![i64_value(&[2], &[5, 6]), i64_value(&[1], &[0])]);
        assert_eq!(out[0].shape(), &[0]);
    }

    #[test]
    fn repeats_must_match_the_rank() {
        let err = try_run(&node("Tile", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[2], &[1, 1])]);
        assert_eq!(err.unwrap_err(), "repeats [1, 1] must be one count of 0 or more per axis of [2]");
    }
}
