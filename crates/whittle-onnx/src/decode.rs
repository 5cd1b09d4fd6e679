//! `ModelProto` to whittle-ir, faithfully: every attribute, op and domain is kept, known or not.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use onnx_protobuf as pb;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataLocation;
use protobuf::SpecialFields;
use whittle_ir::{
    AttrValue, Attribute, DataType, Dim, DimValue, Function, Graph, Metadata, Model, Node, OpsetImport, Shape, SparseTensor,
    Tensor, TensorAnnotation, TensorData, TrainingInfo, Type, TypeKind, ValueInfo,
};

/// A problem found while converting; the caller adds the file path.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Invalid(String),
    ExternalData { tensor: String, location: String, reason: String },
}

type Result<T> = std::result::Result<T, DecodeError>;

fn invalid(reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(reason.into())
}

/// Converts protobuf messages to IR, reading external data relative to `base_dir`.
pub(crate) struct Decoder {
    base_dir: Option<PathBuf>,
    pub(crate) open_files: HashMap<PathBuf, File>,
    /// Fields newer than the schema this build was made with; they cannot be kept.
    pub(crate) warnings: Vec<String>,
}

impl Decoder {
    pub(crate) fn new(base_dir: Option<PathBuf>) -> Decoder {
        Decoder { base_dir, open_files: HashMap::new(), warnings: Vec::new() }
    }

    fn note_unknown_fields(&mut self, fields: &SpecialFields, what: impl FnOnce() -> String) {
        let numbers: Vec<String> = fields.unknown_fields().iter().map(|(number, _)| number.to_string()).collect();
        if !numbers.is_empty() {
            self.warnings.push(format!(
                "{}: protobuf field(s) {} are newer than whittle's ONNX schema and are dropped",
                what(),
                numbers.join(", ")
            ));
        }
    }

    pub(crate) fn model(&mut self, proto: &pb::ModelProto) -> Result<Model> {
        self.note_unknown_fields(&proto.special_fields, || "model".into());
        let graph = match proto.graph.as_ref() {
            Some(graph) => self.graph(graph)?,
            None => return Err(invalid("model has no graph")),
        };
        Ok(Model {
            ir_version: proto.ir_version,
            opset_imports: proto.opset_import.iter().map(opset).collect(),
            producer_name: proto.producer_name.clone(),
            producer_version: proto.producer_version.clone(),
            domain: proto.domain.clone(),
            model_version: proto.model_version,
            doc_string: proto.doc_string.clone(),
            graph,
            metadata_props: metadata(&proto.metadata_props),
            training_info: proto.training_info.iter().map(|info| self.training_info(info)).collect::<Result<_>>()?,
            functions: proto.functions.iter().map(|function| self.function(function)).collect::<Result<_>>()?,
        })
    }

    fn training_info(&mut self, proto: &pb::TrainingInfoProto) -> Result<TrainingInfo> {
        Ok(TrainingInfo {
            initialization: proto.initialization.as_ref().map(|graph| self.graph(graph)).transpose()?,
            algorithm: self.graph(proto.algorithm.as_ref().unwrap_or_default())?,
            initialization_binding: metadata(&proto.initialization_binding),
            update_binding: metadata(&proto.update_binding),
        })
    }

    fn function(&mut self, proto: &pb::FunctionProto) -> Result<Function> {
        self.note_unknown_fields(&proto.special_fields, || format!("function '{}'", proto.name));
        Ok(Function {
            name: proto.name.clone(),
            domain: proto.domain.clone(),
            overload: proto.overload.clone(),
            inputs: proto.input.clone(),
            outputs: proto.output.clone(),
            attributes: proto.attribute.clone(),
            attribute_defaults: proto.attribute_proto.iter().map(|attribute| self.attribute(attribute)).collect::<Result<_>>()?,
            nodes: proto.node.iter().map(|node| self.node(node)).collect::<Result<_>>()?,
            value_info: proto.value_info.iter().map(|info| self.value_info(info)).collect::<Result<_>>()?,
            opset_imports: proto.opset_import.iter().map(opset).collect(),
            doc_string: proto.doc_string.clone(),
            metadata_props: metadata(&proto.metadata_props),
        })
    }

    pub(crate) fn graph(&mut self, proto: &pb::GraphProto) -> Result<Graph> {
        self.note_unknown_fields(&proto.special_fields, || format!("graph '{}'", proto.name));
        let value_infos = |decoder: &mut Decoder, list: &[pb::ValueInfoProto]| -> Result<Vec<ValueInfo>> {
            list.iter().map(|info| decoder.value_info(info)).collect()
        };
        Ok(Graph {
            name: proto.name.clone(),
            nodes: proto.node.iter().map(|node| self.node(node)).collect::<Result<_>>()?,
            inputs: value_infos(self, &proto.input)?,
            outputs: value_infos(self, &proto.output)?,
            value_info: value_infos(self, &proto.value_info)?,
            initializers: proto.initializer.iter().map(|tensor| self.tensor(tensor)).collect::<Result<_>>()?,
            sparse_initializers: proto
                .sparse_initializer
                .iter()
                .map(|sparse| self.sparse_tensor(sparse))
                .collect::<Result<_>>()?,
            doc_string: proto.doc_string.clone(),
            quantization_annotations: proto
                .quantization_annotation
                .iter()
                .map(|annotation| TensorAnnotation {
                    tensor_name: annotation.tensor_name.clone(),
                    quant_parameter_tensor_names: metadata(&annotation.quant_parameter_tensor_names),
                })
                .collect(),
            metadata_props: metadata(&proto.metadata_props),
        })
    }

    fn node(&mut self, proto: &pb::NodeProto) -> Result<Node> {
        self.note_unknown_fields(&proto.special_fields, || format!("node '{}' ({})", proto.name, proto.op_type));
        let attributes = proto
            .attribute
            .iter()
            .map(|attribute| {
                self.attribute(attribute).map_err(|err| match err {
                    DecodeError::Invalid(reason) => {
                        invalid(format!("node '{}' ({}): attribute '{}': {reason}", proto.name, proto.op_type, attribute.name))
                    }
                    other => other,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Node {
            name: proto.name.clone(),
            op_type: proto.op_type.clone(),
            domain: proto.domain.clone(),
            overload: proto.overload.clone(),
            inputs: proto.input.clone(),
            outputs: proto.output.clone(),
            attributes,
            doc_string: proto.doc_string.clone(),
            metadata_props: metadata(&proto.metadata_props),
        })
    }

    pub(crate) fn attribute(&mut self, proto: &pb::AttributeProto) -> Result<Attribute> {
        let kind = match proto.type_.enum_value() {
            Ok(AttributeType::UNDEFINED) => infer_attribute_type(proto),
            Ok(kind) => kind,
            Err(code) => return Err(invalid(format!("unknown attribute type {code}"))),
        };
        let graph = |decoder: &mut Decoder, graph: &protobuf::MessageField<pb::GraphProto>| -> Result<Box<Graph>> {
            Ok(Box::new(decoder.graph(graph.as_ref().unwrap_or_default())?))
        };
        let value = match kind {
            AttributeType::UNDEFINED => AttrValue::Undefined,
            AttributeType::FLOAT => AttrValue::Float(proto.f),
            AttributeType::INT => AttrValue::Int(proto.i),
            AttributeType::STRING => AttrValue::String(proto.s.clone()),
            AttributeType::TENSOR => AttrValue::Tensor(self.tensor(proto.t.as_ref().unwrap_or_default())?),
            AttributeType::GRAPH => AttrValue::Graph(graph(self, &proto.g)?),
            AttributeType::SPARSE_TENSOR => {
                AttrValue::SparseTensor(self.sparse_tensor(proto.sparse_tensor.as_ref().unwrap_or_default())?)
            }
            AttributeType::TYPE_PROTO => AttrValue::Type(self.type_(proto.tp.as_ref().unwrap_or_default())),
            AttributeType::FLOATS => AttrValue::Floats(proto.floats.clone()),
            AttributeType::INTS => AttrValue::Ints(proto.ints.clone()),
            AttributeType::STRINGS => AttrValue::Strings(proto.strings.clone()),
            AttributeType::TENSORS => AttrValue::Tensors(proto.tensors.iter().map(|t| self.tensor(t)).collect::<Result<_>>()?),
            AttributeType::GRAPHS => AttrValue::Graphs(proto.graphs.iter().map(|g| self.graph(g)).collect::<Result<_>>()?),
            AttributeType::SPARSE_TENSORS => {
                AttrValue::SparseTensors(proto.sparse_tensors.iter().map(|s| self.sparse_tensor(s)).collect::<Result<_>>()?)
            }
            AttributeType::TYPE_PROTOS => AttrValue::Types(proto.type_protos.iter().map(|t| self.type_(t)).collect()),
        };
        Ok(Attribute {
            name: proto.name.clone(),
            value,
            doc_string: proto.doc_string.clone(),
            ref_attr_name: (!proto.ref_attr_name.is_empty()).then(|| proto.ref_attr_name.clone()),
        })
    }

    fn value_info(&mut self, proto: &pb::ValueInfoProto) -> Result<ValueInfo> {
        Ok(ValueInfo {
            name: proto.name.clone(),
            ty: proto.type_.as_ref().map(|ty| self.type_(ty)),
            doc_string: proto.doc_string.clone(),
            metadata_props: metadata(&proto.metadata_props),
        })
    }

    fn type_(&mut self, proto: &pb::TypeProto) -> Type {
        use onnx_protobuf::type_proto::Value;
        self.note_unknown_fields(&proto.special_fields, || "a type".into());
        let inner = |decoder: &mut Decoder, field: &protobuf::MessageField<pb::TypeProto>| -> Box<Type> {
            Box::new(field.as_ref().map_or_else(Type::unset, |ty| decoder.type_(ty)))
        };
        let kind = match &proto.value {
            None => TypeKind::Unset,
            Some(Value::TensorType(tensor)) => {
                TypeKind::Tensor { elem: DataType::from_code(tensor.elem_type), shape: tensor.shape.as_ref().map(shape) }
            }
            Some(Value::SparseTensorType(tensor)) => {
                TypeKind::SparseTensor { elem: DataType::from_code(tensor.elem_type), shape: tensor.shape.as_ref().map(shape) }
            }
            Some(Value::SequenceType(sequence)) => TypeKind::Sequence(inner(self, &sequence.elem_type)),
            Some(Value::MapType(map)) => {
                TypeKind::Map { key: DataType::from_code(map.key_type), value: inner(self, &map.value_type) }
            }
            Some(Value::OptionalType(optional)) => TypeKind::Optional(inner(self, &optional.elem_type)),
            Some(_) => TypeKind::Unset,
        };
        Type { kind, denotation: proto.denotation.clone() }
    }

    fn sparse_tensor(&mut self, proto: &pb::SparseTensorProto) -> Result<SparseTensor> {
        Ok(SparseTensor {
            values: self.tensor(proto.values.as_ref().unwrap_or_default())?,
            indices: self.tensor(proto.indices.as_ref().unwrap_or_default())?,
            dims: proto.dims.clone(),
        })
    }

    pub(crate) fn tensor(&mut self, proto: &pb::TensorProto) -> Result<Tensor> {
        let dtype = DataType::from_code(proto.data_type);
        let external = proto.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
        let data = if external {
            TensorData::Bytes(self.external_bytes(proto, dtype)?.into())
        } else if dtype == DataType::String {
            TensorData::Strings(proto.string_data.clone())
        } else {
            TensorData::Bytes(typed_bytes(proto, dtype)?.into())
        };
        let tensor = Tensor {
            name: proto.name.clone(),
            dtype,
            dims: proto.dims.clone(),
            data,
            doc_string: proto.doc_string.clone(),
            metadata_props: metadata(&proto.metadata_props),
            segment: proto.segment.as_ref().map(|segment| (segment.begin, segment.end)),
        };
        // A chunk of a segmented tensor holds only part of the elements its dims describe.
        if tensor.segment.is_none() {
            tensor.check_data_size().map_err(|err| invalid(err.to_string()))?;
        }
        Ok(tensor)
    }

    fn external_bytes(&mut self, proto: &pb::TensorProto, dtype: DataType) -> Result<Vec<u8>> {
        let entries: HashMap<&str, &str> = proto.external_data.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
        let location = entries.get("location").copied().unwrap_or_default().to_string();
        let fail = |reason: String| DecodeError::ExternalData { tensor: proto.name.clone(), location: location.clone(), reason };
        if location.is_empty() {
            return Err(fail("no location given".into()));
        }
        let relative = Path::new(&location);
        if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(fail("the location must be a relative path inside the model's folder".into()));
        }
        let Some(base_dir) = &self.base_dir else {
            return Err(fail("the model was read from memory, so external data has no folder to come from".into()));
        };
        let number = |key: &str| -> Result<Option<u64>> {
            entries
                .get(key)
                .map(|value| value.parse::<u64>().map_err(|_| fail(format!("{key} '{value}' is not a number"))))
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        let full_path = base_dir.join(relative);
        if !self.open_files.contains_key(&full_path) {
            let file = File::open(&full_path).map_err(|err| fail(format!("cannot open {}: {err}", full_path.display())))?;
            self.open_files.insert(full_path.clone(), file);
        }
        let Some(file) = self.open_files.get_mut(&full_path) else {
            return Err(fail("file handle vanished".into()));
        };
        let file_len = file.metadata().map_err(|err| fail(err.to_string()))?.len();
        let length = match length {
            Some(length) => length,
            None => file_len.saturating_sub(offset),
        };
        let end = offset.checked_add(length).ok_or_else(|| fail("offset + length overflows".into()))?;
        if end > file_len {
            return Err(fail(format!("needs bytes {offset}..{end} but the file has only {file_len}")));
        }
        if let Some(expected) = whittle_ir::element_count(&proto.dims).and_then(|count| dtype.storage_bytes(count)) {
            if proto.segment.is_none() && expected as u64 != length {
                return Err(fail(format!("{dtype} dims {:?} need {expected} bytes, the file gives {length}", proto.dims)));
            }
        }
        let mut bytes = vec![0u8; length as usize];
        file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut bytes)).map_err(|err| fail(err.to_string()))?;
        Ok(bytes)
    }
}

/// Old models may omit the attribute type; like onnx, infer it from the field that is set.
fn infer_attribute_type(proto: &pb::AttributeProto) -> AttributeType {
    if proto.g.is_some() {
        AttributeType::GRAPH
    } else if proto.t.is_some() {
        AttributeType::TENSOR
    } else if proto.sparse_tensor.is_some() {
        AttributeType::SPARSE_TENSOR
    } else if proto.tp.is_some() {
        AttributeType::TYPE_PROTO
    } else if !proto.floats.is_empty() {
        AttributeType::FLOATS
    } else if !proto.ints.is_empty() {
        AttributeType::INTS
    } else if !proto.strings.is_empty() {
        AttributeType::STRINGS
    } else if !proto.tensors.is_empty() {
        AttributeType::TENSORS
    } else if !proto.graphs.is_empty() {
        AttributeType::GRAPHS
    } else if !proto.s.is_empty() {
        AttributeType::STRING
    } else if proto.f != 0.0 {
        AttributeType::FLOAT
    } else if proto.i != 0 {
        AttributeType::INT
    } else {
        AttributeType::UNDEFINED
    }
}

/// The element bytes of a tensor stored inline, from `raw_data` or from the typed field its dtype uses.
fn typed_bytes(proto: &pb::TensorProto, dtype: DataType) -> Result<Vec<u8>> {
    if !proto.raw_data.is_empty() {
        return Ok(proto.raw_data.clone());
    }
    let bits = dtype.bit_width();
    let bytes = match dtype {
        DataType::F32 | DataType::Complex64 => proto.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::F64 | DataType::Complex128 => proto.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::I64 => proto.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::U64 => proto.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // uint32 values travel in uint64_data, one per entry.
        DataType::U32 => proto.uint64_data.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect(),
        DataType::I32 => proto.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // 16-bit types (and f16/bf16 bit patterns) travel one per int32 entry.
        _ if bits == Some(16) => proto.int32_data.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
        // 8-bit types, and sub-byte types already packed into bytes, travel one byte per int32 entry.
        _ if bits.is_some_and(|bits| bits <= 8) => proto.int32_data.iter().map(|&v| v as u8).collect(),
        _ => {
            let typed_fields = proto.float_data.len()
                + proto.int32_data.len()
                + proto.int64_data.len()
                + proto.double_data.len()
                + proto.uint64_data.len();
            if typed_fields > 0 {
                return Err(invalid(format!(
                    "tensor '{}': data type {} keeps its values in a typed field whittle cannot read",
                    proto.name,
                    dtype.code()
                )));
            }
            Vec::new()
        }
    };
    Ok(bytes)
}

fn opset(proto: &pb::OperatorSetIdProto) -> OpsetImport {
    OpsetImport { domain: proto.domain.clone(), version: proto.version }
}

fn metadata(entries: &[pb::StringStringEntryProto]) -> Metadata {
    entries.iter().map(|entry| (entry.key.clone(), entry.value.clone())).collect()
}

fn shape(proto: &pb::TensorShapeProto) -> Shape {
    use onnx_protobuf::tensor_shape_proto::dimension::Value;
    Shape(
        proto
            .dim
            .iter()
            .map(|dim| Dim {
                value: match &dim.value {
                    Some(Value::DimValue(size)) => DimValue::Known(*size),
                    Some(Value::DimParam(name)) => DimValue::Symbolic(name.clone()),
                    _ => DimValue::Unknown,
                },
                denotation: dim.denotation.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor_proto(dtype: DataType, dims: &[i64]) -> pb::TensorProto {
        pb::TensorProto { name: "t".into(), data_type: dtype.code(), dims: dims.to_vec(), ..Default::default() }
    }

    fn decode(proto: &pb::TensorProto) -> Tensor {
        Decoder::new(None).tensor(proto).unwrap()
    }

    #[test]
    fn typed_fields_become_packed_little_endian_bytes() {
        let mut f32s = tensor_proto(DataType::F32, &[2]);
        f32s.float_data = vec![1.5, -2.0];
        assert_eq!(decode(&f32s).bytes().unwrap(), [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());

        // f16 bit patterns travel one per int32 entry.
        let mut f16s = tensor_proto(DataType::F16, &[2]);
        f16s.int32_data = vec![0x3c00, 0xc000];
        assert_eq!(decode(&f16s).bytes().unwrap(), [0x00, 0x3c, 0x00, 0xc0]);

        // int8 values are sign-extended in int32_data; the byte keeps the two's complement.
        let mut i8s = tensor_proto(DataType::I8, &[2]);
        i8s.int32_data = vec![-1, 5];
        assert_eq!(decode(&i8s).bytes().unwrap(), [0xff, 0x05]);

        // uint32 travels in uint64_data.
        let mut u32s = tensor_proto(DataType::U32, &[1]);
        u32s.uint64_data = vec![0xdead_beef];
        assert_eq!(decode(&u32s).bytes().unwrap(), 0xdead_beefu32.to_le_bytes());

        // int4 travels already packed, two values per int32 entry.
        let mut i4s = tensor_proto(DataType::I4, &[3]);
        i4s.int32_data = vec![0x21, 0x03];
        assert_eq!(decode(&i4s).bytes().unwrap(), [0x21, 0x03]);

        let mut strings = tensor_proto(DataType::String, &[2]);
        strings.string_data = vec![b"a".to_vec(), b"bc".to_vec()];
        assert_eq!(decode(&strings).data, TensorData::Strings(vec![b"a".to_vec(), b"bc".to_vec()]));
    }

    #[test]
    fn raw_data_wins_over_typed_fields() {
        let mut proto = tensor_proto(DataType::F32, &[1]);
        proto.raw_data = 7.0f32.to_le_bytes().to_vec();
        assert_eq!(decode(&proto).to_f32_vec(), Some(vec![7.0]));
    }

    #[test]
    fn a_tensor_whose_data_does_not_fit_its_dims_is_an_error() {
        let mut proto = tensor_proto(DataType::F32, &[3]);
        proto.float_data = vec![1.0];
        let err = Decoder::new(None).tensor(&proto).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Invalid(reason) if reason == "tensor 't': f32 dims [3] need 12 bytes, found 4"),
            "{err:?}"
        );
    }

    #[test]
    fn untyped_attributes_of_old_models_get_their_type_from_the_field_set() {
        let ints = pb::AttributeProto { name: "pads".into(), ints: vec![1, 1], ..Default::default() };
        let attribute = Decoder::new(None).attribute(&ints).unwrap();
        assert_eq!(attribute.value, AttrValue::Ints(vec![1, 1]));
        let float = pb::AttributeProto { name: "alpha".into(), f: 0.5, ..Default::default() };
        assert_eq!(Decoder::new(None).attribute(&float).unwrap().value, AttrValue::Float(0.5));
    }

    #[test]
    fn external_data_from_memory_has_no_folder() {
        let mut proto = tensor_proto(DataType::F32, &[1]);
        proto.data_location = DataLocation::EXTERNAL.into();
        proto.external_data =
            vec![pb::StringStringEntryProto { key: "location".into(), value: "w.bin".into(), ..Default::default() }];
        let err = Decoder::new(None).tensor(&proto).unwrap_err();
        assert!(matches!(err, DecodeError::ExternalData { ref location, .. } if location == "w.bin"), "{err:?}");
    }

    #[test]
    fn external_data_outside_the_model_folder_is_refused() {
        let mut proto = tensor_proto(DataType::F32, &[1]);
        proto.data_location = DataLocation::EXTERNAL.into();
        proto.external_data =
            vec![pb::StringStringEntryProto { key: "location".into(), value: "../secret".into(), ..Default::default() }];
        let err = Decoder::new(Some(PathBuf::from("."))).tensor(&proto).unwrap_err();
        assert!(
            matches!(err, DecodeError::ExternalData { ref reason, .. } if reason.contains("relative path inside")),
            "{err:?}"
        );
    }
}
