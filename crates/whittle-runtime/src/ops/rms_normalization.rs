//! RMSNormalization (<https://onnx.ai/onnx/operators/onnx__RMSNormalization.html>), opset 23 on.
//!
//! `Y = X / sqrt(mean(X^2 over axes axis..) + epsilon) * Scale`, the spec's function body: stage one
//! (the root mean square and the division) in `stash_type`'s precision, then cast back to X's type
//! and multiplied by Scale in it. Only stash type 1 (f32) is accepted, the default and the only one
//! onnx's reference implements. Scale broadcasts to X unidirectionally (its shape right-aligned
//! against X's, each size 1 or equal) and must have X's type: the schema allows another float type
//! for Scale, whose product rule the function body leaves to type promotion, so that is refused.

use std::ops::RangeInclusive;

use burn_tensor::DType;
use crate::broadcast::{arithmetic, broadcast_shape, Arithmetic};
use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::{burn_dtype, ElementKind, Value};

/// `Y = X / rms(X over axis..) * Scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNormalization {
    pub axis: i64,
    pub epsilon: f32,
}

impl Operator for RmsNormalization {
    const OP_TYPE: &'static str = "RMSNormalization";
    const OPSETS: RangeInclusive<i64> = 23..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis", "epsilon", "stash_type"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let stash_type = node.int("stash_type", 1)?;
        if stash_type != 1 {
            return Err(OpError::attribute("stash_type", format!("only 1 (float32) is implemented, found {stash_type}")));
        }
        Ok(RmsNormalization { axis: node.int("axis", -1)?, epsilon: node.float("epsilon", 1e-5)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, scale) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = x.dtype();
        if x.kind() != ElementKind::Float {
            fail!("X must be a float tensor, got {dtype}");
        }
        if scale.dtype() != dtype {
            fail!("Scale is {}, expected {dtype} like X", scale.dtype());
        }
        let shape = x.shape().to_vec();
        if shape.is_empty() {
            fail!("X needs rank 1 or more");
        }
        if broadcast_shape(&shape, scale.shape()).ok().as_deref() != Some(&shape[..]) {
            fail!("Scale {:?} does not broadcast to X {shape:?}", scale.shape());
        }
        let axis = normalize_axis(self.axis, shape.len())?;
        let (rows, columns) = (shape[..axis].iter().product::<usize>(), shape[axis..].iter().product::<usize>());
        if rows * columns == 0 {
            fail!("X {shape:?} is empty");
        }
        let matrix = x.reshape(&[rows, columns])?.float::<2>()?;
        let stashed = matrix.cast(DType::F32);
        let rms = stashed.clone().square().mean_dim(1).add_scalar(f64::from(self.epsilon)).sqrt();
        let Some((burn_type, _)) = burn_dtype(dtype) else { fail!("dtype {dtype} is not supported") };
        let normalized = (stashed / rms.expand([rows, columns])).cast(burn_type);
        let normalized = Value::from_float(normalized, dtype)?.reshape(&shape)?;
        Ok(vec![arithmetic(Arithmetic::Mul, normalized, scale)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    /// `x / sqrt(mean(x^2) + epsilon)` of one group in f64.
    fn normalize(group: &[f64], epsilon: f64) -> Vec<f64> {
        let rms = (group.iter().map(|x| x * x).sum::<f64>() / group.len() as f64 + epsilon).sqrt();
        group.iter().map(|x| x / rms).collect()
    }

    #[test]
    fn normalizes_each_group_and_scales() {
        let x = [1.0, -2.0, 3.0, 0.5, 0.25, -4.0];
        let out = run(&node("RMSNormalization", 2, 1, vec![]), 23, vec![f32_value(&[2, 3], &x), f32_value(&[3], &[1.0, 2.0, -1.0])]);
        let expected: Vec<f64> = x
            .chunks(3)
            .flat_map(|row| normalize(&row.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1e-5))
            .zip([1.0, 2.0, -1.0].iter().cycle())
            .map(|(value, scale)| value * scale)
            .collect();
        assert_close(&out[0], &[2, 3], &expected);
        // Axis 0 normalizes everything as one group; a one-element Scale broadcasts.
        let rms = node("RMSNormalization", 2, 1, vec![("axis", AttrValue::Int(0)), ("epsilon", AttrValue::Float(0.5))]);
        let out = run(&rms, 23, vec![f32_value(&[2, 3], &x), f32_value(&[1], &[3.0])]);
        let expected: Vec<f64> = normalize(&x.map(f64::from), f64::from(0.5f32)).into_iter().map(|value| value * 3.0).collect();
        assert_close(&out[0], &[2, 3], &expected);
    }

    #[test]
    fn bad_scale_and_stash_type_are_errors() {
        let err = try_run(&node("RMSNormalization", 2, 1, vec![]), 23, vec![f32_value(&[2, 3], &[1.0; 6]), f32_value(&[4], &[1.0; 4])]);
        assert_eq!(err.unwrap_err(), "Scale [4] does not broadcast to X [2, 3]");
        let err = parse(&node("RMSNormalization", 2, 1, vec![("stash_type", AttrValue::Int(11))]), 23, &[]).unwrap_err();
        assert!(err.to_string().contains("only 1 (float32) is implemented, found 11"), "{err}");
    }
}
