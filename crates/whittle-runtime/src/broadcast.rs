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

/// `a op b` with multidirectional broadcasting, for two tensors of one numeric dtype.
pub(crate) fn arithmetic(op: Arithmetic, a: Value, b: Value) -> Result<Value, OpError> {
    if a.dtype() != b.dtype() {
        fail!("operands have different dtypes {} and {}", a.dtype(), b.dtype());
    }
    let dtype = a.dtype();
    let shape = broadcast_shape(a.shape(), b.shape())?;
    // burn broadcasts size-1 dims between tensors of one rank, so the shorter shape gets leading 1s.
    let (a, b) = (a.unsqueeze_to(shape.len())?, b.unsqueeze_to(shape.len())?);
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
