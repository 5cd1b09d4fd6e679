//! `SequenceProto` and `MapProto` (onnx-data.proto) decoded by hand into [`HostValue`]s.
//!
//! onnx-protobuf compiles onnx.proto only, not onnx-data.proto, so these two messages are read with
//! protobuf's wire-level `CodedInputStream`; their tensors go through the normal `TensorProto` path.
//! Field numbers are those of onnx-data.proto (onnx 1.23). Both packed and unpacked encodings of the
//! repeated `keys` field are accepted: the file is proto2, whose writers do not pack by default.

use protobuf::rt::WireType;
use protobuf::{CodedInputStream, Message};
use whittle_ir::{HostValue, MapKeys, MapValue};

use crate::decode::{DecodeError, Decoder};

/// Deeper nesting than this is refused instead of recursing without bound on a hostile file.
const MAX_DEPTH: usize = 64;

/// `SequenceProto.elem_type` values.
const ELEM_TENSOR: i32 = 1;
const ELEM_SEQUENCE: i32 = 3;
const ELEM_MAP: i32 = 4;

/// `TensorProto.DataType.STRING`, the only non-integer map key type.
const KEY_STRING: i32 = 8;

pub(crate) fn sequence(bytes: &[u8], decoder: &mut Decoder, depth: usize) -> Result<Vec<HostValue>, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("sequences and maps nested deeper than {MAX_DEPTH} levels")));
    }
    let mut elem_type = None;
    let mut items = Vec::new();
    let mut stream = CodedInputStream::from_bytes(bytes);
    while let Some((field, wire)) = next_field(&mut stream)? {
        match (field, wire) {
            (2, WireType::Varint) => elem_type = Some(stream.read_int32().map_err(wire_error)?),
            (3, WireType::LengthDelimited) => {
                let bytes = stream.read_bytes().map_err(wire_error)?;
                let proto = onnx_protobuf::TensorProto::parse_from_bytes(&bytes).map_err(wire_error)?;
                items.push(HostValue::Tensor(decoder.tensor(&proto)?));
            }
            (4, WireType::LengthDelimited) => return Err(invalid("sparse tensors in a sequence are not supported".into())),
            (5, WireType::LengthDelimited) => {
                let bytes = stream.read_bytes().map_err(wire_error)?;
                items.push(HostValue::Sequence(sequence(&bytes, decoder, depth + 1)?));
            }
            (6, WireType::LengthDelimited) => {
                let bytes = stream.read_bytes().map_err(wire_error)?;
                items.push(HostValue::Map(map(&bytes, decoder, depth + 1)?));
            }
            (7, WireType::LengthDelimited) => return Err(invalid("optionals in a sequence are not supported".into())),
            (1, WireType::LengthDelimited) => stream.skip_field(WireType::LengthDelimited).map_err(wire_error)?,
            // Every field of SequenceProto up to 7 has one wire type; another one means the file holds
            // some other message (a TensorProto's varint `dims` in field 1, for example).
            (1..=7, wire) => return Err(invalid(format!("field {field} has wire type {wire:?}: not a SequenceProto"))),
            (_, wire) => stream.skip_field(wire).map_err(wire_error)?,
        }
    }
    let expected = match elem_type {
        Some(ELEM_TENSOR) => "tensor",
        Some(ELEM_SEQUENCE) => "sequence",
        Some(ELEM_MAP) => "map",
        // An empty sequence may leave the element type unset; a non-empty one must say it.
        None | Some(0) if items.is_empty() => return Ok(items),
        other => return Err(invalid(format!("sequence element type {} is not supported", other.unwrap_or(0)))),
    };
    if let Some(item) = items.iter().find(|item| item.kind_name() != expected) {
        return Err(invalid(format!("sequence of {expected} holds a {}", item.kind_name())));
    }
    Ok(items)
}

fn map(bytes: &[u8], decoder: &mut Decoder, depth: usize) -> Result<MapValue, DecodeError> {
    let mut key_type = None;
    let (mut int_keys, mut string_keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut stream = CodedInputStream::from_bytes(bytes);
    while let Some((field, wire)) = next_field(&mut stream)? {
        match (field, wire) {
            (2, WireType::Varint) => key_type = Some(stream.read_int32().map_err(wire_error)?),
            (3, WireType::Varint) => int_keys.push(stream.read_int64().map_err(wire_error)?),
            (3, WireType::LengthDelimited) => stream.read_repeated_packed_int64_into(&mut int_keys).map_err(wire_error)?,
            (4, WireType::LengthDelimited) => {
                let key = stream.read_bytes().map_err(wire_error)?;
                string_keys.push(String::from_utf8(key).map_err(|err| invalid(format!("map key is not UTF-8: {err}")))?);
            }
            (5, WireType::LengthDelimited) => {
                let bytes = stream.read_bytes().map_err(wire_error)?;
                values = sequence(&bytes, decoder, depth + 1)?;
            }
            (1, WireType::LengthDelimited) => stream.skip_field(WireType::LengthDelimited).map_err(wire_error)?,
            (1..=5, wire) => return Err(invalid(format!("field {field} has wire type {wire:?}: not a MapProto"))),
            (_, wire) => stream.skip_field(wire).map_err(wire_error)?,
        }
    }
    let keys = match key_type {
        Some(KEY_STRING) if int_keys.is_empty() => MapKeys::Strings(string_keys),
        Some(_) if string_keys.is_empty() => MapKeys::Int64(int_keys),
        None if int_keys.is_empty() && string_keys.is_empty() => MapKeys::Int64(Vec::new()),
        _ => return Err(invalid(format!("map key type {} does not match its keys", key_type.unwrap_or(0)))),
    };
    if keys.len() != values.len() {
        return Err(invalid(format!("map has {} keys but {} values", keys.len(), values.len())));
    }
    Ok(MapValue { keys, values })
}

fn next_field(stream: &mut CodedInputStream<'_>) -> Result<Option<(u32, WireType)>, DecodeError> {
    let Some(tag) = stream.read_raw_tag_or_eof().map_err(wire_error)? else {
        return Ok(None);
    };
    let wire = WireType::new(tag & 7).ok_or_else(|| invalid(format!("bad protobuf wire type {}", tag & 7)))?;
    Ok(Some((tag >> 3, wire)))
}

fn wire_error(err: protobuf::Error) -> DecodeError {
    invalid(format!("protobuf decoding failed: {err}"))
}

fn invalid(reason: String) -> DecodeError {
    DecodeError::Invalid(reason)
}
