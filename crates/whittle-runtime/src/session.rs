//! Sessions: a planned model on a device, run on host tensors.

use std::collections::BTreeMap;

use burn_tensor::Device;
use whittle_ir::{DimValue, Model, Shape, Tensor};

use crate::device::RuntimeOptions;
use crate::error::{Result, RuntimeError};
use crate::ops::Inputs;
use crate::plan::{fixed_dim_accepts, InputSpec, Plan, Read};
use crate::value::Value;

/// A model planned for one device, ready to run any number of times.
#[derive(Debug)]
pub struct Session {
    plan: Plan,
    device: Device,
}

impl Session {
    /// Plans `model` for the backend in `options`. Fails, before anything runs, on an op, opset or
    /// attribute this runtime does not support, on an input type it cannot take, and on an invalid
    /// graph.
    pub fn new(model: &Model, options: &RuntimeOptions) -> Result<Session> {
        Session::with_device(model, options.backend.device())
    }

    /// Plans `model` for a burn device chosen by the caller.
    pub fn with_device(model: &Model, device: Device) -> Result<Session> {
        let plan = Plan::new(model, &device)?;
        Ok(Session { plan, device })
    }

    /// The device the session runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The names of the inputs a run must feed, in declaration order.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.plan.inputs.iter().map(|input| input.name.as_str())
    }

    /// The names of the outputs a run returns, in declaration order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.plan.outputs.iter().map(|(name, _)| name.as_str())
    }

    /// Runs the model on `feeds` (one tensor per input, by name) and returns the graph outputs in
    /// declaration order. Each feed is checked against its input's declared dtype and shape first.
    pub fn run(&self, feeds: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
        let mut slots: Vec<Option<Value>> = vec![None; self.plan.slot_count];
        for (slot, value) in &self.plan.constants {
            slots[*slot] = Some(value.clone());
        }
        for (input, tensor) in self.check_feeds(feeds)? {
            let value = Value::from_ir(&tensor, &self.device)
                .map_err(|err| RuntimeError::BadValue { value: input.name.clone(), reason: err.reason })?;
            slots[input.slot] = Some(value);
        }

        for step in &self.plan.steps {
            let inputs = step
                .inputs
                .iter()
                .map(|read| match *read {
                    None => None,
                    Some(Read::Clone(slot)) => slots[slot].clone(),
                    Some(Read::Move(slot)) => slots[slot].take(),
                })
                .collect();
            let node_error =
                |reason: String| RuntimeError::Node { node: step.label.clone(), op: step.op.op_type().to_string(), reason };
            let results = step.op.eval(Inputs::new(inputs).on(self.device.clone())).map_err(|err| node_error(err.reason))?;
            if results.len() < step.required_results {
                return Err(node_error(format!("produced {} outputs, the node names {}", results.len(), step.required_results)));
            }
            for (slot, value) in step.outputs.iter().zip(results) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(value);
                }
            }
        }

        self.plan
            .outputs
            .iter()
            .map(|(name, slot)| {
                let value = slots[*slot].as_ref().ok_or_else(|| RuntimeError::BadValue {
                    value: name.clone(),
                    reason: "graph output was not computed".into(),
                })?;
                let tensor =
                    value.to_ir(name).map_err(|err| RuntimeError::BadValue { value: name.clone(), reason: err.reason })?;
                Ok((name.clone(), tensor))
            })
            .collect()
    }

    /// Pairs feeds with inputs and checks names, dtypes, ranks, fixed sizes, and that every symbolic
    /// dim has one size across all inputs of the run.
    fn check_feeds(&self, feeds: Vec<(String, Tensor)>) -> Result<Vec<(&InputSpec, Tensor)>> {
        let mut by_name: BTreeMap<String, Tensor> = BTreeMap::new();
        for (name, tensor) in feeds {
            if !self.plan.inputs.iter().any(|input| input.name == name) {
                let expected = self.plan.inputs.iter().map(|input| format!("'{}'", input.name)).collect::<Vec<_>>().join(", ");
                return Err(RuntimeError::UnknownInput { input: name, expected });
            }
            if by_name.contains_key(&name) {
                return Err(RuntimeError::DuplicateInput { input: name });
            }
            by_name.insert(name, tensor);
        }
        // Symbolic dim name -> (input that fixed it, size).
        let mut symbols: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        let mut checked = Vec::with_capacity(self.plan.inputs.len());
        for input in &self.plan.inputs {
            let Some(tensor) = by_name.remove(&input.name) else {
                return Err(RuntimeError::MissingInput { input: input.name.clone() });
            };
            let mismatch = || RuntimeError::InputMismatch {
                input: input.name.clone(),
                expected: describe(input.dtype, input.shape.as_ref()),
                actual: describe(tensor.dtype, Some(&Shape::known(&tensor.dims))),
            };
            if tensor.dtype != input.dtype {
                return Err(mismatch());
            }
            let sizes: Vec<usize> =
                tensor.dims.iter().map(|&dim| usize::try_from(dim)).collect::<Result<_, _>>().map_err(|_| mismatch())?;
            if let Some(shape) = &input.shape {
                if shape.rank() != sizes.len()
                    || !shape.0.iter().zip(&sizes).all(|(dim, &size)| fixed_dim_accepts(&dim.value, size))
                {
                    return Err(mismatch());
                }
                for (index, (dim, &size)) in shape.0.iter().zip(&sizes).enumerate() {
                    let DimValue::Symbolic(symbol) = &dim.value else { continue };
                    match symbols.get(symbol.as_str()) {
                        Some(&(first_input, first_size)) if first_size != size => {
                            return Err(RuntimeError::SymbolicDimMismatch {
                                input: input.name.clone(),
                                dim: index,
                                symbol: symbol.clone(),
                                first_input: first_input.to_string(),
                                first_size,
                                size,
                            });
                        }
                        Some(_) => {}
                        None => {
                            symbols.insert(symbol, (&input.name, size));
                        }
                    }
                }
            }
            checked.push((input, tensor));
        }
        Ok(checked)
    }
}

/// `f32[batch,64]`, as the IR's text form writes types.
fn describe(dtype: whittle_ir::DataType, shape: Option<&Shape>) -> String {
    whittle_ir::Type::tensor(dtype, shape.cloned()).to_string()
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, DataType, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};

    use super::Session;
    use crate::RuntimeOptions;

    #[test]
    fn trailing_omitted_outputs_are_not_required() {
        // MaxPool(x) -> (y, ""): the node names its optional Indices output as omitted.
        let mut pool = Node::new("pool", "MaxPool", &["x"], &["y", ""]);
        pool.attributes.push(Attribute::new("kernel_shape", AttrValue::Ints(vec![2])));
        let info = |name: &str, dims: &[i64]| ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(dims)))));
        let graph = Graph {
            name: "g".into(),
            nodes: vec![pool],
            inputs: vec![info("x", &[1, 1, 4])],
            outputs: vec![info("y", &[1, 1, 3])],
            ..Graph::default()
        };
        let session = Session::new(&Model::new(graph, 10, 18), &RuntimeOptions::default()).unwrap();
        let x = Tensor::from_f32("x", vec![1, 1, 4], &[1.0, 3.0, 2.0, 0.0]).unwrap();
        let outputs = session.run(vec![("x".into(), x)]).unwrap();
        assert_eq!(outputs[0].1.to_f32_vec().unwrap(), vec![3.0, 3.0, 2.0]);
    }

    #[test]
    fn sessions_can_be_shared_across_threads() {
        // Benchmarks and calibration run one session from several threads.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Session>();
    }
}
