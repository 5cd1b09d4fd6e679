//! What `whittle inspect` reports about a model: interface, opsets, op histogram, parameters.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{canonical_domain, Graph, Model, Tensor, ValueInfo};

/// A model's interface and contents in numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    pub ir_version: i64,
    pub producer: String,
    /// Domain (`ai.onnx` for the default one) to version.
    pub opsets: BTreeMap<String, i64>,
    pub inputs: Vec<ValueSummary>,
    pub outputs: Vec<ValueSummary>,
    /// Nodes in the main graph and all subgraphs.
    pub node_count: usize,
    /// Domain to op type to count, over the main graph and all subgraphs.
    pub op_histogram: BTreeMap<String, BTreeMap<String, usize>>,
    /// Elements and bytes of initializers (dense and sparse), per element type.
    pub parameters: BTreeMap<String, ParameterCount>,
    pub parameter_count: u64,
    pub parameter_bytes: u64,
    pub largest_initializers: Vec<InitializerSummary>,
    /// Graphs held by node attributes (If branches, Loop and Scan bodies), at any depth.
    pub subgraph_count: usize,
    pub function_count: usize,
    pub metadata: BTreeMap<String, String>,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueSummary {
    pub name: String,
    /// The type in the text form, e.g. `f32[batch,3,224,224]`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// Parameter elements and bytes of one element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ParameterCount {
    pub elements: u64,
    pub bytes: u64,
}

/// One initializer, for the list of the largest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitializerSummary {
    pub name: String,
    pub dtype: String,
    pub dims: Vec<i64>,
    pub bytes: u64,
}

impl ModelSummary {
    /// Summarises `model`, listing the `largest` biggest initializers.
    pub fn new(model: &Model, largest: usize) -> ModelSummary {
        let mut op_histogram: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut node_count = 0;
        let mut graph_count = 0;
        let mut parameters: BTreeMap<String, ParameterCount> = BTreeMap::new();
        let mut initializers: Vec<&Tensor> = Vec::new();
        model.graph.visit_graphs(&mut |graph: &Graph| {
            graph_count += 1;
            node_count += graph.nodes.len();
            for node in &graph.nodes {
                *op_histogram
                    .entry(canonical_domain(&node.domain).to_string())
                    .or_default()
                    .entry(node.op_type.clone())
                    .or_default() += 1;
            }
            initializers.extend(&graph.initializers);
            initializers.extend(graph.sparse_initializers.iter().map(|sparse| &sparse.values));
        });
        for tensor in &initializers {
            let entry = parameters.entry(tensor.dtype.name()).or_default();
            entry.elements += tensor.element_count().unwrap_or(0) as u64;
            entry.bytes += tensor.byte_len() as u64;
        }
        initializers.sort_by(|a, b| b.byte_len().cmp(&a.byte_len()).then_with(|| a.name.cmp(&b.name)));
        let largest_initializers = initializers
            .iter()
            .take(largest)
            .map(|tensor| InitializerSummary {
                name: tensor.name.clone(),
                dtype: tensor.dtype.name(),
                dims: tensor.dims.clone(),
                bytes: tensor.byte_len() as u64,
            })
            .collect();
        ModelSummary {
            ir_version: model.ir_version,
            producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
            opsets: model
                .opset_imports
                .iter()
                .map(|opset| (canonical_domain(&opset.domain).to_string(), opset.version))
                .collect(),
            inputs: model.graph.feed_inputs().map(value_summary).collect(),
            outputs: model.graph.outputs.iter().map(value_summary).collect(),
            node_count,
            op_histogram,
            parameter_count: parameters.values().map(|count| count.elements).sum(),
            parameter_bytes: parameters.values().map(|count| count.bytes).sum(),
            parameters,
            largest_initializers,
            subgraph_count: graph_count - 1,
            function_count: model.functions.len(),
            metadata: model.metadata_props.iter().cloned().collect(),
        }
    }
}

fn value_summary(value: &ValueInfo) -> ValueSummary {
    ValueSummary { name: value.name.clone(), ty: value.ty.as_ref().map_or_else(|| "?".to_string(), ToString::to_string) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttrValue, Attribute, DataType, Node, Shape, Type};

    #[test]
    fn counts_ops_parameters_and_subgraphs() {
        let body = Graph { name: "body".into(), nodes: vec![Node::new("", "Relu", &["x"], &["r"])], ..Graph::default() };
        let mut if_node = Node::new("if", "If", &["c"], &["y"]);
        if_node.attributes.push(Attribute::new("then_branch", AttrValue::Graph(Box::new(body.clone()))));
        if_node.attributes.push(Attribute::new("else_branch", AttrValue::Graph(Box::new(body))));
        let mut ml = Node::new("n", "Normalizer", &["x"], &["z"]);
        ml.domain = "ai.onnx.ml".into();
        let graph = Graph {
            name: "main".into(),
            nodes: vec![if_node, ml],
            inputs: vec![ValueInfo::new("x", Some(Type::tensor(DataType::F32, Some(Shape::known(&[4])))))],
            initializers: vec![
                Tensor::from_f32("big", vec![3], &[1.0, 2.0, 3.0]).unwrap(),
                Tensor::from_i64("small", vec![1], &[1]).unwrap(),
            ],
            ..Graph::default()
        };
        let summary = ModelSummary::new(&Model::new(graph, 8, 17), 1);
        assert_eq!(summary.node_count, 4);
        assert_eq!(summary.subgraph_count, 2);
        assert_eq!(summary.op_histogram["ai.onnx"]["Relu"], 2);
        assert_eq!(summary.op_histogram["ai.onnx.ml"]["Normalizer"], 1);
        assert_eq!(summary.parameter_count, 4);
        assert_eq!(summary.parameter_bytes, 20);
        assert_eq!(summary.parameters["f32"], ParameterCount { elements: 3, bytes: 12 });
        assert_eq!(summary.largest_initializers.len(), 1);
        assert_eq!(summary.largest_initializers[0].name, "big");
        assert_eq!(summary.inputs[0].ty, "f32[4]");
    }
}
