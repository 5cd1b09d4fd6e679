//! `cargo xtask conformance`: the ONNX backend tests and the fixtures run in whittle's runtime,
//! compared with their expected outputs; one line per test, a summary, and a manifest of the tests
//! expected to pass so that a regression fails the run.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use whittle_ir::{HostValue, Model};
use whittle_runtime::{RuntimeError, RuntimeOptions, Session};

/// The tests expected to pass, one name per line, sorted.
const MANIFEST: &str = "xtask/conformance-passing.txt";

/// The kinds of the ONNX backend test data, as `cargo xtask setup` writes them.
const KINDS: [&str; 5] = ["node", "simple", "pytorch-converted", "pytorch-operator", "light"];

/// The onnx backend runner's default tolerances.
const BACKEND_RTOL: f64 = 1e-3;
const BACKEND_ATOL: f64 = 1e-7;
/// The fixtures must match ONNX Runtime within 1e-4 relative; the absolute floor covers logits near zero.
const FIXTURE_RTOL: f64 = 1e-4;
const FIXTURE_ATOL: f64 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print results and fail when a test of the manifest does not pass.
    Check,
    /// Print results and rewrite the manifest with the tests that pass.
    Update,
}

enum Outcome {
    Pass,
    Fail(String),
    Unsupported(String),
}

struct Case {
    name: String,
    dir: PathBuf,
    rtol: f64,
    atol: f64,
}

pub fn run(root: &Path, mode: Mode, filter: Option<&str>) -> Result<()> {
    let cases = collect(root, filter)?;
    let started = Instant::now();
    // A panicking op is reported as that test's failure; the default hook would print it twice.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut passed, mut failed, mut unsupported) = (BTreeSet::new(), Vec::new(), Vec::new());
    for case in &cases {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run_case(case)))
            .unwrap_or_else(|panic| Outcome::Fail(format!("panicked: {}", panic_message(&panic))));
        match outcome {
            Outcome::Pass => {
                println!("pass         {}", case.name);
                passed.insert(case.name.clone());
            }
            Outcome::Fail(reason) => {
                println!("FAIL         {}: {reason}", case.name);
                failed.push(case.name.clone());
            }
            Outcome::Unsupported(reason) => {
                println!("unsupported  {}: {reason}", case.name);
                unsupported.push(case.name.clone());
            }
        }
    }
    let total = cases.len();
    let implemented = passed.len() + failed.len();
    let percent = |part: usize, whole: usize| if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 };
    println!(
        "conformance: {total} tests, {} pass, {} fail, {} unsupported op; {:.1}% pass overall, {:.1}% of tests whose ops are implemented ({:.1}s)",
        passed.len(),
        failed.len(),
        unsupported.len(),
        percent(passed.len(), total),
        percent(passed.len(), implemented),
        started.elapsed().as_secs_f64()
    );

    let manifest_path = root.join(MANIFEST);
    match mode {
        Mode::Update => {
            let mut text: String = passed.iter().map(|name| format!("{name}\n")).collect();
            if filter.is_some() {
                // A filtered run saw only some tests: keep the others' lines as they were.
                let kept = read_manifest(&manifest_path)?.into_iter().filter(|name| !cases.iter().any(|case| &case.name == name));
                let mut all: BTreeSet<String> = passed.clone();
                all.extend(kept);
                text = all.iter().map(|name| format!("{name}\n")).collect();
            }
            std::fs::write(&manifest_path, text)?;
            println!("wrote {MANIFEST}");
        }
        Mode::Check => {
            let expected = read_manifest(&manifest_path)?;
            let ran: BTreeSet<&str> = cases.iter().map(|case| case.name.as_str()).collect();
            let regressed: Vec<&String> =
                expected.iter().filter(|name| ran.contains(name.as_str()) && !passed.contains(*name)).collect();
            let newly: Vec<&String> = passed.iter().filter(|name| !expected.contains(*name)).collect();
            if !newly.is_empty() {
                println!(
                    "{} tests pass that {MANIFEST} does not list: `cargo xtask conformance --update` adds them",
                    newly.len()
                );
            }
            if !regressed.is_empty() {
                let names: Vec<&str> = regressed.iter().map(|name| name.as_str()).collect();
                bail!("{} tests of {MANIFEST} no longer pass: {}", regressed.len(), names.join(", "));
            }
        }
    }
    Ok(())
}

fn read_manifest(path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).map(String::from).collect())
}

fn collect(root: &Path, filter: Option<&str>) -> Result<Vec<Case>> {
    let data = std::env::var_os("WHITTLE_ONNX_DATA").map(PathBuf::from).unwrap_or_else(|| root.join("target/onnx-backend-data"));
    if !data.exists() {
        bail!("{} does not exist: run `cargo xtask setup` first", data.display());
    }
    let mut cases = Vec::new();
    for kind in KINDS {
        for dir in sorted_dirs(&data.join(kind))? {
            let name = format!("{kind}/{}", file_name(&dir));
            cases.push(Case { name, dir, rtol: BACKEND_RTOL, atol: BACKEND_ATOL });
        }
    }
    for dir in sorted_dirs(&root.join("fixtures"))? {
        if dir.join("model.onnx").exists() && dir.join("test_data_set_0").exists() {
            cases.push(Case { name: format!("fixtures/{}", file_name(&dir)), dir, rtol: FIXTURE_RTOL, atol: FIXTURE_ATOL });
        }
    }
    if let Some(filter) = filter {
        cases.retain(|case| case.name.contains(filter));
    }
    Ok(cases)
}

fn sorted_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{}", path.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn run_case(case: &Case) -> Outcome {
    let model = match whittle_onnx::load(&case.dir.join("model.onnx")) {
        Ok(loaded) => loaded.model,
        Err(err) => return Outcome::Fail(format!("load: {err}")),
    };
    let session = match Session::new(&model, &RuntimeOptions::default()) {
        Ok(session) => session,
        Err(err @ (RuntimeError::UnsupportedOp { .. } | RuntimeError::UnsupportedOpset { .. })) => {
            return Outcome::Unsupported(err.to_string())
        }
        Err(err) => return Outcome::Fail(format!("plan: {err}")),
    };
    let data_sets = match sorted_dirs(&case.dir) {
        Ok(dirs) => dirs,
        Err(err) => return Outcome::Fail(err.to_string()),
    };
    for data_set in data_sets {
        if let Err(reason) = run_data_set(&model, &session, &data_set, case) {
            return Outcome::Fail(format!("{}: {reason}", file_name(&data_set)));
        }
    }
    Outcome::Pass
}

fn run_data_set(model: &Model, session: &Session, dir: &Path, case: &Case) -> Result<(), String> {
    let mut feeds = Vec::new();
    for (index, input) in model.graph.feed_inputs().enumerate() {
        let path = dir.join(format!("input_{index}.pb"));
        if !path.exists() {
            // Optional inputs at the end may be left out of a data set.
            break;
        }
        let tensor = whittle_onnx::load_tensor(&path).map_err(|err| format!("input {index}: {err}"))?;
        feeds.push((input.name.clone(), tensor));
    }
    let outputs = session.run_values(feeds).map_err(|err| err.to_string())?;
    for (index, (name, actual)) in outputs.iter().enumerate() {
        let path = dir.join(format!("output_{index}.pb"));
        // The file does not say which message it holds: the output's kind does.
        let expected = match actual {
            HostValue::Tensor(_) => whittle_onnx::load_tensor(&path).map(HostValue::Tensor),
            _ => whittle_onnx::load_sequence(&path).map(HostValue::Sequence),
        }
        .map_err(|err| format!("expected output {index}: {err}"))?;
        compare(name, &expected, actual, case)?;
    }
    Ok(())
}

/// Compares host values of any kind: tensors with the case's tolerances, sequences element by
/// element, maps key by key (keys exactly, in order).
fn compare(name: &str, expected: &HostValue, actual: &HostValue, case: &Case) -> Result<(), String> {
    match (expected, actual) {
        (HostValue::Tensor(expected), HostValue::Tensor(actual)) if is_code_type(expected.dtype) => {
            compare_codes(name, expected, actual)
        }
        (HostValue::Tensor(expected), HostValue::Tensor(actual)) => {
            whittle_metrics::assert_close(name, expected, actual, case.rtol, case.atol).map_err(|err| err.to_string())
        }
        (HostValue::Sequence(expected), HostValue::Sequence(actual)) => {
            if expected.len() != actual.len() {
                return Err(format!("{name}: expected a sequence of {} items, got {}", expected.len(), actual.len()));
            }
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .try_for_each(|(index, (e, a))| compare(&format!("{name}[{index}]"), e, a, case))
        }
        (HostValue::Map(expected), HostValue::Map(actual)) => {
            if expected.keys != actual.keys {
                return Err(format!("{name}: expected map keys {:?}, got {:?}", expected.keys, actual.keys));
            }
            expected
                .values
                .iter()
                .zip(&actual.values)
                .enumerate()
                .try_for_each(|(index, (e, a))| compare(&format!("{name}{{{index}}}"), e, a, case))
        }
        (expected, actual) => Err(format!("{name}: expected a {}, got a {}", expected.kind_name(), actual.kind_name())),
    }
}

/// Whether `dtype` is a type whose elements are codes rather than numbers to take a tolerance on:
/// float8, float4, e8m0 and the 4- and 2-bit integers.
fn is_code_type(dtype: whittle_ir::DataType) -> bool {
    match dtype.bit_width() {
        Some(bits) if bits < 8 => true,
        Some(8) => dtype.is_float(),
        _ => false,
    }
}

/// Compares tensors of a code type exactly, code by code, NaN codes and signed zeros included:
/// a rounding difference in these types is a whole step, never within a tolerance.
fn compare_codes(name: &str, expected: &whittle_ir::Tensor, actual: &whittle_ir::Tensor) -> Result<(), String> {
    if expected.dtype != actual.dtype || expected.dims != actual.dims {
        return Err(format!("{name}: expected {} {:?}, got {} {:?}", expected.dtype, expected.dims, actual.dtype, actual.dims));
    }
    let (Some(want), Some(got)) = (expected.bytes(), actual.bytes()) else {
        return Err(format!("{name}: {} tensors without bytes", expected.dtype));
    };
    let bits = expected.dtype.bit_width().unwrap_or(8);
    let code = |bytes: &[u8], index: usize| (bytes[index * bits / 8] >> (index * bits % 8)) & ((1u16 << bits) - 1) as u8;
    let count = expected.element_count().unwrap_or(0);
    let differing: Vec<usize> = (0..count).filter(|&index| code(want, index) != code(got, index)).collect();
    match differing.first() {
        None => Ok(()),
        Some(&index) => Err(format!(
            "{name}: element {index} is code {:#04x}, expected {:#04x}; {} of {count} {} codes differ",
            code(got, index),
            code(want, index),
            differing.len(),
            expected.dtype
        )),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
