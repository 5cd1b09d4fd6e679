//! BatchNormalization in inference mode (<https://onnx.ai/onnx/operators/onnx__BatchNormalization.html>).
//!
//! `Y = (X - mean) / sqrt(var + epsilon) * scale + B` per channel (axis 1). Opset 7 dropped
//! `is_test` (opset 6's test mode, the only one implemented here, is then implied by a single
//! output), 9 dropped `spatial` (per-channel statistics; the per-element ones of `spatial` 0 are
//! refused), 14 added `training_mode` (refused here when set: it updates running statistics, which
//! needs the extra outputs), 15 types.

use std::ops::RangeInclusive;

use burn_tensor::module;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, Value};

/// Normalizes each channel with the given statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormalization {
    pub epsilon: f32,
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
        if node.opset >= 14 && node.flag("training_mode", false)? {
            return Err(OpError::attribute("training_mode", "training mode is not implemented"));
        }
        if node.node.outputs.iter().skip(1).any(|name| !name.is_empty()) {
            fail!("the running mean and variance outputs exist only in training mode");
        }
        // momentum only matters when training; it is read so a mistyped one is still an error.
        node.float("momentum", 0.9)?;
        Ok(BatchNormalization { epsilon: node.float("epsilon", 1e-5)? })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let dtype = x.dtype();
        let shape = x.shape().to_vec();
        if shape.len() < 2 {
            fail!("X {shape:?} must have rank 2 or more");
        }
        let channels = shape[1];
        let mut statistics = Vec::with_capacity(4);
        for (index, name) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let value = inputs.take(index)?;
            if value.shape() != [channels] || value.dtype() != dtype {
                fail!("{name} is {}{:?}, expected {dtype}[{channels}] for X {shape:?}", value.dtype(), value.shape());
            }
            statistics.push(value.float::<1>()?);
        }
        let [scale, bias, mean, variance]: [_; 4] = statistics.try_into().map_err(|_| OpError::new("four statistics expected"))?;
        let y = with_rank!(shape.len(), D => {
            Value::from_float(module::batch_norm(x.float::<D>()?, scale, bias, mean, variance, f64::from(self.epsilon)), dtype)?
        });
        Ok(vec![y])
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
    fn training_mode_is_refused_at_plan_time() {
        let bn = node("BatchNormalization", 5, 1, vec![("training_mode", AttrValue::Int(1))]);
        let err = parse(&bn, 15, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (BatchNormalization): attribute 'training_mode': training mode is not implemented");
    }
}
