//! The error type of whittle-eval.

use std::path::PathBuf;

/// What can keep a measurement or a comparison from being made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    // Boxed: a runtime error is large, and every result of this crate would carry its size. Not a
    // `source`: the message already holds it, and a chain printer would repeat it.
    #[error("{path}: {error}", path = path.display())]
    Runtime { path: PathBuf, error: Box<whittle_runtime::RuntimeError> },
    #[error(transparent)]
    Data(#[from] whittle_data::DataError),
    #[error(transparent)]
    Onnx(#[from] whittle_onnx::OnnxError),
    #[error(transparent)]
    Metrics(#[from] whittle_metrics::MetricsError),
    #[error("input '{input}': {reason}")]
    Input { input: String, reason: String },
    #[error("{reason}")]
    Mismatch { reason: String },
    #[error("{reason}")]
    Options { reason: String },
    #[error("calibration: {reason}")]
    Calibration { reason: String },
    #[error("cannot start a pool of {threads} threads: {reason}")]
    Threads { threads: usize, reason: String },
    #[error("{path}: {error}", path = path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
