//! whittle-ir to `ModelProto`, with initializers optionally moved to an external data file.

use onnx_protobuf as pb;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataLocation;
use protobuf::{EnumOrUnknown, MessageField};
use whittle_ir::{
    AttrValue, Attribute, DimValue, Function, Graph, Model, Node, OpsetImport, Shape, SparseTensor, Tensor, TensorData,
    TrainingInfo, Type, TypeKind, ValueInfo,
};

/// Where initializer bytes go while encoding.
pub(crate) struct Encoder<'a> {
    /// `Some` when initializers of at least `min_bytes` go to the external file.
    pub(crate) external: Option<ExternalWriter<'a>>,
}

/// Collects the external data file's contents and the location written into each tensor.
pub(crate) struct ExternalWriter<'a> {
    pub(crate) location: String,
    pub(crate) min_bytes: usize,
    /// Chunks of the data file in order; padding is implied by the offsets.
    pub(crate) chunks: Vec<(u64, &'a [u8])>,
    pub(crate) len: u64,
}

/// Field numbers of `AttributeProto.f`, `.i` and `.s` in onnx.proto.
const FIELD_F: u32 = 2;
const FIELD_I: u32 = 3;
const FIELD_S: u32 = 4;

/// Offsets of external tensors are aligned to a page so that runtimes can memory-map them.
const EXTERNAL_ALIGNMENT: u64 = 4096;

impl<'a> ExternalWriter<'a> {
    fn place(&mut self, bytes: &'a [u8]) -> u64 {
        let offset = self.len.div_ceil(EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
        self.chunks.push((offset, bytes));
        self.len = offset + bytes.len() as u64;
        offset
    }
}

impl<'a> Encoder<'a> {
    pub(crate) fn model(&mut self, model: &'a Model) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: model.ir_version,
            opset_import: model.opset_imports.iter().map(opset).collect(),
            producer_name: model.producer_name.clone(),
            producer_version: model.producer_version.clone(),
            domain: model.domain.clone(),
            model_version: model.model_version,
            doc_string: model.doc_string.clone(),
            graph: MessageField::some(self.graph(&model.graph)),
            metadata_props: metadata(&model.metadata_props),
            training_info: model.training_info.iter().map(|info| self.training_info(info)).collect(),
            functions: model.functions.iter().map(|function| self.function(function)).collect(),
            ..Default::default()
        }
    }

    fn training_info(&mut self, info: &'a TrainingInfo) -> pb::TrainingInfoProto {
        pb::TrainingInfoProto {
            initialization: info.initialization.as_ref().map(|graph| self.graph(graph)).into(),
            algorithm: MessageField::some(self.graph(&info.algorithm)),
            initialization_binding: metadata(&info.initialization_binding),
            update_binding: metadata(&info.update_binding),
            ..Default::default()
        }
    }

    fn function(&mut self, function: &'a Function) -> pb::FunctionProto {
        pb::FunctionProto {
            name: function.name.clone(),
            input: function.inputs.clone(),
            output: function.outputs.clone(),
            attribute: function.attributes.clone(),
            attribute_proto: function.attribute_defaults.iter().map(|attribute| self.attribute(attribute)).collect(),
            node: function.nodes.iter().map(|node| self.node(node)).collect(),
            doc_string: function.doc_string.clone(),
            opset_import: function.opset_imports.iter().map(opset).collect(),
            domain: function.domain.clone(),
            overload: function.overload.clone(),
            value_info: function.value_info.iter().map(value_info).collect(),
            metadata_props: metadata(&function.metadata_props),
            ..Default::default()
        }
    }

    fn graph(&mut self, graph: &'a Graph) -> pb::GraphProto {
        pb::GraphProto {
            node: graph.nodes.iter().map(|node| self.node(node)).collect(),
            name: graph.name.clone(),
            initializer: graph.initializers.iter().map(|tensor| self.initializer(tensor)).collect(),
            sparse_initializer: graph.sparse_initializers.iter().map(sparse_tensor).collect(),
            doc_string: graph.doc_string.clone(),
            input: graph.inputs.iter().map(value_info).collect(),
            output: graph.outputs.iter().map(value_info).collect(),
            value_info: graph.value_info.iter().map(value_info).collect(),
            quantization_annotation: graph
                .quantization_annotations
                .iter()
                .map(|annotation| pb::TensorAnnotation {
                    tensor_name: annotation.tensor_name.clone(),
                    quant_parameter_tensor_names: metadata(&annotation.quant_parameter_tensor_names),
                    ..Default::default()
                })
                .collect(),
            metadata_props: metadata(&graph.metadata_props),
            ..Default::default()
        }
    }

    fn node(&mut self, node: &'a Node) -> pb::NodeProto {
        pb::NodeProto {
            input: node.inputs.clone(),
            output: node.outputs.clone(),
            name: node.name.clone(),
            op_type: node.op_type.clone(),
            domain: node.domain.clone(),
            overload: node.overload.clone(),
            attribute: node.attributes.iter().map(|attribute| self.attribute(attribute)).collect(),
            doc_string: node.doc_string.clone(),
            metadata_props: metadata(&node.metadata_props),
            ..Default::default()
        }
    }

    fn attribute(&mut self, attribute: &'a Attribute) -> pb::AttributeProto {
        let mut proto = pb::AttributeProto {
            name: attribute.name.clone(),
            ref_attr_name: attribute.ref_attr_name.clone().unwrap_or_default(),
            doc_string: attribute.doc_string.clone(),
            ..Default::default()
        };
        let kind = match &attribute.value {
            AttrValue::Undefined => AttributeType::UNDEFINED,
            // ONNX's schema is proto2, where a scalar set to zero is still present, and the checker
            // insists on presence; onnx-protobuf is proto3, which omits zeros. Zero values (and
            // -0.0) are therefore written by hand, under the field numbers of `f`, `i` and `s`.
            AttrValue::Float(value) => {
                if value.to_bits() == 0 || *value == 0.0 {
                    proto.special_fields.mut_unknown_fields().add_fixed32(FIELD_F, value.to_bits());
                } else {
                    proto.f = *value;
                }
                AttributeType::FLOAT
            }
            AttrValue::Int(value) => {
                if *value == 0 {
                    proto.special_fields.mut_unknown_fields().add_varint(FIELD_I, 0);
                } else {
                    proto.i = *value;
                }
                AttributeType::INT
            }
            AttrValue::String(value) => {
                if value.is_empty() {
                    proto.special_fields.mut_unknown_fields().add_length_delimited(FIELD_S, Vec::new());
                } else {
                    proto.s = value.clone();
                }
                AttributeType::STRING
            }
            AttrValue::Tensor(tensor) => {
                proto.t = MessageField::some(inline_tensor(tensor));
                AttributeType::TENSOR
            }
            AttrValue::Graph(graph) => {
                proto.g = MessageField::some(self.graph(graph));
                AttributeType::GRAPH
            }
            AttrValue::SparseTensor(sparse) => {
                proto.sparse_tensor = MessageField::some(sparse_tensor(sparse));
                AttributeType::SPARSE_TENSOR
            }
            AttrValue::Type(ty) => {
                proto.tp = MessageField::some(type_proto(ty));
                AttributeType::TYPE_PROTO
            }
            AttrValue::Floats(values) => {
                proto.floats = values.clone();
                AttributeType::FLOATS
            }
            AttrValue::Ints(values) => {
                proto.ints = values.clone();
                AttributeType::INTS
            }
            AttrValue::Strings(values) => {
                proto.strings = values.clone();
                AttributeType::STRINGS
            }
            AttrValue::Tensors(tensors) => {
                proto.tensors = tensors.iter().map(inline_tensor).collect();
                AttributeType::TENSORS
            }
            AttrValue::Graphs(graphs) => {
                proto.graphs = graphs.iter().map(|graph| self.graph(graph)).collect();
                AttributeType::GRAPHS
            }
            AttrValue::SparseTensors(list) => {
                proto.sparse_tensors = list.iter().map(sparse_tensor).collect();
                AttributeType::SPARSE_TENSORS
            }
            AttrValue::Types(types) => {
                proto.type_protos = types.iter().map(type_proto).collect();
                AttributeType::TYPE_PROTOS
            }
        };
        proto.type_ = EnumOrUnknown::new(kind);
        proto
    }

    fn initializer(&mut self, tensor: &'a Tensor) -> pb::TensorProto {
        let Some(external) = self.external.as_mut() else { return inline_tensor(tensor) };
        let Some(bytes) = tensor.bytes().filter(|bytes| bytes.len() >= external.min_bytes) else { return inline_tensor(tensor) };
        let offset = external.place(bytes);
        let mut proto = tensor_header(tensor);
        proto.data_location = EnumOrUnknown::new(DataLocation::EXTERNAL);
        proto.external_data = metadata(&[
            ("location".to_string(), external.location.clone()),
            ("offset".to_string(), offset.to_string()),
            ("length".to_string(), bytes.len().to_string()),
        ]);
        proto
    }
}

/// Everything of a tensor but its elements.
fn tensor_header(tensor: &Tensor) -> pb::TensorProto {
    pb::TensorProto {
        dims: tensor.dims.clone(),
        data_type: tensor.dtype.code(),
        segment: tensor.segment.map(|(begin, end)| pb::tensor_proto::Segment { begin, end, ..Default::default() }).into(),
        name: tensor.name.clone(),
        doc_string: tensor.doc_string.clone(),
        metadata_props: metadata(&tensor.metadata_props),
        ..Default::default()
    }
}

/// A tensor with its elements in `raw_data` (or `string_data` for strings), whatever field it came from.
pub(crate) fn inline_tensor(tensor: &Tensor) -> pb::TensorProto {
    let mut proto = tensor_header(tensor);
    match &tensor.data {
        TensorData::Bytes(bytes) => proto.raw_data = bytes.to_vec(),
        TensorData::Strings(strings) => proto.string_data = strings.clone(),
    }
    proto
}

fn sparse_tensor(sparse: &SparseTensor) -> pb::SparseTensorProto {
    pb::SparseTensorProto {
        values: MessageField::some(inline_tensor(&sparse.values)),
        indices: MessageField::some(inline_tensor(&sparse.indices)),
        dims: sparse.dims.clone(),
        ..Default::default()
    }
}

fn value_info(info: &ValueInfo) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: info.name.clone(),
        type_: info.ty.as_ref().map(type_proto).into(),
        doc_string: info.doc_string.clone(),
        metadata_props: metadata(&info.metadata_props),
        ..Default::default()
    }
}

fn type_proto(ty: &Type) -> pb::TypeProto {
    use onnx_protobuf::type_proto::{self as tp, Value};
    let inner = |ty: &Type| -> MessageField<pb::TypeProto> {
        match ty.kind {
            TypeKind::Unset if ty.denotation.is_empty() => MessageField::none(),
            _ => MessageField::some(type_proto(ty)),
        }
    };
    let value = match &ty.kind {
        TypeKind::Unset => None,
        TypeKind::Tensor { elem, shape } => Some(Value::TensorType(tp::Tensor {
            elem_type: elem.code(),
            shape: shape.as_ref().map(shape_proto).into(),
            ..Default::default()
        })),
        TypeKind::SparseTensor { elem, shape } => Some(Value::SparseTensorType(tp::SparseTensor {
            elem_type: elem.code(),
            shape: shape.as_ref().map(shape_proto).into(),
            ..Default::default()
        })),
        TypeKind::Sequence(elem) => Some(Value::SequenceType(tp::Sequence { elem_type: inner(elem), ..Default::default() })),
        TypeKind::Map { key, value } => {
            Some(Value::MapType(tp::Map { key_type: key.code(), value_type: inner(value), ..Default::default() }))
        }
        TypeKind::Optional(elem) => Some(Value::OptionalType(tp::Optional { elem_type: inner(elem), ..Default::default() })),
    };
    pb::TypeProto { denotation: ty.denotation.clone(), value, ..Default::default() }
}

fn shape_proto(shape: &Shape) -> pb::TensorShapeProto {
    use onnx_protobuf::tensor_shape_proto::{dimension::Value, Dimension};
    pb::TensorShapeProto {
        dim: shape
            .0
            .iter()
            .map(|dim| Dimension {
                denotation: dim.denotation.clone(),
                value: match &dim.value {
                    DimValue::Known(size) => Some(Value::DimValue(*size)),
                    DimValue::Symbolic(name) => Some(Value::DimParam(name.clone())),
                    DimValue::Unknown => None,
                },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn opset(opset: &OpsetImport) -> pb::OperatorSetIdProto {
    pb::OperatorSetIdProto { domain: opset.domain.clone(), version: opset.version, ..Default::default() }
}

fn metadata(entries: &[(String, String)]) -> Vec<pb::StringStringEntryProto> {
    entries
        .iter()
        .map(|(key, value)| pb::StringStringEntryProto { key: key.clone(), value: value.clone(), ..Default::default() })
        .collect()
}

#[cfg(test)]
mod tests {
    use protobuf::Message;
    use whittle_ir::{AttrValue, Attribute};

    use super::*;
    use crate::decode::Decoder;

    fn round_trip(value: AttrValue) -> (Vec<u8>, AttrValue) {
        let attribute = Attribute::new("a", value);
        let proto = Encoder { external: None }.attribute(&attribute);
        let bytes = proto.write_to_bytes().unwrap();
        let parsed = pb::AttributeProto::parse_from_bytes(&bytes).unwrap();
        (bytes, Decoder::new(None).attribute(&parsed).unwrap().value)
    }

    #[test]
    fn zero_scalars_are_written_so_proto2_readers_see_them() {
        // name "a" (field 1), then the value field, then type (field 20).
        let (bytes, value) = round_trip(AttrValue::Int(0));
        assert_eq!(value, AttrValue::Int(0));
        assert!(bytes.windows(2).any(|pair| pair == [0x18, 0x00]), "i=0 missing from {bytes:?}");
        let (bytes, value) = round_trip(AttrValue::Float(-0.0));
        assert_eq!(value, AttrValue::Float(-0.0));
        assert!(bytes.windows(5).any(|w| w == [0x15, 0, 0, 0, 0x80]), "f=-0.0 missing from {bytes:?}");
        let (bytes, value) = round_trip(AttrValue::String(Vec::new()));
        assert_eq!(value, AttrValue::String(Vec::new()));
        assert!(bytes.windows(2).any(|pair| pair == [0x22, 0x00]), "s=\"\" missing from {bytes:?}");
    }
}
