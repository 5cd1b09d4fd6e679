//! Integration tests of whittle-passes: every fixture and every `light` zoo model, fused by the
//! default pipeline, gives the original's outputs within the pipeline's tolerance in whittle's
//! runtime, and ONNX Runtime loads every fused model and agrees with the original (`differential`);
//! quantization keeps the fixtures within their budgets and its models run in ONNX Runtime
//! (`quantize`).

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.

mod differential;
mod quantize;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// A path from the environment, or its default under the repository; it must exist.
pub fn setting(variable: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or(default);
    assert!(path.exists(), "{} does not exist: run `cargo xtask setup` first (or set {variable})", path.display());
    path
}

/// Every committed fixture and every light zoo model, as `(name, folder holding model.onnx)`.
pub fn models() -> Vec<(String, PathBuf)> {
    let root = workspace_root();
    let data = setting("WHITTLE_ONNX_DATA", root.join("target/onnx-backend-data"));
    let mut models = Vec::new();
    for (kind, folder) in [("fixtures", root.join("fixtures")), ("light", data.join("light"))] {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap_or_else(|err| panic!("{}: {err}", folder.display()))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|dir| dir.join("model.onnx").is_file())
            .collect();
        dirs.sort();
        models.extend(dirs.into_iter().map(|dir| (format!("{kind}/{}", dir.file_name().unwrap().to_string_lossy()), dir)));
    }
    assert!(models.len() >= 15, "expected the fixtures and the 9 light zoo models, found {}", models.len());
    models
}
