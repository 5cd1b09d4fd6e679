//! `cargo xtask compare-onnxsim`: whittle's fusion pipeline and onnxsim on the same models, node
//! counts side by side, every result checked against the original in ONNX Runtime.
//!
//! whittle runs here with onnxsim's folding budget (its `tensor_size_threshold` default, 1.5 GB) so
//! that both fold the same constants: the zoo's light models generate their weights with
//! ConstantOfShape, and with whittle's default 16 MiB budget the largest (VGG's 411 MB layer) stay
//! generators. The check fails when whittle leaves more nodes than onnxsim on any model.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use whittle_passes::{optimize, FuseOptions};

/// onnxsim's default `tensor_size_threshold`.
const ONNXSIM_FOLD_BYTES: usize = 1_500_000_000;

pub fn run(root: &Path, python: &Path) -> Result<()> {
    let data = std::env::var_os("WHITTLE_ONNX_DATA").map_or_else(|| root.join("target/onnx-backend-data"), PathBuf::from);
    let out = root.join("target/compare-onnxsim");
    std::fs::create_dir_all(out.join("onnxsim"))?;
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for (kind, folder) in [("fixtures", root.join("fixtures")), ("light", data.join("light"))] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("{}: run `cargo xtask setup` first", folder.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|dir| dir.join("model.onnx").is_file())
            .collect();
        found.sort();
        dirs.extend(
            found.into_iter().map(|dir| (format!("{kind}/{}", dir.file_name().unwrap_or_default().to_string_lossy()), dir)),
        );
    }
    let mut manifest = Vec::new();
    for (name, dir) in dirs {
        let mut model = whittle_onnx::load(&dir.join("model.onnx"))?.model;
        // ONNX Runtime and onnxsim know only the standard domains.
        if model.graph.nodes.iter().any(|node| !matches!(whittle_ir::canonical_domain(&node.domain), "ai.onnx" | "ai.onnx.ml")) {
            continue;
        }
        let options = FuseOptions { fold_max_bytes: ONNXSIM_FOLD_BYTES, ..FuseOptions::default() };
        let (_, tolerance) = optimize(&mut model, &options).with_context(|| name.clone())?;
        let fused = out.join(format!("{}.onnx", name.replace('/', "_")));
        whittle_onnx::save(&model, &fused, &whittle_onnx::SaveOptions::default())?;
        let (rtol, atol) = tolerance.bounds();
        let set = dir.join("test_data_set_0");
        manifest.push(serde_json::json!({
            "name": name,
            "original": dir.join("model.onnx").display().to_string(),
            "fused": fused.display().to_string(),
            "rtol": rtol,
            "atol": atol,
            "data_sets": if set.is_dir() { vec![set.display().to_string()] } else { Vec::new() },
        }));
    }
    let manifest_path = out.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)?)?;
    crate::run(
        Command::new(python)
            .arg(root.join("xtask/py/fused_check.py"))
            .arg(&manifest_path)
            .arg("--onnxsim")
            .arg(out.join("onnxsim")),
    )
}
