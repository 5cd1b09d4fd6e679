//! Div: elementwise `a / b` with multidirectional broadcasting (<https://onnx.ai/onnx/operators/onnx__Div.html>).
//!
//! Opsets 7 to 14 share these semantics (6 and earlier had a `broadcast` attribute; 13 and 14 added
//! types).
//!
//! Integer quotients truncate toward zero (-7 / 2 = -3), as C and onnx's reference do. The spec
//! leaves division by zero undefined, and a signed MIN / -1 does not fit the type; both are errors
//! here, checked before dividing, since burn-flex's kernel would panic on them (it divides in i64,
//! or u64 for u64, with Rust's `/`, which also gives the truncation).

use std::ops::RangeInclusive;

use burn_tensor::{Int, Tensor};
use whittle_ir::DataType;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `C = a / b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Div;

impl Operator for Div {
    const OP_TYPE: &'static str = "Div";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(_node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Div)
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        Ok(vec![arithmetic(Arithmetic::Div, a, b)?])
    }
}

/// `x / y` for integer tensors of one rank whose shapes broadcast, truncated toward zero; an error
/// where a divisor is zero or a signed quotient overflows.
pub(crate) fn integer_quotient<const D: usize>(
    x: Tensor<D, Int>,
    y: Tensor<D, Int>,
    dtype: DataType,
) -> Result<Tensor<D, Int>, OpError> {
    if any(y.clone().equal_elem(0))? {
        fail!("integer division by zero ({dtype} divisor holds 0)");
    }
    if let Some(min) = signed_min(dtype) {
        // The only overflowing signed quotient: MIN / -1 is MAX + 1. Multiplying the two masks as
        // integers broadcasts them to the quotient's shape.
        let overflows = x.clone().equal_elem(min).int() * y.clone().equal_elem(-1).int();
        if any(overflows.equal_elem(1))? {
            fail!("integer division overflows {dtype}: {min} / -1");
        }
    }
    Ok(x / y)
}

/// The smallest value of a signed integer dtype, `None` for unsigned ones.
fn signed_min(dtype: DataType) -> Option<i64> {
    match dtype {
        DataType::I8 => Some(i64::from(i8::MIN)),
        DataType::I16 => Some(i64::from(i16::MIN)),
        DataType::I32 => Some(i64::from(i32::MIN)),
        DataType::I64 => Some(i64::MIN),
        _ => None,
    }
}

pub(crate) fn any<const D: usize>(mask: Tensor<D, burn_tensor::Bool>) -> Result<bool, OpError> {
    mask.any().try_into_scalar::<bool>().map_err(|err| OpError::new(format!("reading the divisor check failed: {err:?}")))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{DataType, Tensor};

    use crate::ops::test_support::*;
    use crate::value::Value;

    fn int_value(dtype: DataType, dims: &[i64], values: &[i64]) -> Value {
        // The low bytes of a little-endian i64 are the same value in a narrower type that holds it.
        let width = dtype.bit_width().unwrap() / 8;
        let bytes: Vec<u8> = values.iter().flat_map(|value| value.to_le_bytes()[..width].to_vec()).collect();
        let tensor = Tensor::from_bytes("t", dtype, dims.to_vec(), bytes).unwrap();
        Value::from_ir(&tensor, &device()).unwrap()
    }

    /// ONNX's integer quotient, truncated toward zero, from the operands as f64.
    fn truncated(a: i64, b: i64) -> i64 {
        (a as f64 / b as f64).trunc() as i64
    }

    #[test]
    fn signed_integers_truncate_toward_zero() {
        let (a, b) = ([-7, 7, -7, 7, 0, -128, 127], [2, -2, -2, 2, 3, 3, -1]);
        let expected: Vec<i64> = a.iter().zip(&b).map(|(&a, &b)| truncated(a, b)).collect();
        for dtype in [DataType::I8, DataType::I16, DataType::I32, DataType::I64] {
            let out = run(&node("Div", 2, 1, vec![]), 14, vec![int_value(dtype, &[7], &a), int_value(dtype, &[7], &b)]);
            assert_eq!(out[0].dtype(), dtype);
            assert_eq!(out[0].to_i64_vec().unwrap(), expected, "{dtype}");
        }
    }

    #[test]
    fn unsigned_integers_divide_with_broadcasting() {
        // [2, 2] / [2]; 250 fits u8.
        let (a, b) = ([250, 9, 100, 1], [7, 4]);
        let expected: Vec<i64> = a.iter().enumerate().map(|(index, &a)| truncated(a, b[index % 2])).collect();
        for dtype in [DataType::U8, DataType::U16, DataType::U32, DataType::U64] {
            let out = run(&node("Div", 2, 1, vec![]), 14, vec![int_value(dtype, &[2, 2], &a), int_value(dtype, &[2], &b)]);
            assert_eq!(out[0].shape(), &[2, 2]);
            assert_eq!(out[0].to_i64_vec().unwrap(), expected, "{dtype}");
        }
    }

    #[test]
    fn u64_above_i64_max_divides_exactly() {
        let big = u64::MAX - 1;
        let bytes: Vec<u8> = [big, 3].iter().flat_map(|value| value.to_le_bytes()).collect();
        let a = Value::from_ir(&Tensor::from_bytes("a", DataType::U64, vec![2], bytes).unwrap(), &device()).unwrap();
        let b = int_value(DataType::U64, &[], &[2]);
        let out = run(&node("Div", 2, 1, vec![]), 14, vec![a, b]);
        let host = out[0].to_ir("z").unwrap();
        let bytes = host.bytes().unwrap();
        let quotients: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(quotients, vec![big / 2, 1]);
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        let err = try_run(&node("Div", 2, 1, vec![]), 14, vec![i64_value(&[3], &[1, 2, 3]), i64_value(&[3], &[1, 0, 1])]);
        assert_eq!(err.unwrap_err(), "integer division by zero (i64 divisor holds 0)");
        let err = try_run(&node("Div", 2, 1, vec![]), 14, vec![int_value(DataType::U8, &[1], &[5]), int_value(DataType::U8, &[], &[0])]);
        assert_eq!(err.unwrap_err(), "integer division by zero (u8 divisor holds 0)");
    }

    #[test]
    fn signed_min_divided_by_minus_one_is_an_error() {
        let err = try_run(&node("Div", 2, 1, vec![]), 14, vec![i64_value(&[2], &[i64::MIN, 4]), i64_value(&[], &[-1])]);
        assert_eq!(err.unwrap_err(), format!("integer division overflows i64: {} / -1", i64::MIN));
        let err = try_run(&node("Div", 2, 1, vec![]), 14, vec![int_value(DataType::I8, &[1], &[-128]), int_value(DataType::I8, &[1], &[-1])]);
        assert_eq!(err.unwrap_err(), "integer division overflows i8: -128 / -1");
    }

    #[test]
    fn row_broadcasts_over_matrix() {
        // [2, 3] / [3]
        let out = run(&node("Div", 2, 1, vec![]), 14, vec![f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), f32_value(&[3], &[10.0, 20.0, 30.0])]);
        assert_close(&out[0], &[2, 3], &[0.1, 0.1, 0.1, 0.4, 0.25, 0.2]);
    }

    #[test]
    fn division_by_a_scalar_constant() {
        // The transformer divides attention scores by a scalar initializer (sqrt of the head size).
        let out = run(&node("Div", 2, 1, vec![]), 18, vec![f32_value(&[2], &[8.0, -2.0]), f32_value(&[], &[4.0])]);
        assert_close(&out[0], &[2], &[2.0, -0.5]);
    }
}
