//! Where: elementwise `condition ? x : y` with multidirectional broadcasting of all three inputs
//! (<https://onnx.ai/onnx/operators/onnx__Where.html>).
//!
//! Opset 9 introduced the op; 16 only added bfloat16. `x` and `y` may have any one dtype.

use std::ops::RangeInclusive;

use crate::broadcast::broadcast_shape;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `output = condition ? X : Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where;

impl Operator for Where {
    const OP_TYPE: &'static str = "Where";
    const OPSETS: RangeInclusive<i64> = 9..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Where)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (condition, x, y) = (inputs.take(0)?, inputs.take(1)?, inputs.take(2)?);
        if condition.kind() != ElementKind::Bool {
            fail!("condition must be bool, got {}", condition.dtype());
        }
        if x.dtype() != y.dtype() {
            fail!("X and Y have different dtypes {} and {}", x.dtype(), y.dtype());
        }
        let dtype = x.dtype();
        let shape = broadcast_shape(condition.shape(), &broadcast_shape(x.shape(), y.shape())?)?;
        let rank = shape.len();
        let (condition, x, y) = (condition.unsqueeze_to(rank)?, x.unsqueeze_to(rank)?, y.unsqueeze_to(rank)?);
        let result = with_rank!(rank.max(1), D => {
            let mut dims = [0usize; D];
            // A scalar result is computed as [1], like every scalar.
            dims.copy_from_slice(if shape.is_empty() { &[1] } else { &shape });
            // burn's `mask_where` documents no broadcasting, so all three are expanded first (a
            // view, not a copy, on flex).
            let mask = condition.bool::<D>()?.expand(dims);
            match x.kind() {
                ElementKind::Float => Value::from_float(y.float::<D>()?.expand(dims).mask_where(mask, x.float::<D>()?.expand(dims)), dtype)?,
                ElementKind::Int => Value::from_int(y.typed::<D, burn_tensor::Int>()?.expand(dims).mask_where(mask, x.typed::<D, burn_tensor::Int>()?.expand(dims)), dtype)?,
                ElementKind::Bool => Value::from_bool(y.bool::<D>()?.expand(dims).mask_where(mask, x.bool::<D>()?.expand(dims)))?,
            }
        });
        Ok(vec![result.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn picks_from_x_where_true_with_broadcasting() {
        // condition [2, 1], X [3], Y scalar -> [2, 3].
        let out = run(
            &node("Where", 3, 1, vec![]),
            16,
            vec![bool_value(&[2, 1], &[true, false]), f32_value(&[3], &[1.0, 2.0, 3.0]), f32_value(&[], &[-1.0])],
        );
        assert_close(&out[0], &[2, 3], &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
    }

    #[test]
    fn int64_bool_and_scalars() {
        let big = 1i64 << 60;
        let out = run(
            &node("Where", 3, 1, vec![]),
            16,
            vec![bool_value(&[3], &[false, true, false]), i64_value(&[3], &[big, 2, 3]), i64_value(&[3], &[4, 5, -big])],
        );
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![4, 2, -big]);
        let out = run(
            &node("Where", 3, 1, vec![]),
            16,
            vec![bool_value(&[], &[true]), bool_value(&[], &[false]), bool_value(&[], &[true])],
        );
        assert_eq!(out[0].shape(), &[] as &[usize]);
        assert_eq!(bools(&out[0]), vec![false]);
    }

    #[test]
    fn bad_condition_dtypes_and_shapes_are_errors() {
        let err = try_run(&node("Where", 3, 1, vec![]), 16, vec![f32_value(&[1], &[1.0]), f32_value(&[1], &[1.0]), f32_value(&[1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "condition must be bool, got f32");
        let err = try_run(&node("Where", 3, 1, vec![]), 16, vec![bool_value(&[1], &[true]), f32_value(&[1], &[1.0]), i64_value(&[1], &[1])]);
        assert_eq!(err.unwrap_err(), "X and Y have different dtypes f32 and i64");
        let err = try_run(&node("Where", 3, 1, vec![]), 16, vec![bool_value(&[2], &[true, false]), f32_value(&[3], &[1.0; 3]), f32_value(&[1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "shapes [2] and [3] do not broadcast");
    }
}
