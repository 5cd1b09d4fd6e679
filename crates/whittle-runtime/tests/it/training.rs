//! Training sessions (autodiff): gradients through a plan match finite differences, parameters can
//! be replaced, and the API refuses what it cannot do.
//!
//! The reference for each gradient is a central difference of the loss computed by *inference*
//! sessions (whittle's own kernels, no tape) of the model with one weight moved by +-`step`, in
//! f64 from f32 outputs. The MLP and CNN losses are piecewise linear in any one weight (ReLU, max
//! pooling): a small step (1e-3) crosses few kinks (1e-2 moved a first-layer CNN gradient by 3%).
//! The transformer's is smooth (LayerNorm, GELU, softmax) with gradients down to 1e-3, which a
//! small step drowns in the f32 rounding of the loss over `2 * step`: it takes 1e-2.

use whittle_ir::{Model, Tensor};
use whittle_runtime::burn_tensor::{Float, Tensor as BurnTensor, TensorData};
use whittle_runtime::{Backend, RuntimeError, RuntimeOptions, Session, Value};

use crate::support::{f32_values, fixture, load_model, session};

/// `|autodiff - difference| <= TOLERANCE * scale`, `scale` the largest gradient of the parameter's
/// checked coordinates (at least 1e-2).
const TOLERANCE: f64 = 2e-2;
/// Coordinates checked per parameter.
const COORDINATES: usize = 5;

fn training_session(model: &Model) -> Session {
    Session::new(model, &RuntimeOptions::new(Backend::default()).with_autodiff(true)).expect("fixture plans for training")
}

fn fixture_input(name: &str) -> Tensor {
    whittle_onnx::load_tensor(&fixture(name).join("test_data_set_0").join("input_0.pb")).expect("input_0.pb loads")
}

/// The loss's weights on the output: a fixed pseudo-random pattern in [-1, 1].
fn loss_weights(count: usize) -> Vec<f64> {
    (0..count).map(|index| ((index * 7919 + 13) % 101) as f64 / 50.0 - 1.0).collect()
}

/// `sum(output * weights)` of a host output, in f64.
fn host_loss(output: &Tensor) -> f64 {
    let values = f32_values(output);
    values.iter().zip(loss_weights(values.len())).map(|(&value, weight)| f64::from(value) * weight).sum()
}

/// The same loss on the tape: `sum(output * weights)` as a rank-1 burn tensor.
fn tape_loss(output: Value) -> BurnTensor<1, Float> {
    let count = output.shape().iter().product::<usize>();
    let device = output.device();
    let flat = output.into_float::<2>().expect("a rank-2 f32 output").reshape([count]);
    let weights: Vec<f32> = loss_weights(count).iter().map(|&weight| weight as f32).collect();
    let weights = BurnTensor::<1, Float>::from_data(TensorData::new(weights, [count]), &device);
    (flat * weights).sum()
}

/// The inference loss of `model` with element `index` of initializer `name` moved by `delta`.
fn moved_loss(model: &Model, name: &str, index: usize, delta: f64, input: &Tensor) -> f64 {
    let mut model = model.clone();
    let tensor = model.graph.initializers.iter_mut().find(|tensor| tensor.name == name).expect("initializer exists");
    let mut values = f32_values(tensor);
    values[index] = (f64::from(values[index]) + delta) as f32;
    *tensor = Tensor::from_f32(name, tensor.dims.clone(), &values).expect("same dims");
    let outputs = session(&model).run(vec![(input.name.clone(), input.clone())]).expect("moved model runs");
    host_loss(&outputs[0].1)
}

/// Checks the gradients of `parameters` of fixture `name` against central differences.
fn check_gradients(name: &str, parameters: &[&str], step: f64) {
    let model = load_model(name);
    let input = fixture_input(name);
    let training = training_session(&model);
    let feed = Value::upload(&input, training.device()).expect("input uploads");
    let outputs = training.forward(vec![(input.name.clone(), feed)]).expect("training forward runs");
    let loss = tape_loss(outputs.into_iter().next().expect("one output").1);
    let grads = loss.backward();
    for &parameter in parameters {
        let value = training.parameter(parameter).expect("a parameter");
        let grad = value.grad(&grads).unwrap_or_else(|| panic!("{name}: no gradient reached '{parameter}'"));
        assert_eq!(grad.shape(), value.shape(), "{name}: gradient of '{parameter}' has the parameter's shape");
        let grad = f32_values(&grad.download("grad").expect("gradient downloads"));
        let count = grad.len();
        let checked: Vec<usize> =
            (0..COORDINATES).map(|k| (k * count) / COORDINATES + (k * 3) % (count / COORDINATES).max(1)).collect();
        let differences: Vec<f64> = checked
            .iter()
            .map(|&index| {
                (moved_loss(&model, parameter, index, step, &input) - moved_loss(&model, parameter, index, -step, &input))
                    / (2.0 * step)
            })
            .collect();
        let scale = differences.iter().fold(1e-2_f64, |scale, difference| scale.max(difference.abs()));
        for (&index, &difference) in checked.iter().zip(&differences) {
            let autodiff = f64::from(grad[index]);
            eprintln!("{name} d/d {parameter}[{index}]: autodiff {autodiff:.6}, central difference {difference:.6}");
            assert!(
                (autodiff - difference).abs() <= TOLERANCE * scale,
                "{name}: d loss / d {parameter}[{index}] is {autodiff} by autodiff, {difference} by central difference"
            );
        }
    }
}

#[test]
fn mlp_gradients_match_finite_differences() {
    check_gradients("digits_mlp", &["net.0.weight", "net.2.bias", "net.4.weight"], 1e-3);
}

#[test]
fn cnn_gradients_match_finite_differences() {
    // Through Conv, BatchNormalization (its scale), max pooling, the spatial mean and Gemm.
    check_gradients("digits_cnn", &["features.0.weight", "features.5.weight", "head.bias"], 1e-3);
}

#[test]
fn transformer_gradients_match_finite_differences() {
    // Through the token Gather, LayerNormalization, attention's Softmax and the GELU's Erf.
    check_gradients("transformer_tiny", &["tok.weight", "layers.0.norm1.weight", "val_3", "layers.1.mlp.0.bias"], 1e-2);
}

/// Training-session logits against an inference run's, within 1e-4 relative (1e-5 absolute).
fn assert_logits_match(actual: &[f32], expected: &Tensor) {
    for (index, (&actual, &expected)) in actual.iter().zip(&f32_values(expected)).enumerate() {
        assert!((actual - expected).abs() <= 1e-4 * expected.abs() + 1e-5, "logits[{index}]: {actual} vs {expected}");
    }
}

#[test]
fn a_replaced_parameter_is_what_the_next_forward_reads() {
    let name = "digits_mlp";
    let model = load_model(name);
    let input = fixture_input(name);
    let mut training = training_session(&model);
    let zeros = Tensor::from_f32("net.4.bias", vec![10], &[0.5; 10]).expect("tensor");
    training.set_parameter("net.4.bias", Value::upload(&zeros, training.device()).expect("uploads")).expect("same type");
    let feed = Value::upload(&input, training.device()).expect("input uploads");
    let trained = training.forward(vec![(input.name.clone(), feed)]).expect("runs");
    let trained = f32_values(&trained[0].1.download("logits").expect("downloads"));

    let mut edited = model.clone();
    let bias = edited.graph.initializers.iter_mut().find(|tensor| tensor.name == "net.4.bias").expect("bias");
    *bias = zeros;
    let expected = session(&edited).run(vec![(input.name.clone(), input.clone())]).expect("runs");
    assert_logits_match(&trained, &expected[0].1);
    // The replacement is a leaf of its own: a backward pass reaches it.
    let feed = Value::upload(&input, training.device()).expect("input uploads");
    let outputs = training.forward(vec![(input.name.clone(), feed)]).expect("runs");
    let grads = tape_loss(outputs.into_iter().next().expect("output").1).backward();
    assert!(training.parameter("net.4.bias").expect("parameter").grad(&grads).is_some());
}

/// Feeds and replacements uploaded to the plain (tape-less) device are moved onto the session's
/// autodiff device: the outputs match an inference run and the replacement still gets a gradient.
#[test]
fn values_from_the_plain_device_are_moved_onto_the_tape() {
    let name = "digits_mlp";
    let model = load_model(name);
    let input = fixture_input(name);
    let mut training = training_session(&model);
    let plain = session(&model);
    assert!(!plain.device().is_autodiff(), "the inference session runs without a tape");
    let bias = model.graph.initializers.iter().find(|tensor| tensor.name == "net.4.bias").expect("bias").clone();
    training.set_parameter("net.4.bias", Value::upload(&bias, plain.device()).expect("uploads")).expect("moved");
    let feed = Value::upload(&input, plain.device()).expect("input uploads");
    let outputs = training.forward(vec![(input.name.clone(), feed)]).expect("a plain feed runs");
    let actual = f32_values(&outputs[0].1.download("logits").expect("downloads"));
    let expected = plain.run(vec![(input.name.clone(), input.clone())]).expect("runs");
    assert_logits_match(&actual, &expected[0].1);
    let grads = tape_loss(outputs.into_iter().next().expect("output").1).backward();
    assert!(training.parameter("net.4.bias").expect("parameter").grad(&grads).is_some());
}

#[test]
fn parameters_are_the_float_initializers_of_a_training_session_only() {
    let model = load_model("digits_cnn");
    let training = training_session(&model);
    let names: Vec<&str> = training.parameters().map(|(name, _)| name).collect();
    let floats: Vec<&str> =
        model.graph.initializers.iter().filter(|tensor| tensor.dtype.is_float()).map(|tensor| tensor.name.as_str()).collect();
    assert_eq!(names, floats, "every float initializer, in the model's order (the int64 Reshape shape is not one)");
    let mut inference = session(&model);
    assert_eq!(inference.parameters().count(), 0);
    assert_eq!(inference.parameter("head.bias").unwrap_err(), RuntimeError::NotTraining);
    let value =
        Value::upload(&Tensor::from_f32("b", vec![10], &[0.0; 10]).expect("tensor"), inference.device()).expect("uploads");
    assert_eq!(inference.set_parameter("head.bias", value).unwrap_err(), RuntimeError::NotTraining);
}

#[test]
fn bad_parameters_are_refused_with_their_names() {
    let model = load_model("digits_mlp");
    let mut training = training_session(&model);
    let value = Value::upload(&Tensor::from_f32("b", vec![3], &[0.0; 3]).expect("tensor"), training.device()).expect("uploads");
    let error = training.set_parameter("net.4.bias", value.clone()).unwrap_err();
    assert_eq!(error.to_string(), "parameter 'net.4.bias': expected f32[10], got f32[3]");
    let error = training.set_parameter("net.9.bias", value).unwrap_err();
    assert!(
        error.to_string().starts_with("'net.9.bias' is not a parameter of this session (parameters: 'net.0.weight', "),
        "{error}"
    );
}
