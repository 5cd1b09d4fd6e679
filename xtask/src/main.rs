//! `cargo xtask <task>`: whittle's automation (Python venvs, test data, fixtures, heavy checks, CI).

mod bench_ort;
mod compare_onnxsim;
mod conformance;
mod int8_vs_fp32;
mod large_model;
mod python;
mod quant_vs_ort;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  setup        create the pinned interop venv (onnx, onnxruntime) and the ONNX backend test data
  test         setup, then the whole test suite: large-model, conformance and cargo test --workspace
  large-model  save a generated model over 2 GiB, check it with onnx.checker and ONNX Runtime, delete it
  conformance [FILTER] [--update] [--device NAME]
               run the ONNX backend tests and the fixtures in whittle's runtime; fail when a test
               listed in xtask/conformance-passing.txt no longer passes (--update rewrites the list).
               --device wgpu: on burn's wgpu backend (rebuilds the xtask with its `wgpu` feature),
               the tests of xtask/conformance-passing-wgpu.txt only; --update runs all (or FILTER's)
               and rewrites that list
  bench-ort [--seconds S]
               time every fixture in whittle (release build, original and `whittle fuse`d) and in
               ONNX Runtime at 1 and 2 threads, batch 1 and 8, the sides alternating over 3 rounds
               (S seconds each, default 1); print medians and the ratios, write
               benches/results/bench-ort.md
  int8-vs-fp32 [--seconds S]
               quantize every fixture (int8-static, int8-dynamic) and time the three models in
               whittle's runtime (release build) at 1 and 2 threads, batch 1 and 8; print medians and
               the ratios int8 / fp32, write benches/results/int8-vs-fp32.md
  quant-vs-ort whittle's int8-static and int8-dynamic beside ONNX Runtime's quantize_static and
               quantize_dynamic on the fixtures: size, accuracy and latency in ORT; writes
               benches/results/quant-vs-ort.md
  compare-onnxsim
               fuse every fixture and light zoo model with whittle and with onnxsim (pinned in the
               interop venv), check both in ONNX Runtime, print node counts side by side; fails when
               whittle leaves more nodes than onnxsim
  fixtures     regenerate fixtures/: models with torch and scikit-learn (downloads several GB the first
               time), format fixtures with the onnx package
";

/// The value of the task's `--seconds S` option, or `default`.
fn seconds_option(default: f64) -> Result<f64> {
    let rest: Vec<String> = std::env::args().skip(2).collect();
    Ok(match rest.iter().position(|arg| arg == "--seconds") {
        Some(index) => rest.get(index + 1).context("--seconds needs a value")?.parse().context("--seconds")?,
        None => default,
    })
}

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match task.as_str() {
        "setup" => setup(&root),
        "test" => {
            setup(&root)?;
            // The large-model check and conformance first, so that cargo test's summary lines end the output.
            large_model::run(&root)?;
            conformance::run(&root, conformance::Mode::Check, None, whittle_runtime::Backend::default())?;
            run(Command::new(env!("CARGO")).args(["test", "--workspace", "--all-targets"]).current_dir(&root))
        }
        "large-model" => {
            python::interop_venv(&root)?;
            large_model::run(&root)
        }
        "fixtures" => fixtures(&root),
        "quant-vs-ort" => quant_vs_ort::run_all(&root),
        "compare-onnxsim" => {
            // WHITTLE_PYTHON names a venv that already has the pinned packages (setup is skipped).
            let python = match std::env::var_os("WHITTLE_PYTHON") {
                Some(python) => PathBuf::from(python),
                None => {
                    setup(&root)?;
                    python::interop_venv(&root)?
                }
            };
            compare_onnxsim::run(&root, &python)
        }
        "bench-ort" => bench_ort::run_all(&root, seconds_option(1.0)?),
        "int8-vs-fp32" => int8_vs_fp32::run_all(&root, seconds_option(1.0)?),
        "conformance" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            let (mut mode, mut filter, mut device) = (conformance::Mode::Check, None, None);
            let mut args = rest.iter();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--update" => mode = conformance::Mode::Update,
                    "--device" => device = Some(args.next().context("--device needs a value")?.as_str()),
                    flag if flag.starts_with("--") => bail!("unknown conformance option '{flag}'\n{USAGE}"),
                    name => filter = Some(name),
                }
            }
            let backend = match device {
                None => whittle_runtime::Backend::default(),
                Some(name) => match whittle_runtime::Backend::from_name(name) {
                    Some(backend) => backend,
                    // The wgpu backend is a separate build of burn (minutes): built on demand.
                    None if name == "wgpu" => return run_with_wgpu(&root, &rest),
                    None => bail!("device '{name}' is not a backend whittle knows or is not in this build"),
                },
            };
            setup(&root)?;
            conformance::run(&root, mode, filter, backend)
        }
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task '{other}'\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one folder below the root").to_path_buf()
}

/// The interop venv and the backend test data that the test suite reads.
fn setup(root: &Path) -> Result<()> {
    let python = python::interop_venv(root)?;
    let data = root.join("target/onnx-backend-data");
    run(Command::new(&python).arg(root.join("xtask/py/backend_data.py")).arg("--out").arg(&data))?;
    Ok(())
}

fn fixtures(root: &Path) -> Result<()> {
    let venv_python = root.join("target/venvs/fixtures/bin/python");
    if !venv_python.exists() {
        run(Command::new("bash").arg(root.join("fixtures/generate/setup_venv.sh")))?;
    }
    run(Command::new(venv_python).arg(root.join("fixtures/generate/make_fixtures.py")).arg("--out").arg(root.join("fixtures")))?;
    let interop_python = python::interop_venv(root)?;
    run(Command::new(interop_python)
        .arg(root.join("fixtures/generate/make_format_fixtures.py"))
        .arg("--out")
        .arg(root.join("fixtures")))
}

/// Runs `cargo xtask conformance ARGS` again in a build with the `wgpu` feature.
///
/// The xtask is built together with whittle-runtime's `it` test: cargo resolves the features of
/// shared dependencies per invocation, and the test's dev-dependencies turn on `std` in indexmap,
/// which is below naga and wgpu-core. A plain `cargo run -p xtask --features wgpu` would therefore
/// build burn's whole wgpu stack a second time (cubecl, wgpu, naga: most of the wgpu build) beside
/// the one `cargo test -p whittle-runtime --features wgpu` makes; built this way, both share it.
fn run_with_wgpu(root: &Path, args: &[String]) -> Result<()> {
    run(Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", "xtask", "--package", "whittle-runtime", "--features", "xtask/wgpu"])
        .args(["--bin", "xtask", "--test", "it"])
        .current_dir(root))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    run(Command::new(target.join("debug/xtask")).arg("conformance").args(args).current_dir(root))
}

/// Runs a command, failing with its command line when it fails.
fn run(command: &mut Command) -> Result<()> {
    let line = format!("{command:?}");
    eprintln!("$ {line}");
    let status = command.status().with_context(|| format!("cannot start {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}
