//! The error type of whittle-ir.

/// What can be wrong with a graph or a tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    #[error("tensor '{tensor}': {reason}")]
    BadTensor { tensor: String, reason: String },
    #[error("graph '{graph}': value '{value}' is produced twice, by {first} and by {second}")]
    ValueProducedTwice { graph: String, value: String, first: String, second: String },
    #[error("graph '{graph}': node '{node}' ({op}) reads '{value}', which nothing produces")]
    UndefinedValue { graph: String, node: String, op: String, value: String },
    #[error("graph '{graph}': output '{value}' is never produced")]
    UndefinedOutput { graph: String, value: String },
    #[error("graph '{graph}': nodes form a cycle through '{node}' ({op})")]
    Cycle { graph: String, node: String, op: String },
    #[error("graph '{graph}': value '{value}' is declared {declared} but initializer holds {actual}")]
    TypeMismatch { graph: String, value: String, declared: String, actual: String },
}
