//! ONNX files to and from whittle's graph: lossless load and save, external data, safe writes.
//!
//! This is the only crate that knows protobuf. Loading keeps every op, domain and attribute, known
//! or not; saving is deterministic (the same model gives the same bytes) and writes through a
//! temporary file that is renamed into place, so a failed save never leaves a half-written model.

mod decode;
mod encode;
mod error;
mod sequence;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message;
use whittle_ir::Model;

use crate::decode::{DecodeError, Decoder};
use crate::encode::{Encoder, ExternalWriter};
pub use crate::error::OnnxError;

/// Protobuf cannot encode or decode a message of 2 GiB or more.
pub const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

/// Room left under [`PROTOBUF_LIMIT`] for everything but tensor bytes when deciding automatically.
const AUTO_EXTERNAL_MARGIN: u64 = 64 << 20;

/// A model read from a file, with what could not be kept.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Model,
    /// Parts of the file this build cannot represent (fields from a newer ONNX schema); empty for most models.
    pub warnings: Vec<String>,
    /// The external data files the model's tensors were read from, sorted; empty for most models.
    pub external_files: Vec<PathBuf>,
}

/// Reads an ONNX model, with external data resolved relative to the model's folder.
pub fn load(path: &Path) -> Result<LoadedModel, OnnxError> {
    let metadata = fs::metadata(path).map_err(|error| OnnxError::Io { path: path.to_path_buf(), error })?;
    if metadata.is_dir() {
        return Err(OnnxError::IsDirectory { path: path.to_path_buf() });
    }
    let bytes = fs::read(path).map_err(|error| OnnxError::Io { path: path.to_path_buf(), error })?;
    let base_dir =
        path.parent().map(|parent| if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() });
    decode_bytes(&bytes, path, base_dir)
}

/// Reads a model held in memory; `name` is used in messages. External data cannot be resolved.
pub fn load_from_bytes(bytes: &[u8], name: &Path) -> Result<LoadedModel, OnnxError> {
    decode_bytes(bytes, name, None)
}

fn decode_bytes(bytes: &[u8], path: &Path, base_dir: Option<PathBuf>) -> Result<LoadedModel, OnnxError> {
    if bytes.is_empty() {
        return Err(OnnxError::EmptyFile { path: path.to_path_buf() });
    }
    let proto = onnx_protobuf::ModelProto::parse_from_bytes(bytes)
        .map_err(|err| OnnxError::Protobuf { path: path.to_path_buf(), reason: err.to_string() })?;
    let mut decoder = Decoder::new(base_dir);
    let model = decoder.model(&proto).map_err(|err| match err {
        DecodeError::Invalid(reason) => OnnxError::Invalid { path: path.to_path_buf(), reason },
        DecodeError::ExternalData { tensor, location, reason } => {
            OnnxError::ExternalData { path: path.to_path_buf(), tensor, location, reason }
        }
    })?;
    let mut external_files: Vec<PathBuf> = decoder.open_files.keys().cloned().collect();
    external_files.sort();
    Ok(LoadedModel { model, warnings: decoder.warnings, external_files })
}

/// Reads a tensor stored as one serialized `TensorProto` (the `input_0.pb` files of ONNX test data sets).
///
/// External data is resolved relative to the file's folder. Sequences and maps (`SequenceProto`,
/// `MapProto`) are not tensors and fail to decode here.
pub fn load_tensor(path: &Path) -> Result<whittle_ir::Tensor, OnnxError> {
    let bytes = fs::read(path).map_err(|error| OnnxError::Io { path: path.to_path_buf(), error })?;
    let proto = onnx_protobuf::TensorProto::parse_from_bytes(&bytes)
        .map_err(|err| OnnxError::Protobuf { path: path.to_path_buf(), reason: err.to_string() })?;
    let base_dir = path.parent().map(Path::to_path_buf);
    Decoder::new(base_dir).tensor(&proto).map_err(|err| file_error(path, err))
}

/// Reads a sequence stored as one serialized `SequenceProto` (the test data of a graph output of type
/// `seq(...)`, such as ai.onnx.ml ZipMap's `seq(map(int64, float))`).
///
/// A file does not say which message it holds; the caller knows from the graph's declared type.
pub fn load_sequence(path: &Path) -> Result<Vec<whittle_ir::HostValue>, OnnxError> {
    let bytes = fs::read(path).map_err(|error| OnnxError::Io { path: path.to_path_buf(), error })?;
    let base_dir = path.parent().map(Path::to_path_buf);
    sequence::sequence(&bytes, &mut Decoder::new(base_dir), 0).map_err(|err| file_error(path, err))
}

fn file_error(path: &Path, err: DecodeError) -> OnnxError {
    match err {
        DecodeError::Invalid(reason) => OnnxError::Invalid { path: path.to_path_buf(), reason },
        DecodeError::ExternalData { tensor, location, reason } => {
            OnnxError::ExternalData { path: path.to_path_buf(), tensor, location, reason }
        }
    }
}

/// Where initializer bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExternalData {
    /// Inline, unless the model would not fit in one protobuf message; then as `Always { min_bytes: 1024 }`.
    #[default]
    Auto,
    /// Initializers of at least `min_bytes` go to `<model file name>.data` beside the model.
    Always { min_bytes: usize },
    /// Always inline; saving a model over 2 GiB fails.
    Never,
}

/// How to save a model.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    pub external_data: ExternalData,
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub model_bytes: u64,
    /// The external data file and its size, when one was written.
    pub external_data: Option<(PathBuf, u64)>,
}

/// Initializers this small stay inline even when the rest goes to external data.
pub const DEFAULT_EXTERNAL_MIN_BYTES: usize = 1024;

/// Encodes a model into one protobuf message with every tensor inline.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>, OnnxError> {
    let proto = Encoder { external: None }.model(model);
    serialize(&proto, Path::new("<memory>"))
}

/// Writes `model` to `path` (and its external data beside it), through temporary files renamed into place.
pub fn save(model: &Model, path: &Path, options: &SaveOptions) -> Result<Saved, OnnxError> {
    let min_bytes = match options.external_data {
        ExternalData::Never => None,
        ExternalData::Always { min_bytes } => Some(min_bytes),
        ExternalData::Auto => (tensor_bytes(model) + AUTO_EXTERNAL_MARGIN > PROTOBUF_LIMIT).then_some(DEFAULT_EXTERNAL_MIN_BYTES),
    };
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "model.onnx".into());
    let location = format!("{file_name}.data");
    let mut encoder = Encoder {
        external: min_bytes.map(|min_bytes| ExternalWriter { location: location.clone(), min_bytes, chunks: Vec::new(), len: 0 }),
    };
    let proto = encoder.model(model);
    let model_bytes = serialize(&proto, path)?;
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut external_data = None;
    if let Some(external) = encoder.external.filter(|external| !external.chunks.is_empty()) {
        let data_path = folder.join(&location);
        write_atomically(&data_path, |file| {
            let mut written = 0u64;
            for (offset, bytes) in &external.chunks {
                file.write_all(&vec![0u8; (offset - written) as usize])?;
                file.write_all(bytes)?;
                written = offset + bytes.len() as u64;
            }
            Ok(())
        })?;
        external_data = Some((data_path, external.len));
    }
    write_atomically(path, |file| file.write_all(&model_bytes))?;
    Ok(Saved { model_bytes: model_bytes.len() as u64, external_data })
}

/// Fails when writing to `output` would overwrite the model at `input` or its external data file.
pub fn check_not_input(input: &Path, output: &Path) -> Result<(), OnnxError> {
    let same = |a: &Path, b: &Path| match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(input, output) {
        return Err(OnnxError::WouldOverwriteInput { path: input.to_path_buf() });
    }
    Ok(())
}

fn tensor_bytes(model: &Model) -> u64 {
    let mut total = 0u64;
    model.graph.visit_graphs(&mut |graph| {
        total += graph.initializers.iter().map(|tensor| tensor.byte_len() as u64).sum::<u64>();
    });
    total
}

fn serialize(proto: &onnx_protobuf::ModelProto, path: &Path) -> Result<Vec<u8>, OnnxError> {
    let size = proto.compute_size();
    if size > PROTOBUF_LIMIT {
        return Err(OnnxError::TooLarge { path: path.to_path_buf(), bytes: size });
    }
    proto.write_to_bytes().map_err(|err| OnnxError::Invalid { path: path.to_path_buf(), reason: format!("cannot encode: {err}") })
}

fn write_atomically(path: &Path, write: impl FnOnce(&mut fs::File) -> std::io::Result<()>) -> Result<(), OnnxError> {
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io_error = |error| OnnxError::Io { path: path.to_path_buf(), error };
    let mut temp = temp_output_in(folder).map_err(io_error)?;
    write(temp.as_file_mut()).map_err(io_error)?;
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(path).map_err(|err| io_error(err.error))?;
    Ok(())
}

/// A temporary file in `folder` for an output to be written to and then renamed into place
/// (whittle-data's archives use it too). Readable as a file the user created would be (`0o666`
/// less the umask, like `File::create`), not tempfile's private `0o600`, which the renamed model
/// kept (found writing a quantized model another user was to load).
pub fn temp_output_in(folder: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".whittle-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(folder)
}

#[cfg(test)]
mod tests {
    use protobuf::Message;

    use super::*;

    #[test]
    fn fields_newer_than_the_schema_are_reported_not_hidden() {
        // NodeProto field 10 is IR 11's device_configurations, unknown to onnx-protobuf 0.2.3.
        let mut node = onnx_protobuf::NodeProto { op_type: "Relu".into(), name: "r".into(), ..Default::default() };
        node.input.push("x".into());
        node.output.push("y".into());
        node.special_fields.mut_unknown_fields().add_length_delimited(10, b"\x0a\x01a".to_vec());
        let graph = onnx_protobuf::GraphProto { node: vec![node], name: "g".into(), ..Default::default() };
        let model =
            onnx_protobuf::ModelProto { ir_version: 11, graph: protobuf::MessageField::some(graph), ..Default::default() };
        let bytes = model.write_to_bytes().unwrap();
        let loaded = load_from_bytes(&bytes, Path::new("new.onnx")).unwrap();
        assert_eq!(
            loaded.warnings,
            vec!["node 'r' (Relu): protobuf field(s) 10 are newer than whittle's ONNX schema and are dropped".to_string()]
        );
        assert_eq!(loaded.model.graph.nodes[0].op_type, "Relu");
    }

    #[test]
    fn a_model_without_a_graph_is_named() {
        let bytes = onnx_protobuf::ModelProto { ir_version: 8, ..Default::default() }.write_to_bytes().unwrap();
        let err = load_from_bytes(&bytes, Path::new("nograph.onnx")).unwrap_err();
        assert_eq!(err.to_string(), "nograph.onnx: model has no graph");
    }
}
