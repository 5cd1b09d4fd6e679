//! Transpose: permutes axes (<https://onnx.ai/onnx/operators/onnx__Transpose.html>).
//!
//! Opsets 1 to 25 differ only in types. burn's permute returns a strided view, so a transpose costs
//! nothing until an op needs contiguous data.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `Y = X` with its axes in the order `perm` (reversed when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transpose {
    pub perm: Option<Vec<i64>>,
}

impl Operator for Transpose {
    const OP_TYPE: &'static str = "Transpose";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["perm"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Transpose { perm: node.ints("perm")? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let rank = x.rank();
        let perm: Vec<usize> = match &self.perm {
            None => (0..rank).rev().collect(),
            Some(perm) => {
                let mut seen = vec![false; rank];
                let valid = perm.len() == rank
                    && perm.iter().all(|&axis| usize::try_from(axis).is_ok_and(|axis| axis < rank && !std::mem::replace(&mut seen[axis], true)));
                if !valid {
                    fail!("perm {perm:?} is not a permutation of the {rank} axes of {:?}", x.shape());
                }
                perm.iter().map(|&axis| axis as usize).collect()
            }
        };
        if rank <= 1 {
            return Ok(vec![x]);
        }
        let dtype = x.dtype();
        let result = with_rank!(rank, D => {
            let mut axes = [0usize; D];
            axes.copy_from_slice(&perm);
            match x.kind() {
                ElementKind::Float => Value::from_float(x.float::<D>()?.permute(axes), dtype)?,
                ElementKind::Int => Value::from_int(x.typed::<D, burn_tensor::Int>()?.permute(axes), dtype)?,
                ElementKind::Bool => fail!("Transpose of bool tensors is not implemented"),
            }
        });
        Ok(vec![result])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn attention_head_split_permutation() {
        // [1, 2, 3, 1] with perm [0, 2, 1, 3]: element (0, i, j, 0) moves to (0, j, i, 0).
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let out = run(&node("Transpose", 1, 1, vec![("perm", AttrValue::Ints(vec![0, 2, 1, 3]))]), 21, vec![f32_value(&[1, 2, 3, 1], &x)]);
        assert_close(&out[0], &[1, 3, 2, 1], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn default_reverses_the_axes() {
        let out = run(&node("Transpose", 1, 1, vec![]), 21, vec![i64_value(&[2, 3], &[1, 2, 3, 4, 5, 6])]);
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn repeated_axes_are_an_error() {
        let transpose = node("Transpose", 1, 1, vec![("perm", AttrValue::Ints(vec![0, 0]))]);
        let err = try_run(&transpose, 21, vec![f32_value(&[2, 2], &[0.0; 4])]).unwrap_err();
        assert_eq!(err, "perm [0, 0] is not a permutation of the 2 axes of [2, 2]");
    }
}
