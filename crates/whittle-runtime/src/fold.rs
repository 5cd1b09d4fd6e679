//! Planner step: folds an inference BatchNormalization into the Conv that produces its input.
//!
//! `BatchNormalization(Conv(X, W, B), scale, beta, mean, var)` is `Conv(X, W', B')` with, per output
//! channel `m`, `a = scale / sqrt(var + epsilon)`, `W'[m] = W[m] * a` and
//! `B'[m] = (B[m] - mean[m]) * a + beta[m]` (computed in f64, rounded once to f32), which is what
//! ONNX Runtime does at session creation. It applies when W, B and the four statistics are f32
//! constants of this graph (initializers no feed may override), the Conv's output has no other
//! reader and is not a graph output, and the BatchNormalization is in inference mode. The Conv step
//! then reads the folded constants (new slots, packed for the f32 kernel like any constant weights)
//! and writes the BatchNormalization's output; the BatchNormalization step and its intermediate
//! buffer disappear. The outputs differ from the unfolded plan's by f32 rounding only.
//!
//! On `digits_cnn` the two BatchNormalization steps took 4.3 us each of a 76 us run (batch 8, one
//! thread). It runs before [`crate::fuse`], so that a Relu after the BatchNormalization then fuses
//! into the Conv.

use whittle_ir::Tensor;

use crate::fuse::sole_readers;
use crate::kernels::constant_f32;
use crate::ops::conv::pack_constant_weights;
use crate::ops::Op;
use crate::plan::{Kernel, Read, Step};

/// What folding did to a graph's slots.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    /// The folded weights and biases, each with the new slot the Conv reads it from.
    pub constants: Vec<(usize, Tensor)>,
    /// Constant slots that no step reads any more (the original weights and statistics).
    pub unread: Vec<usize>,
}

/// Folds every eligible BatchNormalization into its Conv. `constant` gives the constant tensor a
/// slot holds, if any; `graph_outputs` must stay materialized; new slots are numbered from
/// `slot_count` on, which is raised past them.
pub(crate) fn fold_batch_norms<'t>(
    steps: &mut Vec<Step>,
    constant: &dyn Fn(usize) -> Option<&'t Tensor>,
    graph_outputs: &[usize],
    slot_count: &mut usize,
) -> Folded {
    let reader = sole_readers(steps, graph_outputs, *slot_count);
    let mut folded = Folded::default();
    let mut folded_away = vec![false; steps.len()];
    let mut replaced = Vec::new();
    for producer in 0..steps.len() {
        let [Some(slot)] = steps[producer].outputs[..] else { continue };
        let Some(Some(consumer)) = reader[slot] else { continue };
        let Some((weights, bias)) = fold_pair(&steps[producer], &steps[consumer], slot, constant) else { continue };
        let label = &steps[producer].label;
        let dims = |dims: &[usize]| dims.iter().map(|&dim| dim as i64).collect();
        // The element counts match the dims by construction, so neither can fail.
        let (Ok(weights_tensor), Ok(bias_tensor)) = (
            Tensor::from_f32(format!("{label} folded W"), dims(&weights.dims), &weights.values),
            Tensor::from_f32(format!("{label} folded B"), dims(&[bias.len()]), &bias),
        ) else {
            continue;
        };
        let Kernel::Tensor(Op::Conv(conv)) = &mut steps[producer].kernel else { continue };
        conv.packed = pack_constant_weights(&weights.values, &weights.dims, conv.group);
        let (weights_slot, bias_slot) = (*slot_count, *slot_count + 1);
        *slot_count += 2;
        folded.constants.push((weights_slot, weights_tensor));
        folded.constants.push((bias_slot, bias_tensor));
        let norm_output = steps[consumer].outputs[0];
        replaced.extend(steps[consumer].inputs[1..].iter().flatten().map(read_slot));
        let conv_step = &mut steps[producer];
        replaced.extend(conv_step.inputs[1..].iter().flatten().map(read_slot));
        conv_step.inputs.truncate(1);
        conv_step.inputs.extend([Some(Read::Clone(weights_slot)), Some(Read::Clone(bias_slot))]);
        conv_step.outputs = vec![norm_output];
        folded_away[consumer] = true;
    }
    let mut index = 0;
    steps.retain(|_| {
        index += 1;
        !folded_away[index - 1]
    });
    let still_read: Vec<usize> = steps.iter().flat_map(|step| step.inputs.iter().flatten().map(read_slot)).collect();
    replaced.sort_unstable();
    replaced.dedup();
    folded.unread = replaced.into_iter().filter(|slot| !still_read.contains(slot) && !graph_outputs.contains(slot)).collect();
    folded
}

fn read_slot(read: &Read) -> usize {
    let (Read::Clone(slot) | Read::Move(slot)) = *read;
    slot
}

/// A constant f32 tensor's elements and dims.
struct Constant {
    values: Vec<f32>,
    dims: Vec<usize>,
}

/// The folded weights and bias of `conv` followed by `norm`, which reads the Conv's output `slot`;
/// `None` when the pair does not qualify.
fn fold_pair<'t>(
    conv: &Step,
    norm: &Step,
    slot: usize,
    constant: &dyn Fn(usize) -> Option<&'t Tensor>,
) -> Option<(Constant, Vec<f32>)> {
    let (Kernel::Tensor(Op::Conv(conv_op)), Kernel::Tensor(Op::BatchNormalization(norm_op))) = (&conv.kernel, &norm.kernel)
    else {
        return None;
    };
    if norm_op.training || norm_op.activation.is_some() || conv_op.activation.is_some() {
        return None;
    }
    if norm.inputs.len() != 5 || norm.inputs[0].map(|read| read_slot(&read)) != Some(slot) || norm.outputs.len() != 1 {
        return None;
    }
    norm.outputs[0]?;
    let read_constant = |read: &Option<Read>| -> Option<Constant> {
        let (values, dims) = constant_f32(constant(read_slot(&(*read)?))?)?;
        Some(Constant { values, dims })
    };
    let weights = read_constant(conv.inputs.get(1)?)?;
    let filters = *weights.dims.first()?;
    if weights.dims.len() < 3 || filters == 0 || weights.values.len() % filters != 0 {
        return None;
    }
    let bias = match conv.inputs.get(2) {
        Some(read @ Some(_)) => Some(read_constant(read)?),
        _ => None,
    };
    let per_filter = |constant: &Constant| constant.dims == [filters];
    if bias.as_ref().is_some_and(|bias| !per_filter(bias)) {
        return None;
    }
    let statistics: Vec<Constant> = norm.inputs[1..].iter().map(read_constant).collect::<Option<_>>()?;
    if !statistics.iter().all(per_filter) {
        return None;
    }
    let [scale, beta, mean, variance] = [0, 1, 2, 3].map(|index| &statistics[index].values);
    let epsilon = f64::from(norm_op.epsilon);
    let factor: Vec<f64> = (0..filters).map(|m| f64::from(scale[m]) / (f64::from(variance[m]) + epsilon).sqrt()).collect();
    let per_weight = weights.values.len() / filters;
    let values = weights
        .values
        .chunks_exact(per_weight)
        .zip(&factor)
        .flat_map(|(filter, &a)| filter.iter().map(move |&w| (f64::from(w) * a) as f32))
        .collect();
    let folded_bias = (0..filters)
        .map(|m| {
            let b = bias.as_ref().map_or(0.0, |bias| f64::from(bias.values[m]));
            ((b - f64::from(mean[m])) * factor[m] + f64::from(beta[m])) as f32
        })
        .collect();
    Some((Constant { values, dims: weights.dims }, folded_bias))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, DataType, Model, Node, Tensor};

    use crate::ops::test_support::{f32_tensor, graph, info, reference_conv2d};
    use crate::plan::{Kernel, Plan};
    use crate::{RuntimeOptions, Session};

    fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| ((i * 7) % 11) as f32 * scale - 0.5).collect()
    }

    /// A Conv and BatchNormalization pair with its constants and shapes.
    struct Case {
        x_dims: Vec<i64>,
        w_dims: Vec<i64>,
        y_dims: Vec<i64>,
        group: i64,
        strides: Vec<i64>,
        dilations: Vec<i64>,
        pads: Vec<i64>,
        bias: bool,
    }

    impl Case {
        fn filters(&self) -> usize {
            self.w_dims[0] as usize
        }

        fn weights(&self) -> Vec<f32> {
            ramp(self.w_dims.iter().product::<i64>() as usize, 0.07)
        }

        fn conv_bias(&self) -> Vec<f32> {
            ramp(self.filters(), 0.3)
        }

        /// scale, beta, mean and variance, one value per filter.
        fn statistics(&self) -> [Vec<f32>; 4] {
            let m = self.filters();
            let scale = (0..m).map(|i| 1.5 - 0.4 * i as f32).collect();
            let beta = ramp(m, 0.2);
            let mean = ramp(m, 0.15);
            let variance = (0..m).map(|i| 0.25 + 0.5 * i as f32).collect();
            [scale, beta, mean, variance]
        }

        fn x(&self) -> Vec<f32> {
            ramp(self.x_dims.iter().product::<i64>() as usize, 0.1)
        }

        /// `y = Relu(BatchNormalization(Conv(x)))`; `constant_statistics` false makes the
        /// statistics graph inputs, `expose` returns the Conv's output too.
        fn model(&self, constant_statistics: bool, expose: bool) -> Model {
            let conv_inputs: &[&str] = if self.bias { &["x", "w", "b"] } else { &["x", "w"] };
            let mut conv = Node::new("conv", "Conv", conv_inputs, &["t"]);
            conv.attributes = vec![
                Attribute::new("group", AttrValue::Int(self.group)),
                Attribute::new("strides", AttrValue::Ints(self.strides.clone())),
                Attribute::new("dilations", AttrValue::Ints(self.dilations.clone())),
                Attribute::new("pads", AttrValue::Ints(self.pads.clone())),
            ];
            let mut norm = Node::new("bn", "BatchNormalization", &["t", "s", "beta", "mean", "var"], &["n"]);
            norm.attributes = vec![Attribute::new("epsilon", AttrValue::Float(1e-3))];
            let mut outputs = vec![info("y", DataType::F32, Some(&self.y_dims))];
            if expose {
                outputs.push(info("t", DataType::F32, Some(&self.y_dims)));
            }
            let mut inputs = vec![info("x", DataType::F32, Some(&self.x_dims))];
            let m = self.filters() as i64;
            let statistics: Vec<Tensor> = ["s", "beta", "mean", "var"]
                .iter()
                .zip(self.statistics())
                .map(|(name, values)| f32_tensor(name, vec![m], &values))
                .collect();
            let mut initializers = vec![f32_tensor("w", self.w_dims.clone(), &self.weights())];
            if self.bias {
                initializers.push(f32_tensor("b", vec![m], &self.conv_bias()));
            }
            if constant_statistics {
                initializers.extend(statistics);
            } else {
                inputs.extend(["s", "beta", "mean", "var"].iter().map(|name| info(name, DataType::F32, Some(&[m]))));
            }
            let nodes = vec![conv, norm, Node::new("relu", "Relu", &["n"], &["y"])];
            let mut graph = graph("g", nodes, inputs, outputs);
            graph.initializers = initializers;
            Model::new(graph, 10, 18)
        }

        /// The Conv, normalization and Relu in f64, the convolution as 2-D.
        fn reference(&self) -> Vec<f64> {
            let four = |dims: &[i64]| -> [usize; 4] {
                let dims: Vec<usize> = dims.iter().map(|&dim| dim as usize).collect();
                if dims.len() == 3 {
                    [dims[0], dims[1], 1, dims[2]]
                } else {
                    [dims[0], dims[1], dims[2], dims[3]]
                }
            };
            let two = |values: &[i64], at: usize| {
                if values.len() == 1 {
                    [1, values[0] as usize]
                } else {
                    [values[at] as usize, values[at + 1] as usize]
                }
            };
            let [_, _, oh, ow] = four(&self.y_dims);
            let (x, weights, bias) = (self.x(), self.weights(), self.conv_bias());
            let conv = reference_conv2d(
                four(&self.x_dims),
                four(&self.w_dims),
                [oh, ow],
                two(&self.strides, 0),
                two(&self.dilations, 0),
                if self.pads.len() == 2 { [0, self.pads[0] as usize] } else { [self.pads[0] as usize, self.pads[1] as usize] },
                |f| if self.bias { f64::from(bias[f]) } else { 0.0 },
                |xi, wi, _| f64::from(x[xi]) * f64::from(weights[wi]),
            );
            let [scale, beta, mean, variance] =
                self.statistics().map(|values| values.into_iter().map(f64::from).collect::<Vec<_>>());
            let plane = oh * ow;
            conv.iter()
                .enumerate()
                .map(|(index, &value)| {
                    let m = (index / plane) % self.filters();
                    let y = (value - mean[m]) / (variance[m] + f64::from(1e-3f32)).sqrt() * scale[m] + beta[m];
                    y.max(0.0)
                })
                .collect()
        }

        fn run(&self, model: &Model) -> Vec<f32> {
            let x = Tensor::from_f32("x", self.x_dims.clone(), &self.x()).unwrap();
            let mut feed = vec![("x".to_string(), x)];
            let m = self.filters() as i64;
            for (name, values) in ["s", "beta", "mean", "var"].iter().zip(self.statistics()) {
                feed.push((name.to_string(), Tensor::from_f32(*name, vec![m], &values).unwrap()));
            }
            if model.graph.inputs.len() == 1 {
                feed.truncate(1);
            }
            let outputs = Session::new(model, &RuntimeOptions::default()).unwrap().run(feed).unwrap();
            outputs[0].1.to_f32_vec().unwrap()
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            // digits_cnn's second layer, batch 2.
            Case {
                x_dims: vec![2, 4, 4, 4],
                w_dims: vec![6, 4, 3, 3],
                y_dims: vec![2, 6, 4, 4],
                group: 1,
                strides: vec![1, 1],
                dilations: vec![1, 1],
                pads: vec![1, 1, 1, 1],
                bias: true,
            },
            // Groups, stride, dilation and asymmetric padding, no bias, batch 1.
            Case {
                x_dims: vec![1, 4, 7, 6],
                w_dims: vec![4, 2, 2, 2],
                y_dims: vec![1, 4, 4, 3],
                group: 2,
                strides: vec![2, 2],
                dilations: vec![2, 1],
                pads: vec![1, 0, 1, 0],
                bias: false,
            },
            // 1-D.
            Case {
                x_dims: vec![3, 2, 5],
                w_dims: vec![3, 2, 2],
                y_dims: vec![3, 3, 4],
                group: 1,
                strides: vec![1],
                dilations: vec![1],
                pads: vec![0, 0],
                bias: true,
            },
        ]
    }

    fn step_types(model: &Model) -> Vec<String> {
        let plan = Plan::new(model, &burn_tensor::Device::flex()).unwrap();
        plan.graph.steps.iter().map(|step| step.kernel.op_type().to_string()).collect()
    }

    fn assert_near(actual: &[f32], expected: &[f64], tolerance: f64) {
        assert_eq!(actual.len(), expected.len());
        for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!((f64::from(a) - e).abs() <= tolerance * e.abs().max(1.0), "element {index}: got {a}, expected {e}");
        }
    }

    #[test]
    fn folded_plans_run_one_conv_and_match_the_formula() {
        for case in cases() {
            let folded = case.model(true, false);
            assert_eq!(step_types(&folded), ["Conv"], "{:?}", case.w_dims);
            let plan = Plan::new(&folded, &burn_tensor::Device::flex()).unwrap();
            let Kernel::Tensor(crate::ops::Op::Conv(conv)) = &plan.graph.steps[0].kernel else { panic!("a Conv") };
            assert!(conv.activation.is_some(), "the Relu fuses into the folded Conv");
            // The original weights and statistics are no longer uploaded: x's slot holds no
            // constant, the folded W and B do.
            assert_eq!(plan.graph.constants.len(), 2);
            let expected = case.reference();
            assert_near(&case.run(&folded), &expected, 1e-5);
            // The unfolded plan (the Conv's output is also returned) agrees.
            let unfolded = case.model(true, true);
            assert_eq!(step_types(&unfolded), ["Conv", "BatchNormalization"]);
            assert_near(&case.run(&unfolded), &expected, 1e-5);
        }
    }

    #[test]
    fn statistics_that_are_not_constant_are_not_folded() {
        let case = cases().remove(0);
        let model = case.model(false, false);
        assert_eq!(step_types(&model), ["Conv", "BatchNormalization"]);
        assert_near(&case.run(&model), &case.reference(), 1e-5);
    }

    #[test]
    fn a_conv_output_with_another_reader_is_not_folded() {
        let case = cases().remove(0);
        let mut model = case.model(true, false);
        model.graph.nodes.push(Node::new("add", "Add", &["t", "y"], &["z"]));
        model.graph.outputs = vec![info("z", DataType::F32, Some(&case.y_dims))];
        assert_eq!(step_types(&model), ["Conv", "BatchNormalization", "Add"]);
    }

    #[test]
    fn weights_another_conv_reads_stay_uploaded() {
        // A second Conv reads the same W (its output is returned too): the first one folds into
        // new constants, the second still reads W, so W stays a constant and both outputs hold.
        let case = cases().remove(0);
        let mut model = case.model(true, false);
        model.graph.nodes.push(Node::new("conv2", "Conv", &["x", "w", "b"], &["u"]));
        model.graph.nodes[3].attributes = model.graph.nodes[0].attributes.clone();
        model.graph.outputs.push(info("u", DataType::F32, Some(&case.y_dims)));
        assert_eq!(step_types(&model), ["Conv", "Conv"]);
        let plan = Plan::new(&model, &burn_tensor::Device::flex()).unwrap();
        // W and B for the second Conv, the folded W and B for the first.
        assert_eq!(plan.graph.constants.len(), 4);
        assert_near(&case.run(&model), &case.reference(), 1e-5);
    }

    #[test]
    fn training_mode_and_overridable_weights_are_not_folded() {
        let case = cases().remove(0);
        let mut model = case.model(true, false);
        model.graph.nodes[1].attributes.push(Attribute::new("training_mode", AttrValue::Int(1)));
        assert_eq!(step_types(&model), ["Conv", "BatchNormalization", "Relu"]);
        // W is an initializer that is also a graph input: a feed may replace it.
        let mut model = case.model(true, false);
        model.graph.inputs.push(info("w", DataType::F32, Some(&case.w_dims)));
        assert_eq!(step_types(&model), ["Conv", "BatchNormalization"]);
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn folded_convs_run_on_other_backends() {
        // On ndarray the Conv runs burn's conv2d over the folded constants.
        for case in cases() {
            let model = case.model(true, false);
            let x = Tensor::from_f32("x", case.x_dims.clone(), &case.x()).unwrap();
            let session = Session::new(&model, &RuntimeOptions::new(crate::Backend::Ndarray)).unwrap();
            let y = session.run(vec![("x".into(), x)]).unwrap()[0].1.to_f32_vec().unwrap();
            assert_near(&y, &case.reference(), 1e-5);
        }
    }
}
