//! Mod: the elementwise remainder of `a / b` with multidirectional broadcasting
//! (<https://onnx.ai/onnx/operators/onnx__Mod.html>).
//!
//! Opset 10 introduced the op and 13 added bfloat16. With `fmod = 0` (the default) the remainder
//! has the divisor's sign, `a - floor(a / b) * b` (numpy's `mod`); with `fmod = 1` it has the
//! dividend's, `a - trunc(a / b) * b` (C's `fmod`). Opsets 10 to 27 required `fmod = 1` for floats;
//! 28 defined `fmod = 0` for them too, with its special cases (a zero divisor or infinite dividend
//! give NaN, an infinite divisor gives `a` or `b`). Float `fmod = 0` is accepted at every opset: it
//! extends the older ones without changing a valid model. An integer divisor of 0 is an error (the
//! spec leaves it undefined, and burn-flex's kernel would panic).

use std::ops::RangeInclusive;

use crate::broadcast::align;
use crate::ops::div::any;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `C = A mod B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mod {
    /// The remainder takes the dividend's sign (C's `fmod`) instead of the divisor's.
    pub fmod: bool,
}

impl Operator for Mod {
    const OP_TYPE: &'static str = "Mod";
    const OPSETS: RangeInclusive<i64> = 10..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["fmod"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(Mod { fmod: node.flag("fmod", false)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = a.dtype();
        let (a, b, shape) = align(a, b)?;
        let c = with_rank!(a.burn_rank(), D => match a.kind() {
            ElementKind::Float => {
                let (x, y) = (a.float::<D>()?, b.float::<D>()?);
                // burn's float `remainder` is numpy's `mod` (Rust's `%`, moved to the divisor's sign).
                Value::from_float(if self.fmod { x.fmod(y) } else { x.remainder(y) }, dtype)?
            }
            ElementKind::Int => {
                let (x, y) = (a.int::<D>()?, b.int::<D>()?);
                if any(y.clone().equal_elem(0))? {
                    fail!("integer modulo by zero ({dtype} divisor holds 0)");
                }
                // burn's integer remainder has the divisor's sign. Where it is not 0 and the
                // operands' signs differ, C's remainder is that one minus the divisor.
                let floored = x.clone().remainder(y.clone());
                let result = if self.fmod {
                    let signs_differ = x.lower_elem(0).bool_xor(y.clone().lower_elem(0));
                    let adjust = floored.clone().equal_elem(0).bool_not().bool_and(signs_differ);
                    floored.clone().mask_where(adjust, floored - y)
                } else {
                    floored
                };
                Value::from_int(result, dtype)?
            }
            ElementKind::Bool => fail!("Mod is not defined on bool tensors"),
        });
        Ok(vec![c.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;

    const A: [i64; 6] = [7, -7, 7, -7, 6, 0];
    const B: [i64; 6] = [3, 3, -3, -3, 3, -5];

    #[test]
    fn integer_remainder_takes_the_divisor_sign_by_default() {
        let out = run(&node("Mod", 2, 1, vec![]), 13, vec![i64_value(&[6], &A), i64_value(&[6], &B)]);
        // Python's floored remainder, a - b * floor(a / b).
        let expected: Vec<i64> = A.iter().zip(&B).map(|(&a, &b)| a - b * (a as f64 / b as f64).floor() as i64).collect();
        assert_eq!(expected, vec![1, 2, -2, -1, 0, 0]);
        assert_eq!(out[0].to_i64_vec().unwrap(), expected);
    }

    #[test]
    fn fmod_takes_the_dividend_sign() {
        let fmod = || node("Mod", 2, 1, vec![("fmod", AttrValue::Int(1))]);
        let out = run(&fmod(), 13, vec![i64_value(&[6], &A), i64_value(&[6], &B)]);
        // Rust's `%` is C's remainder.
        assert_eq!(out[0].to_i64_vec().unwrap(), A.iter().zip(&B).map(|(&a, &b)| a % b).collect::<Vec<_>>());
        let out = run(&fmod(), 13, vec![f32_value(&[4], &[5.5, -5.5, 5.5, -5.5]), f32_value(&[4], &[2.0, 2.0, -2.0, -2.0])]);
        assert_close(&out[0], &[4], &[1.5, -1.5, 1.5, -1.5]);
    }

    #[test]
    fn broadcasting_and_narrow_types() {
        let bytes = |values: &[i8]| values.iter().map(|&v| v as u8).collect::<Vec<u8>>();
        let a = typed_value(DataType::I8, &[2, 2], bytes(&[-128, 127, -5, 9]));
        let b = typed_value(DataType::I8, &[2], bytes(&[-1, 4]));
        let out = run(&node("Mod", 2, 1, vec![]), 13, vec![a, b]);
        assert_eq!(out[0].dtype(), DataType::I8);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 3, 0, 1]);
    }

    #[test]
    fn floored_float_remainder() {
        let out = run(&node("Mod", 2, 1, vec![]), 28, vec![f32_value(&[4], &[5.5, -5.5, 5.5, -5.5]), f32_value(&[4], &[2.0, 2.0, -2.0, -2.0])]);
        assert_close(&out[0], &[4], &[1.5, 0.5, -0.5, -1.5]);
    }

    #[test]
    fn zero_integer_divisor_and_bad_fmod_are_errors() {
        let err = try_run(&node("Mod", 2, 1, vec![]), 13, vec![i64_value(&[2], &[1, 2]), i64_value(&[2], &[1, 0])]);
        assert_eq!(err.unwrap_err(), "integer modulo by zero (i64 divisor holds 0)");
        let err = parse(&node("Mod", 2, 1, vec![("fmod", AttrValue::Int(2))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Mod): attribute 'fmod': must be 0 or 1, found 2");
    }
}
