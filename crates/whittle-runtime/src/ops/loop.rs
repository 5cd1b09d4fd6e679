//! Loop: runs a body subgraph while a trip count and a condition allow
//! (<https://onnx.ai/onnx/operators/onnx__Loop.html>).
//!
//! Opsets 1 to 28. Opset 11 rewrote the description (separate `_in`/`_out` variables for the
//! loop-carried values, which is how the body has always been bound), 13 matched body inputs and
//! outputs by position, as here, and added sequences; 16 and later add element types. Loop-carried
//! values and scan outputs are tensors here (sequence-typed ones need ops this runtime lacks, which
//! the planner rejects); scan outputs are stacked along a new axis 0.

use std::ops::RangeInclusive;

use whittle_ir::DataType;

use crate::control::{condition, scalar, scalar_int, stack_scan_output};
use crate::ops::{Inputs, NodeContext, OpError, Operator, Subgraph};
use crate::value::Value;

/// `v_final..., scan_outputs... = Loop(M, cond, v_initial...)` over `body(iteration, cond, v...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loop {
    pub(crate) body: Subgraph,
    /// Loop-carried values (N), after the inputs M and cond.
    carried: usize,
    /// Scan outputs of the body (K), after its cond and carried outputs.
    scans: usize,
    explicit: usize,
    captured: usize,
}

impl Operator for Loop {
    const OP_TYPE: &'static str = "Loop";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["body"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let body = node.subgraph("body")?;
        let explicit = node.node.inputs.len();
        if explicit < 2 {
            fail!("Loop takes inputs M, cond and the loop-carried values, the node names {explicit}");
        }
        let carried = explicit - 2;
        let body_inputs = body.body().inputs.len();
        if body_inputs != carried + 2 {
            return Err(OpError::attribute(
                "body",
                format!("takes {body_inputs} inputs, expected {} (iteration, cond and {carried} loop-carried values)", carried + 2),
            ));
        }
        let body_outputs = body.body().graph.outputs.len();
        if body_outputs < carried + 1 {
            return Err(OpError::attribute(
                "body",
                format!("returns {body_outputs} outputs, expected at least {} (cond and {carried} loop-carried values)", carried + 1),
            ));
        }
        let scans = body_outputs - carried - 1;
        if node.node.outputs.len() > carried + scans {
            fail!("the node has {} outputs, its body gives {}", node.node.outputs.len(), carried + scans);
        }
        Ok(Loop { body, carried, scans, explicit, captured: node.subgraphs.captured })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let trip_count = match inputs.take_optional(0) {
            Some(m) => Some(scalar_int(&m, "M")?),
            None => None,
        };
        let mut keep_going = match inputs.take_optional(1) {
            Some(cond) => condition(&cond, "cond")?,
            None => true,
        };
        let mut carried: Vec<Value> = (2..2 + self.carried).map(|index| inputs.take(index)).collect::<Result<_, _>>()?;
        let captured = inputs.take_captured(self.explicit, self.captured)?;
        let body = self.body.body();
        let mut scans: Vec<Vec<Value>> = vec![Vec::new(); self.scans];
        let mut iteration: i64 = 0;
        // With neither M nor cond the loop runs until the body's condition turns false, as the spec
        // says; a body that never stops loops forever, as it would in any runtime.
        while keep_going && trip_count.is_none_or(|m| iteration < m) {
            let mut body_inputs = Vec::with_capacity(self.carried + 2);
            body_inputs.push(scalar(&body.device, DataType::I64, iteration.to_le_bytes().to_vec())?);
            body_inputs.push(scalar(&body.device, DataType::Bool, vec![u8::from(keep_going)])?);
            body_inputs.append(&mut carried);
            let mut outputs = body.run(&captured, body_inputs)?.into_iter();
            let cond_out = outputs.next().ok_or_else(|| OpError::new("the body returned no condition"))?;
            keep_going = condition(&cond_out, "the body's condition output")?;
            carried = outputs.by_ref().take(self.carried).collect();
            for (scan, value) in scans.iter_mut().zip(outputs) {
                scan.push(value);
            }
            iteration += 1;
        }
        let mut results = carried;
        for (index, values) in scans.into_iter().enumerate() {
            let declared = body.output_types.get(1 + self.carried + index).and_then(Option::as_ref);
            let what = format!("scan output {index}");
            results.push(stack_scan_output(values, 0, false, declared, &body.device, &what)?);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{DataType, Node, Tensor};

    use crate::ops::test_support::*;

    /// `a, sq, iters = Loop(M, cond, a0)` with the body `a_out = a_in + x` (x read from outside),
    /// `sq = a_out * a_out` and the iteration number as scan outputs; the body passes its condition
    /// through.
    fn loop_graph() -> whittle_ir::Graph {
        let body = graph(
            "body",
            vec![Node::new("add", "Add", &["a_in", "x"], &["a_out"]), Node::new("mul", "Mul", &["a_out", "a_out"], &["sq"])],
            vec![info("i", DataType::I64, Some(&[])), info("c", DataType::Bool, Some(&[])), info("a_in", DataType::F32, Some(&[2]))],
            vec![
                info("c", DataType::Bool, Some(&[])),
                info("a_out", DataType::F32, Some(&[2])),
                info("sq", DataType::F32, Some(&[2])),
                info("i", DataType::I64, Some(&[])),
            ],
        );
        let node = with_subgraphs(Node::new("loop", "Loop", &["m", "cond", "a0"], &["a", "squares", "iterations"]), vec![("body", body)]);
        graph(
            "g",
            vec![node],
            vec![
                info("m", DataType::I64, Some(&[])),
                info("cond", DataType::Bool, Some(&[])),
                info("a0", DataType::F32, Some(&[2])),
                info("x", DataType::F32, Some(&[2])),
            ],
            vec![info("a", DataType::F32, None), info("squares", DataType::F32, None), info("iterations", DataType::I64, None)],
        )
    }

    fn run_loop(trips: i64, cond: bool) -> Vec<Tensor> {
        let session = session(loop_graph(), 18).unwrap();
        let feeds = vec![
            ("m".to_string(), Tensor::from_i64("m", vec![], &[trips]).unwrap()),
            ("cond".to_string(), bool_tensor("cond", vec![], &[cond])),
            ("a0".to_string(), f32_tensor("a0", vec![2], &[1.0, 2.0])),
            ("x".to_string(), f32_tensor("x", vec![2], &[1.0, 10.0])),
        ];
        session.run(feeds).unwrap().into_iter().map(|(_, tensor)| tensor).collect()
    }

    #[test]
    fn carried_values_thread_through_and_scan_outputs_stack_on_a_new_axis() {
        let outputs = run_loop(3, true);
        // a: [1,2] -> [2,12] -> [3,22] -> [4,32]; squares of each; iterations 0, 1, 2.
        assert_eq!(outputs[0].dims, vec![2]);
        assert_eq!(outputs[0].to_f32_vec().unwrap(), vec![4.0, 32.0]);
        assert_eq!(outputs[1].dims, vec![3, 2]);
        assert_eq!(outputs[1].to_f32_vec().unwrap(), vec![4.0, 144.0, 9.0, 484.0, 16.0, 1024.0]);
        assert_eq!(outputs[2], Tensor::from_i64("iterations", vec![3], &[0, 1, 2]).unwrap());
    }

    #[test]
    fn no_iteration_returns_the_initial_values_and_empty_scans_of_the_declared_shape() {
        for (trips, cond) in [(0, true), (5, false)] {
            let outputs = run_loop(trips, cond);
            assert_eq!(outputs[0].to_f32_vec().unwrap(), vec![1.0, 2.0]);
            assert_eq!(outputs[1].dims, vec![0, 2]);
            assert_eq!(outputs[2].dims, vec![0]);
        }
    }

    #[test]
    fn a_body_with_the_wrong_number_of_inputs_is_a_plan_time_error() {
        let mut graph = loop_graph();
        graph.nodes[0].inputs.pop();
        graph.nodes[0].outputs.truncate(1);
        graph.outputs.truncate(1);
        let err = session(graph, 18).unwrap_err().to_string();
        assert!(err.contains("attribute 'body'") && err.contains("takes 3 inputs, expected 2"), "{err}");
    }
}
