//! Bad models and bad feeds give clear errors, before anything runs where possible.

use whittle_ir::{DataType, Dim, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};
use whittle_runtime::{RuntimeError, RuntimeOptions, Session};

use crate::support::{load_model, session};

fn tensor_info(name: &str, dtype: DataType, dims: Vec<Dim>) -> ValueInfo {
    ValueInfo::new(name, Some(Type::tensor(dtype, Some(Shape(dims)))))
}

/// `y = Add(a, b)` with `a: f32[batch, 3]` and `b: f32[batch, 3]`.
fn add_model() -> Model {
    let graph = Graph {
        name: "add".into(),
        nodes: vec![Node::new("add", "Add", &["a", "b"], &["y"])],
        inputs: vec![
            tensor_info("a", DataType::F32, vec![Dim::symbolic("batch"), Dim::known(3)]),
            tensor_info("b", DataType::F32, vec![Dim::symbolic("batch"), Dim::known(3)]),
        ],
        outputs: vec![tensor_info("y", DataType::F32, vec![Dim::symbolic("batch"), Dim::known(3)])],
        ..Graph::default()
    };
    Model::new(graph, 10, 18)
}

fn f32_tensor(dims: &[i64]) -> Tensor {
    let count: i64 = dims.iter().product();
    Tensor::from_f32("t", dims.to_vec(), &vec![1.0; count as usize]).unwrap()
}

fn run_add(feeds: Vec<(&str, Tensor)>) -> Result<Vec<(String, Tensor)>, RuntimeError> {
    let session = Session::new(&add_model(), &RuntimeOptions::default()).unwrap();
    session.run(feeds.into_iter().map(|(name, tensor)| (name.to_string(), tensor)).collect())
}

#[test]
fn unknown_op_fails_at_plan_time_naming_node_op_domain_and_opset() {
    let mut model = load_model("digits_mlp");
    model.graph.nodes[1].op_type = "Swish".into();
    let err = Session::new(&model, &RuntimeOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "node 'node_relu': op Swish of domain ai.onnx (opset 18) is not implemented");
}

#[test]
fn op_of_an_unknown_domain_fails_at_plan_time() {
    let mut model = add_model();
    model.graph.nodes[0].domain = "acme.vision".into();
    let err = Session::new(&model, &RuntimeOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "node 'add': op Add of domain acme.vision (opset not imported) is not implemented");
}

#[test]
fn opset_outside_an_ops_range_fails_at_plan_time() {
    let mut model = add_model();
    model.opset_imports[0].version = 6;
    let err = Session::new(&model, &RuntimeOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "node 'add' (Add): opset 6 is not supported, this runtime implements opsets 7..=28");
}

#[test]
fn unknown_attribute_fails_at_plan_time() {
    let mut model = add_model();
    model.graph.nodes[0].attributes.push(whittle_ir::Attribute::new("broadcast", whittle_ir::AttrValue::Int(1)));
    let err = Session::new(&model, &RuntimeOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "node 'add' (Add): attribute 'broadcast': Add defines no such attribute");
}

#[test]
fn symbolic_dims_accept_any_size_but_must_agree() {
    let outputs = run_add(vec![("a", f32_tensor(&[5, 3])), ("b", f32_tensor(&[5, 3]))]).unwrap();
    assert_eq!(outputs[0].1.dims, vec![5, 3]);
    assert_eq!(outputs[0].1.to_f32_vec().unwrap(), vec![2.0; 15]);
    let err = run_add(vec![("a", f32_tensor(&[5, 3])), ("b", f32_tensor(&[4, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'b': dimension 0 is 'batch', which input 'a' set to 5, but here it is 4");
}

#[test]
fn wrong_dtype_names_input_expected_and_actual() {
    let ints = Tensor::from_i64("t", vec![1, 3], &[1, 2, 3]).unwrap();
    let err = run_add(vec![("a", ints), ("b", f32_tensor(&[1, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'a': expected f32[batch,3], got i64[1,3]");
}

#[test]
fn wrong_shape_names_input_expected_and_actual() {
    let err = run_add(vec![("a", f32_tensor(&[2, 4])), ("b", f32_tensor(&[2, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'a': expected f32[batch,3], got f32[2,4]");
    let err = run_add(vec![("a", f32_tensor(&[3])), ("b", f32_tensor(&[2, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'a': expected f32[batch,3], got f32[3]");
}

#[test]
fn missing_unknown_and_duplicate_feeds() {
    let err = run_add(vec![("a", f32_tensor(&[1, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'b' is required but was not fed");
    let err = run_add(vec![("a", f32_tensor(&[1, 3])), ("b", f32_tensor(&[1, 3])), ("c", f32_tensor(&[1, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "feed 'c' is not an input of the model (inputs: 'a', 'b')");
    let err = run_add(vec![("a", f32_tensor(&[1, 3])), ("a", f32_tensor(&[1, 3]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'a' is fed twice");
}

#[test]
fn fixture_with_a_wrong_batch_layout_fails_before_running() {
    // digits_cnn takes [batch, 1, 8, 8]; the MLP's flat [batch, 64] must be refused at the feed.
    let session = session(&load_model("digits_cnn"));
    let err = session.run(vec![("input".into(), f32_tensor(&[2, 64]))]).unwrap_err();
    assert_eq!(err.to_string(), "input 'input': expected f32[batch,1,8,8], got f32[2,64]");
}

#[test]
fn run_time_shape_errors_name_the_node() {
    // Add(a, c) where c: f32[2] does not broadcast with a: f32[batch, 3].
    let mut model = add_model();
    model.graph.inputs[1] = tensor_info("b", DataType::F32, vec![Dim::known(2)]);
    let session = Session::new(&model, &RuntimeOptions::default()).unwrap();
    let err = session.run(vec![("a".into(), f32_tensor(&[1, 3])), ("b".into(), f32_tensor(&[2]))]).unwrap_err();
    assert_eq!(err.to_string(), "node 'add' (Add): shapes [1, 3] and [2] do not broadcast");
}
