//! PRelu: `x` for `x >= 0`, `slope * x` below, with `slope` broadcast to `x`
//! (<https://onnx.ai/onnx/operators/onnx__PRelu.html>).
//!
//! Opset 7 made `slope` broadcast to `x` (6 and earlier needed matching shapes, or a legacy
//! attribute); 9 added integer types and 16 bfloat16. The broadcast is unidirectional: the
//! output has `x`'s shape.

use std::ops::RangeInclusive;

use crate::broadcast::align;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `Y = X < 0 ? slope * X : X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PRelu;

impl Operator for PRelu {
    const OP_TYPE: &'static str = "PRelu";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(PRelu)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, slope) = (inputs.take(0)?, inputs.take(1)?);
        let (dtype, x_shape, slope_shape) = (x.dtype(), x.shape().to_vec(), slope.shape().to_vec());
        let (x, slope, shape) = align(x, slope)?;
        if shape != x_shape {
            fail!("slope of shape {slope_shape:?} does not broadcast to X of shape {x_shape:?}");
        }
        let y = with_rank!(x.burn_rank(), D => match x.kind() {
            ElementKind::Float => {
                let x = x.float::<D>()?;
                Value::from_float(x.clone().mask_where(x.clone().lower_elem(0.0), x * slope.float::<D>()?), dtype)?
            }
            ElementKind::Int => {
                let x = x.int::<D>()?;
                Value::from_int(x.clone().mask_where(x.clone().lower_elem(0), x * slope.int::<D>()?), dtype)?
            }
            ElementKind::Bool => fail!("PRelu is not defined on bool tensors"),
        });
        Ok(vec![y.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    #[test]
    fn per_channel_slope_broadcasts() {
        // X [2, 2], slope [2]: column j uses slope[j].
        let out = run(&node("PRelu", 2, 1, vec![]), 16, vec![f32_value(&[2, 2], &[-1.0, -2.0, 3.0, -4.0]), f32_value(&[2], &[0.1, 0.5])]);
        assert_close(&out[0], &[2, 2], &[-0.1, -1.0, 3.0, -2.0]);
        let out = run(&node("PRelu", 2, 1, vec![]), 16, vec![i64_value(&[3], &[-3, 0, 5]), i64_value(&[], &[2])]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![-6, 0, 5]);
    }

    #[test]
    fn slope_that_widens_x_is_an_error() {
        let err = try_run(&node("PRelu", 2, 1, vec![]), 16, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[3, 1], &[1.0; 3])]);
        assert_eq!(err.unwrap_err(), "slope of shape [3, 1] does not broadcast to X of shape [2]");
    }
}
