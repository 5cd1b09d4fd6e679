//! The readable text form of models and graphs, used by tests and by `whittle inspect --graph`.

use std::fmt::{self, Write};

use crate::{canonical_domain, AttrValue, DataType, Graph, Model, Tensor, TensorData, ValueInfo};

/// Tensors with at most this many elements show their values in the text form.
const SHOWN_ELEMENTS: usize = 8;

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opsets: Vec<String> =
            self.opset_imports.iter().map(|opset| format!("{}:{}", canonical_domain(&opset.domain), opset.version)).collect();
        write!(f, "model ir_version={} opsets=[{}]", self.ir_version, opsets.join(", "))?;
        if !self.producer_name.is_empty() {
            write!(f, " producer={:?}", format!("{} {}", self.producer_name, self.producer_version).trim_end())?;
        }
        writeln!(f)?;
        for function in &self.functions {
            writeln!(
                f,
                "function {}.{}({}) -> ({}) with {} nodes",
                function.domain,
                function.name,
                function.inputs.join(", "),
                function.outputs.join(", "),
                function.nodes.len()
            )?;
        }
        let mut text = String::new();
        write_graph(&mut text, &self.graph, 0)?;
        f.write_str(&text)
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        write_graph(&mut text, self, 0)?;
        f.write_str(&text)
    }
}

fn write_value_list(out: &mut String, values: &[ValueInfo], indent: &str) -> fmt::Result {
    for value in values {
        match &value.ty {
            Some(ty) => writeln!(out, "{indent}  %{}: {ty}", value.name)?,
            None => writeln!(out, "{indent}  %{}", value.name)?,
        }
    }
    Ok(())
}

fn write_graph(out: &mut String, graph: &Graph, depth: usize) -> fmt::Result {
    let indent = "  ".repeat(depth);
    writeln!(out, "graph {} (", graph.name)?;
    write_value_list(out, &graph.inputs, &indent)?;
    writeln!(out, "{indent}) -> (")?;
    write_value_list(out, &graph.outputs, &indent)?;
    writeln!(out, "{indent}) {{")?;
    for tensor in &graph.initializers {
        writeln!(out, "{indent}  init %{} = {}", tensor.name, tensor_text(tensor))?;
    }
    for sparse in &graph.sparse_initializers {
        writeln!(out, "{indent}  init %{} = sparse {}{:?}", sparse.values.name, sparse.values.dtype, sparse.dims)?;
    }
    for node in &graph.nodes {
        let outputs: Vec<String> = node.outputs.iter().map(|name| value_ref(name)).collect();
        let inputs: Vec<String> = node.inputs.iter().map(|name| value_ref(name)).collect();
        let op = if node.domain.is_empty() { node.op_type.clone() } else { format!("{}.{}", node.domain, node.op_type) };
        write!(out, "{indent}  {} = {op}({})", outputs.join(", "), inputs.join(", "))?;
        let mut subgraphs = Vec::new();
        if !node.attributes.is_empty() {
            let mut attrs = Vec::new();
            for attribute in &node.attributes {
                let value = match (&attribute.ref_attr_name, &attribute.value) {
                    (Some(reference), _) => format!("@{reference}"),
                    (None, AttrValue::Graph(subgraph)) => {
                        subgraphs.push((attribute.name.clone(), subgraph.as_ref()));
                        format!("<graph {}>", subgraph.name)
                    }
                    (None, AttrValue::Graphs(list)) => {
                        for subgraph in list {
                            subgraphs.push((attribute.name.clone(), subgraph));
                        }
                        format!("<{} graphs>", list.len())
                    }
                    (None, value) => attr_text(value),
                };
                attrs.push(format!("{}={value}", attribute.name));
            }
            write!(out, " {{{}}}", attrs.join(", "))?;
        }
        if !node.name.is_empty() {
            write!(out, "  # {}", node.name)?;
        }
        writeln!(out)?;
        for (attribute, subgraph) in subgraphs {
            write!(out, "{indent}    {attribute}: ")?;
            write_graph(out, subgraph, depth + 2)?;
        }
    }
    writeln!(out, "{indent}}}")
}

fn value_ref(name: &str) -> String {
    if name.is_empty() {
        "_".to_string()
    } else {
        format!("%{name}")
    }
}

fn bytes_text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn float_text(value: f32) -> String {
    format!("{value:?}")
}

fn attr_text(value: &AttrValue) -> String {
    match value {
        AttrValue::Undefined => "undefined".into(),
        AttrValue::Float(value) => float_text(*value),
        AttrValue::Int(value) => value.to_string(),
        AttrValue::String(bytes) => bytes_text(bytes),
        AttrValue::Tensor(tensor) => tensor_text(tensor),
        AttrValue::Graph(graph) => format!("<graph {}>", graph.name),
        AttrValue::SparseTensor(sparse) => format!("sparse {}{:?}", sparse.values.dtype, sparse.dims),
        AttrValue::Type(ty) => format!("type {ty}"),
        AttrValue::Floats(values) => format!("[{}]", values.iter().map(|v| float_text(*v)).collect::<Vec<_>>().join(", ")),
        AttrValue::Ints(values) => format!("{values:?}"),
        AttrValue::Strings(values) => format!("[{}]", values.iter().map(|v| bytes_text(v)).collect::<Vec<_>>().join(", ")),
        AttrValue::Tensors(tensors) => format!("[{}]", tensors.iter().map(tensor_text).collect::<Vec<_>>().join(", ")),
        AttrValue::Graphs(graphs) => format!("<{} graphs>", graphs.len()),
        AttrValue::SparseTensors(list) => format!("<{} sparse tensors>", list.len()),
        AttrValue::Types(types) => format!("[{}]", types.iter().map(|t| format!("type {t}")).collect::<Vec<_>>().join(", ")),
    }
}

/// `f32[2,3]` for a tensor, followed by its values when it is small.
fn tensor_text(tensor: &Tensor) -> String {
    let dims: Vec<String> = tensor.dims.iter().map(i64::to_string).collect();
    let mut text = format!("{}[{}]", tensor.dtype, dims.join(","));
    let small = tensor.element_count().is_some_and(|count| count <= SHOWN_ELEMENTS);
    if small {
        let values: Option<Vec<String>> = match (&tensor.data, tensor.dtype) {
            (TensorData::Strings(strings), _) => Some(strings.iter().map(|s| bytes_text(s)).collect()),
            (_, DataType::I64 | DataType::I32 | DataType::I8 | DataType::U8 | DataType::Bool) => {
                tensor.to_f32_vec().map(|values| values.iter().map(|v| format!("{}", *v as i64)).collect())
            }
            _ => tensor.to_f32_vec().map(|values| values.iter().map(|v| float_text(*v)).collect()),
        };
        if let Some(values) = values {
            text.push_str(&format!("{{{}}}", values.join(", ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attribute, Dim, Node, Shape, Type};

    #[test]
    fn text_form_of_a_small_graph() {
        let mut gemm = Node::new("fc", "Gemm", &["x", "w", ""], &["y"]);
        gemm.attributes.push(Attribute::new("transB", AttrValue::Int(1)));
        gemm.attributes.push(Attribute::new("alpha", AttrValue::Float(0.5)));
        let graph = Graph {
            name: "main".into(),
            nodes: vec![gemm],
            inputs: vec![ValueInfo::new(
                "x",
                Some(Type::tensor(DataType::F32, Some(Shape(vec![Dim::symbolic("n"), Dim::known(2)])))),
            )],
            outputs: vec![ValueInfo::new("y", Some(Type::tensor(DataType::F32, None)))],
            initializers: vec![Tensor::from_f32("w", vec![1, 2], &[1.0, -2.5]).unwrap()],
            ..Graph::default()
        };
        let expected = "\
graph main (
  %x: f32[n,2]
) -> (
  %y: f32[..]
) {
  init %w = f32[1,2]{1.0, -2.5}
  %y = Gemm(%x, %w, _) {transB=1, alpha=0.5}  # fc
}
";
        assert_eq!(graph.to_string(), expected);
    }
}
