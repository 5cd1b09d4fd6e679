//! ReduceMean: the mean over some axes (<https://onnx.ai/onnx/operators/onnx__ReduceMean.html>).
//!
//! Before opset 18 the axes are an attribute; from 18 they are an optional input, and
//! `noop_with_empty_axes` says whether no axes means all axes (the default) or none. Without axes the
//! mean runs over every axis. `keepdims` (default 1) keeps reduced axes with size 1. The shared rules
//! are in `reduce.rs`; floats only.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator, Reduction};
use crate::reduce::{Reducer, ATTRIBUTES};
use crate::value::Value;

/// `reduced = mean(data, axes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceMean(pub Reduction);

impl Operator for ReduceMean {
    const OP_TYPE: &'static str = "ReduceMean";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = ATTRIBUTES;

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Reduction::parse(node, 18).map(ReduceMean)
    }

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
        self.0.eval(Reducer::Mean, inputs)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Tensor};

    use crate::ops::test_support::*;

    // The ONNX spec's example data: shape [3, 2, 2], values 5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2.
    const DATA: [f32; 12] = [5.0, 1.0, 20.0, 2.0, 30.0, 1.0, 40.0, 2.0, 55.0, 1.0, 60.0, 2.0];

    #[test]
    fn spec_example_axis_1_keepdims() {
        // Expected from the spec: [[[12.5, 1.5]], [[35, 1.5]], [[57.5, 1.5]]].
        let reduce = node("ReduceMean", 2, 1, vec![("keepdims", AttrValue::Int(1))]);
        let out = run(&reduce, 18, vec![f32_value(&[3, 2, 2], &DATA), i64_value(&[1], &[1])]);
        assert_close(&out[0], &[3, 1, 2], &[12.5, 1.5, 35.0, 1.5, 57.5, 1.5]);
    }

    #[test]
    fn spatial_mean_drops_axes_like_global_pooling() {
        // The CNN's global average pool: axes [2, 3] of [1, 2, 2, 2] with keepdims 0.
        let reduce = node("ReduceMean", 2, 1, vec![("keepdims", AttrValue::Int(0))]);
        let axes = Tensor::from_i64("axes", vec![2], &[2, 3]).unwrap();
        let op = parse(&reduce, 18, &[(1, axes)]).unwrap();
        let crate::ops::Op::ReduceMean(parsed) = &op else { panic!("{op:?}") };
        assert_eq!(parsed.0.axes, crate::ops::IntsInput::Constant(vec![2, 3]));
        let out = run(&reduce, 18, vec![f32_value(&[1, 2, 2, 2], &DATA[..8]), i64_value(&[2], &[-2, -1])]);
        assert_close(&out[0], &[1, 2], &[(5.0 + 1.0 + 20.0 + 2.0) / 4.0, (30.0 + 1.0 + 40.0 + 2.0) / 4.0]);
    }

    #[test]
    fn no_axes_reduces_everything_unless_noop() {
        let all = run(&node("ReduceMean", 1, 1, vec![("keepdims", AttrValue::Int(0))]), 18, vec![f32_value(&[3, 2, 2], &DATA)]);
        assert_close(&all[0], &[], &[DATA.iter().map(|&x| f64::from(x)).sum::<f64>() / 12.0]);
        let noop = node("ReduceMean", 1, 1, vec![("noop_with_empty_axes", AttrValue::Int(1))]);
        let out = run(&noop, 18, vec![f32_value(&[2], &[1.0, 2.0])]);
        assert_close(&out[0], &[2], &[1.0, 2.0]);
    }

    #[test]
    fn opset_13_reads_axes_from_the_attribute() {
        let reduce = node("ReduceMean", 1, 1, vec![("axes", AttrValue::Ints(vec![0]))]);
        let out = run(&reduce, 13, vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 5.0])]);
        assert_close(&out[0], &[1, 2], &[2.0, 3.5]);
        let err = parse(&reduce, 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (ReduceMean): attribute 'axes': is an input from opset 18 on");
    }
}
