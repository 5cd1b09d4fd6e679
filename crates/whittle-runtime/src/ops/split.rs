//! Split: cuts a tensor into parts along an axis (<https://onnx.ai/onnx/operators/onnx__Split.html>).
//!
//! The part sizes come from the `split` attribute before opset 13 and from the optional second input
//! from 13 on; without them the axis is cut into as many equal parts as the node has outputs (before
//! 18, where the size must divide evenly) or `num_outputs` parts (18 on, the last part may be
//! smaller).

use std::ops::RangeInclusive;

use burn_tensor::Tensor;

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `outputs = split(input)` along `axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub axis: i64,
    /// Part sizes from the attribute (before opset 13) or a constant input.
    pub split: Option<Vec<i64>>,
    /// The number of parts.
    pub parts: usize,
    /// Opset 18 and later: equal parts may leave a smaller last part.
    pub uneven_last_part: bool,
}

impl Operator for Split {
    const OP_TYPE: &'static str = "Split";
    const OPSETS: RangeInclusive<i64> = 2..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis", "split", "num_outputs"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let opset = node.opset;
        let parts = node.node.outputs.len();
        let split = if opset < 13 { node.ints("split")? } else { node.constant_ints(1)? };
        if opset >= 13 && node.node.attribute("split").is_some() {
            return Err(OpError::attribute("split", "is an input from opset 13 on"));
        }
        let num_outputs = if opset >= 18 { node.optional_int("num_outputs")? } else { None };
        if let Some(num_outputs) = num_outputs {
            if node.has_input(1) {
                return Err(OpError::attribute("num_outputs", "cannot be combined with the split input"));
            }
            if usize::try_from(num_outputs).ok() != Some(parts) {
                return Err(OpError::attribute("num_outputs", format!("is {num_outputs} but the node has {parts} outputs")));
            }
        }
        if let Some(split) = &split {
            check_split(split, parts)?;
        }
        Ok(Split { axis: node.int("axis", 0)?, split, parts, uneven_last_part: opset >= 18 })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let axis = normalize_axis(self.axis, x.rank())?;
        let size = x.shape()[axis];
        let split = match (&self.split, inputs.take_optional(1)) {
            (Some(split), _) => split.clone(),
            (None, Some(input)) => {
                let split = input.to_i64_vec()?;
                check_split(&split, self.parts)?;
                split
            }
            (None, None) => self.equal_parts(size)?,
        };
        let total: i64 = split.iter().sum();
        if usize::try_from(total).ok() != Some(size) {
            fail!("split {split:?} adds up to {total}, but axis {axis} of {:?} has size {size}", x.shape());
        }
        let dtype = x.dtype();
        let mut outputs = Vec::with_capacity(split.len());
        let mut start = 0;
        for &length in &split {
            let length = length as usize;
            // narrow returns a view of the same buffer; nothing is copied here. It refuses a length
            // of 0 (burn asserts a non-empty range), so an empty part is a new empty tensor instead:
            // it has no elements to share.
            let part = with_rank!(x.burn_rank(), D => match x.kind() {
                ElementKind::Float => {
                    let tensor = x.clone().float::<D>()?;
                    let part = if length == 0 { empty_like_along(&tensor, axis) } else { tensor.narrow(axis, start, length) };
                    Value::from_float(part, dtype)?
                }
                ElementKind::Int => {
                    let tensor = x.clone().typed::<D, burn_tensor::Int>()?;
                    let part = if length == 0 { empty_like_along(&tensor, axis) } else { tensor.narrow(axis, start, length) };
                    Value::from_int(part, dtype)?
                }
                ElementKind::Bool => fail!("Split of bool tensors is not implemented"),
            });
            outputs.push(part);
            start += length;
        }
        Ok(outputs)
    }
}

/// A tensor of `tensor`'s dtype, device and shape, except size 0 along `axis`.
fn empty_like_along<const D: usize, K: burn_tensor::kind::Basic>(tensor: &Tensor<D, K>, axis: usize) -> Tensor<D, K> {
    let mut dims = tensor.dims();
    dims[axis] = 0;
    Tensor::empty(dims, (&tensor.device(), tensor.dtype()))
}

impl Split {
    fn equal_parts(&self, size: usize) -> Result<Vec<i64>, OpError> {
        let parts = self.parts;
        if self.uneven_last_part {
            let chunk = size.div_ceil(parts);
            if chunk * (parts - 1) >= size {
                fail!("axis of size {size} cannot be cut into {parts} non-empty parts");
            }
            let mut split = vec![chunk as i64; parts - 1];
            split.push((size - chunk * (parts - 1)) as i64);
            Ok(split)
        } else {
            if !size.is_multiple_of(parts) {
                fail!("axis of size {size} does not split evenly into {parts} parts");
            }
            Ok(vec![(size / parts) as i64; parts])
        }
    }
}

fn check_split(split: &[i64], parts: usize) -> Result<(), OpError> {
    if split.len() != parts {
        fail!("split {split:?} has {} sizes for {parts} outputs", split.len());
    }
    if split.iter().any(|&size| size < 0) {
        fail!("split {split:?} has a negative size");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn fused_qkv_splits_into_three_equal_parts() {
        // Opset 18 with num_outputs = 3 along the last axis, as the transformer fixture does.
        let split = node("Split", 1, 3, vec![("axis", AttrValue::Int(1)), ("num_outputs", AttrValue::Int(3))]);
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let out = run(&split, 18, vec![f32_value(&[2, 6], &x)]);
        assert_close(&out[0], &[2, 2], &[0.0, 1.0, 6.0, 7.0]);
        assert_close(&out[1], &[2, 2], &[2.0, 3.0, 8.0, 9.0]);
        assert_close(&out[2], &[2, 2], &[4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn opset_18_last_part_may_be_smaller() {
        // ONNX spec example: 7 elements into 4 parts of ceil(7 / 4) = 2, the last one 1.
        let split = node("Split", 1, 4, vec![("num_outputs", AttrValue::Int(4))]);
        let out = run(&split, 18, vec![f32_value(&[7], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])]);
        let shapes: Vec<&[usize]> = out.iter().map(|value| value.shape()).collect();
        assert_eq!(shapes, vec![&[2][..], &[2], &[2], &[1]]);
        assert_close(&out[3], &[1], &[7.0]);
    }

    #[test]
    fn sizes_from_the_second_input() {
        let out = run(&node("Split", 2, 2, vec![]), 13, vec![i64_value(&[5], &[1, 2, 3, 4, 5]), i64_value(&[2], &[2, 3])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 2]);
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![3, 4, 5]);
    }

    #[test]
    fn zero_size_parts_are_empty_outputs() {
        // node/test_split_zero_size_splits: an empty axis cut into parts of size 0, and an empty
        // part between two others.
        let out = run(&node("Split", 2, 3, vec![]), 13, vec![f32_value(&[0], &[]), i64_value(&[3], &[0, 0, 0])]);
        assert!(out.iter().all(|part| part.shape() == [0]));
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let split = node("Split", 2, 3, vec![("axis", AttrValue::Int(-1))]);
        let out = run(&split, 18, vec![f32_value(&[2, 3], &x), i64_value(&[3], &[1, 0, 2])]);
        assert_close(&out[0], &[2, 1], &[0.0, 3.0]);
        assert_close(&out[1], &[2, 0], &[]);
        assert_close(&out[2], &[2, 2], &[1.0, 2.0, 4.0, 5.0]);
        let out = run(&node("Split", 2, 2, vec![]), 13, vec![i64_value(&[2], &[7, 8]), i64_value(&[2], &[0, 2])]);
        assert_eq!(out[0].shape(), &[0]);
        assert_eq!(out[0].dtype(), whittle_ir::DataType::I64);
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![7, 8]);
    }

    #[test]
    fn sizes_must_cover_the_axis() {
        let err = try_run(&node("Split", 2, 2, vec![]), 13, vec![i64_value(&[5], &[1, 2, 3, 4, 5]), i64_value(&[2], &[2, 2])]);
        assert_eq!(err.unwrap_err(), "split [2, 2] adds up to 4, but axis 0 of [5] has size 5");
    }
}
