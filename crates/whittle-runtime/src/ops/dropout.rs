//! Dropout in inference: the input unchanged, and optionally a mask of all kept elements
//! (<https://onnx.ai/onnx/operators/onnx__Dropout.html>).
//!
//! Opsets 7 to 11 take `ratio` as an attribute (7 dropped `is_test`: the op is an identity outside
//! training); the mask has the input's type up to 9 and is bool from 10. Opset 12 moved `ratio` and
//! `training_mode` to optional inputs and added `seed`; 13 and 22 only added types. Training mode
//! would drop random elements, which inference has no use for: a true `training_mode` is an error,
//! unless `ratio` is 0, where training drops nothing either.

use std::ops::RangeInclusive;

use burn_tensor::Tensor;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, ElementKind, Value};

/// `output = data`, `mask = true` everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropout {
    /// Whether the node names the second output.
    pub mask: bool,
    /// Opsets 7 to 9: the mask has the input's type (1 everywhere) instead of bool.
    pub typed_mask: bool,
}

impl Operator for Dropout {
    const OP_TYPE: &'static str = "Dropout";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["ratio", "seed"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        // Only the attributes of the node's own opset are accepted; `seed` only matters in training.
        let (own, other) = if node.opset >= 12 { ("seed", "ratio") } else { ("ratio", "seed") };
        if node.node.attribute(other).is_some() {
            return Err(OpError::attribute(other, format!("is not an attribute of Dropout-{}", node.opset)));
        }
        if own == "ratio" {
            let ratio = node.float("ratio", 0.5)?;
            if !(0.0..1.0).contains(&ratio) {
                return Err(OpError::attribute("ratio", format!("must be in [0, 1), found {ratio}")));
            }
        } else {
            node.optional_int("seed")?;
        }
        let mask = node.node.outputs.get(1).is_some_and(|name| !name.is_empty());
        Ok(Dropout { mask, typed_mask: node.opset < 10 })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let data = inputs.take(0)?;
        let ratio = inputs.take_optional(1);
        if let Some(training) = inputs.take_optional(2) {
            // An omitted ratio is 0.5.
            let ratio_zero = match ratio {
                Some(ratio) => is_zero(ratio)?,
                None => false,
            };
            if is_true(training, "training_mode")? && !ratio_zero {
                fail!("training mode is not supported (it drops random elements) unless ratio is 0");
            }
        }
        if !self.mask {
            return Ok(vec![data]);
        }
        let shape = data.shape().to_vec();
        let mask = with_rank!(data.burn_rank(), D => {
            let device = match data.kind() {
                ElementKind::Float => data.clone().float::<D>()?.device(),
                ElementKind::Int => data.clone().int::<D>()?.device(),
                ElementKind::Bool => data.clone().bool::<D>()?.device(),
            };
            let mut dims = [0usize; D];
            dims.copy_from_slice(if shape.is_empty() { &[1] } else { &shape });
            let ones = Tensor::<D, burn_tensor::Bool>::ones(dims, &device);
            if self.typed_mask {
                // Opsets 7 to 9 define the mask as the input's type T, which is a float type.
                let dtype = data.dtype();
                let Some((burn, ElementKind::Float)) = crate::value::burn_dtype(dtype) else {
                    fail!("Dropout before opset 10 needs a float input, got {dtype}");
                };
                Value::from_float(ones.cast(burn_tensor::FloatDType::from(burn)), dtype)?
            } else {
                Value::from_bool(ones)?
            }
        });
        Ok(vec![data, mask.reshape(&shape)?])
    }
}

/// Whether the one-element bool input `name` is true.
fn is_true(value: Value, name: &str) -> Result<bool, OpError> {
    if value.kind() != ElementKind::Bool || value.element_count() != 1 {
        fail!("{name} must be a bool scalar, got {} of shape {:?}", value.dtype(), value.shape());
    }
    let flag = value.reshape(&[1])?.bool::<1>()?.any().try_into_scalar::<bool>();
    flag.map_err(|err| OpError::new(format!("reading {name} failed: {err:?}")))
}

/// Whether the one-element float input `ratio` is 0.
fn is_zero(ratio: Value) -> Result<bool, OpError> {
    if ratio.kind() != ElementKind::Float || ratio.element_count() != 1 {
        fail!("ratio must be a float scalar, got {} of shape {:?}", ratio.dtype(), ratio.shape());
    }
    let zero = ratio.reshape(&[1])?.float::<1>()?.equal_elem(0.0).any().try_into_scalar::<bool>();
    zero.map_err(|err| OpError::new(format!("reading ratio failed: {err:?}")))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, DataType};

    use crate::ops::test_support::*;
    use crate::ops::Inputs;

    #[test]
    fn output_is_the_input_and_mask_is_all_true() {
        let out = run(&node("Dropout", 1, 2, vec![("seed", AttrValue::Int(3))]), 13, vec![f32_value(&[2, 2], &[1.0, -2.0, 3.0, 4.0])]);
        assert_close(&out[0], &[2, 2], &[1.0, -2.0, 3.0, 4.0]);
        assert_eq!(out[1].shape(), &[2, 2]);
        assert_eq!(bools(&out[1]), vec![true; 4]);
        let out = run(&node("Dropout", 1, 1, vec![]), 13, vec![f32_value(&[], &[5.0])]);
        assert_eq!(out.len(), 1);
        assert_close(&out[0], &[], &[5.0]);
    }

    #[test]
    fn opset_7_mask_has_the_input_type() {
        let out = run(&node("Dropout", 1, 2, vec![("ratio", AttrValue::Float(0.2))]), 7, vec![f32_value(&[2], &[1.0, 2.0])]);
        assert_eq!(out[1].dtype(), DataType::F32);
        assert_close(&out[1], &[2], &[1.0, 1.0]);
    }

    #[test]
    fn training_mode_needs_ratio_zero() {
        let op = parse(&node("Dropout", 3, 1, vec![]), 13, &[]).unwrap();
        let inputs = |ratio: f32| Inputs::new(vec![Some(f32_value(&[1], &[1.0])), Some(f32_value(&[], &[ratio])), Some(bool_value(&[], &[true]))]);
        assert_eq!(op.eval(inputs(0.5)).unwrap_err().reason, "training mode is not supported (it drops random elements) unless ratio is 0");
        assert_close(&op.eval(inputs(0.0)).unwrap()[0], &[1], &[1.0]);
        let training_off = Inputs::new(vec![Some(f32_value(&[1], &[1.0])), None, Some(bool_value(&[], &[false]))]);
        assert_close(&op.eval(training_off).unwrap()[0], &[1], &[1.0]);
        let no_ratio = Inputs::new(vec![Some(f32_value(&[1], &[1.0])), None, Some(bool_value(&[], &[true]))]);
        assert!(op.eval(no_ratio).is_err());
    }

    #[test]
    fn attributes_of_other_opsets_are_errors() {
        let err = parse(&node("Dropout", 1, 1, vec![("ratio", AttrValue::Float(0.5))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Dropout): attribute 'ratio': is not an attribute of Dropout-13");
        let err = parse(&node("Dropout", 1, 1, vec![("ratio", AttrValue::Float(1.5))]), 10, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Dropout): attribute 'ratio': must be in [0, 1), found 1.5");
    }
}
