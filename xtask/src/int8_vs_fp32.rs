//! `cargo xtask int8-vs-fp32`: each fixture's fp32 model beside its int8-static and int8-dynamic
//! quantizations (and int8-static on the AVX2 kernels alone), all in whittle's own runtime, in the
//! same run, at batch 1, 8 and 64 and 1 and 2 threads; a table of medians and the ratios int8 / fp32, written to `benches/results/`. Batch 64
//! is where the kernels weigh more than the per-step costs of these small models.
//!
//! The brief's promise is that whittle's INT8 is faster than its fp32, or that it says why not: this is
//! where that is measured. Models are quantized with the release binary (`whittle quantize`, as
//! users run it) into `target/tmp/int8-vs-fp32/`, and timed through `whittle bench --json`. The four
//! sides alternate per configuration, so a noisy neighbour on this shared machine slows all sides of
//! a ratio rather than one; the ratios are the result, and the machine's load is printed with them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

use crate::bench_ort::{machine, median, publish, whittle_p50, ROUNDS};
use crate::quant_vs_ort::quantize_fixture;
use crate::run;

const FIXTURES: &[&str] = &["digits_mlp", "digits_cnn", "transformer_tiny"];
const BATCHES: &[usize] = &[1, 8, 64];
const THREADS: &[usize] = &[1, 2];
const RESULTS: &str = "benches/results/int8-vs-fp32.md";

pub fn run_all(root: &Path, seconds: f64) -> Result<()> {
    run(Command::new(env!("CARGO")).args(["build", "--release", "--quiet", "-p", "whittle-cli"]).current_dir(root))?;
    let whittle = root.join("target/release/whittle");
    let load_before = load();
    let mut rows = String::new();
    for fixture in FIXTURES {
        let dir = root.join("fixtures").join(fixture);
        let out = root.join("target/tmp/int8-vs-fp32").join(fixture);
        std::fs::create_dir_all(&out)?;
        // (model, extra `whittle bench` flags): fp32, int8-static, int8-dynamic, and int8-static
        // on the AVX2 kernels alone (what a CPU without AVX512-VNNI runs).
        let mut models: Vec<(PathBuf, &[&str])> = vec![(dir.join("model.onnx"), &[])];
        for mode in ["int8-static", "int8-dynamic"] {
            let path = out.join(format!("{mode}.onnx"));
            quantize_fixture(&whittle, &dir, mode, &path, &["--force"])?;
            models.push((path, &[]));
        }
        models.push((out.join("int8-static.onnx"), &["--int8-kernels", "avx2"]));
        for &batch in BATCHES {
            for &threads in THREADS {
                // The three models take turns over ROUNDS rounds; each figure is the median of its
                // rounds' p50s (see bench_ort::ROUNDS).
                let mut rounds = vec![Vec::new(); models.len()];
                let (batch_text, threads_text, seconds_text) = (batch.to_string(), threads.to_string(), seconds.to_string());
                for _ in 0..ROUNDS {
                    for ((model, extra), times) in models.iter().zip(&mut rounds) {
                        let data = dir.join("eval.npz");
                        match whittle_p50(&whittle, model, &data, &batch_text, &threads_text, &seconds_text, extra)? {
                            Ok(ms) => times.push(ms),
                            Err(reason) => bail!("whittle bench failed on {}: {reason}", model.display()),
                        }
                    }
                }
                let p50: Vec<f64> = rounds.iter_mut().map(|times| median(times)).collect();
                let row = format!(
                    "| {fixture} | {batch} | {threads} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} | {:.2} |",
                    p50[0],
                    p50[1],
                    p50[2],
                    p50[3],
                    p50[1] / p50[0],
                    p50[2] / p50[0],
                    p50[3] / p50[0]
                );
                eprintln!("{row}");
                rows.push_str(&row);
                rows.push('\n');
            }
        }
    }
    let mut text = String::from("# whittle's INT8 vs its fp32, p50 latency per run in whittle's runtime\n\n");
    text.push_str(&format!(
        "Machine: {}. Load average (1, 5, 15 min) before: {load_before}, after: {}. whittle: release build, \
         burn-flex, `whittle bench --json` on the first BATCH samples of each fixture's eval.npz, {seconds} s of \
         timed runs after 5 warm-up runs per model and round, {ROUNDS} rounds per cell with the four sides \
         alternating, each figure the median of its rounds' p50s, in one run of `cargo xtask int8-vs-fp32`. int8-static: `whittle quantize --mode int8-static` (QDQ, MinMax on calib.npz, per-channel \
         s8 weights, u8 activations); int8-dynamic: `--mode int8-dynamic`; AVX2: the int8-static model on \
         `whittle bench --int8-kernels avx2`, the exact AVX2 kernels that CPUs without AVX512-VNNI run, timed \
         here against fp32 on this CPU's own (AVX-512) kernels, so its ratio is above what such a CPU sees, \
         whose fp32 runs on AVX2 too. Ratio = int8 / fp32 (below 1.0: INT8 is faster).\n\n",
        machine(),
        load()
    ));
    text.push_str(
        "| fixture | batch | threads | fp32 p50 ms | int8-static p50 ms | int8-dynamic p50 ms | int8-static AVX2 p50 ms | static / fp32 | dynamic / fp32 | AVX2 static / fp32 |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    text.push_str(&rows);
    publish(root, RESULTS, &text)
}

/// The load averages from `/proc/loadavg`, for the results header: the machine is shared.
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(", ")
}
