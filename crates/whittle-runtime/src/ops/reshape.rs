//! Reshape: the same elements in a new shape (<https://onnx.ai/onnx/operators/onnx__Reshape.html>).
//!
//! From opset 5 the shape is an input; opset 14 added `allowzero`. In the shape, -1 (at most once)
//! stands for whatever size makes the element count match, and 0 copies the input's size at that
//! position unless `allowzero` is set, when it means a size of zero. Later opsets only add types.
//! On burn-flex a strided float view is reshaped as a view where its strides allow
//! ([`crate::kernels::reshape_view`]).

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `reshaped = data` in the shape given by input 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    pub allowzero: bool,
    /// The shape input, when an initializer holds it.
    pub shape: Option<Vec<i64>>,
}

impl Operator for Reshape {
    const OP_TYPE: &'static str = "Reshape";
    const OPSETS: RangeInclusive<i64> = 5..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["allowzero"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let allowzero = if node.opset >= 14 { node.flag("allowzero", false)? } else { false };
        let shape = node.constant_ints(1)?;
        if let Some(shape) = &shape {
            check_shape(shape, allowzero)?;
        }
        Ok(Reshape { allowzero, shape })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let data = inputs.take(0)?;
        let requested = match &self.shape {
            Some(shape) => shape.clone(),
            None => {
                let shape = inputs.take(1)?.to_i64_vec()?;
                check_shape(&shape, self.allowzero)?;
                shape
            }
        };
        let target = resolve(data.shape(), &requested, self.allowzero)?;
        // A strided view on flex (a Split output) is reshaped without a copy where its strides allow.
        if let Some(view) = crate::kernels::reshape_view(&data, &target) {
            return Ok(vec![view]);
        }
        Ok(vec![data.reshape(&target)?])
    }
}

fn check_shape(shape: &[i64], allowzero: bool) -> Result<(), OpError> {
    if shape.iter().any(|&size| size < -1) {
        fail!("shape {shape:?} has a size below -1");
    }
    if shape.iter().filter(|&&size| size == -1).count() > 1 {
        fail!("shape {shape:?} has more than one -1");
    }
    if allowzero && shape.contains(&0) && shape.contains(&-1) {
        fail!("shape {shape:?} has both 0 and -1, which allowzero=1 forbids");
    }
    Ok(())
}

/// The output shape for `requested` applied to an input of shape `input`.
fn resolve(input: &[usize], requested: &[i64], allowzero: bool) -> Result<Vec<usize>, OpError> {
    let count: usize = input.iter().product();
    let mut target = Vec::with_capacity(requested.len());
    let mut inferred = None;
    for (index, &size) in requested.iter().enumerate() {
        target.push(match size {
            -1 => {
                inferred = Some(index);
                1
            }
            0 if !allowzero => match input.get(index) {
                Some(&copied) => copied,
                None => fail!("shape {requested:?} copies axis {index}, which input {input:?} does not have"),
            },
            size => size as usize,
        });
    }
    if let Some(index) = inferred {
        let known: usize = target.iter().product();
        if known == 0 || !count.is_multiple_of(known) {
            fail!("cannot reshape {input:?} to {requested:?}");
        }
        target[index] = count / known;
    }
    if target.iter().product::<usize>() != count {
        fail!("cannot reshape {input:?} to {requested:?}");
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Tensor};

    use super::*;
    use crate::ops::test_support::*;

    #[test]
    fn minus_one_is_inferred_and_zero_copies() {
        assert_eq!(resolve(&[8, 16, 64], &[-1, 16, 4, 16], true).unwrap(), vec![8, 16, 4, 16]);
        assert_eq!(resolve(&[2, 3, 4], &[0, -1], false).unwrap(), vec![2, 12]);
        assert_eq!(resolve(&[2, 0, 4], &[0, 4], true).unwrap(), vec![0, 4]);
        assert_eq!(resolve(&[2, 3], &[4, -1], false).unwrap_err().reason, "cannot reshape [2, 3] to [4, -1]");
    }

    #[test]
    fn constant_shape_is_read_at_plan_time() {
        let reshape = node("Reshape", 2, 1, vec![("allowzero", AttrValue::Int(1))]);
        let shape = Tensor::from_i64("s", vec![2], &[3, -1]).unwrap();
        let op = parse(&reshape, 14, &[(1, shape)]).unwrap();
        assert_eq!(op, crate::ops::Op::Reshape(Reshape { allowzero: true, shape: Some(vec![3, -1]) }));
        let bad = Tensor::from_i64("s", vec![2], &[0, -1]).unwrap();
        let err = parse(&reshape, 14, &[(1, bad)]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Reshape): shape [0, -1] has both 0 and -1, which allowzero=1 forbids");
    }

    #[test]
    fn allowzero_reorders_an_empty_input_without_panicking() {
        // node/test_reshape_allowzero_reordered: [0, 3, 4] to [3, 4, 0] with allowzero=1 panicked
        // inside burn, whose reshape reads the trailing 0 as "copy axis 2" of its flattened source.
        let reshape = node("Reshape", 2, 1, vec![("allowzero", AttrValue::Int(1))]);
        let out = run(&reshape, 14, vec![f32_value(&[0, 3, 4], &[]), i64_value(&[3], &[3, 4, 0])]);
        assert_eq!(out[0].shape(), &[3, 4, 0]);
        assert_eq!(out[0].to_f32_vec().unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn shape_from_a_computed_input() {
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let out = run(&node("Reshape", 2, 1, vec![]), 14, vec![f32_value(&[2, 3], &x), i64_value(&[2], &[3, 2])]);
        assert_close(&out[0], &[3, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}

