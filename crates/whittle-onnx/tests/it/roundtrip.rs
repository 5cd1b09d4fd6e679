//! Load -> save -> load gives an equal model, and saving is byte-for-byte deterministic.

use whittle_onnx::{load, save, SaveOptions};

use crate::fixture_models;

#[test]
fn fixtures_round_trip_to_an_equal_model_and_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for path in fixture_models() {
        let loaded = load(&path).unwrap();
        assert!(loaded.warnings.is_empty(), "{}: {:?}", path.display(), loaded.warnings);
        loaded.model.validate().unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let first = dir.path().join("first.onnx");
        let second = dir.path().join("second.onnx");
        save(&loaded.model, &first, &SaveOptions::default()).unwrap();
        let reloaded = load(&first).unwrap().model;
        assert_eq!(reloaded, loaded.model, "{} changed in a round trip", path.display());
        save(&reloaded, &second, &SaveOptions::default()).unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "{}: saves differ", path.display());
    }
}

#[test]
fn saving_in_memory_matches_saving_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = &fixture_models()[0];
    let model = load(path).unwrap().model;
    let out = dir.path().join("m.onnx");
    save(&model, &out, &SaveOptions::default()).unwrap();
    assert_eq!(whittle_onnx::to_bytes(&model).unwrap(), std::fs::read(&out).unwrap());
    let from_memory = whittle_onnx::load_from_bytes(&std::fs::read(path).unwrap(), path).unwrap().model;
    assert_eq!(from_memory, model);
}

#[test]
fn saving_onto_the_input_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    std::fs::copy(&fixture_models()[0], &input).unwrap();
    let same_file_other_spelling = dir.path().join(".").join("in.onnx");
    let err = whittle_onnx::check_not_input(&input, &same_file_other_spelling).unwrap_err();
    assert!(err.to_string().starts_with("refusing to overwrite the input model"), "{err}");
    whittle_onnx::check_not_input(&input, &dir.path().join("out.onnx")).unwrap();
}

#[test]
fn a_failed_save_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&fixture_models()[0]).unwrap().model;
    let missing_folder = dir.path().join("no/such/folder/m.onnx");
    let err = save(&model, &missing_folder, &SaveOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no/such/folder/m.onnx"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn test_data_tensors_load_with_their_names_and_shapes() {
    let dir = crate::workspace_root().join("fixtures/digits_cnn/test_data_set_0");
    let input = whittle_onnx::load_tensor(&dir.join("input_0.pb")).unwrap();
    assert_eq!(
        (input.name.as_str(), input.dtype, input.dims.as_slice()),
        ("input", whittle_ir::DataType::F32, &[8, 1, 8, 8][..])
    );
    let output = whittle_onnx::load_tensor(&dir.join("output_0.pb")).unwrap();
    assert_eq!((output.name.as_str(), output.dims.as_slice()), ("logits", &[8, 10][..]));
    // Pixels were scaled to [0, 1] by the generator.
    assert!(input.to_f32_vec().unwrap().iter().all(|&v| (0.0..=1.0).contains(&v)));
    let err = whittle_onnx::load_tensor(&dir.join("missing.pb")).unwrap_err();
    assert!(err.to_string().contains("missing.pb"), "{err}");
}

#[test]
fn zipmap_test_data_decodes_to_the_probabilities_of_the_plain_model() {
    // Both files were written by ONNX Runtime from the same LogisticRegression, once with ZipMap
    // (a SequenceProto of MapProto) and once without (a [8, 3] tensor), so they must hold the same numbers.
    let root = crate::workspace_root().join("fixtures");
    let maps = whittle_onnx::load_sequence(&root.join("iris_logreg_zipmap/test_data_set_0/output_1.pb")).unwrap();
    let dense = whittle_onnx::load_tensor(&root.join("iris_logreg/test_data_set_0/output_1.pb")).unwrap();
    assert_eq!(dense.dims, vec![8, 3]);
    let dense = dense.to_f32_vec().unwrap();
    assert_eq!(maps.len(), 8);
    for (row, map) in maps.iter().enumerate() {
        let whittle_ir::HostValue::Map(map) = map else { panic!("row {row} is a {}", map.kind_name()) };
        assert_eq!(map.keys, whittle_ir::MapKeys::Int64(vec![0, 1, 2]));
        for (class, value) in map.values.iter().enumerate() {
            let whittle_ir::HostValue::Tensor(tensor) = value else { panic!("value is a {}", value.kind_name()) };
            assert!(tensor.dims.is_empty());
            assert_eq!(tensor.to_f32_vec().unwrap(), vec![dense[row * 3 + class]], "row {row} class {class}");
        }
    }
}

#[test]
fn sequence_files_that_are_not_sequences_fail_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(crate::workspace_root().join("fixtures/iris_logreg_zipmap/test_data_set_0/output_1.pb")).unwrap();
    let path = dir.path().join("cut.pb");
    let mut rejected = 0;
    for cut in 1..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        if let Err(err) = whittle_onnx::load_sequence(&path) {
            assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
            rejected += 1;
        }
    }
    assert!(rejected > bytes.len() / 2, "only {rejected} of {} cuts rejected", bytes.len());
    // A tensor file holds a TensorProto, whose fields do not make a valid sequence of maps.
    let tensor = crate::workspace_root().join("fixtures/iris_logreg/test_data_set_0/output_1.pb");
    let err = whittle_onnx::load_sequence(&tensor).unwrap_err();
    assert!(err.to_string().contains("output_1.pb"), "{err}");
}
