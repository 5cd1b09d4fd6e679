//! Initializers in external data files: written on request or when needed, read back exactly.

use whittle_ir::{DataType, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};
use whittle_onnx::{load, save, ExternalData, SaveOptions};

use crate::fixture_models;

#[test]
fn external_data_on_request_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for path in fixture_models() {
        let model = load(&path).unwrap().model;
        let out = dir.path().join("ext.onnx");
        let saved = save(&model, &out, &SaveOptions { external_data: ExternalData::Always { min_bytes: 1024 } }).unwrap();
        let big_tensors = model.graph.initializers.iter().filter(|tensor| tensor.byte_len() >= 1024).count();
        assert_eq!(saved.external_data.is_some(), big_tensors > 0, "{}", path.display());
        if let Some((data_path, data_bytes)) = &saved.external_data {
            assert_eq!(data_path, &dir.path().join("ext.onnx.data"));
            assert_eq!(std::fs::metadata(data_path).unwrap().len(), *data_bytes);
        }
        assert_eq!(load(&out).unwrap().model, model, "{}", path.display());
    }
}

#[test]
fn external_offsets_are_page_aligned_and_small_tensors_stay_inline() {
    let dir = tempfile::tempdir().unwrap();
    let big = |name: &str, value: f32| Tensor::from_f32(name, vec![1000], &vec![value; 1000]).unwrap();
    let graph = Graph {
        name: "g".into(),
        nodes: vec![Node::new("add", "Add", &["a", "b"], &["y"]), Node::new("mul", "Mul", &["y", "s"], &["z"])],
        outputs: vec![ValueInfo::new("z", Some(Type::tensor(DataType::F32, Some(Shape::known(&[1000])))))],
        initializers: vec![big("a", 1.0), big("b", 2.0), Tensor::from_f32("s", vec![1], &[3.0]).unwrap()],
        ..Graph::default()
    };
    let model = Model::new(graph, 8, 17);
    let out = dir.path().join("m.onnx");
    let saved = save(&model, &out, &SaveOptions { external_data: ExternalData::Always { min_bytes: 1024 } }).unwrap();
    // Two 4000-byte tensors: the second starts at the next 4096-byte boundary.
    assert_eq!(saved.external_data.unwrap().1, 4096 + 4000);
    let data = std::fs::read(dir.path().join("m.onnx.data")).unwrap();
    assert_eq!(&data[4096..4100], &2.0f32.to_le_bytes());
    assert_eq!(load(&out).unwrap().model, model);
}

#[test]
fn small_models_stay_inline_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&fixture_models()[0]).unwrap().model;
    let saved = save(&model, &dir.path().join("m.onnx"), &SaveOptions::default()).unwrap();
    assert_eq!(saved.external_data, None);
}

/// A saved model (and its data file) gets the mode a file the user created would get, not the
/// temporary file's private 0o600.
#[cfg(unix)]
#[test]
fn saved_files_are_as_readable_as_created_ones() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let reference = dir.path().join("created");
    std::fs::File::create(&reference).unwrap();
    let model = load(&fixture_models()[0]).unwrap().model;
    let out = dir.path().join("m.onnx");
    let saved = save(&model, &out, &SaveOptions { external_data: ExternalData::Always { min_bytes: 1 } }).unwrap();
    assert_eq!(mode(&out), mode(&reference));
    let (data_path, _) = saved.external_data.unwrap();
    assert_eq!(mode(&data_path), mode(&reference));
}
