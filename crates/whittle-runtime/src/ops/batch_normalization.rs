//! BatchNormalization (<https://onnx.ai/onnx/operators/onnx__BatchNormalization.html>).
//!
//! `Y = (X - mean) / sqrt(var + epsilon) * scale + B` per channel (axis 1). Opset 7 dropped
//! `is_test` (opset 6's test mode, the only one implemented before 14, is then implied by a single
//! output), 9 dropped `spatial` (per-channel statistics; the per-element ones of `spatial` 0 are
//! refused), 14 added `training_mode`, 15 types. In training mode (opsets 14 on) mean and variance
//! are the batch's, biased, over every axis but 1, and the optional outputs running_mean and
//! running_var are `input * momentum + batch * (1 - momentum)`. The training outputs of opsets 6 to
//! 13 (saved statistics) are not implemented.
//!
//! On burn-flex, f32 inference runs on whittle's own kernel
//! ([`crate::kernels::elementwise::batch_norm`]), with a following Relu fused into it.

use std::ops::RangeInclusive;

use burn_tensor::{module, Tensor};

use crate::kernels::{self, activate_burn, elementwise, Activation};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, Value};

/// Normalizes each channel with the given statistics, then applies the activation fused into it,
/// if any (inference only).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormalization {
    pub epsilon: f32,
    pub momentum: f32,
    pub training: bool,
    /// An activation the planner fused into this node (see `crate::fuse`).
    pub(crate) activation: Option<Activation>,
}

impl Operator for BatchNormalization {
    const OP_TYPE: &'static str = "BatchNormalization";
    const OPSETS: RangeInclusive<i64> = 6..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["epsilon", "is_test", "momentum", "spatial", "training_mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        for (attribute, until) in [("is_test", 6), ("spatial", 8)] {
            if node.opset > until && node.node.attribute(attribute).is_some() {
                return Err(OpError::attribute(attribute, format!("exists up to opset {until} only")));
            }
        }
        if node.opset == 6 && !node.flag("is_test", false)? {
            return Err(OpError::attribute("is_test", "training mode (is_test 0) is not implemented"));
        }
        if !node.flag("spatial", true)? {
            return Err(OpError::attribute("spatial", "per-element statistics (spatial 0) are not implemented"));
        }
        let training = node.opset >= 14 && node.flag("training_mode", false)?;
        if !training && node.node.outputs.iter().skip(1).any(|name| !name.is_empty()) {
            fail!("the running mean and variance outputs exist only in training mode");
        }
        if node.node.outputs.len() > 3 {
            fail!("BatchNormalization has at most 3 outputs, found {}", node.node.outputs.len());
        }
        Ok(BatchNormalization {
            epsilon: node.float("epsilon", 1e-5)?,
            momentum: node.float("momentum", 0.9)?,
            training,
            activation: None,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        if shape.len() < 2 {
            fail!("X {shape:?} must have rank 2 or more");
        }
        let channels = shape[1];
        let mut values = Vec::with_capacity(4);
        for (index, name) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let value = inputs.take(index)?;
            if value.shape() != [channels] || value.dtype() != dtype {
                fail!("{name} is {}{:?}, expected {dtype}[{channels}] for X {shape:?}", value.dtype(), value.shape());
            }
            values.push(value);
        }
        if !self.training {
            if let Some(y) = self.run_kernel(&x, &values)? {
                return Ok(vec![y]);
            }
        }
        let statistics = values.into_iter().map(Value::float::<1>).collect::<Result<Vec<_>, _>>()?;
        let [scale, bias, mean, variance]: [_; 4] = statistics.try_into().map_err(|_| OpError::new("four statistics expected"))?;
        if self.training {
            return self.train(x, [scale, bias, mean, variance]);
        }
        let y = with_rank!(shape.len(), D => {
            Value::from_float(module::batch_norm(x.float::<D>()?, scale, bias, mean, variance, f64::from(self.epsilon)), dtype)?
        });
        Ok(vec![activate_burn(y, self.activation)?])
    }
}

impl BatchNormalization {
    /// Inference on whittle's f32 kernel; `None` when it does not apply (not flex, not f32).
    fn run_kernel(&self, x: &Value, statistics: &[Value]) -> Result<Option<Value>, OpError> {
        let Some(x_tensor) = kernels::flex_f32(x) else { return Ok(None) };
        let Some(tensors) = statistics.iter().map(kernels::flex_f32).collect::<Option<Vec<_>>>() else { return Ok(None) };
        let values: Vec<_> = tensors.iter().map(kernels::contiguous).collect();
        let [scale, bias, mean, variance] = [&values[0][..], &values[1][..], &values[2][..], &values[3][..]];
        let shape = x.shape();
        let dims = [shape[0], shape[1], shape[2..].iter().product()];
        let y = elementwise::batch_norm(&kernels::contiguous(&x_tensor), dims, [scale, bias, mean, variance], self.epsilon, self.activation);
        Ok(Some(kernels::output(y, shape)?))
    }

    /// Training mode: normalizes with the batch statistics and updates the running ones.
    fn train(&self, x: Value, [scale, bias, mean, variance]: [Tensor<1>; 4]) -> Result<Vec<Value>, OpError> {
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        let (n, c, rest) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        if n * rest == 0 {
            fail!("X {shape:?} has no elements to take batch statistics from");
        }
        // Every (sample, position) group has `rest` elements, so the mean of the means over axis
        // 2 is the mean over both.
        let x = x.reshape(&[n, c, rest])?.float::<3>()?;
        let batch_mean = x.clone().mean_dim(2).mean_dim(0);
        let centered = x - batch_mean.clone();
        let batch_variance = (centered.clone() * centered.clone()).mean_dim(2).mean_dim(0);
        let normalized = centered / batch_variance.clone().add_scalar(f64::from(self.epsilon)).sqrt();
        let y = normalized * scale.reshape([1, c, 1]) + bias.reshape([1, c, 1]);
        let momentum = f64::from(self.momentum);
        let running = |input: Tensor<1>, batch: Tensor<3>| input.mul_scalar(momentum) + batch.reshape([c]).mul_scalar(1.0 - momentum);
        Ok(vec![
            Value::from_float(y, dtype)?.reshape(&shape)?,
            Value::from_float(running(mean, batch_mean), dtype)?,
            Value::from_float(running(variance, batch_variance), dtype)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn each_channel_uses_its_statistics() {
        // x [1, 2, 2]: channel 0 = [1, 3], channel 1 = [0, 4].
        // scale [2, 1], B [0, 1], mean [2, 2], var [1, 4], epsilon 0:
        // channel 0: (x - 2) / 1 * 2 + 0 = [-2, 2]; channel 1: (x - 2) / 2 + 1 = [0, 2].
        let bn = node("BatchNormalization", 5, 1, vec![("epsilon", AttrValue::Float(0.0))]);
        let out = run(
            &bn,
            15,
            vec![
                f32_value(&[1, 2, 2], &[1.0, 3.0, 0.0, 4.0]),
                f32_value(&[2], &[2.0, 1.0]),
                f32_value(&[2], &[0.0, 1.0]),
                f32_value(&[2], &[2.0, 2.0]),
                f32_value(&[2], &[1.0, 4.0]),
            ],
        );
        assert_close(&out[0], &[1, 2, 2], &[-2.0, 2.0, 0.0, 2.0]);
    }

    #[test]
    fn epsilon_is_added_to_the_variance() {
        // var 0, epsilon 0.25: (x - 0) / sqrt(0.25) = 2 x.
        let bn = node("BatchNormalization", 5, 1, vec![("epsilon", AttrValue::Float(0.25))]);
        let (one, zero) = (|| f32_value(&[1], &[1.0]), || f32_value(&[1], &[0.0]));
        let out = run(&bn, 15, vec![f32_value(&[2, 1], &[1.0, -3.0]), one(), zero(), zero(), zero()]);
        assert_close(&out[0], &[2, 1], &[2.0, -6.0]);
    }

    #[test]
    fn opset_6_runs_in_test_mode_only() {
        let bn = node("BatchNormalization", 5, 1, vec![("is_test", AttrValue::Int(1)), ("epsilon", AttrValue::Float(0.0))]);
        let one = || f32_value(&[1], &[1.0]);
        let out = run(&bn, 6, vec![f32_value(&[2, 1], &[3.0, -1.0]), one(), f32_value(&[1], &[0.5]), one(), one()]);
        // (x - 1) / 1 * 1 + 0.5.
        assert_close(&out[0], &[2, 1], &[2.5, -1.5]);
        let err = parse(&node("BatchNormalization", 5, 1, vec![]), 6, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (BatchNormalization): attribute 'is_test': training mode (is_test 0) is not implemented");
    }

    #[test]
    fn training_mode_uses_and_updates_batch_statistics() {
        // x [2, 1, 2] = [1, 3, 5, 7]: batch mean 4, biased variance (9 + 1 + 1 + 9) / 4 = 5.
        // scale 2, B 1, epsilon 0: y = (x - 4) / sqrt(5) * 2 + 1. momentum 0.75 with input mean
        // 0 and variance 1: running mean 0.25 * 4 = 1, running variance 0.75 + 0.25 * 5 = 2.
        let bn = node(
            "BatchNormalization",
            5,
            3,
            vec![("training_mode", AttrValue::Int(1)), ("epsilon", AttrValue::Float(0.0)), ("momentum", AttrValue::Float(0.75))],
        );
        let one = |value: f32| f32_value(&[1], &[value]);
        let out = run(&bn, 15, vec![f32_value(&[2, 1, 2], &[1.0, 3.0, 5.0, 7.0]), one(2.0), one(1.0), one(0.0), one(1.0)]);
        let y: Vec<f64> = [1.0, 3.0, 5.0, 7.0].iter().map(|x: &f64| (x - 4.0) / 5f64.sqrt() * 2.0 + 1.0).collect();
        assert_close(&out[0], &[2, 1, 2], &y);
        assert_close(&out[1], &[1], &[1.0]);
        assert_close(&out[2], &[1], &[2.0]);
    }

    #[test]
    fn running_outputs_outside_training_mode_are_refused() {
        let bn = node("BatchNormalization", 5, 3, vec![]);
        let err = parse(&bn, 15, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (BatchNormalization): the running mean and variance outputs exist only in training mode");
    }
}
