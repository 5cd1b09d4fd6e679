//! The rules, one file per family. Each rule looks at one node and returns a patch or `None`.

pub mod cleanup;
pub mod conv;
pub mod fold;
pub mod gemm;
pub mod norm;

#[cfg(test)]
pub(crate) mod tests {
    //! Hand-built graphs for the rules' unit tests, and the one check they all use: run the pass,
    //! compare the rules that fired and the nodes left with what the test expects, and run the
    //! original and the rewritten model on the same inputs within the pass's tolerance.

    use whittle_ir::{DataType, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};
    use whittle_runtime::{RuntimeOptions, Session};

    use crate::{passes, PassContext};

    pub fn f32_info(name: &str, sizes: &[i64]) -> ValueInfo {
        ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(sizes)))))
    }

    /// A graph of `nodes` with f32 inputs of fixed sizes and untyped outputs.
    pub fn graph(nodes: Vec<Node>, inputs: &[(&str, &[i64])], outputs: &[&str]) -> Graph {
        Graph {
            name: "test".into(),
            nodes,
            inputs: inputs.iter().map(|(name, sizes)| f32_info(name, sizes)).collect(),
            outputs: outputs.iter().map(|name| ValueInfo::new(*name, None)).collect(),
            ..Graph::default()
        }
    }

    /// Deterministic f32 values `start, start + 0.37, ...` wrapped into [-1, 1], so weights are
    /// neither all equal nor all positive.
    pub fn ramp(name: &str, dims: &[i64], start: f32) -> Tensor {
        let count = dims.iter().product::<i64>() as usize;
        let values: Vec<f32> = (0..count).map(|i| ((start + 0.37 * i as f32) % 2.0) - 1.0 + 0.05).map(f32::abs).collect();
        Tensor::from_f32(name, dims.to_vec(), &values).unwrap()
    }

    pub fn scalar_f32(name: &str, value: f32) -> Tensor {
        Tensor::from_f32(name, vec![], &[value]).unwrap()
    }

    pub fn model_at(graph: Graph, opset: i64) -> Model {
        Model::new(graph, 10, opset)
    }

    /// Runs pass `pass` on `graph` at opset 18; see [`check_model`].
    pub fn check(graph: Graph, pass: &str, fired: &[&str], expected: &str) -> Model {
        check_model(model_at(graph, 18), pass, fired, expected)
    }

    /// Runs pass `pass` on `model`, checks that exactly the rules `fired` fired and that the nodes
    /// left read `expected` ("nodes N: Op Op ..."), and that both models agree on ramp inputs
    /// within the pass's tolerance. Returns the rewritten model.
    pub fn check_model(model: Model, pass: &str, fired: &[&str], expected: &str) -> Model {
        let original = model.clone();
        let mut rewritten = model;
        let context = PassContext::for_model(&rewritten);
        let manager = passes::by_names(&[pass]).unwrap();
        let runs = manager.run(&mut rewritten, &context).unwrap();
        let names: Vec<&str> = runs[0].rules.keys().map(String::as_str).collect();
        assert_eq!(names, fired, "rules fired");
        let ops: Vec<&str> = rewritten.graph.nodes.iter().map(|node| node.op_type.as_str()).collect();
        assert_eq!(format!("nodes {}: {}", ops.len(), ops.join(" ")).trim_end(), expected);
        let feed: Vec<(String, Tensor)> = original
            .graph
            .feed_inputs()
            .map(|input| {
                let (_, shape) = input.ty.as_ref().unwrap().as_tensor().unwrap();
                (input.name.clone(), ramp(&input.name, &shape.unwrap().sizes().unwrap(), 0.3))
            })
            .collect();
        let run = |model: &Model| Session::new(model, &RuntimeOptions::default()).unwrap().run(feed.clone()).unwrap();
        let tolerance = manager.tolerance();
        for ((name, want), (_, got)) in run(&original).iter().zip(run(&rewritten)) {
            tolerance.check(name, want, &got).unwrap();
        }
        rewritten
    }
}
