//! Pow: elementwise `x ^ y` with multidirectional broadcasting (<https://onnx.ai/onnx/operators/onnx__Pow.html>).
//!
//! Opset 7 replaced the `broadcast` attribute with multidirectional broadcasting; 12 let the
//! exponent have its own type (and added integers), 13 and 15 added bfloat16. Mixed types are
//! implemented for every opset from 7, where they were simply not allowed. The output has the
//! base's type, as in the spec's reference (numpy's `power(x, y).astype(x.dtype)`):
//! - float base: the exponent is converted to the base's float type;
//! - integer base and exponent: the exponent is converted to the base's type and the power wraps
//!   on overflow; a negative exponent is an error, as in numpy, since `x ^ -n` is not an integer;
//! - integer base, float exponent: computed in f64 and truncated toward zero to the base's type.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::broadcast::align;
use crate::ops::cast::cast;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `Z = X ^ Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pow;

impl Operator for Pow {
    const OP_TYPE: &'static str = "Pow";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Pow)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, y) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = x.dtype();
        let z = match (x.kind(), y.kind()) {
            (ElementKind::Float, ElementKind::Float | ElementKind::Int) => power(x, cast(y, dtype)?)?,
            (ElementKind::Int, ElementKind::Int) => power(x, cast(y, dtype)?)?,
            (ElementKind::Int, ElementKind::Float) => {
                let z = power(cast(x, DataType::F64)?, cast(y, DataType::F64)?)?;
                cast(z, dtype)?
            }
            _ => fail!("Pow is not defined on bool tensors ({} ^ {})", x.dtype(), y.dtype()),
        };
        Ok(vec![z])
    }
}

/// `x ^ y` for operands of one numeric dtype.
fn power(x: Value, y: Value) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let (x, y, shape) = align(x, y)?;
    let z = with_rank!(x.burn_rank(), D => match x.kind() {
        ElementKind::Float => Value::from_float(x.float::<D>()?.powf(y.float::<D>()?), dtype)?,
        _ => {
            let (x, y) = (x.int::<D>()?, y.int::<D>()?);
            let negative = y.clone().lower_elem(0).any().try_into_scalar::<bool>();
            if negative.map_err(|err| OpError::new(format!("reading the exponent check failed: {err:?}")))? {
                fail!("integer base {dtype} with a negative exponent");
            }
            Value::from_int(x.powi(y), dtype)?
        }
    });
    z.reshape(&shape)
}

#[cfg(test)]
mod tests {
    use whittle_ir::DataType;

    use crate::ops::test_support::*;

    fn int32(dims: &[i64], values: &[i32]) -> crate::value::Value {
        typed_value(DataType::I32, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    #[test]
    fn float_powers_broadcast() {
        // [2, 2] ^ [2]
        let out = run(&node("Pow", 2, 1, vec![]), 15, vec![f32_value(&[2, 2], &[2.0, 9.0, 4.0, 0.5]), f32_value(&[2], &[3.0, 0.5])]);
        assert_close(&out[0], &[2, 2], &[8.0, 3.0, 64.0, 0.5f64.sqrt()]);
    }

    #[test]
    fn float_base_with_integer_exponent() {
        let out = run(&node("Pow", 2, 1, vec![]), 15, vec![f32_value(&[3], &[1.5, -2.0, 3.0]), i64_value(&[3], &[2, 3, -1])]);
        assert_close(&out[0], &[3], &[2.25, -8.0, 1.0 / 3.0]);
    }

    #[test]
    fn integer_powers_keep_the_base_type() {
        let out = run(&node("Pow", 2, 1, vec![]), 15, vec![i64_value(&[3], &[2, -3, 7]), int32(&[3], &[40, 3, 0])]);
        assert_eq!(out[0].dtype(), DataType::I64);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![1 << 40, -27, 1]);
        let out = run(&node("Pow", 2, 1, vec![]), 15, vec![int32(&[2], &[3, 2]), f32_value(&[], &[2.5])]);
        // 3^2.5 = 15.588..., 2^2.5 = 5.656...: truncated.
        assert_eq!(out[0].dtype(), DataType::I32);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![15, 5]);
    }

    #[test]
    fn negative_integer_exponent_and_bool_are_errors() {
        let err = try_run(&node("Pow", 2, 1, vec![]), 15, vec![i64_value(&[2], &[2, 2]), i64_value(&[2], &[1, -1])]);
        assert_eq!(err.unwrap_err(), "integer base i64 with a negative exponent");
        let err = try_run(&node("Pow", 2, 1, vec![]), 15, vec![bool_value(&[1], &[true]), f32_value(&[1], &[1.0])]);
        assert_eq!(err.unwrap_err(), "Pow is not defined on bool tensors (bool ^ f32)");
        let err = try_run(&node("Pow", 2, 1, vec![]), 15, vec![f32_value(&[2], &[1.0, 2.0]), f32_value(&[3], &[1.0, 2.0, 3.0])]);
        assert_eq!(err.unwrap_err(), "shapes [2] and [3] do not broadcast");
    }
}
