//! Planner step: runs an activation inside the kernel of the op that produces its input.
//!
//! `Relu(Conv(..))`, `Relu(Gemm(..))`, `Relu(MatMul(..))` and `Relu(BatchNormalization(..))` (in
//! inference) become one step whose op applies the activation in its output loop ([`crate::kernels::Activation`]), when the intermediate value has no
//! other reader and is not a graph output: the Relu step and its intermediate buffer disappear. The
//! fused op still runs on every device (burn's op, then burn's relu, where the kernels do not
//! apply), and its outputs equal the unfused plan's bit for bit, since the same f32 results go
//! through the same `max(x, 0)`.
//!
//! Before that, `Add(MatMul(x, W), b)` with a constant f32 `[N]` vector `b` (torch's Linear,
//! exported as MatMul then Add) becomes a MatMul that adds `b` in its output loop
//! ([`fuse_bias`]): `transformer_tiny` has 12 such Adds, 1.4 us each at batch 1 as separate
//! steps. The sum is the same f32 addition after the product, so outputs match bit for bit too.
//!
//! It runs on each planned graph (main graph and subgraphs) after the nodes are parsed and before
//! last uses are marked, so every read is still a `Read::Clone`.

use std::sync::Arc;

use whittle_ir::DataType;

use crate::kernels::gemm::ConstantBias;
use crate::kernels::Activation;
use crate::ops::Op;
use crate::plan::{Kernel, Read, Step};

/// The activation an op can run in its kernel, if it is one of the ops with a fused epilogue.
fn epilogue(op: &mut Op) -> Option<&mut Option<Activation>> {
    match op {
        Op::Conv(conv) => Some(&mut conv.activation),
        Op::Gemm(gemm) => Some(&mut gemm.activation),
        Op::MatMul(matmul) => Some(&mut matmul.activation),
        Op::BatchNormalization(norm) if !norm.training => Some(&mut norm.activation),
        _ => None,
    }
}

/// The activation `op` computes when it reads one input, or `None`.
fn activation_of(op: &Op) -> Option<Activation> {
    match op {
        Op::Relu(_) => Some(Activation::Relu),
        _ => None,
    }
}

/// Fuses activations into the steps producing their inputs; `graph_outputs` are the slots the graph
/// returns, which must stay materialized. Returns how many steps were fused away.
pub(crate) fn fuse_activations(steps: &mut Vec<Step>, graph_outputs: &[usize], slot_count: usize) -> usize {
    let reader = sole_readers(steps, graph_outputs, slot_count);
    let mut fused_away = vec![false; steps.len()];
    for producer in 0..steps.len() {
        let [Some(slot)] = steps[producer].outputs[..] else { continue };
        let Some(Some(consumer)) = reader[slot] else { continue };
        let Kernel::Tensor(consumer_op) = &steps[consumer].kernel else { continue };
        let Some(activation) = activation_of(consumer_op) else { continue };
        if steps[consumer].inputs.len() != 1 || steps[consumer].outputs.len() != 1 {
            continue;
        }
        let Kernel::Tensor(op) = &mut steps[producer].kernel else { continue };
        let Some(slot @ None) = epilogue(op) else { continue };
        *slot = Some(activation);
        steps[producer].outputs = steps[consumer].outputs.clone();
        fused_away[consumer] = true;
    }
    remove_steps(steps, &fused_away)
}

/// Folds `Add(MatMul(..), b)` into the MatMul when `b` is a constant f32 vector of the product's
/// last size, the product has no other reader and is not a graph output, and the MatMul has no
/// bias or activation yet; `constant` gives the initializer in a slot, if any. Returns how many
/// steps were fused away.
pub(crate) fn fuse_bias<'a>(
    steps: &mut Vec<Step>,
    graph_outputs: &[usize],
    slot_count: usize,
    constant: &dyn Fn(usize) -> Option<&'a whittle_ir::Tensor>,
) -> usize {
    let reader = sole_readers(steps, graph_outputs, slot_count);
    let mut fused_away = vec![false; steps.len()];
    for producer in 0..steps.len() {
        let [Some(slot)] = steps[producer].outputs[..] else { continue };
        let Some(Some(consumer)) = reader[slot] else { continue };
        let Kernel::Tensor(Op::Add(_)) = &steps[consumer].kernel else { continue };
        let ([Some(first), Some(second)], [Some(_)]) = (&steps[consumer].inputs[..], &steps[consumer].outputs[..]) else {
            continue;
        };
        let other = match (*first, *second) {
            (Read::Clone(first), Read::Clone(second)) if first == slot && second != slot => second,
            (Read::Clone(first), Read::Clone(second)) if second == slot && first != slot => first,
            _ => continue,
        };
        let Some(tensor) = constant(other) else { continue };
        let Kernel::Tensor(Op::MatMul(matmul)) = &mut steps[producer].kernel else { continue };
        let Some(packed) = &matmul.packed else { continue };
        if matmul.bias.is_some()
            || matmul.activation.is_some()
            || tensor.dtype != DataType::F32
            || tensor.dims != [packed.n as i64]
        {
            continue;
        }
        let Some((values, _)) = crate::kernels::constant_f32(tensor) else { continue };
        matmul.bias = Some(ConstantBias(Arc::from(values)));
        steps[producer].outputs = steps[consumer].outputs.clone();
        fused_away[consumer] = true;
    }
    remove_steps(steps, &fused_away)
}

/// Removes the steps flagged in `removed` (one flag per step), keeping the others' order; returns
/// how many went. Shared by the planner's fusion steps.
pub(crate) fn remove_steps(steps: &mut Vec<Step>, removed: &[bool]) -> usize {
    let before = steps.len();
    let mut index = 0;
    steps.retain(|_| {
        index += 1;
        !removed[index - 1]
    });
    before - steps.len()
}

/// Who reads each slot: `Some(Some(step))` for a slot that exactly one read of one step takes,
/// `Some(None)` for one read more than once (or a graph output), `None` for one nothing reads.
pub(crate) fn sole_readers(steps: &[Step], graph_outputs: &[usize], slot_count: usize) -> Vec<Option<Option<usize>>> {
    let mut reader: Vec<Option<Option<usize>>> = vec![None; slot_count];
    for (index, step) in steps.iter().enumerate() {
        for read in step.inputs.iter().flatten() {
            let (Read::Clone(slot) | Read::Move(slot)) = *read;
            reader[slot] = match reader[slot] {
                None => Some(Some(index)),
                Some(_) => Some(None),
            };
        }
    }
    for &slot in graph_outputs {
        reader[slot] = Some(None);
    }
    reader
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, DataType, Model, Node, Tensor};

    use crate::ops::test_support::{f32_tensor, graph, info};
    use crate::plan::{Kernel, Plan};
    use crate::{RuntimeOptions, Session};

    fn ramp(count: usize) -> Vec<f32> {
        (0..count).map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5).collect()
    }

    /// `y = Relu(op(x, w[, b]))`, with the intermediate `t` also returned when `expose` is set.
    fn model(op: Node, x_dims: &[i64], y_dims: &[i64], weights: Vec<Tensor>, expose: bool) -> Model {
        let mut outputs = vec![info("y", DataType::F32, Some(y_dims))];
        if expose {
            outputs.push(info("t", DataType::F32, Some(y_dims)));
        }
        let mut graph = graph(
            "g",
            vec![op, Node::new("relu", "Relu", &["t"], &["y"])],
            vec![info("x", DataType::F32, Some(x_dims))],
            outputs,
        );
        graph.initializers = weights;
        Model::new(graph, 10, 18)
    }

    /// `(op node, x dims, y dims, initializers)`.
    type Case = (Node, Vec<i64>, Vec<i64>, Vec<Tensor>);

    fn cases() -> Vec<Case> {
        let mut conv = Node::new("conv", "Conv", &["x", "w", "b"], &["t"]);
        conv.attributes = vec![Attribute::new("pads", AttrValue::Ints(vec![1, 1, 1, 1]))];
        let mut gemm = Node::new("gemm", "Gemm", &["x", "w", "b"], &["t"]);
        gemm.attributes = vec![Attribute::new("transB", AttrValue::Int(1))];
        vec![
            (
                conv,
                vec![2, 2, 5, 5],
                vec![2, 3, 5, 5],
                vec![f32_tensor("w", vec![3, 2, 3, 3], &ramp(54)), f32_tensor("b", vec![3], &[0.1, -0.2, 0.0])],
            ),
            (gemm, vec![3, 4], vec![3, 5], vec![f32_tensor("w", vec![5, 4], &ramp(20)), f32_tensor("b", vec![5], &ramp(5))]),
            (
                Node::new("mm", "MatMul", &["x", "w"], &["t"]),
                vec![2, 3, 4],
                vec![2, 3, 5],
                vec![f32_tensor("w", vec![4, 5], &ramp(20))],
            ),
            (
                Node::new("bn", "BatchNormalization", &["x", "s", "b", "m", "v"], &["t"]),
                vec![2, 3, 2, 2],
                vec![2, 3, 2, 2],
                vec![
                    f32_tensor("s", vec![3], &[1.5, -0.5, 2.0]),
                    f32_tensor("b", vec![3], &[0.1, 0.2, -0.3]),
                    f32_tensor("m", vec![3], &[0.2, -0.1, 0.0]),
                    f32_tensor("v", vec![3], &[0.5, 2.0, 1.0]),
                ],
            ),
        ]
    }

    #[test]
    fn fused_plans_drop_the_relu_and_match_the_unfused_run() {
        for (op, x_dims, y_dims, weights) in cases() {
            let fused = model(op.clone(), &x_dims, &y_dims, weights.clone(), false);
            let unfused = model(op.clone(), &x_dims, &y_dims, weights, true);
            let plan = Plan::new(&fused, &burn_tensor::Device::flex()).unwrap();
            assert_eq!(plan.graph.steps.len(), 1, "{}", op.op_type);
            let Kernel::Tensor(fused_op) = &plan.graph.steps[0].kernel else { panic!("a tensor op") };
            assert_eq!(fused_op.op_type(), op.op_type);
            assert_eq!(Plan::new(&unfused, &burn_tensor::Device::flex()).unwrap().graph.steps.len(), 2);

            let count = x_dims.iter().product::<i64>() as usize;
            let x = Tensor::from_f32("x", x_dims.clone(), &ramp(count)).unwrap();
            let run = |model: &Model| {
                Session::new(model, &RuntimeOptions::default()).unwrap().run(vec![("x".into(), x.clone())]).unwrap()
            };
            let (fused_y, unfused_y) = (run(&fused), run(&unfused));
            assert_eq!(fused_y[0], unfused_y[0], "{}", op.op_type);
            // The fused output really went through the activation.
            assert!(fused_y[0].1.to_f32_vec().unwrap().iter().all(|&v| v >= 0.0));
            assert!(unfused_y[1].1.to_f32_vec().unwrap().iter().any(|&v| v < 0.0));
        }
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn fused_ops_fall_back_to_burn_on_other_backends() {
        // On ndarray the kernels do not apply: the fused ops run burn's op, then burn's relu, and
        // agree with flex's kernels to f32 rounding.
        for (op, x_dims, y_dims, weights) in cases() {
            let model = model(op.clone(), &x_dims, &y_dims, weights, false);
            let count = x_dims.iter().product::<i64>() as usize;
            let x = Tensor::from_f32("x", x_dims.clone(), &ramp(count)).unwrap();
            let run = |backend| {
                let session = Session::new(&model, &RuntimeOptions::new(backend)).unwrap();
                session.run(vec![("x".into(), x.clone())]).unwrap()[0].1.to_f32_vec().unwrap()
            };
            let (flex, ndarray) = (run(crate::Backend::Flex), run(crate::Backend::Ndarray));
            for (a, b) in flex.iter().zip(&ndarray) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{}: {a} vs {b}", op.op_type);
            }
        }
    }

    #[test]
    fn a_constant_bias_add_joins_the_matmul_with_a_following_relu() {
        // y = Relu(Add(MatMul(x, w), b)) in both Add operand orders: one step, equal to the run
        // that also returns the product (which keeps the Add and the Relu separate).
        let (w, b) = (f32_tensor("w", vec![4, 5], &ramp(20)), f32_tensor("b", vec![5], &[0.3, -0.2, 0.1, 0.0, -0.4]));
        for bias_first in [false, true] {
            let add_inputs: [&str; 2] = if bias_first { ["b", "t"] } else { ["t", "b"] };
            let build = |expose: bool| {
                let nodes = vec![
                    Node::new("mm", "MatMul", &["x", "w"], &["t"]),
                    Node::new("add", "Add", &add_inputs, &["u"]),
                    Node::new("relu", "Relu", &["u"], &["y"]),
                ];
                let mut outputs = vec![info("y", DataType::F32, Some(&[2, 3, 5]))];
                if expose {
                    outputs.push(info("t", DataType::F32, Some(&[2, 3, 5])));
                }
                let mut graph = graph("g", nodes, vec![info("x", DataType::F32, Some(&[2, 3, 4]))], outputs);
                graph.initializers = vec![w.clone(), b.clone()];
                Model::new(graph, 10, 18)
            };
            let device = burn_tensor::Device::flex();
            assert_eq!(Plan::new(&build(false), &device).unwrap().graph.steps.len(), 1);
            assert_eq!(Plan::new(&build(true), &device).unwrap().graph.steps.len(), 3);
            let x = Tensor::from_f32("x", vec![2, 3, 4], &ramp(24)).unwrap();
            let run = |model: &Model| {
                Session::new(model, &RuntimeOptions::default()).unwrap().run(vec![("x".into(), x.clone())]).unwrap()
            };
            let (fused, unfused) = (run(&build(false)), run(&build(true)));
            assert_eq!(fused[0], unfused[0]);
            // Against f64: relu(x @ w + b).
            let (xs, ws) = (ramp(24), ramp(20));
            let got = fused[0].1.to_f32_vec().unwrap();
            for (index, value) in got.iter().enumerate() {
                let (row, col) = (index / 5, index % 5);
                let dot: f64 = (0..4).map(|p| f64::from(xs[row * 4 + p]) * f64::from(ws[p * 5 + col])).sum();
                let bias = [0.3, -0.2, 0.1, 0.0, -0.4][col];
                assert!((f64::from(*value) - (dot + f64::from(bias as f32)).max(0.0)).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn a_bias_of_another_shape_or_a_fed_one_is_not_fused() {
        // b [1, 5] is a broadcast, not the vector the kernel adds; b as a graph input may change.
        for (dims, fed) in [(vec![1, 5], false), (vec![5], true)] {
            let nodes = vec![Node::new("mm", "MatMul", &["x", "w"], &["t"]), Node::new("add", "Add", &["t", "b"], &["y"])];
            let mut inputs = vec![info("x", DataType::F32, Some(&[3, 4]))];
            if fed {
                inputs.push(info("b", DataType::F32, Some(&[5])));
            }
            let mut graph = graph("g", nodes, inputs, vec![info("y", DataType::F32, Some(&[3, 5]))]);
            graph.initializers = vec![f32_tensor("w", vec![4, 5], &ramp(20)), f32_tensor("b", dims, &ramp(5))];
            assert_eq!(Plan::new(&Model::new(graph, 10, 18), &burn_tensor::Device::flex()).unwrap().graph.steps.len(), 2);
        }
    }

    #[test]
    fn an_intermediate_with_another_reader_is_not_fused() {
        // t feeds both the Relu and an Add: the kernel must still produce t itself.
        let (op, x_dims, y_dims, weights) = cases().remove(1);
        let mut model = model(op, &x_dims, &y_dims, weights, false);
        model.graph.nodes.push(Node::new("add", "Add", &["t", "y"], &["z"]));
        model.graph.outputs = vec![info("z", DataType::F32, Some(&y_dims))];
        assert_eq!(Plan::new(&model, &burn_tensor::Device::flex()).unwrap().graph.steps.len(), 3);
    }
}
