//! Every model of the ONNX backend test data and every fixture: load -> save -> load is equal, saves
//! are deterministic, and onnx.checker and ONNX Runtime agree that the saved model is the original.
//!
//! The data and the pinned Python venv are made by `cargo xtask setup` (which `cargo xtask test`
//! runs first); their locations can be overridden with WHITTLE_ONNX_DATA and WHITTLE_PYTHON.

use std::path::{Path, PathBuf};
use std::process::Command;

use whittle_ir::ModelSummary;
use whittle_onnx::{load, save, SaveOptions};

use crate::{fixture_models, workspace_root};

const KINDS: [&str; 5] = ["node", "simple", "pytorch-converted", "pytorch-operator", "light"];

fn setting(variable: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or(default);
    assert!(path.exists(), "{} does not exist: run `cargo xtask setup` first (or set {variable})", path.display());
    path
}

fn data_sets(model_dir: &Path) -> Vec<String> {
    let mut sets: Vec<String> = std::fs::read_dir(model_dir)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir() && path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("test_data_set_")))
        .map(|path| path.display().to_string())
        .collect();
    sets.sort();
    sets
}

#[test]
fn backend_test_data_and_fixtures_round_trip_and_match_in_onnx_runtime() {
    let root = workspace_root();
    let data = setting("WHITTLE_ONNX_DATA", root.join("target/onnx-backend-data"));
    let python = setting("WHITTLE_PYTHON", root.join("target/venvs/interop/bin/python"));
    let out = tempfile::tempdir().unwrap();

    let mut models: Vec<(String, PathBuf)> = Vec::new();
    for kind in KINDS {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join(kind))
            .unwrap_or_else(|err| panic!("{}: {err}", data.join(kind).display()))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        dirs.sort();
        models.extend(dirs.into_iter().map(|dir| (format!("{kind}/{}", dir.file_name().unwrap().to_string_lossy()), dir)));
    }
    let node_tests = models.iter().filter(|(name, _)| name.starts_with("node/")).count();
    assert!(node_tests > 1000, "expected the ONNX node tests, found {node_tests}");
    for path in fixture_models() {
        let dir = path.parent().unwrap().to_path_buf();
        models.push((format!("fixtures/{}", dir.file_name().unwrap().to_string_lossy()), dir));
    }

    let mut failures = Vec::new();
    let mut manifest = Vec::new();
    let mut summaries = Vec::new();
    for (name, dir) in &models {
        let original = dir.join("model.onnx");
        let saved_dir = out.path().join(name);
        std::fs::create_dir_all(&saved_dir).unwrap();
        let saved = saved_dir.join("model.onnx");
        let result = (|| -> Result<(), String> {
            let model = load(&original).map_err(|err| err.to_string())?.model;
            summaries.push((name.clone(), original.clone(), serde_json::to_value(ModelSummary::new(&model, 0)).unwrap()));
            model.validate().map_err(|err| format!("validate: {err}"))?;
            save(&model, &saved, &SaveOptions::default()).map_err(|err| err.to_string())?;
            let reloaded = load(&saved).map_err(|err| err.to_string())?.model;
            if reloaded != model {
                return Err("reloaded model differs from the loaded one".into());
            }
            let again = whittle_onnx::to_bytes(&reloaded).map_err(|err| err.to_string())?;
            if again != std::fs::read(&saved).map_err(|err| err.to_string())? {
                return Err("saving the reloaded model gave different bytes".into());
            }
            Ok(())
        })();
        match result {
            Ok(()) => manifest.push(serde_json::json!({
                "name": name,
                "original": original.display().to_string(),
                "saved": saved.display().to_string(),
                "data_sets": data_sets(dir),
            })),
            Err(err) => failures.push(format!("{name}: {err}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} models failed to round-trip:\n{}", failures.len(), models.len(), failures.join("\n"));

    compare_summaries_with_onnx(&python, &root, out.path(), &summaries);

    let manifest_path = out.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let script = root.join("xtask/py/interop_check.py");
    let output = Command::new(&python).arg(&script).arg(&manifest_path).output().expect("run interop_check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "onnx.checker / ONNX Runtime found differences:\n{stdout}");
}

/// `whittle inspect`'s numbers for every model equal those the onnx Python package computes.
fn compare_summaries_with_onnx(python: &Path, root: &Path, out: &Path, summaries: &[(String, PathBuf, serde_json::Value)]) {
    let listing = out.join("summaries.txt");
    let paths: Vec<String> = summaries.iter().map(|(_, path, _)| path.display().to_string()).collect();
    std::fs::write(&listing, paths.join("\n")).unwrap();
    let output = Command::new(python).arg(root.join("xtask/py/summarize.py")).arg("--list").arg(&listing).output().unwrap();
    assert!(output.status.success(), "summarize.py: {}", String::from_utf8_lossy(&output.stderr));
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(expected.len(), summaries.len());
    let mut differences = Vec::new();
    for ((name, _, actual), expected) in summaries.iter().zip(&expected) {
        for (key, expected_value) in expected.as_object().unwrap() {
            if actual.get(key) != Some(expected_value) {
                differences.push(format!("{name}: {key}: whittle {:?}, onnx {expected_value}", actual.get(key)));
            }
        }
    }
    assert!(differences.is_empty(), "{} differences from onnx:\n{}", differences.len(), differences.join("\n"));
}
