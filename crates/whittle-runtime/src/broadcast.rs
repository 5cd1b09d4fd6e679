//! ONNX's multidirectional broadcasting and the elementwise arithmetic built on it.

use burn_tensor::Tensor;

use crate::ops::{fail, OpError};
use crate::value::{with_rank, ElementKind, Value};

/// The shape two shapes broadcast to: aligned at the right, each pair of sizes equal or one of them 1.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let rank = a.len().max(b.len());
    let size_at = |shape: &[usize], index: usize| {
        let offset = rank - shape.len();
        if index < offset {
            1
        } else {
            shape[index - offset]
        }
    };
    (0..rank)
        .map(|index| match (size_at(a, index), size_at(b, index)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(OpError::new(format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

/// An elementwise arithmetic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// Two operands of one dtype brought to one rank for burn, with the ONNX shape of their result.
///
/// burn broadcasts size-1 dims between tensors of one rank, so the shorter shape gets leading 1s.
pub(crate) fn align(a: Value, b: Value) -> Result<(Value, Value, Vec<usize>), OpError> {
    if a.dtype() != b.dtype() {
        fail!("operands have different dtypes {} and {}", a.dtype(), b.dtype());
    }
    let shape = broadcast_shape(a.shape(), b.shape())?;
    Ok((a.unsqueeze_to(shape.len())?, b.unsqueeze_to(shape.len())?, shape))
}

/// `a op b` with multidirectional broadcasting, for two tensors of one numeric dtype.
pub(crate) fn arithmetic(op: Arithmetic, a: Value, b: Value) -> Result<Value, OpError> {
    // f32 on burn-flex with the common broadcasts: whittle's kernel, in place at a last use.
    let (a, b) = match crate::kernels::binary::arithmetic(op, a, b) {
        Ok(result) => return result,
        Err(operands) => *operands,
    };
    let dtype = a.dtype();
    let (a, b, shape) = align(a, b)?;
    let result = match a.kind() {
        ElementKind::Float => with_rank!(a.burn_rank(), D => {
            let (x, y): (Tensor<D>, Tensor<D>) = (a.float::<D>()?, b.float::<D>()?);
            let z = match op {
                Arithmetic::Add => x + y,
                Arithmetic::Sub => x - y,
                Arithmetic::Mul => x * y,
                Arithmetic::Div => x / y,
            };
            Value::from_float(z, dtype)?
        }),
        ElementKind::Int => with_rank!(a.burn_rank(), D => {
            let (x, y) = (a.int::<D>()?, b.int::<D>()?);
            let z = match op {
                Arithmetic::Add => x + y,
                Arithmetic::Sub => x - y,
                Arithmetic::Mul => x * y,
                Arithmetic::Div => crate::ops::div::integer_quotient(x, y, dtype)?,
            };
            Value::from_int(z, dtype)?
        }),
        ElementKind::Bool => fail!("arithmetic on bool tensors is not defined"),
    };
    // A scalar result is computed as shape [1]; give it back its ONNX shape.
    result.reshape(&shape)
}

/// An elementwise comparison, giving a bool tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// `a op b` with multidirectional broadcasting, for two tensors of one dtype; bool operands only
/// compare for equality, as ONNX defines no order on bool.
pub(crate) fn compare(op: Comparison, a: Value, b: Value) -> Result<Value, OpError> {
    let (a, b, shape) = align(a, b)?;
    macro_rules! ordered {
        ($x:expr, $y:expr) => {{
            let (x, y) = ($x, $y);
            match op {
                Comparison::Equal => x.equal(y),
                Comparison::Less => x.lower(y),
                Comparison::LessOrEqual => x.lower_equal(y),
                Comparison::Greater => x.greater(y),
                Comparison::GreaterOrEqual => x.greater_equal(y),
            }
        }};
    }
    let result = with_rank!(a.burn_rank(), D => {
        let mask = match a.kind() {
            ElementKind::Float => ordered!(a.float::<D>()?, b.float::<D>()?),
            ElementKind::Int => ordered!(a.int::<D>()?, b.int::<D>()?),
            ElementKind::Bool if op == Comparison::Equal => a.bool::<D>()?.equal(b.bool::<D>()?),
            ElementKind::Bool => fail!("{op:?} is not defined on bool tensors"),
        };
        Value::from_bool(mask)?
    });
    result.reshape(&shape)
}

/// An elementwise logical operation on bool tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logic {
    And,
    Or,
    Xor,
}

/// `a op b` with multidirectional broadcasting, for two bool tensors.
pub(crate) fn logic(op: Logic, a: Value, b: Value) -> Result<Value, OpError> {
    let (a, b, shape) = align(a, b)?;
    if a.kind() != ElementKind::Bool {
        fail!("logical operands must be bool, got {}", a.dtype());
    }
    let result = with_rank!(a.burn_rank(), D => {
        let (x, y) = (a.bool::<D>()?, b.bool::<D>()?);
        Value::from_bool(match op {
            Logic::And => x.bool_and(y),
            Logic::Or => x.bool_or(y),
            Logic::Xor => x.bool_xor(y),
        })?
    });
    result.reshape(&shape)
}

/// The elementwise larger or smaller of two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extremum {
    Max,
    Min,
}

/// The elementwise maximum or minimum of `a` and `b` with multidirectional broadcasting, for two
/// tensors of one numeric dtype. A NaN operand gives NaN, as numpy's `maximum` and ONNX Runtime do.
pub(crate) fn extremum(op: Extremum, a: Value, b: Value) -> Result<Value, OpError> {
    let dtype = a.dtype();
    let (a, b, shape) = align(a, b)?;
    let result = with_rank!(a.burn_rank(), D => match a.kind() {
        ElementKind::Float => {
            let (x, y) = (a.float::<D>()?, b.float::<D>()?);
            // burn's `max_pair` keeps `x` unless `x < y`, which would drop a NaN in `y`; taking `y`
            // where it is NaN as well propagates NaNs from both sides (a NaN `x` is kept anyway).
            let takes_y = match op {
                Extremum::Max => x.clone().lower(y.clone()),
                Extremum::Min => y.clone().lower(x.clone()),
            };
            let takes_y = takes_y.bool_or(y.clone().is_nan());
            Value::from_float(x.mask_where(takes_y, y), dtype)?
        }
        ElementKind::Int => {
            let (x, y) = (a.int::<D>()?, b.int::<D>()?);
            Value::from_int(match op {
                Extremum::Max => x.max_pair(y),
                Extremum::Min => x.min_pair(y),
            }, dtype)?
        }
        ElementKind::Bool => fail!("{op:?} is not defined on bool tensors"),
    });
    result.reshape(&shape)
}

/// The inputs of a variadic op combined left to right by the binary `op`, which broadcasts; one
/// input comes back unchanged.
pub(crate) fn fold(inputs: Vec<Value>, op: impl Fn(Value, Value) -> Result<Value, OpError>) -> Result<Value, OpError> {
    let mut inputs = inputs.into_iter();
    let Some(first) = inputs.next() else {
        fail!("needs at least one input");
    };
    inputs.try_fold(first, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_align_at_the_right() {
        assert_eq!(broadcast_shape(&[2, 3, 4], &[4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shape(&[], &[5]).unwrap(), vec![5]);
        assert_eq!(broadcast_shape(&[], &[]).unwrap(), Vec::<usize>::new());
        let err = broadcast_shape(&[2, 3], &[4]).unwrap_err();
        assert_eq!(err.reason, "shapes [2, 3] and [4] do not broadcast");
    }
}
