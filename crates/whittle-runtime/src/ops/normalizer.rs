//! Normalizer (ai.onnx.ml): each row divided by its max, L1 or L2 norm
//! (<https://onnx.ai/onnx/operators/onnx_aionnxml_Normalizer.html>).
//!
//! ai.onnx.ml opset 1, the only version. The spec's formulas: MAX divides by `max(x)` of the row, L1
//! by `sum(|x|)`, L2 by `sqrt(sum(x^2))`; a row whose divisor is zero is left as it is. The input is
//! `[C]` or `[N, C]`, normalized along C; the output is float32 whatever the input type.

use std::ops::RangeInclusive;

use burn_tensor::{DType, Tensor};
use whittle_ir::DataType;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{ElementKind, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalizer {
    pub norm: Norm,
}

impl Operator for Normalizer {
    const OP_TYPE: &'static str = "Normalizer";
    const DOMAIN: &'static str = "ai.onnx.ml";
    const OPSETS: RangeInclusive<i64> = 1..=1;
    const ATTRIBUTES: &'static [&'static str] = &["norm"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let norm = match node.string("norm", "MAX")?.as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => return Err(OpError::attribute("norm", format!("must be MAX, L1 or L2, found '{other}'"))),
        };
        Ok(Normalizer { norm })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let shape = x.shape().to_vec();
        let (rows, columns) = match shape.as_slice() {
            [columns] => (1, *columns),
            [rows, columns] => (*rows, *columns),
            _ => fail!("Normalizer takes a tensor of shape [C] or [N, C], got {shape:?}"),
        };
        if !matches!(x.dtype(), DataType::F32 | DataType::F64 | DataType::I64 | DataType::I32) {
            fail!("Normalizer takes float, double, int64 or int32, got {}", x.dtype());
        }
        let matrix = as_f32_matrix(x.reshape(&[rows, columns])?)?;
        let divisor = match self.norm {
            Norm::Max => matrix.clone().max_dim(1),
            Norm::L1 => matrix.clone().abs().sum_dim(1),
            Norm::L2 => matrix.clone().square().sum_dim(1).sqrt(),
        };
        // Where the divisor is zero the row stays as it is: divide by one there.
        let zero = divisor.clone().equal_elem(0.0);
        let divisor = divisor.mask_fill(zero, 1.0);
        let y = matrix.div(divisor);
        Value::from_float(y, DataType::F32)?.reshape(&shape).map(|y| vec![y])
    }
}

/// The `[N, C]` value as an f32 tensor (the output type), converted from ints or f64.
pub(crate) fn as_f32_matrix(x: Value) -> Result<Tensor<2, burn_tensor::Float>, OpError> {
    match x.kind() {
        ElementKind::Float => Ok(x.float::<2>()?.cast(DType::F32)),
        ElementKind::Int => Ok(x.int::<2>()?.float().cast(DType::F32)),
        ElementKind::Bool => fail!("expected a numeric tensor, got bool"),
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn normalizer(norm: &str) -> whittle_ir::Node {
        let mut node = node("Normalizer", 1, 1, vec![("norm", AttrValue::String(norm.as_bytes().to_vec()))]);
        node.domain = "ai.onnx.ml".into();
        node
    }

    #[test]
    fn each_norm_divides_rows_by_their_norm() {
        let x = || f32_value(&[2, 3], &[1.0, -2.0, 2.0, 0.0, 3.0, 4.0]);
        // Row 0: max 2, L1 5, L2 3. Row 1: max 4, L1 7, L2 5.
        let max = run(&normalizer("MAX"), 1, vec![x()]);
        assert_close(&max[0], &[2, 3], &[0.5, -1.0, 1.0, 0.0, 0.75, 1.0]);
        let l1 = run(&normalizer("L1"), 1, vec![x()]);
        assert_close(&l1[0], &[2, 3], &[0.2, -0.4, 0.4, 0.0, 3.0 / 7.0, 4.0 / 7.0]);
        let l2 = run(&normalizer("L2"), 1, vec![x()]);
        assert_close(&l2[0], &[2, 3], &[1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0, 0.0, 0.6, 0.8]);
    }

    #[test]
    fn zero_rows_stay_and_ints_become_float() {
        let out = run(&normalizer("L1"), 1, vec![i64_value(&[2, 2], &[0, 0, 1, 3])]);
        assert_close(&out[0], &[2, 2], &[0.0, 0.0, 0.25, 0.75]);
        let vector = run(&normalizer("L2"), 1, vec![f32_value(&[2], &[3.0, 4.0])]);
        assert_close(&vector[0], &[2], &[0.6, 0.8]);
    }

    #[test]
    fn bad_norms_and_ranks_are_errors() {
        let err = parse(&normalizer("L3"), 1, &[]).unwrap_err().to_string();
        assert!(err.contains("must be MAX, L1 or L2"), "{err}");
        let err = try_run(&normalizer("L1"), 1, vec![f32_value(&[1, 1, 2], &[1.0, 2.0])]).unwrap_err();
        assert!(err.contains("[C] or [N, C]"), "{err}");
    }
}
