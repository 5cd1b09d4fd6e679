//! Node attributes, including subgraph attributes of If, Loop and Scan.

use crate::{Graph, SparseTensor, Tensor, Type};

/// The value of an attribute. The variant is the attribute's ONNX type.
#[derive(Debug, Clone)]
pub enum AttrValue {
    /// No value: only legal with a `ref_attr_name` inside a function body, or in very old models.
    Undefined,
    Float(f32),
    Int(i64),
    /// ONNX strings are bytes; most are UTF-8 but nothing guarantees it.
    String(Vec<u8>),
    Tensor(Tensor),
    Graph(Box<Graph>),
    SparseTensor(SparseTensor),
    Type(Type),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
    Tensors(Vec<Tensor>),
    Graphs(Vec<Graph>),
    SparseTensors(Vec<SparseTensor>),
    Types(Vec<Type>),
}

// Floats compare by bits so that a NaN attribute equals itself after a round trip.
impl PartialEq for AttrValue {
    fn eq(&self, other: &AttrValue) -> bool {
        use AttrValue::*;
        match (self, other) {
            (Undefined, Undefined) => true,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Int(a), Int(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Tensor(a), Tensor(b)) => a == b,
            (Graph(a), Graph(b)) => a == b,
            (SparseTensor(a), SparseTensor(b)) => a == b,
            (Type(a), Type(b)) => a == b,
            (Floats(a), Floats(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (Ints(a), Ints(b)) => a == b,
            (Strings(a), Strings(b)) => a == b,
            (Tensors(a), Tensors(b)) => a == b,
            (Graphs(a), Graphs(b)) => a == b,
            (SparseTensors(a), SparseTensors(b)) => a == b,
            (Types(a), Types(b)) => a == b,
            _ => false,
        }
    }
}

impl AttrValue {
    /// ONNX's name for the attribute type (`INT`, `FLOATS`, `GRAPH`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrValue::Undefined => "UNDEFINED",
            AttrValue::Float(_) => "FLOAT",
            AttrValue::Int(_) => "INT",
            AttrValue::String(_) => "STRING",
            AttrValue::Tensor(_) => "TENSOR",
            AttrValue::Graph(_) => "GRAPH",
            AttrValue::SparseTensor(_) => "SPARSE_TENSOR",
            AttrValue::Type(_) => "TYPE_PROTO",
            AttrValue::Floats(_) => "FLOATS",
            AttrValue::Ints(_) => "INTS",
            AttrValue::Strings(_) => "STRINGS",
            AttrValue::Tensors(_) => "TENSORS",
            AttrValue::Graphs(_) => "GRAPHS",
            AttrValue::SparseTensors(_) => "SPARSE_TENSORS",
            AttrValue::Types(_) => "TYPE_PROTOS",
        }
    }

    /// The subgraphs this attribute holds.
    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            AttrValue::Graph(graph) => vec![graph.as_ref()],
            AttrValue::Graphs(graphs) => graphs.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Mutable access to the subgraphs this attribute holds.
    pub fn subgraphs_mut(&mut self) -> Vec<&mut Graph> {
        match self {
            AttrValue::Graph(graph) => vec![graph.as_mut()],
            AttrValue::Graphs(graphs) => graphs.iter_mut().collect(),
            _ => Vec::new(),
        }
    }
}

/// A named attribute of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
    pub doc_string: String,
    /// Inside a function body: the function attribute this one takes its value from.
    pub ref_attr_name: Option<String>,
}

impl Attribute {
    pub fn new(name: impl Into<String>, value: AttrValue) -> Attribute {
        Attribute { name: name.into(), value, doc_string: String::new(), ref_attr_name: None }
    }
}
