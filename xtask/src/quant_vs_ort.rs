//! `cargo xtask quant-vs-ort`: whittle's INT8 quantization beside ONNX Runtime's own quantizer on
//! the same fixtures and calibration data: size, accuracy and latency of every model, all measured
//! in ONNX Runtime, written to `benches/results/quant-vs-ort.md`.
//!
//! whittle quantizes through its binary (`whittle quantize`, dev build: quantizing the fixtures
//! takes seconds and its own speed is not what is measured here); ORT quantizes and everything is
//! measured by `xtask/py/quant_vs_ort.py` in the interop venv.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{python, run};

const FIXTURES: &[&str] = &["digits_mlp", "digits_cnn", "transformer_tiny"];
const RESULTS: &str = "benches/results/quant-vs-ort.md";

pub fn run_all(root: &Path) -> Result<()> {
    let python = python::interop_venv(root)?;
    run(Command::new(env!("CARGO")).args(["build", "--quiet", "-p", "whittle-cli"]).current_dir(root))?;
    let whittle = root.join("target/debug/whittle");
    let mut text = String::from("# whittle's INT8 quantization vs ONNX Runtime's quantizer\n\n");
    let mut ort_version = String::new();
    let mut rows = String::new();
    for fixture in FIXTURES {
        let dir = root.join("fixtures").join(fixture);
        let out = root.join("target/tmp/quant-vs-ort").join(fixture);
        std::fs::create_dir_all(&out)?;
        let mut written = Vec::new();
        for (mode, name) in [("int8-static", "whittle-static.onnx"), ("int8-dynamic", "whittle-dynamic.onnx")] {
            let path = out.join(name);
            quantize_fixture(&whittle, &dir, mode, &path, &["--batch", "64"])?;
            written.push(path);
        }
        let output = Command::new(&python)
            .arg(root.join("xtask/py/quant_vs_ort.py"))
            .arg(&dir)
            .arg(&out)
            .arg(&written[0])
            .arg(&written[1])
            .output()
            .context("cannot start python")?;
        if !output.status.success() {
            bail!("quant_vs_ort.py failed on {fixture}: {}", String::from_utf8_lossy(&output.stderr));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let row: serde_json::Value = serde_json::from_str(line)?;
            ort_version = row["onnxruntime"].as_str().unwrap_or_default().to_string();
            let model = row["model"].as_str().unwrap_or_default();
            let cell = match row["error"].as_str() {
                Some(error) => format!("| {fixture} | {model} | - | - | - | fails: {} |", error.replace('|', "/")),
                None => format!(
                    "| {fixture} | {model} | {:.1} KiB | {:.2}% | {:.4} | |",
                    row["bytes"].as_f64().unwrap_or_default() / 1024.0,
                    row["accuracy"].as_f64().unwrap_or_default() * 100.0,
                    row["p50_ms"].as_f64().unwrap_or_default(),
                ),
            };
            eprintln!("{cell}");
            rows.push_str(&cell);
            rows.push('\n');
        }
    }
    text.push_str(&format!(
        "Machine: {}. Everything is measured in ONNX Runtime {ort_version} (CPUExecutionProvider, default graph \
         optimizations, 1 intra-op thread): accuracy on each fixture's eval.npz, p50 of one run over its first 8 \
         samples. whittle: `whittle quantize --mode int8-static` (MinMax, per-channel s8 weights, u8 activations, \
         calibrated on calib.npz) and `--mode int8-dynamic`. ORT: `quantize_static` (QDQ, MinMax, per_channel, \
         QUInt8 activations, QInt8 weights, the same calib.npz in batches of 64) and `quantize_dynamic` (per_channel, \
         QInt8). A model that could not be made or run says why, with ORT's own error. ORT 1.31's quantize_dynamic \
         fails on these exports with a shape-inference error (it transposes Gemm weights but keeps their declared \
         shapes in value_info); it is retried without the weights' value_info, and such rows say so.\n\n",
        crate::bench_ort::machine()
    ));
    text.push_str("| fixture | model | size | accuracy | ORT p50 ms | |\n| --- | --- | ---: | ---: | ---: | --- |\n");
    text.push_str(&rows);
    crate::bench_ort::publish(root, RESULTS, &text)
}

/// Quantizes the fixture in `dir` with the `whittle` binary in `mode` (calibrated on its calib.npz
/// for int8-static) into `path`, its latency not measured (`--iters 0`); `extra` are more flags.
pub fn quantize_fixture(whittle: &Path, dir: &Path, mode: &str, path: &Path, extra: &[&str]) -> Result<()> {
    let mut command = Command::new(whittle);
    command.arg("quantize").arg(dir.join("model.onnx")).arg("-o").arg(path).args(["--mode", mode]);
    command.arg("--data").arg(dir.join("eval.npz")).args(["--iters", "0", "--json"]).args(extra);
    if mode == "int8-static" {
        command.arg("--calib-data").arg(dir.join("calib.npz"));
    }
    let output = command.output().context("cannot start the whittle binary")?;
    if !output.status.success() {
        bail!("whittle quantize {mode} failed on {}: {}", dir.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
