//! Models, graphs, nodes and functions: the in-memory form of an ONNX model.

use crate::{Attribute, SparseTensor, Tensor, Type};

/// Ordered key/value pairs (`metadata_props`), kept in file order.
pub type Metadata = Vec<(String, String)>;

/// The domain ONNX's standard operators live in. ONNX spells it `""` or `"ai.onnx"`.
pub const DEFAULT_DOMAIN: &str = "ai.onnx";

/// The domain a node or opset import names, with `""` written as `ai.onnx`.
pub fn canonical_domain(domain: &str) -> &str {
    if domain.is_empty() {
        DEFAULT_DOMAIN
    } else {
        domain
    }
}

/// An operator set a model or function uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpsetImport {
    /// As written in the file (`""` for the default domain).
    pub domain: String,
    pub version: i64,
}

/// A named value with its type, as declared for graph inputs, outputs and `value_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub ty: Option<Type>,
    pub doc_string: String,
    pub metadata_props: Metadata,
}

impl ValueInfo {
    pub fn new(name: impl Into<String>, ty: Option<Type>) -> ValueInfo {
        ValueInfo { name: name.into(), ty, doc_string: String::new(), metadata_props: Vec::new() }
    }
}

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    /// As written in the file (`""` for the default domain).
    pub domain: String,
    pub overload: String,
    /// Value names; an empty name marks an omitted optional input.
    pub inputs: Vec<String>,
    /// Value names; an empty name marks an omitted optional output.
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
    pub doc_string: String,
    pub metadata_props: Metadata,
}

impl Node {
    /// A node of the default domain with no attributes.
    pub fn new(name: impl Into<String>, op_type: impl Into<String>, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op_type: op_type.into(),
            domain: String::new(),
            overload: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: Vec::new(),
            doc_string: String::new(),
            metadata_props: Vec::new(),
        }
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|attribute| attribute.name == name)
    }

    /// The subgraphs held by this node's attributes (If branches, Loop and Scan bodies).
    pub fn subgraphs(&self) -> impl Iterator<Item = &Graph> {
        self.attributes.iter().flat_map(|attribute| attribute.value.subgraphs())
    }

    /// How this node is named in messages: its name, or its first output when it has none.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            self.name.clone()
        } else {
            match self.outputs.iter().find(|output| !output.is_empty()) {
                Some(output) => format!("<unnamed, output '{output}'>"),
                None => "<unnamed>".to_string(),
            }
        }
    }
}

/// A computation graph: the model's main graph, or a subgraph of If, Loop or Scan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub value_info: Vec<ValueInfo>,
    pub initializers: Vec<Tensor>,
    pub sparse_initializers: Vec<SparseTensor>,
    pub doc_string: String,
    pub quantization_annotations: Vec<TensorAnnotation>,
    pub metadata_props: Metadata,
}

impl Graph {
    /// The initializer called `name`.
    pub fn initializer(&self, name: &str) -> Option<&Tensor> {
        self.initializers.iter().find(|tensor| tensor.name == name)
    }

    /// Graph inputs that are not also initializers: the values a caller must feed.
    pub fn feed_inputs(&self) -> impl Iterator<Item = &ValueInfo> {
        self.inputs.iter().filter(move |input| self.initializer(&input.name).is_none())
    }

    /// Visits this graph and every subgraph below it, depth first, parents before children.
    pub fn visit_graphs<'a>(&'a self, visit: &mut dyn FnMut(&'a Graph)) {
        visit(self);
        for node in &self.nodes {
            for subgraph in node.subgraphs() {
                subgraph.visit_graphs(visit);
            }
        }
    }
}

/// Quantization parameters attached to a tensor (`TensorAnnotation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorAnnotation {
    pub tensor_name: String,
    pub quant_parameter_tensor_names: Metadata,
}

/// A model-local function (`FunctionProto`).
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub domain: String,
    pub overload: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Attributes without a default value.
    pub attributes: Vec<String>,
    /// Attributes with a default value.
    pub attribute_defaults: Vec<Attribute>,
    pub nodes: Vec<Node>,
    pub value_info: Vec<ValueInfo>,
    pub opset_imports: Vec<OpsetImport>,
    pub doc_string: String,
    pub metadata_props: Metadata,
}

/// Training information (`TrainingInfoProto`), kept so that training models round-trip.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingInfo {
    pub initialization: Option<Graph>,
    pub algorithm: Graph,
    pub initialization_binding: Metadata,
    pub update_binding: Metadata,
}

/// A whole model: its graph and everything around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub ir_version: i64,
    pub opset_imports: Vec<OpsetImport>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub graph: Graph,
    pub metadata_props: Metadata,
    pub training_info: Vec<TrainingInfo>,
    pub functions: Vec<Function>,
}

impl Model {
    /// A model around `graph` importing the default domain at `opset`.
    pub fn new(graph: Graph, ir_version: i64, opset: i64) -> Model {
        Model {
            ir_version,
            opset_imports: vec![OpsetImport { domain: String::new(), version: opset }],
            producer_name: String::new(),
            producer_version: String::new(),
            domain: String::new(),
            model_version: 0,
            doc_string: String::new(),
            graph,
            metadata_props: Vec::new(),
            training_info: Vec::new(),
            functions: Vec::new(),
        }
    }

    /// The opset version imported for `domain` (`""` and `ai.onnx` are the same domain).
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        let wanted = canonical_domain(domain);
        self.opset_imports.iter().find(|opset| canonical_domain(&opset.domain) == wanted).map(|opset| opset.version)
    }
}
