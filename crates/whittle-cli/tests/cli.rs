//! End-to-end tests of the `whittle` binary: output on stdout, one-line errors on stderr, exit codes.

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name).join("model.onnx")
}

const FIXTURES: [&str; 5] = ["digits_cnn", "digits_mlp", "iris_logreg", "iris_logreg_zipmap", "transformer_tiny"];

fn whittle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whittle")).args(args).env("NO_COLOR", "1").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Fails unless the command failed with exit code 1 and one `error:` line naming `path`.
fn assert_clean_failure(output: &Output, path: &Path) -> String {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(output.stdout.is_empty());
    assert_eq!(message.lines().count(), 1, "expected one line, got: {message}");
    assert!(message.starts_with(&format!("error: {}", path.display())), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    message
}

fn meta(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures").join(name).join("meta.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn inspect_json_agrees_with_the_generator_metadata() {
    for name in FIXTURES {
        let path = fixture(name);
        let output = whittle(&["inspect", path.to_str().unwrap(), "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        // meta.json was written by the fixture generator from the onnx Python package's view of the model.
        let meta = meta(name);
        let model = &meta["model"];
        assert_eq!(report["ir_version"], model["ir_version"], "{name}");
        assert_eq!(report["opsets"], model["opset_import"], "{name}");
        assert_eq!(report["producer"], model["producer"], "{name}");
        // The generator writes `domain::Op` for ops outside the default domain.
        let op_counts: serde_json::Map<String, serde_json::Value> = report["op_histogram"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(domain, ops)| {
                ops.as_object().unwrap().iter().map(move |(op, count)| {
                    let key = if domain == "ai.onnx" { op.clone() } else { format!("{domain}::{op}") };
                    (key, count.clone())
                })
            })
            .collect();
        assert_eq!(serde_json::Value::Object(op_counts), model["op_types"], "{name}");
        for (side, key) in [("inputs", "inputs"), ("outputs", "outputs")] {
            let names: Vec<&serde_json::Value> = report[side].as_array().unwrap().iter().map(|value| &value["name"]).collect();
            let expected: Vec<&serde_json::Value> = model[key].as_array().unwrap().iter().map(|value| &value["name"]).collect();
            assert_eq!(names, expected, "{name} {side}");
        }
        assert_eq!(report["file_bytes"], std::fs::metadata(&path).unwrap().len(), "{name}");
    }
}

#[test]
fn inspect_table_lists_the_interface_and_parameters() {
    let path = fixture("digits_cnn");
    let output = whittle(&["inspect", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let line = |label: &str| {
        let padded = format!("{label:<10}");
        text.lines().find(|line| line.starts_with(&padded)).unwrap_or_else(|| panic!("no {label} in {text}"))
    };
    assert!(line("inputs").contains("input   f32[batch,1,8,8]"), "{text}");
    assert!(line("outputs").contains("logits  f32[batch,10]"), "{text}");
    assert!(line("opsets").contains("ai.onnx 18"), "{text}");
    assert!(line("ops").contains("BatchNormalization 2"), "{text}");
    assert!(line("largest").contains("f32[32,16,3,3]"), "{text}");
    // From the architecture: conv1 16*1*3*3 + 16, bn1 4*16, conv2 32*16*3*3 + 32, bn2 4*32, head 10*32 + 10.
    let float_parameters = (16 * 9 + 16) + 4 * 16 + (32 * 16 * 9 + 32) + 4 * 32 + (10 * 32 + 10);
    assert!(line("params").contains(&format!("f32 {float_parameters} ")), "{text}");
}

#[test]
fn inspect_graph_prints_every_node() {
    let path = fixture("transformer_tiny");
    let output = whittle(&["inspect", path.to_str().unwrap(), "--graph"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("model ir_version=10 opsets=[ai.onnx:18]"), "{text}");
    let ops: usize =
        meta("transformer_tiny")["model"]["op_types"].as_object().unwrap().values().map(|n| n.as_u64().unwrap() as usize).sum();
    let node_lines =
        text.lines().filter(|line| line.trim_start().starts_with('%') && line.contains(" = ") && line.contains('(')).count();
    assert_eq!(node_lines, ops, "{text}");
}

#[test]
fn inspect_rejects_corrupt_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("digits_mlp")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&whittle(&["inspect", truncated.to_str().unwrap()]), &truncated);

    let random = dir.path().join("random.onnx");
    std::fs::write(&random, (0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    assert_clean_failure(&whittle(&["inspect", random.to_str().unwrap()]), &random);

    let message = assert_clean_failure(&whittle(&["inspect", dir.path().to_str().unwrap()]), dir.path());
    assert!(message.contains("is a directory"), "{message}");

    let missing = dir.path().join("missing.onnx");
    let message = assert_clean_failure(&whittle(&["inspect", missing.to_str().unwrap()]), &missing);
    // The OS error once, not repeated by the error chain.
    assert_eq!(message.matches("No such file").count(), 1, "{message}");
}

#[test]
fn inspect_names_missing_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let model = fixture("digits_mlp");
    let output = whittle(&["convert", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--external-data", "always"]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::remove_file(dir.path().join("m.onnx.data")).unwrap();
    let message = assert_clean_failure(&whittle(&["inspect", out.to_str().unwrap()]), &out);
    assert!(message.contains("external data m.onnx.data: cannot open"), "{message}");
}

#[test]
fn convert_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    std::fs::copy(fixture("digits_mlp"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let output = whittle(&["convert", input.to_str().unwrap(), "-o", input.to_str().unwrap()]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(message.starts_with("error: refusing to overwrite the input model"), "{message}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn convert_is_deterministic_and_external_data_changes_nothing_but_layout() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let input = fixture(name);
        let [first, second, external] = ["first.onnx", "second.onnx", "external.onnx"].map(|file| dir.path().join(file));
        for out in [&first, &second] {
            let output = whittle(&["convert", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
            assert!(output.status.success(), "{}", stderr(&output));
        }
        assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "{name}");
        let output = whittle(&[
            "convert",
            input.to_str().unwrap(),
            "-o",
            external.to_str().unwrap(),
            "--external-data",
            "always",
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(report["output"], external.display().to_string());
        let graph_of = |path: &Path| stdout(&whittle(&["inspect", path.to_str().unwrap(), "--graph"]));
        assert_eq!(graph_of(&external), graph_of(&input), "{name}");
    }
}

#[test]
fn unknown_subcommand_and_missing_argument_are_usage_errors() {
    let output = whittle(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let output = whittle(&["inspect"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("<MODEL>"));
}

#[test]
fn run_reproduces_onnx_runtime_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, input) in [("digits_mlp", "input"), ("digits_cnn", "input"), ("transformer_tiny", "input_ids")] {
        let data = root().join("fixtures").join(name).join("test_data_set_0");
        let out = dir.path().join(format!("{name}.npz"));
        let feed = format!("{input}={}", data.join("input_0.pb").display());
        let output = whittle(&["run", fixture(name).to_str().unwrap(), "--input", &feed, "--output", out.to_str().unwrap()]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let outputs = whittle_data::read_arrays(&out).unwrap();
        let expected = whittle_onnx::load_tensor(&data.join("output_0.pb")).unwrap();
        assert_eq!(outputs.len(), 1);
        // ONNX Runtime computed output_0.pb; the issue allows 1e-4 relative, with a floor for logits near zero.
        whittle_metrics::assert_close(&expected.name, &expected, &outputs[0], 1e-4, 1e-5).unwrap();
    }
}

#[test]
fn run_prints_a_summary_and_names_bad_inputs() {
    let model = fixture("digits_mlp");
    let data = root().join("fixtures/digits_mlp/test_data_set_0/input_0.pb");
    let output = whittle(&["run", model.to_str().unwrap(), "--input", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("logits  f32[8,10]"), "{}", stdout(&output));

    let wrong_name = format!("pixels={}", data.display());
    let output = whittle(&["run", model.to_str().unwrap(), "--input", &wrong_name]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).trim_end(), "error: 'pixels' is not an input of the model (inputs: input)");

    // Token ids are int64; the MLP takes float32 pixels.
    let ids = root().join("fixtures/transformer_tiny/test_data_set_0/input_0.pb");
    let output = whittle(&["run", model.to_str().unwrap(), "--input", ids.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("input 'input'") && message.contains("i64"), "{message}");
}

#[test]
fn compare_of_a_model_with_itself_is_exact_and_reproduces_onnx_runtime_accuracy() {
    for name in ["digits_mlp", "digits_cnn"] {
        let folder = root().join("fixtures").join(name);
        let model = fixture(name);
        let output = whittle(&[
            "compare",
            model.to_str().unwrap(),
            model.to_str().unwrap(),
            "--data",
            folder.join("eval.npz").to_str().unwrap(),
            "--labels",
            folder.join("eval_labels.npy").to_str().unwrap(),
            "--batch",
            "64",
            "--iters",
            "2",
            "--json",
        ]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(report["samples"], 512);
        assert_eq!(report["feeds"], 8);
        let fidelity = &report["outputs"][0]["fidelity"];
        assert_eq!(fidelity["max_abs_error"], 0.0);
        assert_eq!(fidelity["mean_cosine_similarity"], 1.0);
        assert_eq!(fidelity["top1_agreement"], 1.0);
        // ONNX Runtime's accuracy on the same 512 samples, recorded by the fixture generator, to its 6 digits.
        let ort = meta(name)["accuracy"]["onnxruntime_eval"].as_f64().unwrap();
        for side in ["reference", "candidate"] {
            let accuracy = report[side]["accuracy"].as_f64().unwrap();
            assert!((accuracy - ort).abs() < 1e-6, "{name} {side}: {accuracy} vs ORT {ort}");
            assert_eq!(report[side]["latency"]["iterations"], 2);
        }
        assert_eq!(report["deltas"]["accuracy_points"], 0.0);
        assert_eq!(report["deltas"]["size_ratio"], 1.0);
    }
}

#[test]
fn compare_measures_a_known_perturbation() {
    // The candidate adds 0.5 to the bias of class 0 in the MLP's last Gemm: logit 0 of every sample
    // moves by exactly 0.5 (up to f32 rounding of the sum) and the other nine not at all, so the
    // max abs error is 0.5 and the mean abs error 0.5 / 10.
    let dir = tempfile::tempdir().unwrap();
    let mut model = whittle_onnx::load(&fixture("digits_mlp")).unwrap().model;
    let last_gemm = model.graph.nodes.iter().rev().find(|node| node.op_type == "Gemm").unwrap().clone();
    let bias = model.graph.initializers.iter_mut().find(|tensor| tensor.name == last_gemm.inputs[2]).unwrap();
    let mut values = bias.to_f32_vec().unwrap();
    assert_eq!(values.len(), 10);
    values[0] += 0.5;
    *bias = whittle_ir::Tensor::from_f32(bias.name.clone(), bias.dims.clone(), &values).unwrap();
    let candidate = dir.path().join("shifted.onnx");
    whittle_onnx::save(&model, &candidate, &whittle_onnx::SaveOptions::default()).unwrap();

    let data = root().join("fixtures/digits_mlp/calib.npz");
    let output = whittle(&[
        "compare",
        fixture("digits_mlp").to_str().unwrap(),
        candidate.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "32",
        "--iters",
        "0",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let fidelity = &report["outputs"][0]["fidelity"];
    let max = fidelity["max_abs_error"].as_f64().unwrap();
    let mean = fidelity["mean_abs_error"].as_f64().unwrap();
    assert!((max - 0.5).abs() < 1e-5, "max abs error {max}");
    assert!((mean - 0.05).abs() < 1e-5, "mean abs error {mean}");
    assert!(report["reference"]["latency"].is_null(), "--iters 0 skips latency");

    // The Markdown form carries the same numbers.
    let output = whittle(&[
        "compare",
        fixture("digits_mlp").to_str().unwrap(),
        candidate.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--iters",
        "0",
        "--markdown",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("| `logits` | 5.000e-1 |"), "{text}");
}

#[test]
fn compare_rejects_models_with_other_inputs_and_labels_that_do_not_fit() {
    let data = root().join("fixtures/digits_mlp/eval.npz");
    let output = whittle(&[
        "compare",
        fixture("digits_mlp").to_str().unwrap(),
        fixture("transformer_tiny").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("the models take different inputs") && message.contains("input_ids"), "{message}");

    // 256 calibration labels for 512 evaluation samples.
    let labels = root().join("fixtures/digits_mlp/calib_labels.npy");
    let output = whittle(&[
        "compare",
        fixture("digits_mlp").to_str().unwrap(),
        fixture("digits_mlp").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--batch",
        "64",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("more than the 256 samples the labels cover"), "{message}");
}

#[test]
fn bench_reports_ordered_percentiles_for_the_requested_runs() {
    let output = whittle(&[
        "bench",
        fixture("digits_mlp").to_str().unwrap(),
        "--iters",
        "7",
        "--warmup",
        "1",
        "--batch",
        "3",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["inputs"][0]["shape"], serde_json::json!([3, 64]));
    assert_eq!(report["data"], "synthetic");
    assert_eq!(report["threads"], 1);
    let latency = &report["latency"];
    assert_eq!(latency["iterations"], 7);
    assert_eq!(latency["samples_per_run"], 3);
    let get = |key: &str| latency[key].as_f64().unwrap();
    assert!(get("min_ms") <= get("p50_ms") && get("p50_ms") <= get("p90_ms") && get("p90_ms") <= get("p99_ms"));
    assert!(get("p99_ms") <= get("max_ms") && get("mean_ms") > 0.0);
    if cfg!(target_os = "linux") {
        assert!(report["peak_memory"]["bytes"].as_u64().unwrap() > 1 << 20);
    }

    // Real data instead of synthetic inputs: the first feed of the file.
    let data = root().join("fixtures/transformer_tiny/eval.npz");
    let output = whittle(&[
        "bench",
        fixture("transformer_tiny").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "8",
        "--iters",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("input_ids i64[8,16]"), "{}", stdout(&output));
}

#[test]
fn bench_profile_accounts_for_every_step() {
    let output = whittle(&[
        "bench",
        fixture("digits_cnn").to_str().unwrap(),
        "--iters",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--profile",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let profile = &report["profile"];
    assert_eq!(profile["runs"], 3);
    // The CNN's Conv nodes each run as one step (BatchNormalization and Relu may be fused into them
    // by the planner), so Conv is listed with two steps, and per-op totals add up to the total.
    let ops = profile["ops"].as_array().unwrap();
    let conv = ops.iter().find(|op| op["op_type"] == "Conv").unwrap();
    assert_eq!(conv["steps"], 2);
    let sum: f64 = ops.iter().map(|op| op["ms"].as_f64().unwrap()).sum();
    assert!((sum - profile["total_ms"].as_f64().unwrap()).abs() < 1e-9);
    let steps = profile["steps"].as_array().unwrap();
    assert_eq!(steps.len(), ops.iter().map(|op| op["steps"].as_u64().unwrap() as usize).sum::<usize>());
    assert!(steps.iter().any(|step| step["node"] == "node_conv2d_1"));
    // Without --profile the report has no profile.
    let output = whittle(&["bench", fixture("digits_cnn").to_str().unwrap(), "--iters", "1", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(report.get("profile").is_none());
}

#[test]
fn bench_names_bad_options() {
    let model = fixture("digits_mlp");
    let output = whittle(&["bench", model.to_str().unwrap(), "--device", "tpu"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("device 'tpu' is not in this build"), "{}", stderr(&output));
    // A backend whittle has but this build left out says which feature builds it in.
    #[cfg(not(feature = "wgpu"))]
    {
        let output = whittle(&["bench", model.to_str().unwrap(), "--device", "wgpu"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("it needs a build with `--features wgpu`"), "{}", stderr(&output));
    }
    let output = whittle(&["bench", model.to_str().unwrap(), "--shape", "pixels=1x64"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--shape names 'pixels', which is not an input of the model (inputs: input)"),
        "{}",
        stderr(&output)
    );
    let output = whittle(&["bench", model.to_str().unwrap(), "--shape", "input=1x63"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("input 'input': --shape sets axis 1 to 63, the model fixes it at 64"),
        "{}",
        stderr(&output)
    );
    let output = whittle(&["bench", model.to_str().unwrap(), "--iters", "0"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn bench_of_an_unsupported_model_says_so_once() {
    // Regression: the runtime error was printed twice, once as the message and once as its source.
    let dir = tempfile::tempdir().unwrap();
    let mut model = whittle_onnx::load(&fixture("digits_mlp")).unwrap().model;
    let relu = model.graph.nodes.iter_mut().find(|node| node.op_type == "Relu").unwrap();
    relu.op_type = "Frobnicate".into();
    let path = dir.path().join("frobnicate.onnx");
    whittle_onnx::save(&model, &path, &whittle_onnx::SaveOptions::default()).unwrap();
    let output = whittle(&["bench", path.to_str().unwrap(), "--iters", "1"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(message.matches("op Frobnicate of domain ai.onnx (opset 18) is not implemented").count(), 1, "{message}");
    assert!(message.contains("frobnicate.onnx"), "{message}");
}

#[test]
fn quantize_writes_a_model_and_a_json_report_and_is_deterministic() {
    let dir = root().join("fixtures/digits_mlp");
    let out = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let written = out.path().join(name);
        let output = whittle(&[
            "quantize",
            fixture("digits_mlp").to_str().unwrap(),
            "-o",
            written.to_str().unwrap(),
            "--mode",
            "int8-static",
            "--calib-data",
            dir.join("calib.npz").to_str().unwrap(),
            "--labels",
            dir.join("calib_labels.npy").to_str().unwrap(),
            "--batch",
            "64",
            "--iters",
            "0",
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        (std::fs::read(&written).unwrap(), report)
    };
    let (first, report) = run("a.onnx");
    let (second, _) = run("b.onnx");
    assert_eq!(first, second, "the same input and options give the same bytes");
    assert_eq!(report["written"], true);
    assert_eq!(report["layers"].as_array().unwrap().len(), 3);
    let (before, after) = (report["before"]["accuracy"].as_f64().unwrap(), report["after"]["accuracy"].as_f64().unwrap());
    assert!((before - after).abs() <= 0.01, "accuracy {before} -> {after}");
}

#[test]
fn quantize_names_bad_options_and_writes_nothing() {
    let dir = root().join("fixtures/digits_mlp");
    let out = tempfile::tempdir().unwrap();
    let written = out.path().join("q.onnx");
    let base = |mode: &str, method: &str| {
        whittle(&[
            "quantize",
            fixture("digits_mlp").to_str().unwrap(),
            "-o",
            written.to_str().unwrap(),
            "--mode",
            mode,
            "--calib-data",
            dir.join("calib.npz").to_str().unwrap(),
            "--calib-method",
            method,
        ])
    };
    let output = base("int3", "minmax");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).trim(), "error: unknown mode 'int3' (modes: int8-dynamic, int8-static, fp16, bf16)");
    let output = base("int8-static", "kl");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unknown calibration method 'kl'"), "{}", stderr(&output));
    assert!(!written.exists());
}

#[test]
fn fuse_folds_batchnorm_reports_and_writes_the_same_bytes_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    let model = fixture("digits_cnn");
    let fuse = |out: &Path| whittle(&["fuse", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--iters", "2", "--json"]);
    let output = fuse(&first);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["before"]["nodes"], 9);
    assert_eq!(report["after"]["nodes"], 7);
    assert_eq!(report["before"]["ops"]["BatchNormalization"], 2);
    assert!(report["after"]["ops"].get("BatchNormalization").is_none());
    assert_eq!(report["passes"][1]["rules"]["batchnorm-into-conv"]["count"], 2);
    assert_eq!(report["written"], true);
    assert!(report["deviations"][0]["max_abs_error"].as_f64().unwrap() < 1e-4);
    assert!(report["after"]["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(fuse(&second).status.success());
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    // The Markdown report has the tables.
    let output = whittle(&["fuse", model.to_str().unwrap(), "-o", first.to_str().unwrap(), "--iters", "0"]);
    let text = stdout(&output);
    assert!(text.contains("| nodes | 9 | 7 |"), "{text}");
    assert!(text.contains("| fuse-conv | batchnorm-into-conv | 2 |"), "{text}");
}

#[test]
fn fuse_uses_gelu_only_when_the_target_opset_allows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.onnx");
    let model = fixture("transformer_tiny");
    let ops = |extra: &[&str]| {
        let mut args = vec!["fuse", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--iters", "0", "--json"];
        args.extend(extra);
        let output = whittle(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        (report["after"]["opset"].as_i64().unwrap(), report["after"]["ops"].get("Gelu").cloned())
    };
    assert_eq!(ops(&[]), (18, None));
    assert_eq!(ops(&["--target-opset", "20"]), (20, Some(serde_json::json!(2))));
    // Excluding the Erf nodes keeps the pattern whole.
    assert_eq!(ops(&["--target-opset", "20", "--exclude", "Erf"]), (20, None));
}

#[test]
fn fuse_names_bad_options_and_refuses_to_overwrite_its_input() {
    let model = fixture("digits_mlp");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let output = whittle(&["fuse", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--passes", "cleanup,bogus"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown pass 'bogus' (passes: cleanup, fuse-conv, fuse-matmul, fuse-patterns, fuse-attention)"),
        "{}",
        stderr(&output)
    );
    let output = whittle(&["fuse", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--target-opset", "9"]);
    let message = assert_clean_failure(&output, &model);
    assert!(message.contains("cannot move the model from opset 18 to 9"), "{message}");
    let output = whittle(&["fuse", model.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("refusing to overwrite the input model"), "{}", stderr(&output));
    assert!(!out.exists());
}
