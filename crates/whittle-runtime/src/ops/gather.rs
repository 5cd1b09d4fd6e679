//! Gather: picks entries along an axis by index (<https://onnx.ai/onnx/operators/onnx__Gather.html>).
//!
//! The output shape is `data.shape[..axis] + indices.shape + data.shape[axis + 1..]`. Negative
//! indices count from the end (allowed from opset 11; accepted here for every opset since earlier
//! ones leave them undefined). Indices are read on the host to check their range: burn does not
//! check them, and an index out of range must be an error, never a read out of bounds.

use std::ops::RangeInclusive;

use burn_tensor::{DType, Int, Tensor, TensorData};

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `output = data[..., indices, ...]` along `axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    pub axis: i64,
}

impl Operator for Gather {
    const OP_TYPE: &'static str = "Gather";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Gather { axis: node.int("axis", 0)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (data, indices) = (inputs.take(0)?, inputs.take(1)?);
        if data.rank() == 0 {
            fail!("data must have rank 1 or more");
        }
        let axis = normalize_axis(self.axis, data.rank())?;
        let size = data.shape()[axis];
        let positions = indices
            .to_i64_vec()?
            .into_iter()
            .map(|index| {
                let position = if index < 0 { index + size as i64 } else { index };
                if (0..size as i64).contains(&position) {
                    Ok(position)
                } else {
                    Err(OpError::new(format!("index {index} is out of range for axis {axis} of size {size}")))
                }
            })
            .collect::<Result<Vec<i64>, _>>()?;
        if positions.is_empty() {
            fail!("empty indices are not implemented");
        }
        let mut shape = data.shape()[..axis].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&data.shape()[axis + 1..]);

        let dtype = data.dtype();
        let count = positions.len();
        let gathered = with_rank!(data.burn_rank(), D => match data.kind() {
            ElementKind::Float => {
                let tensor = data.float::<D>()?;
                let index = Tensor::<1, Int>::from_data(TensorData::new(positions, [count]), (&tensor.device(), DType::I64));
                Value::from_float(tensor.select(axis, index), dtype)?
            }
            ElementKind::Int => {
                let tensor = data.typed::<D, Int>()?;
                let index = Tensor::<1, Int>::from_data(TensorData::new(positions, [count]), (&tensor.device(), DType::I64));
                Value::from_int(tensor.select(axis, index), dtype)?
            }
            ElementKind::Bool => fail!("Gather of bool tensors is not implemented"),
        });
        Ok(vec![gathered.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn embedding_lookup_with_a_batch_of_ids() {
        // Table rows r_i = [i, 10 i]; ids [[2, 0], [1, 2]] give rows in that order, shape [2, 2, 2].
        let table = f32_value(&[3, 2], &[0.0, 0.0, 1.0, 10.0, 2.0, 20.0]);
        let out = run(&node("Gather", 2, 1, vec![]), 13, vec![table, i64_value(&[2, 2], &[2, 0, 1, 2])]);
        assert_close(&out[0], &[2, 2, 2], &[2.0, 20.0, 0.0, 0.0, 1.0, 10.0, 2.0, 20.0]);
    }

    #[test]
    fn axis_1_with_negative_and_scalar_indices() {
        let data = f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let gather = node("Gather", 2, 1, vec![("axis", AttrValue::Int(1))]);
        let out = run(&gather, 13, vec![data.clone(), i64_value(&[2], &[-1, 0])]);
        assert_close(&out[0], &[2, 2], &[3.0, 1.0, 6.0, 4.0]);
        // A scalar index removes the axis.
        let out = run(&gather, 13, vec![data, i64_value(&[], &[1])]);
        assert_close(&out[0], &[2], &[2.0, 5.0]);
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let err = try_run(&node("Gather", 2, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0]), i64_value(&[1], &[2])]);
        assert_eq!(err.unwrap_err(), "index 2 is out of range for axis 0 of size 2");
    }
}
