//! The error type of whittle-runtime.

use whittle_ir::IrError;

/// What can go wrong while planning or running a model.
///
/// Plan-time variants (`UnsupportedOp`, `UnsupportedOpset`, `BadAttribute`, `BadGraph`,
/// `DeviceUnavailable`) are returned by `Session::new` before anything runs; the others by
/// `Session::run`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("node '{node}': op {op} of domain {domain} (opset {opset}) is not implemented")]
    UnsupportedOp { node: String, op: String, domain: String, opset: String },
    #[error("node '{node}' ({op}): opset {opset} is not supported, this runtime implements opsets {supported}")]
    UnsupportedOpset { node: String, op: String, opset: i64, supported: String },
    #[error("node '{node}' ({op}): attribute '{attribute}': {reason}")]
    BadAttribute { node: String, op: String, attribute: String, reason: String },
    #[error(transparent)]
    BadGraph(#[from] IrError),
    #[error("graph input '{input}': {reason}")]
    UnsupportedInput { input: String, reason: String },
    #[error("initializer '{tensor}': {reason}")]
    UnsupportedInitializer { tensor: String, reason: String },
    #[error("input '{input}' is required but was not fed")]
    MissingInput { input: String },
    #[error("feed '{input}' is not an input of the model (inputs: {expected})")]
    UnknownInput { input: String, expected: String },
    #[error("input '{input}' is fed twice")]
    DuplicateInput { input: String },
    #[error("input '{input}': expected {expected}, got {actual}")]
    InputMismatch { input: String, expected: String, actual: String },
    #[error(
        "input '{input}': dimension {dim} is '{symbol}', which input '{first_input}' set to {first_size}, but here it is {size}"
    )]
    SymbolicDimMismatch { input: String, dim: usize, symbol: String, first_input: String, first_size: usize, size: usize },
    /// A node that cannot be planned or evaluated: bad input shapes or dtypes, inconsistent attributes.
    #[error("node '{node}' ({op}): {reason}")]
    Node { node: String, op: String, reason: String },
    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable { device: String, reason: String },
    #[error("value '{value}': {reason}")]
    BadValue { value: String, reason: String },
    #[error("'{parameter}' is not a parameter of this session (parameters: {expected})")]
    UnknownParameter { parameter: String, expected: String },
    #[error("parameter '{parameter}': expected {expected}, got {actual}")]
    ParameterMismatch { parameter: String, expected: String, actual: String },
    /// A [`crate::Value`] that cannot be what the caller asked (another kind or rank, a dtype the
    /// device lacks).
    #[error("value: {reason}")]
    Value { reason: String },
    /// Parameters exist in training sessions only: an inference plan folds and packs its weights.
    #[error("this session was planned for inference; parameters need `RuntimeOptions::with_autodiff(true)`")]
    NotTraining,
}

impl RuntimeError {
    pub(crate) fn value(err: crate::ops::OpError) -> RuntimeError {
        RuntimeError::Value { reason: err.reason }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
