//! The error type of whittle-passes.

use std::path::PathBuf;

/// What can go wrong while transforming a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    #[error("pass '{pass}', rule '{rule}' at node '{node}': the patched graph is invalid: {error}")]
    InvalidPatch { pass: String, rule: String, node: String, error: Box<whittle_ir::IrError> },
    #[error("pass '{pass}' left an invalid graph: {error}")]
    InvalidGraph { pass: String, error: Box<whittle_ir::IrError> },
    #[error("unknown pass '{name}' (passes: {known})")]
    UnknownPass { name: String, known: String },
    #[error("cannot move the model from opset {from} to {to}: {reason}")]
    Opset { from: i64, to: i64, reason: String },
    #[error("node '{node}' ({op}): {reason}")]
    Node { node: String, op: String, reason: String },
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

impl From<whittle_eval::EvalError> for PassError {
    fn from(error: whittle_eval::EvalError) -> PassError {
        PassError::Eval(Box::new(error))
    }
}
