//! Softmax: `exp(x) / sum(exp(x))` (<https://onnx.ai/onnx/operators/onnx__Softmax.html>).
//!
//! Opset 13 changed the meaning of `axis`: from 13 on the softmax runs along that one axis (default
//! -1); before, the input is viewed as a matrix `[prod(shape[..axis]), prod(shape[axis..])]` (default
//! axis 1) and the softmax runs along its rows. Both are implemented. A softmax over contiguous
//! rows (the last axis, or the flattened `axis..` before 13) of an f32 value on burn-flex runs on
//! the row kernel ([`crate::kernels::rows::softmax`]); the rest on burn.

use std::ops::RangeInclusive;

use burn_tensor::activation;

use crate::kernels;
use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{map_float, Value};

/// `Y = softmax(X)` along `axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softmax {
    pub axis: i64,
    /// Opsets before 13: softmax over the flattened axes `axis..`.
    pub coerce_to_matrix: bool,
}

impl Operator for Softmax {
    const OP_TYPE: &'static str = "Softmax";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let (axis, coerce_to_matrix) = parse_axis(node)?;
        Ok(Softmax { axis, coerce_to_matrix })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        Ok(vec![normalize(inputs.take(0)?, self.axis, self.coerce_to_matrix, false)?])
    }
}

/// The `axis` attribute of Softmax and LogSoftmax with its per-opset default, and whether
/// the opset views the input as a matrix (before 13).
pub(crate) fn parse_axis(node: &NodeContext<'_>) -> Result<(i64, bool), OpError> {
    let coerce_to_matrix = node.opset < 13;
    Ok((node.int("axis", if coerce_to_matrix { 1 } else { -1 })?, coerce_to_matrix))
}

/// Softmax of `x` along `axis`, or its logarithm when `log`, with the axis rules of the file's
/// documentation.
pub(crate) fn normalize(x: Value, axis: i64, coerce_to_matrix: bool, log: bool) -> Result<Value, OpError> {
    macro_rules! along {
        ($value:expr, $axis:expr) => {
            if log {
                map_float!($value, t => activation::log_softmax(t, $axis))
            } else {
                map_float!($value, t => activation::softmax(t, $axis))
            }
        };
    }
    if x.rank() == 0 {
        fail!("the input needs rank 1 or more");
    }
    let shape = x.shape().to_vec();
    let rows_from = if coerce_to_matrix && axis == shape.len() as i64 { Some(shape.len()) } else { normalize_axis(axis, shape.len()).ok() };
    let row_kernel = !log && rows_from.is_some_and(|axis| coerce_to_matrix || axis + 1 == shape.len());
    let x = match rows_from.filter(|_| row_kernel) {
        Some(axis) => {
            let columns: usize = shape[axis..].iter().product();
            match kernels::map_in_place(x, |values| kernels::rows::softmax(values, columns)) {
                Ok(y) => return y,
                Err(x) => *x,
            }
        }
        None => x,
    };
    if coerce_to_matrix {
        // Opsets 1 to 12 accept axis == rank (one column per row).
        let axis = if axis == shape.len() as i64 { shape.len() } else { normalize_axis(axis, shape.len())? };
        let rows: usize = shape[..axis].iter().product();
        let columns: usize = shape[axis..].iter().product();
        let matrix = x.reshape(&[rows, columns])?;
        return along!(matrix, 1)?.reshape(&shape);
    }
    let axis = normalize_axis(axis, shape.len())?;
    along!(x, axis)
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn softmax(row: &[f64]) -> Vec<f64> {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
        row.iter().map(|x| (x - max).exp() / sum).collect()
    }

    #[test]
    fn last_axis_by_default_from_opset_13() {
        let out = run(&node("Softmax", 1, 1, vec![]), 13, vec![f32_value(&[2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, -1.0])]);
        let expected: Vec<f64> = [softmax(&[1.0, 2.0, 3.0]), softmax(&[0.0, 0.0, -1.0])].concat();
        assert_close(&out[0], &[2, 3], &expected);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        // exp(1000) overflows f32 and f64; a stable softmax subtracts the maximum first.
        let out = run(&node("Softmax", 1, 1, vec![]), 13, vec![f32_value(&[2], &[1000.0, 1001.0])]);
        assert_close(&out[0], &[2], &softmax(&[0.0, 1.0]));
    }

    #[test]
    fn middle_axis() {
        // [2, 2] along axis 0: each column is normalized.
        let out = run(&node("Softmax", 1, 1, vec![("axis", AttrValue::Int(0))]), 13, vec![f32_value(&[2, 2], &[0.0, 1.0, 2.0, 1.0])]);
        let (c0, c1) = (softmax(&[0.0, 2.0]), softmax(&[1.0, 1.0]));
        assert_close(&out[0], &[2, 2], &[c0[0], c1[0], c0[1], c1[1]]);
    }

    #[test]
    fn opset_11_flattens_from_the_axis() {
        // Opset 11, axis 1 on [1, 2, 2]: one row of 4 elements, not two rows of 2.
        let x = [0.0, 1.0, 2.0, 3.0];
        let out = run(&node("Softmax", 1, 1, vec![]), 11, vec![f32_value(&[1, 2, 2], &x)]);
        assert_close(&out[0], &[1, 2, 2], &softmax(&x.map(f64::from)));
    }

    #[test]
    fn strided_inputs_and_log_softmax_agree_with_the_row_formula() {
        // A transposed (strided) input takes the kernel through a contiguous copy.
        let x = f32_value(&[2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, -1.0]);
        let transposed = crate::value::Value::from_float(x.float::<2>().unwrap().transpose(), whittle_ir::DataType::F32).unwrap();
        let out = run(&node("Softmax", 1, 1, vec![]), 13, vec![transposed]);
        let expected: Vec<f64> = [softmax(&[1.0, 0.0]), softmax(&[2.0, 0.0]), softmax(&[3.0, -1.0])].concat();
        assert_close(&out[0], &[3, 2], &expected);
        let out = run(&node("LogSoftmax", 1, 1, vec![]), 13, vec![f32_value(&[2], &[1.0, 2.0])]);
        assert_close(&out[0], &[2], &softmax(&[1.0, 2.0]).iter().map(|p| p.ln()).collect::<Vec<_>>());
    }
}
