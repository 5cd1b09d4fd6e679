//! whittle's criterion benchmarks, one module per topic; each module's first line says what regression it guards.
//!
//! `cargo bench -p whittle-benches` runs them all; `cargo bench -p whittle-benches -- model/` one topic.

mod kernels;
mod models;
mod onnx_io;

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name).join("model.onnx")
}

criterion_group!(benches, onnx_io::load_and_save, models::fixtures, kernels::matmul, kernels::matmul_integer, kernels::conv);
criterion_main!(benches);
