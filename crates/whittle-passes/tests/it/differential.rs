//! Differential tests: original and fused model on the same inputs, in whittle's runtime and in
//! ONNX Runtime, within the tolerance the passes declare.

use std::path::{Path, PathBuf};
use std::process::Command;

use whittle_ir::{HostValue, Model, Tensor};
use whittle_passes::{optimize, FuseOptions, Tolerance};
use whittle_runtime::{RuntimeOptions, Session};

use crate::{models, setting, workspace_root};

/// The inputs of `dir/test_data_set_0`, named after the model's feed inputs; synthetic without it,
/// `None` when symbolic dims leave the synthetic shapes open (the custom-domain fixture).
fn feed(model: &Model, dir: &Path) -> Option<Vec<(String, Tensor)>> {
    let inputs: Vec<_> = model.graph.feed_inputs().cloned().collect();
    let set = dir.join("test_data_set_0");
    if set.is_dir() {
        return Some(
            inputs
                .iter()
                .enumerate()
                .map(|(index, input)| {
                    (input.name.clone(), whittle_onnx::load_tensor(&set.join(format!("input_{index}.pb"))).unwrap())
                })
                .collect(),
        );
    }
    whittle_eval::synthetic_feed(&inputs, &whittle_eval::InputShapes::default()).ok()
}

/// Runs `model` in whittle's runtime; `None` when it uses ops the runtime does not have.
fn run(model: &Model, feed: &[(String, Tensor)]) -> Option<Vec<(String, HostValue)>> {
    let session = Session::new(model, &RuntimeOptions::default()).ok()?;
    Some(session.run_values(feed.to_vec()).unwrap())
}

fn check_outputs(name: &str, want: &[(String, HostValue)], got: &[(String, HostValue)], tolerance: Tolerance) {
    assert_eq!(want.len(), got.len(), "{name}: output count");
    for ((output, want), (fused_output, got)) in want.iter().zip(got) {
        assert_eq!(output, fused_output, "{name}: outputs keep their names");
        match (want, got) {
            (HostValue::Tensor(want), HostValue::Tensor(got)) => {
                tolerance.check(output, want, got).unwrap_or_else(|err| panic!("{name}: {err}"))
            }
            (want, got) => assert_eq!(want, got, "{name}: output {output}"),
        }
    }
}

struct Fused {
    name: String,
    dir: PathBuf,
    nodes_before: usize,
    nodes_after: usize,
    tolerance: Tolerance,
    fused: Model,
}

/// Every model through the default pipeline (and, where the opset upgrade is possible, the
/// pipeline at opset 20 with Gelu and 23 with Attention), checked in whittle's runtime.
fn fuse_all() -> Vec<Fused> {
    let mut fused_models = Vec::new();
    for (name, dir) in models() {
        let original = whittle_onnx::load(&dir.join("model.onnx")).unwrap().model;
        for target_opset in [None, Some(20), Some(23)] {
            let options = FuseOptions { target_opset, ..FuseOptions::default() };
            let mut fused = original.clone();
            let (runs, tolerance) = match optimize(&mut fused, &options) {
                Ok(result) => result,
                // Upgrading is refused when an op changed meaning between the opsets.
                Err(whittle_passes::PassError::Opset { .. }) if target_opset.is_some() => continue,
                Err(err) => panic!("{name}: {err}"),
            };
            assert!(runs.iter().all(|run| run.converged), "{name}: a pass did not converge");
            // The zoo models run at 224x224 in whittle's runtime in about 4 s each on 2 cores: they
            // are compared in ONNX Runtime only (below), the fixtures in both.
            let feed = if name.starts_with("fixtures/") { feed(&original, &dir) } else { None };
            let outputs = |model: &Model| feed.as_ref().and_then(|feed| run(model, feed));
            match (outputs(&original), outputs(&fused)) {
                (Some(want), Some(got)) => check_outputs(&name, &want, &got, tolerance),
                (None, None) => {}
                // A fused op the runtime lacks (Attention, in a build without it) is left to ONNX
                // Runtime's check below; any other failure is a broken rewrite.
                (Some(_), None) => match Session::new(&fused, &RuntimeOptions::default()) {
                    Err(whittle_runtime::RuntimeError::UnsupportedOp { .. }) => {}
                    other => panic!("{name}: the runtime runs the original but not the fused model: {other:?}"),
                },
                (None, Some(_)) => {}
            }
            let label = match target_opset {
                Some(opset) => format!("{name}@{opset}"),
                None => name.clone(),
            };
            let (nodes_before, nodes_after) = (original.graph.nodes.len(), fused.graph.nodes.len());
            assert!(nodes_after <= nodes_before, "{label}: {nodes_before} -> {nodes_after} nodes");
            fused_models.push(Fused { name: label, dir: dir.clone(), nodes_before, nodes_after, tolerance, fused });
        }
    }
    fused_models
}

#[test]
fn fused_models_match_their_originals_in_whittle_and_onnx_runtime() {
    let root = workspace_root();
    let python = setting("WHITTLE_PYTHON", root.join("target/venvs/interop/bin/python"));
    let out = tempfile::tempdir().unwrap();
    let fused_models = fuse_all();
    let mut manifest = Vec::new();
    for fused in &fused_models {
        eprintln!("{}: {} -> {} nodes", fused.name, fused.nodes_before, fused.nodes_after);
        // ORT cannot run the custom-domain fixtures' ops; whittle's checks above cover them.
        let custom = fused
            .fused
            .graph
            .nodes
            .iter()
            .any(|node| !matches!(whittle_ir::canonical_domain(&node.domain), "ai.onnx" | "ai.onnx.ml"));
        if custom {
            continue;
        }
        let path = out.path().join(format!("{}.onnx", fused.name.replace(['/', '@'], "_")));
        whittle_onnx::save(&fused.fused, &path, &whittle_onnx::SaveOptions::default()).unwrap();
        let (rtol, atol) = fused.tolerance.bounds();
        let set = fused.dir.join("test_data_set_0");
        manifest.push(serde_json::json!({
            "name": fused.name,
            "original": fused.dir.join("model.onnx").display().to_string(),
            "fused": path.display().to_string(),
            "rtol": rtol,
            "atol": atol,
            "data_sets": if set.is_dir() { vec![set.display().to_string()] } else { Vec::new() },
        }));
    }
    let manifest_path = out.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let output =
        Command::new(&python).arg(root.join("xtask/py/fused_check.py")).arg(&manifest_path).output().expect("run fused_check.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ONNX Runtime disagrees with fused models:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
