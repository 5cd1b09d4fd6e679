//! The error type of whittle-passes.

use std::path::PathBuf;

/// What can go wrong while transforming a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    #[error("pass '{pass}', rule '{rule}' at node '{node}': the patched graph is invalid: {reason}")]
    InvalidPatch { pass: String, rule: String, node: String, reason: String },
    #[error("pass '{pass}' left an invalid graph: {error}")]
    InvalidGraph { pass: String, error: Box<whittle_ir::IrError> },
    #[error("{path}: {reason}", path = path.display())]
    Model { path: PathBuf, reason: String },
    #[error("node '{node}' ({op}): {reason}")]
    Node { node: String, op: String, reason: String },
    #[error("unknown pass '{name}' (passes: {known})")]
    UnknownPass { name: String, known: String },
    #[error("cannot move the model from opset {from} to {to}: {reason}")]
    Opset { from: i64, to: i64, reason: String },
    // Boxed as in whittle-eval: runtime errors are large.
    #[error("{path}: {error}", path = path.display())]
    Runtime { path: PathBuf, error: Box<whittle_runtime::RuntimeError> },
    #[error(transparent)]
    Eval(Box<whittle_eval::EvalError>),
    #[error(transparent)]
    Onnx(#[from] whittle_onnx::OnnxError),
    #[error(transparent)]
    Data(#[from] whittle_data::DataError),
    #[error("{reason}")]
    Options { reason: String },
}

pub type Result<T, E = PassError> = std::result::Result<T, E>;

/// Wraps a runtime error with the model file it came from, for `map_err`.
pub(crate) fn runtime_error(path: &std::path::Path) -> impl Fn(whittle_runtime::RuntimeError) -> PassError + '_ {
    move |error| PassError::Runtime { path: path.to_path_buf(), error: Box::new(error) }
}

impl From<whittle_eval::EvalError> for PassError {
    fn from(error: whittle_eval::EvalError) -> PassError {
        PassError::Eval(Box::new(error))
    }
}
