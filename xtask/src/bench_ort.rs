//! `cargo xtask bench-ort`: every fixture in whittle's runtime and in ONNX Runtime, on the same samples, in the
//! same run, at 1 and 2 threads; a table of medians and the ratio whittle / ORT, written to `benches/results/`.
//!
//! Each fixture is also fused with `whittle fuse` (at opset 23 where the upgrade is allowed, so GELU and
//! attention become single ops) and the fused model timed in whittle too: the column that shows whether
//! fusion lowers latency in whittle's runtime, not only the node count. ORT runs the original, since it
//! fuses at session creation itself.
//!
//! whittle is timed through its release binary (`whittle bench --json`), as users run it; ORT through
//! `xtask/py/bench_ort.py` in the interop venv. The two alternate per configuration, so a noisy neighbour
//! on this shared machine slows both sides of a ratio rather than one. Absolute times from one run mean
//! little here; the ratios are the result.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{python, run};

/// Fixtures with eval data whose models whittle can run, or at least tries to (the table says why not).
const FIXTURES: &[&str] = &["digits_mlp", "digits_cnn", "transformer_tiny", "iris_logreg"];
const BATCHES: &[usize] = &[1, 8];
const THREADS: &[usize] = &[1, 2];
const RESULTS: &str = "benches/results/bench-ort.md";

struct Row {
    fixture: String,
    batch: usize,
    threads: usize,
    /// p50 in ms of whittle, of whittle on the fused model, and of ORT; or why whittle could not run
    /// the model.
    result: Result<Times, String>,
}

struct Times {
    whittle: f64,
    fused: Option<f64>,
    ort: f64,
}

/// Fuses `model` into `out` with whittle's default pipeline, at opset 23 when the model can move
/// there, else at its own opset; `None` when fusing fails (the table then has no fused figure).
fn fuse(whittle: &Path, model: &Path, out: &Path) -> Option<std::path::PathBuf> {
    for target in [Some("23"), None] {
        let mut command = Command::new(whittle);
        command.arg("fuse").arg(model).arg("-o").arg(out).args(["--iters", "0"]);
        if let Some(opset) = target {
            command.args(["--target-opset", opset]);
        }
        if command.output().is_ok_and(|output| output.status.success()) {
            return Some(out.to_path_buf());
        }
    }
    None
}

/// Times `model` with `whittle bench --json`; the p50 in ms, or the first line of its error. Shared
/// with `int8-vs-fp32`.
pub(crate) fn whittle_p50(
    whittle: &Path,
    model: &Path,
    data: &Path,
    batch: &str,
    threads: &str,
    seconds: &str,
    extra: &[&str],
) -> Result<Result<f64, String>> {
    let output = Command::new(whittle)
        .arg("bench")
        .arg(model)
        .arg("--data")
        .arg(data)
        .args(["--batch", batch, "--threads", threads, "--seconds", seconds, "--json"])
        .args(extra)
        .output()
        .context("cannot start the whittle binary")?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        return Ok(Err(message.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string()));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(Ok(report["latency"]["p50_ms"].as_f64().context("whittle bench printed no p50_ms")?))
}

/// Rounds of one cell: whittle, whittle fused and ORT take turns this many times and each side's
/// figure is the median of its p50s. A single round moved by up to 1.5x between runs on this shared
/// machine (digits_cnn at batch 8: 22 and 33 us for the same model in one table), in bursts that
/// one round of a side could fall into alone.
pub(crate) const ROUNDS: usize = 3;

/// Times one cell (`[batch, threads, seconds]`) in [`ROUNDS`] alternating rounds: the median p50s and
/// ORT's version, or why whittle could not run the model.
fn time_cell(
    root: &Path,
    python: &Path,
    whittle: &Path,
    model: &Path,
    fused: Option<&Path>,
    data: &Path,
    [batch, threads, seconds]: [&str; 3],
) -> Result<Result<(Times, String), String>> {
    let (mut plain, mut fused_times, mut ort, mut version) = (Vec::new(), Vec::new(), Vec::new(), String::new());
    for _ in 0..ROUNDS {
        match whittle_p50(whittle, model, data, batch, threads, seconds, &[])? {
            Ok(p50) => plain.push(p50),
            Err(reason) => return Ok(Err(reason)),
        }
        if let Some(fused) = fused {
            if let Ok(p50) = whittle_p50(whittle, fused, data, batch, threads, seconds, &[])? {
                fused_times.push(p50);
            }
        }
        let ort_run = Command::new(python)
            .arg(root.join("xtask/py/bench_ort.py"))
            .arg(model)
            .arg(data)
            .args(["--batch", batch, "--threads", threads, "--seconds", seconds])
            .output()
            .context("cannot start python")?;
        if !ort_run.status.success() {
            bail!("bench_ort.py failed on {}: {}", model.display(), String::from_utf8_lossy(&ort_run.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&ort_run.stdout)?;
        version = report["onnxruntime"].as_str().unwrap_or_default().to_string();
        ort.push(report["p50_ms"].as_f64().context("bench_ort.py printed no p50_ms")?);
    }
    let fused = (!fused_times.is_empty()).then(|| median(&mut fused_times));
    Ok(Ok((Times { whittle: median(&mut plain), fused, ort: median(&mut ort) }, version)))
}

/// The median of `values` (the upper one of an even count), which must not be empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn run_all(root: &Path, seconds: f64) -> Result<()> {
    let python = python::interop_venv(root)?;
    run(Command::new(env!("CARGO")).args(["build", "--release", "--quiet", "-p", "whittle-cli"]).current_dir(root))?;
    let whittle = root.join("target/release/whittle");
    let mut rows = Vec::new();
    let mut ort_version = String::new();
    let fused_dir = root.join("target/bench-ort");
    std::fs::create_dir_all(&fused_dir)?;
    for fixture in FIXTURES {
        let model = root.join("fixtures").join(fixture).join("model.onnx");
        let data = root.join("fixtures").join(fixture).join("eval.npz");
        let fused = fuse(&whittle, &model, &fused_dir.join(format!("{fixture}-fused.onnx")));
        for &batch in BATCHES {
            for &threads in THREADS {
                let (batch_text, threads_text, seconds_text) = (batch.to_string(), threads.to_string(), seconds.to_string());
                let result = time_cell(
                    root,
                    &python,
                    &whittle,
                    &model,
                    fused.as_deref(),
                    &data,
                    [&batch_text, &threads_text, &seconds_text],
                );
                let result = match result? {
                    Ok((times, version)) => {
                        ort_version = version;
                        Ok(times)
                    }
                    Err(reason) => Err(reason),
                };
                let row = Row { fixture: fixture.to_string(), batch, threads, result };
                eprintln!("{}", format_row(&row));
                rows.push(row);
            }
        }
    }
    let text = table(&rows, &machine(), &ort_version, seconds);
    publish(root, RESULTS, &text)
}

/// Prints a results table and writes it to `relative` under the repository.
pub fn publish(root: &Path, relative: &str, text: &str) -> Result<()> {
    print!("{text}");
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().context("results folder")?)?;
    std::fs::write(&path, text)?;
    eprintln!("wrote {relative}");
    Ok(())
}

fn format_row(row: &Row) -> String {
    match &row.result {
        Ok(Times { whittle, fused, ort }) => {
            let (fused_ms, fused_ratio) = match fused {
                Some(fused) => (format!("{fused:.4}"), format!("{:.2}", fused / ort)),
                None => ("-".to_string(), "-".to_string()),
            };
            format!(
                "| {} | {} | {} | {:.4} | {fused_ms} | {:.4} | {:.2} | {fused_ratio} |",
                row.fixture,
                row.batch,
                row.threads,
                whittle,
                ort,
                whittle / ort
            )
        }
        Err(reason) => {
            format!("| {} | {} | {} | - | - | - | not run: {} | |", row.fixture, row.batch, row.threads, reason.replace('|', "/"))
        }
    }
}

fn table(rows: &[Row], machine: &str, ort_version: &str, seconds: f64) -> String {
    let mut text = String::from("# whittle vs ONNX Runtime, p50 latency per run\n\n");
    text.push_str(&format!(
        "Machine: {machine}. ONNX Runtime {ort_version} (CPUExecutionProvider, default graph optimizations, \
         intra-op threads as listed, inter-op 1). whittle: release build, burn-flex. Same samples (the first BATCH \
         of each fixture's eval.npz), {seconds} s of timed runs after 5 warm-up runs per side and round, {ROUNDS} \
         rounds per cell with the sides alternating, each figure the median of its rounds' p50s, in one run of \
         `cargo xtask bench-ort`. Ratio = whittle / ORT (below 1.0: whittle is faster). \
         Fused: the model `whittle fuse` writes (opset 23 where the model can move there), timed in whittle; ORT \
         runs the original, which it fuses itself at session creation.\n\n"
    ));
    text.push_str(
        "| fixture | batch | threads | whittle p50 ms | whittle fused p50 ms | ORT p50 ms | ratio | fused ratio |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        text.push_str(&format_row(row));
        text.push('\n');
    }
    text
}

/// The CPU model and core count, for the results header.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // The int8 kernels differ by these (rten's VNNI GEMM, whittle's VNNI convolution).
    let flags = cpuinfo.lines().find(|line| line.starts_with("flags")).unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|word| word == flag);
    let simd = match (has("avx512f"), has("avx512_vnni")) {
        (true, true) => "AVX-512 with VNNI",
        (true, false) => "AVX-512 without VNNI",
        _ if has("avx2") => "AVX2",
        _ => "no AVX2",
    };
    format!("{model}, {cores} vCPUs, {simd}")
}
