//! LayerNormalization (<https://onnx.ai/onnx/operators/onnx__LayerNormalization.html>), opset 17 on.
//!
//! Normalizes over the axes `axis..` of X: `Y = (X - mean) / sqrt(var + epsilon) * Scale + B`, with
//! the biased variance. Scale and B have the shape of those axes. X is viewed as a matrix
//! `[prod(shape[..axis]), prod(shape[axis..])]` so that burn's last-axis layer_norm does the work.
//! `stash_type` sets the precision of mean and variance; only 1 (f32) is accepted, which for f32
//! inputs is what burn computes. The optional Mean and InvStdDev outputs are refused at plan time.

use std::ops::RangeInclusive;

use burn_tensor::module;

use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = normalize(X over axis..) * Scale + B`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
}

impl Operator for LayerNormalization {
    const OP_TYPE: &'static str = "LayerNormalization";
    const OPSETS: RangeInclusive<i64> = 17..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["axis", "epsilon", "stash_type"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let stash_type = node.int("stash_type", 1)?;
        if stash_type != 1 {
            return Err(OpError::attribute("stash_type", format!("only 1 (float32) is implemented, found {stash_type}")));
        }
        if node.node.outputs.iter().skip(1).any(|name| !name.is_empty()) {
            fail!("the Mean and InvStdDev outputs are not implemented");
        }
        Ok(LayerNormalization { axis: node.int("axis", -1)?, epsilon: node.float("epsilon", 1e-5)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (x, scale, bias) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        let axis = normalize_axis(self.axis, shape.len())?;
        let normalized = &shape[axis..];
        let (rows, columns) = (shape[..axis].iter().product::<usize>(), normalized.iter().product::<usize>());
        let check = |name: &str, value: &Value| -> Result<(), OpError> {
            // Scale and B broadcast to the normalized axes. Exporters give them exactly that shape;
            // the only other shape accepted adds leading 1s, which broadcasting allows and which
            // changes no element. Anything else would need a real broadcast and is refused.
            let shape = value.shape();
            let extra = shape.len().saturating_sub(normalized.len());
            let fits = shape[extra..] == *normalized && shape[..extra].iter().all(|&size| size == 1);
            if !fits || value.dtype() != dtype {
                fail!("{name} is {}{:?}, expected {dtype}{normalized:?}", value.dtype(), shape);
            }
            Ok(())
        };
        check("Scale", &scale)?;
        if let Some(bias) = &bias {
            check("B", bias)?;
        }
        let x = x.reshape(&[rows, columns])?.float::<2>()?;
        let scale = scale.reshape(&[columns])?.float::<1>()?;
        let bias = bias.map(|bias| bias.reshape(&[columns])?.float::<1>()).transpose()?;
        let y = module::layer_norm(x, scale, bias, f64::from(self.epsilon));
        Ok(vec![Value::from_float(y, dtype)?.reshape(&shape)?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    /// Layer norm of one row in f64 with the biased variance.
    fn reference(row: &[f64], scale: &[f64], bias: &[f64], epsilon: f64) -> Vec<f64> {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let variance = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        row.iter().zip(scale).zip(bias).map(|((x, s), b)| (x - mean) / (variance + epsilon).sqrt() * s + b).collect()
    }

    #[test]
    fn last_axis_with_scale_and_bias() {
        let x = [1.0, 2.0, 4.0, -1.0, 0.0, 7.0];
        let (scale, bias) = ([1.0, 0.5, 2.0], [0.0, 1.0, -1.0]);
        let out = run(
            &node("LayerNormalization", 3, 1, vec![]),
            17,
            vec![f32_value(&[2, 3], &x), f32_value(&[3], &scale), f32_value(&[3], &bias)],
        );
        let to64 = |values: &[f32]| values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let expected = [
            reference(&to64(&x[..3]), &to64(&scale), &to64(&bias), 1e-5),
            reference(&to64(&x[3..]), &to64(&scale), &to64(&bias), 1e-5),
        ]
        .concat();
        assert_close(&out[0], &[2, 3], &expected);
    }

    #[test]
    fn axis_1_normalizes_the_trailing_axes_together() {
        // [1, 2, 2] with axis 1: all four elements form one group; no bias.
        let x = [1.0, 2.0, 3.0, 6.0];
        let layer_norm = node("LayerNormalization", 2, 1, vec![("axis", AttrValue::Int(1)), ("epsilon", AttrValue::Float(0.0))]);
        let out = run(&layer_norm, 17, vec![f32_value(&[1, 2, 2], &x), f32_value(&[2, 2], &[1.0; 4])]);
        assert_close(&out[0], &[1, 2, 2], &reference(&[1.0, 2.0, 3.0, 6.0], &[1.0; 4], &[0.0; 4], 0.0));
    }

    #[test]
    fn scale_of_the_wrong_shape_is_an_error() {
        let err = try_run(&node("LayerNormalization", 2, 1, vec![]), 17, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3], &[1.0; 3])]);
        assert_eq!(err.unwrap_err(), "Scale is f32[3], expected f32[2]");
    }
}
