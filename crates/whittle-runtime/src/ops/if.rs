//! If: runs one of two subgraphs on a bool condition (<https://onnx.ai/onnx/operators/onnx__If.html>).
//!
//! Opsets 1 to 28. Opset 11 let the branches return outputs of different shapes, which running the
//! branch taken already allows; the later versions only add element types (sequences and optionals
//! among them, which this runtime's subgraphs cannot carry: the planner rejects the ops that make
//! them). The branches read outer values by name; the planner passes them in as captured inputs.

use std::ops::RangeInclusive;

use crate::control::condition;
use crate::ops::{Inputs, NodeContext, OpError, Operator, Subgraph};
use crate::value::Value;

/// `outputs = cond ? then_branch() : else_branch()`.
#[derive(Debug, Clone, PartialEq)]
pub struct If {
    pub(crate) then_branch: Subgraph,
    pub(crate) else_branch: Subgraph,
    /// Inputs the node names (1: `cond`); the captured outer values follow.
    explicit: usize,
    captured: usize,
}

impl Operator for If {
    const OP_TYPE: &'static str = "If";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["then_branch", "else_branch"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let then_branch = node.subgraph("then_branch")?;
        let else_branch = node.subgraph("else_branch")?;
        let outputs = node.node.outputs.len();
        for (name, branch) in [("then_branch", &then_branch), ("else_branch", &else_branch)] {
            let returns = branch.body().graph.outputs.len();
            if returns != outputs {
                return Err(OpError::attribute(name, format!("returns {returns} outputs, the node has {outputs}")));
            }
        }
        if node.node.inputs.len() != 1 {
            fail!("If takes one input (cond), the node names {}", node.node.inputs.len());
        }
        Ok(If { then_branch, else_branch, explicit: 1, captured: node.subgraphs.captured })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let cond = inputs.take(0)?;
        let captured = inputs.take_captured(self.explicit, self.captured)?;
        let branch = if condition(&cond, "cond")? { &self.then_branch } else { &self.else_branch };
        branch.body().run(&captured, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{DataType, Node};

    use crate::ops::test_support::*;
    use crate::RuntimeError;

    /// z = If(cond) { then: x + y } else { x - y }; w = Relu(x) after it, so that x, which both
    /// branches read from outside, must survive the If.
    fn if_graph(then_op: &str) -> whittle_ir::Graph {
        let then_branch = graph(
            "then",
            vec![Node::new("add", then_op, &["x", "y"], &["t"])],
            vec![],
            vec![info("t", DataType::F32, Some(&[2]))],
        );
        let else_branch =
            graph("else", vec![Node::new("sub", "Sub", &["x", "y"], &["e"])], vec![], vec![info("e", DataType::F32, Some(&[2]))]);
        let if_node =
            with_subgraphs(Node::new("if", "If", &["cond"], &["z"]), vec![("then_branch", then_branch), ("else_branch", else_branch)]);
        graph(
            "g",
            vec![if_node, Node::new("relu", "Relu", &["x"], &["w"])],
            vec![info("cond", DataType::Bool, Some(&[])), info("x", DataType::F32, Some(&[2])), info("y", DataType::F32, Some(&[2]))],
            vec![info("z", DataType::F32, Some(&[2])), info("w", DataType::F32, Some(&[2]))],
        )
    }

    fn run_if(cond: bool) -> Vec<Vec<f32>> {
        let session = session(if_graph("Add"), 18).unwrap();
        let feeds = vec![
            ("cond".to_string(), bool_tensor("cond", vec![], &[cond])),
            ("x".to_string(), f32_tensor("x", vec![2], &[1.0, -2.0])),
            ("y".to_string(), f32_tensor("y", vec![2], &[10.0, 20.0])),
        ];
        session.run(feeds).unwrap().iter().map(|(_, tensor)| tensor.to_f32_vec().unwrap()).collect()
    }

    #[test]
    fn the_condition_picks_the_branch_and_outer_values_survive() {
        assert_eq!(run_if(true), vec![vec![11.0, 18.0], vec![1.0, 0.0]]);
        assert_eq!(run_if(false), vec![vec![-9.0, -22.0], vec![1.0, 0.0]]);
    }

    #[test]
    fn an_unsupported_op_in_a_branch_fails_at_plan_time_naming_it() {
        let err = session(if_graph("Frobnicate"), 18).unwrap_err();
        let RuntimeError::UnsupportedOp { node, op, domain, opset } = &err else { panic!("{err}") };
        assert_eq!((node.as_str(), op.as_str(), domain.as_str(), opset.as_str()), ("add", "Frobnicate", "ai.onnx", "18"));
    }

    #[test]
    fn branches_must_return_as_many_outputs_as_the_node_has() {
        let mut graph = if_graph("Add");
        graph.nodes[0].outputs.push("extra".into());
        let err = session(graph, 18).unwrap_err().to_string();
        assert!(err.contains("then_branch") && err.contains("returns 1 outputs, the node has 2"), "{err}");
    }

    #[test]
    fn a_condition_of_several_elements_is_an_error() {
        let mut graph = if_graph("Add");
        graph.inputs[0] = info("cond", DataType::Bool, Some(&[2]));
        let session = session(graph, 18).unwrap();
        let feeds = vec![
            ("cond".to_string(), bool_tensor("cond", vec![2], &[true, false])),
            ("x".to_string(), f32_tensor("x", vec![2], &[1.0, -2.0])),
            ("y".to_string(), f32_tensor("y", vec![2], &[10.0, 20.0])),
        ];
        let err = session.run(feeds).unwrap_err().to_string();
        assert!(err.contains("cond must be a bool tensor of one element"), "{err}");
    }
}
