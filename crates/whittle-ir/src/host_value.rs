//! Non-tensor ONNX values on the host: sequences and maps, as test data files and classic-ML outputs hold them.
//!
//! ONNX test data stores a graph output of type `seq(map(int64, float))` (ai.onnx.ml ZipMap's output) as a
//! `SequenceProto` of `MapProto`s; these types are what such a file decodes to. They are plain data: the
//! runtime computes on tensors only.

use crate::Tensor;

/// A value of any ONNX value kind.
#[derive(Debug, Clone, PartialEq)]
pub enum HostValue {
    Tensor(Tensor),
    Sequence(Vec<HostValue>),
    Map(MapValue),
}

impl HostValue {
    /// The kind in words, for messages: `tensor`, `sequence`, `map`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            HostValue::Tensor(_) => "tensor",
            HostValue::Sequence(_) => "sequence",
            HostValue::Map(_) => "map",
        }
    }
}

/// The keys of a map, in the order its values are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapKeys {
    Int64(Vec<i64>),
    Strings(Vec<String>),
}

impl MapKeys {
    pub fn len(&self) -> usize {
        match self {
            MapKeys::Int64(keys) => keys.len(),
            MapKeys::Strings(keys) => keys.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A map: keys and one value per key, in the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct MapValue {
    pub keys: MapKeys,
    pub values: Vec<HostValue>,
}
