//! Scan: runs a body once per slice of its scan inputs, threading state values through
//! (<https://onnx.ai/onnx/operators/onnx__Scan.html>).
//!
//! Opsets 9 to 28. Opset 9 replaced opset 8's batch axis and `sequence_lens` with per-input axes
//! and directions (opset 8 is left out: it is a different op); 11 allowed negative axes, accepted
//! here for every opset; later versions only add element types.

use std::ops::RangeInclusive;

use crate::control::{slice_axis, stack_scan_output};
use crate::ops::{normalize_axis, Inputs, NodeContext, OpError, Operator, Subgraph};
use crate::value::Value;

/// `final_state..., scan_outputs... = Scan(initial_state..., scan_inputs...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub(crate) body: Subgraph,
    /// State values (N), then `input_axes.len()` scan inputs (M).
    states: usize,
    input_axes: Vec<i64>,
    /// Per scan input: iterate from the end.
    input_reverse: Vec<bool>,
    output_axes: Vec<i64>,
    /// Per scan output: prepend each iteration's element instead of appending it.
    output_reverse: Vec<bool>,
    explicit: usize,
    captured: usize,
}

fn directions(node: &NodeContext<'_>, name: &str, count: usize) -> Result<Vec<bool>, OpError> {
    let Some(values) = node.ints(name)? else { return Ok(vec![false; count]) };
    if values.len() != count {
        return Err(OpError::attribute(name, format!("has {} entries, expected {count}", values.len())));
    }
    values
        .iter()
        .map(|&value| match value {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(OpError::attribute(name, format!("entries must be 0 or 1, found {other}"))),
        })
        .collect()
}

fn axes(node: &NodeContext<'_>, name: &str, count: usize) -> Result<Vec<i64>, OpError> {
    let Some(values) = node.ints(name)? else { return Ok(vec![0; count]) };
    if values.len() != count {
        return Err(OpError::attribute(name, format!("has {} entries, expected {count}", values.len())));
    }
    Ok(values)
}

impl Operator for Scan {
    const OP_TYPE: &'static str = "Scan";
    const OPSETS: RangeInclusive<i64> = 9..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] =
        &["body", "num_scan_inputs", "scan_input_axes", "scan_input_directions", "scan_output_axes", "scan_output_directions"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let body = node.subgraph("body")?;
        let Some(scan_inputs) = node.optional_int("num_scan_inputs")? else {
            return Err(OpError::attribute("num_scan_inputs", "is required"));
        };
        let explicit = node.node.inputs.len();
        let scan_inputs = usize::try_from(scan_inputs)
            .ok()
            .filter(|&count| count >= 1 && count <= explicit)
            .ok_or_else(|| OpError::attribute("num_scan_inputs", format!("must be in 1..={explicit}, found {scan_inputs}")))?;
        let states = explicit - scan_inputs;
        let body_inputs = body.body().inputs.len();
        if body_inputs != explicit {
            return Err(OpError::attribute("body", format!("takes {body_inputs} inputs, the node gives {explicit}")));
        }
        let body_outputs = body.body().graph.outputs.len();
        if body_outputs < states {
            return Err(OpError::attribute("body", format!("returns {body_outputs} outputs, fewer than the {states} states")));
        }
        let scan_outputs = body_outputs - states;
        if node.node.outputs.len() > body_outputs {
            fail!("the node has {} outputs, its body gives {body_outputs}", node.node.outputs.len());
        }
        Ok(Scan {
            body,
            states,
            input_axes: axes(node, "scan_input_axes", scan_inputs)?,
            input_reverse: directions(node, "scan_input_directions", scan_inputs)?,
            output_axes: axes(node, "scan_output_axes", scan_outputs)?,
            output_reverse: directions(node, "scan_output_directions", scan_outputs)?,
            explicit,
            captured: node.subgraphs.captured,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let mut states: Vec<Value> = (0..self.states).map(|index| inputs.take(index)).collect::<Result<_, _>>()?;
        let mut sequences = Vec::with_capacity(self.input_axes.len());
        let mut length = None;
        for (index, &axis) in self.input_axes.iter().enumerate() {
            let value = inputs.take(self.states + index)?;
            let axis = normalize_axis(axis, value.rank())?;
            let size = value.shape()[axis];
            match length {
                Some(length) if length != size => {
                    fail!("scan input {index} has {size} elements along axis {axis}, the first one {length}")
                }
                _ => length = Some(size),
            }
            sequences.push((value.to_ir("scan input")?, axis));
        }
        let length = length.unwrap_or(0);
        let captured = inputs.take_captured(self.explicit, self.captured)?;
        let body = self.body.body();
        let mut scans: Vec<Vec<Value>> = vec![Vec::new(); self.output_axes.len()];
        for step in 0..length {
            let mut body_inputs = std::mem::take(&mut states);
            for ((sequence, axis), &reverse) in sequences.iter().zip(&self.input_reverse) {
                let index = if reverse { length - 1 - step } else { step };
                body_inputs.push(Value::from_ir(&slice_axis(sequence, *axis, index)?, &body.device)?);
            }
            let mut outputs = body.run(&captured, body_inputs)?.into_iter();
            states = outputs.by_ref().take(self.states).collect();
            for (scan, value) in scans.iter_mut().zip(outputs) {
                scan.push(value);
            }
        }
        let mut results = states;
        for (index, values) in scans.into_iter().enumerate() {
            let declared = body.output_types.get(self.states + index).and_then(Option::as_ref);
            let element_rank = match (values.first(), declared.and_then(|ty| ty.as_tensor()).and_then(|(_, shape)| shape)) {
                (Some(value), _) => value.rank(),
                (None, Some(shape)) => shape.rank(),
                (None, None) => 0,
            };
            let axis = normalize_axis(self.output_axes[index], element_rank + 1)?;
            let what = format!("scan output {index}");
            results.push(stack_scan_output(values, axis, self.output_reverse[index], declared, &body.device, &what)?);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, DataType, Node, Tensor};

    use crate::ops::test_support::*;

    /// `y, z = Scan(initial, x)`: `sum_out = sum_in + next`, `scan_out = sum_out * next`.
    fn scan_graph(x_dims: &[i64], attributes: Vec<(&str, Vec<i64>)>) -> whittle_ir::Graph {
        let body = graph(
            "body",
            vec![
                Node::new("add", "Add", &["sum_in", "next"], &["sum_out"]),
                Node::new("mul", "Mul", &["sum_out", "next"], &["scan_out"]),
            ],
            vec![info("sum_in", DataType::F32, Some(&[2])), info("next", DataType::F32, Some(&[2]))],
            vec![info("sum_out", DataType::F32, Some(&[2])), info("scan_out", DataType::F32, Some(&[2]))],
        );
        let mut node = with_subgraphs(Node::new("scan", "Scan", &["initial", "x"], &["y", "z"]), vec![("body", body)]);
        node.attributes.push(Attribute::new("num_scan_inputs", AttrValue::Int(1)));
        for (name, values) in attributes {
            node.attributes.push(Attribute::new(name, AttrValue::Ints(values)));
        }
        graph(
            "g",
            vec![node],
            vec![info("initial", DataType::F32, Some(&[2])), info("x", DataType::F32, Some(x_dims))],
            vec![info("y", DataType::F32, None), info("z", DataType::F32, None)],
        )
    }

    fn run_scan(x: Tensor, attributes: Vec<(&str, Vec<i64>)>) -> (Vec<f32>, Tensor) {
        let session = session(scan_graph(&x.dims.clone(), attributes), 11).unwrap();
        let feeds = vec![("initial".to_string(), f32_tensor("initial", vec![2], &[1.0, 2.0])), ("x".to_string(), x)];
        let mut outputs = session.run(feeds).unwrap().into_iter().map(|(_, tensor)| tensor);
        let y = outputs.next().unwrap().to_f32_vec().unwrap();
        (y, outputs.next().unwrap())
    }

    fn rows() -> Tensor {
        f32_tensor("x", vec![3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    }

    #[test]
    fn forward_scan_along_axis_0() {
        // sums [2,4], [5,8], [10,14]; scan_out = sum * next.
        let (y, z) = run_scan(rows(), vec![]);
        assert_eq!(y, vec![10.0, 14.0]);
        assert_eq!(z.dims, vec![3, 2]);
        assert_eq!(z.to_f32_vec().unwrap(), vec![2.0, 8.0, 15.0, 32.0, 50.0, 84.0]);
    }

    #[test]
    fn reversed_input_and_prepended_output() {
        // Rows visited 2, 1, 0: sums [6,8], [9,12], [10,14]; elements [30,48], [27,48], [10,28],
        // prepended, so the last one comes first.
        let attributes = vec![("scan_input_directions", vec![1]), ("scan_output_directions", vec![1])];
        let (y, z) = run_scan(rows(), attributes);
        assert_eq!(y, vec![10.0, 14.0]);
        assert_eq!(z.to_f32_vec().unwrap(), vec![10.0, 28.0, 27.0, 48.0, 30.0, 48.0]);
    }

    #[test]
    fn scan_and_output_axes_other_than_0() {
        // x transposed, scanned along axis 1: the same slices; z stacked along axis 1, transposed.
        let columns = f32_tensor("x", vec![2, 3], &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let (y, z) = run_scan(columns, vec![("scan_input_axes", vec![-1]), ("scan_output_axes", vec![1])]);
        assert_eq!(y, vec![10.0, 14.0]);
        assert_eq!(z.dims, vec![2, 3]);
        assert_eq!(z.to_f32_vec().unwrap(), vec![2.0, 15.0, 50.0, 8.0, 32.0, 84.0]);
    }

    #[test]
    fn attribute_lengths_and_values_are_checked_at_plan_time() {
        let err = session(scan_graph(&[3, 2], vec![("scan_input_directions", vec![2])]), 11).unwrap_err().to_string();
        assert!(err.contains("entries must be 0 or 1, found 2"), "{err}");
        let err = session(scan_graph(&[3, 2], vec![("scan_output_axes", vec![0, 1])]), 11).unwrap_err().to_string();
        assert!(err.contains("has 2 entries, expected 1"), "{err}");
    }
}
