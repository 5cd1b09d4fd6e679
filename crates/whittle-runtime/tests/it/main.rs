//! Integration tests of whittle-runtime: the fixture models against ONNX Runtime, and bad inputs.

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.

mod errors;
mod fixtures;
mod support;
#[cfg(feature = "autodiff")]
mod training;
