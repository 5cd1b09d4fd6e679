//! The error type of whittle-onnx.

use std::path::PathBuf;

/// What can go wrong reading or writing an ONNX file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    // `error`, not `source`: the message already holds it, and a chain printer would repeat it.
    #[error("{path}: {error}", path = path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: is a directory, not an ONNX model", path = path.display())]
    IsDirectory { path: PathBuf },
    #[error("{path}: empty file, not an ONNX model", path = path.display())]
    EmptyFile { path: PathBuf },
    #[error("{path}: not a valid ONNX model (protobuf decoding failed: {reason})", path = path.display())]
    Protobuf { path: PathBuf, reason: String },
    #[error("{path}: {reason}", path = path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: tensor '{tensor}': external data {location}: {reason}", path = path.display())]
    ExternalData { path: PathBuf, tensor: String, location: String, reason: String },
    #[error("refusing to overwrite the input model {path}: choose another output path", path = path.display())]
    WouldOverwriteInput { path: PathBuf },
    #[error("{path}: model is {bytes} bytes even with its initializers in external data, over protobuf's 2 GiB limit", path = path.display())]
    TooLarge { path: PathBuf, bytes: u64 },
}
