//! Guards load and save speed of ONNX files: a regression in decoding or encoding tensors shows here first.

use criterion::Criterion;

use crate::fixture;

pub fn load_and_save(c: &mut Criterion) {
    for name in ["digits_cnn", "transformer_tiny"] {
        let path = fixture(name);
        let bytes = std::fs::read(&path).expect("fixture");
        c.bench_function(&format!("load/{name}"), |b| b.iter(|| whittle_onnx::load_from_bytes(&bytes, &path).expect("load")));
        let model = whittle_onnx::load(&path).expect("load").model;
        c.bench_function(&format!("save/{name}"), |b| b.iter(|| whittle_onnx::to_bytes(&model).expect("save")));
    }
}
