//! Integration tests of whittle-onnx: round trips over the fixtures and the ONNX backend test data,

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.
//! external data, and corrupt input.

mod backend;
mod corrupt;
mod external;
mod roundtrip;

use std::path::{Path, PathBuf};

use whittle_ir::Model;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Every committed fixture model, sorted.
pub fn fixture_models() -> Vec<PathBuf> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("fixtures"))
        .expect("fixtures folder")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("model.onnx")))
        .filter(|path| path.is_file())
        .collect();
    models.sort();
    assert!(models.len() >= 5, "expected the committed fixtures, found {models:?}");
    models
}

pub fn load(path: &Path) -> Model {
    whittle_onnx::load(path).unwrap_or_else(|err| panic!("{err}")).model
}
