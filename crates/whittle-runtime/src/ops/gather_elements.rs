//! GatherElements: picks one element per index along an axis
//! (<https://onnx.ai/onnx/operators/onnx__GatherElements.html>).
//!
//! Opsets 11 and 13 (types only). The output has the shape of `indices`, which has the data's rank
//! and, outside `axis`, sizes no larger than the data's; `output[i][j][k] = data[indices[i][j][k]][j][k]`
//! for axis 0. Negative indices count from the end. Indices are checked on the host: burn does not
//! check them.

use std::ops::RangeInclusive;

use burn_tensor::{DType, Int, Tensor, TensorData};

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{with_kind, with_rank, Value};

/// `output = gather_elements(data, indices, axis)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherElements {
    pub axis: i64,
}

impl Operator for GatherElements {
    const OP_TYPE: &'static str = "GatherElements";
    const OPSETS: RangeInclusive<i64> = 11..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(GatherElements { axis: node.int("axis", 0)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (data, indices) = (inputs.take(0)?, inputs.take(1)?);
        let rank = data.rank();
        if rank == 0 || indices.rank() != rank {
            fail!("indices {:?} must have the rank of data {:?}, 1 or more", indices.shape(), data.shape());
        }
        let axis = normalize_axis(self.axis, rank)?;
        let shape = indices.shape().to_vec();
        // burn's gather reads the other axes at the index's own position, so they must fit.
        if shape.iter().zip(data.shape()).enumerate().any(|(index, (&wanted, &size))| index != axis && wanted > size) {
            fail!("indices {shape:?} are larger than data {:?} outside axis {axis}", data.shape());
        }
        if shape.contains(&0) {
            return Ok(vec![Value::empty(data.dtype(), &shape, &data.device())?]);
        }
        let size = data.shape()[axis] as i64;
        let positions = indices
            .to_i64_vec()?
            .into_iter()
            .map(|index| match if index < 0 { index + size } else { index } {
                position if (0..size).contains(&position) => Ok(position),
                _ => Err(OpError::new(format!("index {index} is out of range for axis {axis} of size {size}"))),
            })
            .collect::<Result<Vec<i64>, _>>()?;
        let (dtype, kind, device) = (data.dtype(), data.kind(), data.device());
        let gathered = with_rank!(rank, D => with_kind!(kind, K => {
            let index = Tensor::<D, Int>::from_data(TensorData::new(positions, shape.clone()), (&device, DType::I64));
            let mut tensor = data.typed::<D, K>()?;
            // The other axes of data beyond the index's sizes are never read; trimming them gives
            // burn's gather the equal shapes it expects.
            for (other, &wanted) in shape.iter().enumerate() {
                if other != axis && tensor.dims()[other] != wanted {
                    tensor = tensor.narrow(other, 0, wanted);
                }
            }
            Value::from_typed(tensor.gather(axis, index), dtype)?
        }));
        Ok(vec![gathered])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn spec_examples() {
        // axis 1: data [[1, 2], [3, 4]], indices [[0, 0], [1, 0]] give [[1, 1], [4, 3]].
        let gather = node("GatherElements", 2, 1, vec![("axis", AttrValue::Int(1))]);
        let out = run(&gather, 13, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), i64_value(&[2, 2], &[0, 0, 1, 0])]);
        assert_close(&out[0], &[2, 2], &[1.0, 1.0, 4.0, 3.0]);
        // axis 0 with negative indices and fewer rows than the data: [[-1, 0, 1]] on 3x3 1..9.
        let data = i64_value(&[3, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let out = run(&node("GatherElements", 2, 1, vec![]), 13, vec![data.clone(), i64_value(&[1, 3], &[-1, 0, 1])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![7, 2, 6]);
        // Fewer columns than the data along the other axis.
        let out = run(&node("GatherElements", 2, 1, vec![]), 13, vec![data, i64_value(&[2, 2], &[1, 2, 0, 0])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![4, 8, 1, 2]);
    }

    #[test]
    fn bad_indices_are_errors() {
        let data = f32_value(&[2], &[1.0, 2.0]);
        let err = try_run(&node("GatherElements", 2, 1, vec![]), 13, vec![data.clone(), i64_value(&[1], &[2])]);
        assert_eq!(err.unwrap_err(), "index 2 is out of range for axis 0 of size 2");
        let err = try_run(&node("GatherElements", 2, 1, vec![]), 13, vec![data, i64_value(&[1, 1], &[0])]);
        assert_eq!(err.unwrap_err(), "indices [1, 1] must have the rank of data [2], 1 or more");
    }
}
