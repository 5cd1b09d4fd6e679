//! whittle's graph of an ONNX model: values with dtypes and symbolic shapes, nodes with attributes and
//! subgraphs, typed initializers, functions and metadata; validation, topological order and a text form.
//!
//! This crate does no I/O and knows neither protobuf nor burn: `whittle-onnx` converts files to and
//! from it, and every other crate works on it.

mod attribute;
mod display;
mod dtype;
mod error;
mod graph;
mod host_value;
mod summary;
mod tensor;
mod types;
mod validate;

pub use attribute::{AttrValue, Attribute};
pub use dtype::DataType;
pub use error::IrError;
pub use graph::{
    canonical_domain, Function, Graph, Metadata, Model, Node, OpsetImport, TensorAnnotation, TrainingInfo, ValueInfo,
    DEFAULT_DOMAIN,
};
pub use host_value::{HostValue, MapKeys, MapValue};
pub use summary::{InitializerSummary, ModelSummary, ParameterCount, ValueSummary};
pub use tensor::{element_count, SparseTensor, Tensor, TensorData};
pub use types::{Dim, DimValue, Shape, Type, TypeKind};
