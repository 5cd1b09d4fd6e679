//! LayerNormalization (<https://onnx.ai/onnx/operators/onnx__LayerNormalization.html>), opset 17 on.
//!
//! Normalizes over the axes `axis..` of X: `Y = (X - mean) / sqrt(var + epsilon) * Scale + B`, with
//! the biased variance. Scale and B have the shape of those axes. X is viewed as a matrix
//! `[prod(shape[..axis]), prod(shape[axis..])]` (one row per group, a single row for axis 0).
//! `stash_type` sets the precision of mean and variance and the dtype of the optional Mean and
//! InvStdDev outputs, whose shape is X's with the normalized axes set to 1; only 1 (f32) is accepted,
//! the default and the only one onnx's reference implements.
//!
//! Without Mean and InvStdDev, burn's last-axis `layer_norm` does the work: it is the path every
//! exported transformer takes. When the node names either statistic, the row statistics are computed
//! here in f32 (the stash type) and Y is built from them, so that Y and the statistics agree.
//! Without them, f32 values on burn-flex run on the row kernel
//! ([`crate::kernels::rows::layer_norm`]: one reading pass per statistic, one writing pass).

use std::ops::RangeInclusive;

use burn_tensor::{module, DType, Tensor};
use whittle_ir::DataType;

use crate::kernels;
use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = normalize(X over axis..) * Scale + B`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
    /// Whether the node names the Mean or InvStdDev output.
    pub statistics: bool,
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
        let statistics = node.node.outputs.iter().skip(1).any(|name| !name.is_empty());
        Ok(LayerNormalization { axis: node.int("axis", -1)?, epsilon: node.float("epsilon", 1e-5)?, statistics })
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
        if !self.statistics {
            if let Some(y) = self.run_kernel(&x, &scale, bias.as_ref())? {
                return Ok(vec![y]);
            }
        }
        let x = x.reshape(&[rows, columns])?.float::<2>()?;
        let scale = scale.reshape(&[columns])?.float::<1>()?;
        let bias = bias.map(|bias| bias.reshape(&[columns])?.float::<1>()).transpose()?;
        if !self.statistics {
            let y = module::layer_norm(x, scale, bias, f64::from(self.epsilon));
            return Ok(vec![Value::from_float(y, dtype)?.reshape(&shape)?]);
        }
        let (y, mean, inv_std_dev) = normalize_with_statistics(x, scale, bias, f64::from(self.epsilon));
        // The statistics keep X's rank with size 1 on the normalized axes, as the spec's
        // reduction shape does, so that they broadcast against X.
        let statistics_shape: Vec<usize> = shape.iter().enumerate().map(|(index, &size)| if index < axis { size } else { 1 }).collect();
        Ok(vec![
            Value::from_float(y, dtype)?.reshape(&shape)?,
            Value::from_float(mean, DataType::F32)?.reshape(&statistics_shape)?,
            Value::from_float(inv_std_dev, DataType::F32)?.reshape(&statistics_shape)?,
        ])
    }
}

impl LayerNormalization {
    /// Y on the row kernel, when X, Scale and B are flex f32 values; `None` otherwise.
    fn run_kernel(&self, x: &Value, scale: &Value, bias: Option<&Value>) -> Result<Option<Value>, OpError> {
        let (Some(x_tensor), Some(scale_tensor)) = (kernels::flex_f32(x), kernels::flex_f32(scale)) else { return Ok(None) };
        let bias_tensor = match bias.map(kernels::flex_f32) {
            Some(None) => return Ok(None),
            Some(Some(tensor)) => Some(tensor),
            None => None,
        };
        let (x_values, scale_values) = (kernels::contiguous(&x_tensor), kernels::contiguous(&scale_tensor));
        let bias_values = bias_tensor.as_ref().map(kernels::contiguous);
        let mut out = vec![0.0f32; x_values.len()];
        kernels::rows::layer_norm(&x_values, &mut out, &scale_values, bias_values.as_deref(), self.epsilon);
        Ok(Some(kernels::output(out, x.shape())?))
    }
}

/// Y, the row means and the row inverse standard deviations of the matrix `x`, with the statistics
/// in f32 (the stash type) whatever X's float type, and Y cast back to it.
fn normalize_with_statistics(
    x: Tensor<2>,
    scale: Tensor<1>,
    bias: Option<Tensor<1>>,
    epsilon: f64,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let mean = x.clone().mean_dim(1);
    let centered = x - mean.clone();
    let variance = centered.clone().square().mean_dim(1);
    let inv_std_dev = variance.add_scalar(epsilon).sqrt().recip();
    let normalized = centered * inv_std_dev.clone();
    // Scale and B are applied in X's type, as the spec's function body does after casting back.
    let mut y = normalized.cast(dtype) * scale.unsqueeze::<2>();
    if let Some(bias) = bias {
        y = y + bias.unsqueeze::<2>();
    }
    (y, mean, inv_std_dev)
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

    /// Mean and 1 / sqrt(var + epsilon) of one group in f64, with the biased variance.
    fn statistics(group: &[f64], epsilon: f64) -> (f64, f64) {
        let n = group.len() as f64;
        let mean = group.iter().sum::<f64>() / n;
        let variance = group.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, 1.0 / (variance + epsilon).sqrt())
    }

    #[test]
    fn mean_and_inv_std_dev_keep_the_rank_with_normalized_axes_set_to_1() {
        // [2, 3, 2] with axis -2: each of the two groups holds 6 elements; statistics are [2, 1, 1].
        let x: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32 - 1.5).collect();
        let scale: Vec<f32> = (0..6).map(|i| 0.5 + i as f32).collect();
        let bias: Vec<f32> = (0..6).map(|i| i as f32 - 2.0).collect();
        let layer_norm = node("LayerNormalization", 3, 3, vec![("axis", AttrValue::Int(-2)), ("epsilon", AttrValue::Float(0.01))]);
        let out = run(&layer_norm, 17, vec![f32_value(&[2, 3, 2], &x), f32_value(&[3, 2], &scale), f32_value(&[3, 2], &bias)]);
        let to64 = |values: &[f32]| values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        // epsilon as the f32 attribute holds it.
        let epsilon = f64::from(0.01f32);
        let groups = [to64(&x[..6]), to64(&x[6..])];
        let expected_y = [
            reference(&groups[0], &to64(&scale), &to64(&bias), epsilon),
            reference(&groups[1], &to64(&scale), &to64(&bias), epsilon),
        ]
        .concat();
        let (stats0, stats1) = (statistics(&groups[0], epsilon), statistics(&groups[1], epsilon));
        assert_eq!(out.len(), 3);
        assert_close(&out[0], &[2, 3, 2], &expected_y);
        assert_close(&out[1], &[2, 1, 1], &[stats0.0, stats1.0]);
        assert_close(&out[2], &[2, 1, 1], &[stats0.1, stats1.1]);
    }

    #[test]
    fn axis_0_normalizes_the_whole_tensor_as_one_group() {
        let x = [3.0, -1.0, 0.5, 2.0, 8.0, -4.0];
        let layer_norm = node("LayerNormalization", 2, 3, vec![("axis", AttrValue::Int(0))]);
        let out = run(&layer_norm, 17, vec![f32_value(&[3, 2], &x), f32_value(&[3, 2], &[1.0; 6])]);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (mean, inv_std_dev) = statistics(&x64, f64::from(1e-5f32));
        assert_close(&out[0], &[3, 2], &reference(&x64, &[1.0; 6], &[0.0; 6], f64::from(1e-5f32)));
        assert_close(&out[1], &[1, 1], &[mean]);
        assert_close(&out[2], &[1, 1], &[inv_std_dev]);
    }

    #[test]
    fn only_the_named_statistics_are_required() {
        // An omitted Mean (empty name) with InvStdDev named still needs three results, in order.
        let mut layer_norm = node("LayerNormalization", 2, 3, vec![]);
        layer_norm.outputs[1] = String::new();
        let out = run(&layer_norm, 17, vec![f32_value(&[1, 2], &[1.0, 3.0]), f32_value(&[2], &[1.0, 1.0])]);
        let (_, inv_std_dev) = statistics(&[1.0, 3.0], f64::from(1e-5f32));
        assert_close(&out[2], &[1, 1], &[inv_std_dev]);
    }

    #[test]
    fn axis_out_of_range_is_an_error() {
        let layer_norm = node("LayerNormalization", 2, 1, vec![("axis", AttrValue::Int(-3))]);
        let err = try_run(&layer_norm, 17, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[2], &[1.0; 2])]);
        assert_eq!(err.unwrap_err(), "axis -3 is out of range for rank 2");
    }

    #[test]
    fn scale_of_the_wrong_shape_is_an_error() {
        let err = try_run(&node("LayerNormalization", 2, 1, vec![]), 17, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3], &[1.0; 3])]);
        assert_eq!(err.unwrap_err(), "Scale is f32[3], expected f32[2]");
    }
}
