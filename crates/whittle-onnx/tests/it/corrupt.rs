//! Corrupt input gives one clear error naming the file and the problem, never a panic.

use std::path::Path;

use whittle_onnx::{load, save, ExternalData, SaveOptions};

use crate::fixture_models;

fn error_for(path: &Path) -> String {
    match load(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn truncated_models_are_rejected_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&fixture_models()[0]).unwrap();
    let path = dir.path().join("truncated.onnx");
    // Every cut inside the last message field must fail; cuts on a field boundary may parse, which
    // is protobuf's nature, so only the ones that fail are checked for their message.
    let mut rejected = 0;
    for cut in (1..bytes.len()).step_by(97) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        if let Err(err) = load(&path) {
            let message = err.to_string();
            assert!(message.starts_with(&path.display().to_string()), "{message}");
            rejected += 1;
        }
    }
    assert!(rejected > 0);
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert!(error_for(&path).contains("not a valid ONNX model"));
}

#[test]
fn random_bytes_are_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.onnx");
    // A fixed linear congruential sequence: the same "random" file on every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let message = error_for(&path);
    assert!(message.starts_with(&format!("{}: ", path.display())), "{message}");
}

#[test]
fn a_directory_an_empty_file_and_a_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(error_for(dir.path()), format!("{}: is a directory, not an ONNX model", dir.path().display()));
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(error_for(&empty), format!("{}: empty file, not an ONNX model", empty.display()));
    let missing = dir.path().join("missing.onnx");
    assert!(error_for(&missing).starts_with(&format!("{}: No such file", missing.display())));
}

#[test]
fn missing_or_short_external_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&fixture_models()[0]).unwrap().model;
    let path = dir.path().join("m.onnx");
    save(&model, &path, &SaveOptions { external_data: ExternalData::Always { min_bytes: 1024 } }).unwrap();
    let data_path = dir.path().join("m.onnx.data");
    let data = std::fs::read(&data_path).unwrap();

    std::fs::write(&data_path, &data[..data.len() - 1]).unwrap();
    let message = error_for(&path);
    assert!(message.contains("external data m.onnx.data: needs bytes"), "{message}");
    assert!(message.starts_with(&path.display().to_string()), "{message}");

    std::fs::remove_file(&data_path).unwrap();
    let message = error_for(&path);
    assert!(message.contains("external data m.onnx.data: cannot open"), "{message}");
}

#[test]
fn flipped_bytes_never_panic() {
    // Loading must end in a model or an error, whatever byte is damaged; a panic fails this test.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for path in fixture_models() {
        let original = std::fs::read(&path).unwrap();
        for _ in 0..300 {
            let mut bytes = original.clone();
            let position = (next() % bytes.len() as u64) as usize;
            bytes[position] ^= 1 << (next() % 8);
            if let Ok(loaded) = whittle_onnx::load_from_bytes(&bytes, &path) {
                let _ = loaded.model.validate();
                let _ = loaded.model.to_string();
                let _ = whittle_onnx::to_bytes(&loaded.model);
            }
        }
    }
}
