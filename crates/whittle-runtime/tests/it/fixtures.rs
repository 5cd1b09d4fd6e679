//! The torch fixtures run and match ONNX Runtime's outputs and accuracy.
//!
//! Tolerance: `|whittle - ort| <= 1e-4 * |ort| + 1e-5`. The relative part is the target; the
//! absolute floor of 1e-5 covers logits near zero, where a relative bound alone would demand more
//! than f32 accumulation in a different order can give (a 64-term f32 dot product of values near 1
//! already differs by a few 1e-7 between summation orders).

use std::fs::File;
use std::path::Path;

use whittle_ir::Tensor;
use whittle_runtime::{Backend, RuntimeOptions, Session};

use crate::support::{f32_values, fixture, load_model, session};

const RELATIVE: f64 = 1e-4;
const ABSOLUTE: f64 = 1e-5;

/// Runs `test_data_set_0` of fixture `name` on every backend of this build (flex; ndarray and wgpu
/// with their features), planned for inference and for training, and compares every output with ORT's; returns the largest relative error
/// seen (relative to `max(|ort|, ABSOLUTE / RELATIVE)`).
fn check_against_onnxruntime(name: &str) -> f64 {
    let model = load_model(name);
    let data = fixture(name).join("test_data_set_0");
    let input = whittle_onnx::load_tensor(&data.join("input_0.pb")).expect("input_0.pb loads");
    let mut overall: f64 = 0.0;
    // A training plan (autodiff, every node on burn's ops, nothing folded or fused) must compute
    // the same function.
    let training: &[bool] = if cfg!(feature = "autodiff") { &[false, true] } else { &[false] };
    for (&backend, &autodiff) in Backend::available().iter().flat_map(|backend| training.iter().map(move |mode| (backend, mode)))
    {
        let mut worst: f64 = 0.0;
        let options = RuntimeOptions::new(backend).with_autodiff(autodiff);
        let session = Session::new(&model, &options).expect("fixture plans");
        let outputs = session.run(vec![(input.name.clone(), input.clone())]).expect("fixture runs");
        let device = format!("{}{}", backend.name(), if autodiff { " with autodiff" } else { "" });
        for (index, (output_name, actual)) in outputs.iter().enumerate() {
            let expected = whittle_onnx::load_tensor(&data.join(format!("output_{index}.pb"))).expect("output .pb loads");
            assert_eq!(&expected.name, output_name, "{name}: output {index} name");
            assert_eq!(actual.dtype, expected.dtype, "{name} on {device}: {output_name} dtype");
            assert_eq!(actual.dims, expected.dims, "{name} on {device}: {output_name} dims");
            for (position, (&a, &e)) in f32_values(actual).iter().zip(&f32_values(&expected)).enumerate() {
                let (a, e) = (f64::from(a), f64::from(e));
                let error = (a - e).abs();
                assert!(
                    error <= RELATIVE * e.abs() + ABSOLUTE,
                    "{name} on {device}: {output_name}[{position}] = {a}, ORT gives {e}"
                );
                worst = worst.max(error / e.abs().max(ABSOLUTE / RELATIVE));
            }
        }
        eprintln!("{name} on {device}: max relative error against ONNX Runtime {worst:.3e}");
        overall = overall.max(worst);
    }
    overall
}

#[test]
fn digits_mlp_matches_onnxruntime() {
    check_against_onnxruntime("digits_mlp");
}

#[test]
fn digits_cnn_matches_onnxruntime() {
    check_against_onnxruntime("digits_cnn");
}

#[test]
fn transformer_tiny_matches_onnxruntime() {
    check_against_onnxruntime("transformer_tiny");
}

/// Reads the array called `name` of an `.npz`.
fn read_npz(path: &Path, name: &str) -> Tensor {
    let arrays = whittle_data::read_arrays(path).expect("npz reads");
    arrays.into_iter().find(|array| array.name == name).unwrap_or_else(|| panic!("{path:?} has no array '{name}'"))
}

fn read_labels(path: &Path) -> Vec<i64> {
    whittle_data::read_labels(path).expect("labels read")
}

/// Runs the eval split of fixture `name` in one batch on every backend of this build and checks
/// that top-1 accuracy equals the one ONNX Runtime reached, as `meta.json` records it (rounded to 6
/// decimals).
fn check_eval_accuracy(name: &str) {
    let folder = fixture(name);
    let meta: serde_json::Value =
        serde_json::from_reader(File::open(folder.join("meta.json")).expect("meta.json")).expect("meta.json parses");
    let recorded = meta["accuracy"]["onnxruntime_eval"].as_f64().expect("accuracy.onnxruntime_eval");
    let model = load_model(name);
    let input_name = model.graph.inputs[0].name.clone();
    let inputs = read_npz(&folder.join("eval.npz"), &input_name);
    let labels = read_labels(&folder.join("eval_labels.npy"));
    for &backend in Backend::available() {
        let device = backend.name();
        let session = Session::new(&model, &RuntimeOptions::new(backend)).expect("fixture plans");
        let outputs = session.run(vec![(input_name.clone(), inputs.clone())]).expect("eval split runs");
        let (_, logits) = &outputs[0];
        let classes = logits.dims[1] as usize;
        let values = f32_values(logits);
        let correct = values
            .chunks_exact(classes)
            .zip(&labels)
            .filter(|(row, &label)| {
                // First maximum, as numpy's argmax picks it.
                let best = row.iter().enumerate().fold(0, |best, (index, &value)| if value > row[best] { index } else { best });
                best as i64 == label
            })
            .count();
        assert_eq!(labels.len(), values.len() / classes, "{name}: one label per sample");
        let accuracy = correct as f64 / labels.len() as f64;
        eprintln!("{name} on {device}: eval accuracy {correct}/{} = {accuracy:.6}, ONNX Runtime {recorded}", labels.len());
        assert!(
            (accuracy - recorded).abs() < 1e-6,
            "{name} on {device}: accuracy {accuracy:.6} ({correct}/{}), ONNX Runtime {recorded}",
            labels.len()
        );
    }
}

#[test]
fn digits_mlp_eval_accuracy_equals_onnxruntime() {
    check_eval_accuracy("digits_mlp");
}

#[test]
fn digits_cnn_eval_accuracy_equals_onnxruntime() {
    check_eval_accuracy("digits_cnn");
}

#[test]
fn transformer_tiny_eval_accuracy_equals_onnxruntime() {
    check_eval_accuracy("transformer_tiny");
}

#[test]
fn iris_logreg_matches_onnxruntime() {
    // LinearClassifier (SOFTMAX) then Normalizer (L1): labels exactly, probabilities within tolerance.
    check_against_onnxruntime("iris_logreg");
}

#[test]
fn iris_logreg_eval_accuracy_equals_onnxruntime() {
    let folder = fixture("iris_logreg");
    let meta: serde_json::Value =
        serde_json::from_reader(File::open(folder.join("meta.json")).expect("meta.json")).expect("meta.json parses");
    let recorded = meta["accuracy"]["onnxruntime_eval"].as_f64().expect("accuracy.onnxruntime_eval");
    let model = load_model("iris_logreg");
    let inputs = read_npz(&folder.join("eval.npz"), "input");
    let labels = read_labels(&folder.join("eval_labels.npy"));
    for &backend in Backend::available() {
        let session = Session::new(&model, &RuntimeOptions::new(backend)).expect("fixture plans");
        let outputs = session.run(vec![("input".into(), inputs.clone())]).expect("eval split runs");
        let predicted: Vec<f32> = f32_values(&outputs[0].1);
        let correct = predicted.iter().zip(&labels).filter(|(&p, &label)| p as i64 == label).count();
        let accuracy = correct as f64 / labels.len() as f64;
        assert!(
            (accuracy - recorded).abs() < 1e-6,
            "on {}: accuracy {accuracy:.6} ({correct}/{}), ONNX Runtime {recorded}",
            backend.name(),
            labels.len()
        );
    }
}

#[test]
fn iris_logreg_zipmap_probabilities_match_onnxruntime_as_maps() {
    use whittle_ir::{HostValue, MapKeys};
    // The fixture casts the label with Cast, an op of another module of this crate; the label is
    // already int64, so the test plans the graph without it to check ZipMap on its own here.
    let mut model = load_model("iris_logreg_zipmap");
    model.graph.nodes.retain(|node| node.op_type != "Cast");
    for node in &mut model.graph.nodes {
        for output in &mut node.outputs {
            if output == "label" {
                *output = "output_label".into();
            }
        }
    }
    let data = fixture("iris_logreg_zipmap").join("test_data_set_0");
    let input = whittle_onnx::load_tensor(&data.join("input_0.pb")).expect("input_0.pb loads");
    let session = session(&model);
    let outputs = session.run_values(vec![(input.name.clone(), input.clone())]).expect("fixture runs");
    let HostValue::Tensor(label) = &outputs[0].1 else { panic!("label is a tensor") };
    assert_eq!(label, &whittle_onnx::load_tensor(&data.join("output_0.pb")).unwrap());
    let expected = whittle_onnx::load_sequence(&data.join("output_1.pb")).expect("output_1.pb loads");
    let HostValue::Sequence(actual) = &outputs[1].1 else { panic!("probabilities are a sequence") };
    assert_eq!(actual.len(), expected.len());
    for (row, (a, e)) in actual.iter().zip(&expected).enumerate() {
        let (HostValue::Map(a), HostValue::Map(e)) = (a, e) else { panic!("row {row} is a map") };
        assert_eq!(a.keys, MapKeys::Int64(vec![0, 1, 2]));
        assert_eq!(a.keys, e.keys);
        for (a, e) in a.values.iter().zip(&e.values) {
            let (HostValue::Tensor(a), HostValue::Tensor(e)) = (a, e) else { panic!("map values are tensors") };
            assert_eq!(a.dims, e.dims);
            let (a, e) = (f64::from(f32_values(a)[0]), f64::from(f32_values(e)[0]));
            assert!((a - e).abs() <= RELATIVE * e.abs() + ABSOLUTE, "row {row}: {a} vs ORT {e}");
        }
    }
    // The tensor API refuses the sequence output and says where to get it.
    let err = session.run(vec![(input.name.clone(), input)]).unwrap_err().to_string();
    assert!(err.contains("run_values"), "{err}");
}
