//! Shared helpers: fixture paths, loading, running.

use std::path::PathBuf;

use whittle_ir::{Model, Tensor};
use whittle_runtime::{RuntimeOptions, Session};

/// `fixtures/<name>` at the repository root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

pub fn load_model(name: &str) -> Model {
    whittle_onnx::load(&fixture(name).join("model.onnx")).expect("fixture model loads").model
}

pub fn session(model: &Model) -> Session {
    Session::new(model, &RuntimeOptions::default()).expect("fixture model plans")
}

pub fn f32_values(tensor: &Tensor) -> Vec<f32> {
    tensor.to_f32_vec().expect("numeric tensor")
}
