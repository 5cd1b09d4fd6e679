//! whittle-eval's integration tests: calibration against ONNX Runtime's view of the same tensors.
//!
//! The reference statistics come from `xtask/py/activation_ranges.py` in the pinned venv that
//! `cargo xtask setup` makes (override its location with WHITTLE_PYTHON).

use std::path::{Path, PathBuf};
use std::process::Command;

use whittle_data::{load_feeds, Batching};
use whittle_eval::{calibrate, CalibrationOptions, EvalError};
use whittle_quant::CalibrationMethod;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// ORT's min, max and percentile of |x| for `tensors` of `model` on all of `data`.
fn ort_stats(model: &Path, data: &Path, tensors: &[&str], percentile: f64) -> serde_json::Value {
    let python =
        std::env::var_os("WHITTLE_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join("target/venvs/interop/bin/python"));
    assert!(python.exists(), "{} does not exist: run `cargo xtask setup` first (or set WHITTLE_PYTHON)", python.display());
    let output = Command::new(&python)
        .arg(root().join("xtask/py/activation_ranges.py"))
        .arg(model)
        .arg(data)
        .arg(tensors.join(","))
        .arg(percentile.to_string())
        .output()
        .expect("run activation_ranges.py");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("json from activation_ranges.py")
}

fn close(actual: f32, expected: f64, tolerance: f64) -> bool {
    (f64::from(actual) - expected).abs() <= tolerance
}

#[test]
fn calibrated_ranges_match_onnx_runtime_on_the_cnn_fixture() {
    let dir = root().join("fixtures/digits_cnn");
    let (model_path, data) = (dir.join("model.onnx"), dir.join("calib.npz"));
    let model = whittle_onnx::load(&model_path).unwrap().model;
    let inputs: Vec<_> = model.graph.feed_inputs().cloned().collect();
    // Feeds of 100 samples: the observers must merge batches into what one pass would see.
    let feeds = load_feeds(&data, &inputs, Batching::Samples(100)).unwrap();
    assert!(feeds.len() > 1, "the test needs several feeds");
    let tensors = ["input", "relu", "conv2d_1", "logits"];
    let names: Vec<String> = tensors.iter().map(|t| t.to_string()).collect();
    let reference = ort_stats(&model_path, &data, &tensors, 99.9);

    let minmax = calibrate(&model, &model_path, &feeds, &names, &CalibrationOptions::new(CalibrationMethod::MinMax)).unwrap();
    // calib.npz holds 256 samples (fixtures/digits_cnn/meta.json), in feeds of 100, 100 and 56.
    assert_eq!((minmax.samples, minmax.feeds), (256, 3));
    for name in tensors {
        let (range, want) = (minmax.range(name).unwrap(), &reference[name]);
        let (min, max) = (want["min"].as_f64().unwrap(), want["max"].as_f64().unwrap());
        // Runtimes may differ in the last bits of a conv; 1e-5 relative to the range is far below a quantization step.
        let tolerance = 1e-5 * (max - min).max(1.0);
        assert!(close(range.min, min, tolerance) && close(range.max, max, tolerance), "{name}: {range:?} vs ORT {want}");
        assert_eq!((range.min, range.max), (range.observed_min, range.observed_max), "minmax keeps the observed range");
    }

    let percentile =
        calibrate(&model, &model_path, &feeds, &names, &CalibrationOptions::new(CalibrationMethod::Percentile(99.9))).unwrap();
    for name in ["relu", "conv2d_1"] {
        let (range, want) = (percentile.range(name).unwrap(), &reference[name]);
        let absmax = want["min"].as_f64().unwrap().abs().max(want["max"].as_f64().unwrap());
        // The threshold is a bin edge of a histogram whose bound is below 2 * |x|max: within one
        // bin (2 * |x|max / 2048) of numpy's percentile of |x|.
        let bin = 2.0 * absmax / 2048.0;
        let threshold = f64::from(range.max.max(-range.min));
        let expected = want["abs_percentile"].as_f64().unwrap();
        assert!((threshold - expected).abs() <= bin, "{name}: threshold {threshold} vs numpy {expected} (bin {bin})");
        assert!(threshold < absmax, "{name}: 99.9% clips the largest values");
    }
    // ReLU output: the range stays on [0, t].
    assert_eq!(percentile.range("relu").unwrap().min, 0.0);
}

#[test]
fn calibration_errors_name_the_tensor() {
    let dir = root().join("fixtures/transformer_tiny");
    let model_path = dir.join("model.onnx");
    let model = whittle_onnx::load(&model_path).unwrap().model;
    let inputs: Vec<_> = model.graph.feed_inputs().cloned().collect();
    let feeds = load_feeds(&dir.join("calib.npz"), &inputs, Batching::Samples(256)).unwrap();
    let options = CalibrationOptions::new(CalibrationMethod::Entropy);
    let message = |tensors: &[&str], feeds: &[whittle_data::Feed]| {
        let names: Vec<String> = tensors.iter().map(|t| t.to_string()).collect();
        let err = calibrate(&model, &model_path, feeds, &names, &options).unwrap_err();
        assert!(matches!(err, EvalError::Calibration { .. }), "{err}");
        err.to_string()
    };
    assert_eq!(message(&["logits"], &[]), "calibration: the calibration data holds no samples");
    assert_eq!(
        message(&["no_such"], &feeds),
        "calibration: tensor 'no_such' is neither a graph input nor an output of a node of the main graph"
    );
    assert_eq!(message(&["input_ids"], &feeds), "calibration: tensor 'input_ids' is i64: only float tensors are calibrated");
    // Entropy on a real output works and clips within the observed range.
    let calibration = calibrate(&model, &model_path, &feeds, &["logits".to_string()], &options).unwrap();
    let range = calibration.range("logits").unwrap();
    assert!(range.min >= range.observed_min && range.max <= range.observed_max && range.min < range.max, "{range:?}");
}
