//! Sessions: a planned model on a device, run on host tensors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burn_tensor::Device;
use whittle_ir::{DimValue, HostValue, Model, Shape, Tensor};

use crate::device::RuntimeOptions;
use crate::error::{Result, RuntimeError};
use crate::host::{Entry, HostInputs};
use crate::ops::{fail, Inputs, OpError};
use crate::plan::{fixed_dim_accepts, Body, GraphPlan, InputSpec, Kernel, Plan, Read};
use crate::value::Value;

/// Tensors by name, in the order a run returns them.
pub type NamedTensors = Vec<(String, Tensor)>;

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
        let device = options.device()?;
        let plan = Plan::with_int8_kernels(model, &device, options.int8_kernels)?;
        Ok(Session { plan, device })
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
        self.plan.graph.outputs.iter().map(|(name, _)| name.as_str())
    }

    /// Runs the model on `feeds` (one tensor per input, by name) and returns the graph outputs in
    /// declaration order. Each feed is checked against its input's declared dtype and shape first.
    /// An output that is not a tensor (a sequence or a map, as ZipMap makes) is an error here;
    /// [`Session::run_values`] returns it.
    pub fn run(&self, feeds: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
        self.run_values(feeds)?
            .into_iter()
            .map(|(name, value)| match value {
                HostValue::Tensor(tensor) => Ok((name, tensor)),
                other => Err(RuntimeError::BadValue {
                    value: name,
                    reason: format!("output is a {}, not a tensor: Session::run_values returns it", other.kind_name()),
                }),
            })
            .collect()
    }

    /// Like [`Session::run`], with outputs of any kind: tensors (string tensors included), and the
    /// sequences and maps that classic-ML ops produce.
    pub fn run_values(&self, feeds: Vec<(String, Tensor)>) -> Result<Vec<(String, HostValue)>> {
        self.run_inner(feeds, None)
    }

    /// Like [`Session::run`], timing each step of the main graph (a control-flow node's time includes
    /// its subgraphs). The times are wall-clock around each op's evaluation; on an asynchronous
    /// device (wgpu) an op may return before its kernels finish, so they mean little there.
    pub fn run_profiled(&self, feeds: Vec<(String, Tensor)>) -> Result<(NamedTensors, Vec<StepTime>)> {
        let mut times = Vec::with_capacity(self.plan.graph.steps.len());
        let outputs = self.run_inner(feeds, Some(&mut times))?;
        let tensors = outputs
            .into_iter()
            .filter_map(|(name, value)| match value {
                HostValue::Tensor(tensor) => Some((name, tensor)),
                _ => None,
            })
            .collect();
        Ok((tensors, times))
    }

    /// Whether the session was planned for training (on an autodiff device): then its float
    /// initializers are [`Session::parameters`] and [`Session::forward`] records the tape.
    pub fn is_training(&self) -> bool {
        self.device.is_autodiff()
    }

    /// The trainable parameters of a training session: the main graph's float initializers that
    /// no feed overrides and some node reads, in the model's order, each a leaf whose gradient a
    /// backward pass keeps ([`Value::grad`]). Empty for an inference session.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.plan.parameters.iter().map(|(name, index)| (name.as_str(), &self.plan.graph.constants[*index].1))
    }

    /// The parameter called `name`.
    pub fn parameter(&self, name: &str) -> Result<&Value> {
        self.parameter_index(name).map(|index| &self.plan.graph.constants[index].1)
    }

    /// Replaces parameter `name` (an optimizer step), keeping its dtype and shape: the new value is
    /// cut from any tape and becomes a fresh leaf on the session's device.
    pub fn set_parameter(&mut self, name: &str, value: Value) -> Result<()> {
        let index = self.parameter_index(name)?;
        let current = &self.plan.graph.constants[index].1;
        if value.dtype() != current.dtype() || value.shape() != current.shape() {
            return Err(RuntimeError::ParameterMismatch {
                parameter: name.to_string(),
                expected: describe_value(current),
                actual: describe_value(&value),
            });
        }
        let bad = |err: OpError| RuntimeError::BadValue { value: name.to_string(), reason: err.reason };
        let value = value.detach();
        let value = if value.is_on(&self.device) { value } else { value.moved_to(&self.device).map_err(bad)? };
        self.plan.graph.constants[index].1 = value.require_grad().map_err(bad)?;
        Ok(())
    }

    fn parameter_index(&self, name: &str) -> Result<usize> {
        if !self.is_training() {
            return Err(RuntimeError::NotTraining);
        }
        match self.plan.parameters.iter().find(|(parameter, _)| parameter == name) {
            Some(&(_, index)) => Ok(index),
            None => Err(RuntimeError::UnknownParameter {
                parameter: name.to_string(),
                expected: self.plan.parameters.iter().map(|(name, _)| format!("'{name}'")).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Runs the model on device values and returns its outputs as device values, in declaration
    /// order, without downloading them: in a training session they carry the tape back to the
    /// parameters, so a loss built on them with burn's ops can call `backward`. Feeds are checked
    /// as in [`Session::run`] and moved to the session's device when they live elsewhere.
    pub fn forward(&self, feeds: Vec<(String, Value)>) -> Result<Vec<(String, Value)>> {
        let mut slots = self.initial_slots();
        for (input, value) in self.check_feeds(feeds)? {
            let value = if value.is_on(&self.device) {
                value
            } else {
                value
                    .moved_to(&self.device)
                    .map_err(|err| RuntimeError::BadValue { value: input.name.clone(), reason: err.reason })?
            };
            slots[input.slot] = Some(Entry::Tensor(value));
        }
        execute(&self.plan.graph, &mut slots, &self.device, None)?;
        self.plan
            .graph
            .outputs
            .iter()
            .map(|(name, slot)| match slots[*slot].take() {
                Some(Entry::Tensor(value)) => Ok((name.clone(), value)),
                Some(Entry::Host(host)) => Err(RuntimeError::BadValue {
                    value: name.clone(),
                    reason: format!("output is a {}, not a tensor: Session::run_values returns it", host.kind_name()),
                }),
                None => Err(RuntimeError::BadValue { value: name.clone(), reason: "graph output was not computed".into() }),
            })
            .collect()
    }

    /// The slots of a run before its feeds: the constants (parameters included) in place.
    fn initial_slots(&self) -> Vec<Option<Entry>> {
        let graph = &self.plan.graph;
        let mut slots = empty_slots(graph.slot_count);
        for (slot, value) in &graph.constants {
            slots[*slot] = Some(Entry::Tensor(value.clone()));
        }
        slots
    }

    fn run_inner(&self, feeds: Vec<(String, Tensor)>, times: Option<&mut Vec<StepTime>>) -> Result<Vec<(String, HostValue)>> {
        let graph = &self.plan.graph;
        let mut slots = self.initial_slots();
        for (input, tensor) in self.check_feeds(feeds)? {
            let value = Value::from_ir(&tensor, &self.device)
                .map_err(|err| RuntimeError::BadValue { value: input.name.clone(), reason: err.reason })?;
            slots[input.slot] = Some(Entry::Tensor(value));
        }
        execute(graph, &mut slots, &self.device, times)?;
        graph
            .outputs
            .iter()
            .map(|(name, slot)| {
                let bad = |reason: String| RuntimeError::BadValue { value: name.clone(), reason };
                let value = match &slots[*slot] {
                    None => return Err(bad("graph output was not computed".into())),
                    Some(Entry::Tensor(value)) => HostValue::Tensor(value.to_ir(name).map_err(|err| bad(err.reason))?),
                    Some(Entry::Host(HostValue::Tensor(tensor))) => {
                        HostValue::Tensor(Tensor { name: name.clone(), ..tensor.clone() })
                    }
                    Some(Entry::Host(host)) => host.clone(),
                };
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// Pairs feeds with inputs and checks names, dtypes, ranks, fixed sizes, and that every symbolic
    /// dim has one size across all inputs of the run.
    fn check_feeds<F: Feed>(&self, feeds: Vec<(String, F)>) -> Result<Vec<(&InputSpec, F)>> {
        let mut by_name: BTreeMap<String, F> = BTreeMap::new();
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
            let dims = tensor.dims();
            let mismatch = || RuntimeError::InputMismatch {
                input: input.name.clone(),
                expected: describe(input.dtype, input.shape.as_ref()),
                actual: describe(tensor.dtype(), Some(&Shape::known(&dims))),
            };
            if tensor.dtype() != input.dtype {
                return Err(mismatch());
            }
            let sizes: Vec<usize> =
                dims.iter().map(|&dim| usize::try_from(dim)).collect::<Result<_, _>>().map_err(|_| mismatch())?;
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

/// Evaluates the steps of `graph` on `slots`, which hold its constants and inputs; ops that make
/// values from nothing (Constant) make them on `device`.
///
/// The loop is the per-step overhead of every run: on `transformer_tiny` at batch 1 the 70 steps
/// take a few microseconds each, so a tensor step gathers its inputs into one `Vec` (no second
/// pass over entries) and writes its results straight into their slots.
fn execute(graph: &GraphPlan, slots: &mut [Option<Entry>], device: &Device, mut times: Option<&mut Vec<StepTime>>) -> Result<()> {
    for step in &graph.steps {
        let started = times.is_some().then(Instant::now);
        let node_error =
            |reason: String| RuntimeError::Node { node: step.label.clone(), op: step.kernel.op_type().to_string(), reason };
        match &step.kernel {
            Kernel::Tensor(op) => {
                // The planner rejects host values as inputs of tensor ops, so every entry is a tensor.
                let mut values = Vec::with_capacity(step.inputs.len());
                for read in &step.inputs {
                    values.push(match read_slot(slots, *read) {
                        Some(Entry::Host(host)) => return Err(node_error(format!("got a {} input", host.kind_name()))),
                        Some(Entry::Tensor(value)) => Some(value),
                        None => None,
                    });
                }
                let results = op.eval(Inputs::new(values).on(device.clone())).map_err(|err| node_error(err.reason))?;
                store(step, slots, results.into_iter().map(Entry::Tensor), node_error)?;
            }
            Kernel::Host(op) => {
                let entries = step.inputs.iter().map(|read| read_slot(slots, *read)).collect();
                let results = op.eval(HostInputs::new(entries)).map_err(|err| node_error(err.reason))?;
                store(step, slots, results.into_iter(), node_error)?;
            }
        }
        if let (Some(times), Some(started)) = (times.as_deref_mut(), started) {
            times.push(StepTime {
                node: step.label.clone(),
                op_type: step.kernel.op_type().to_string(),
                elapsed: started.elapsed(),
            });
        }
    }
    Ok(())
}

/// `count` empty slots. `vec![None; count]` clones its element into every place, a copy of the
/// whole entry each (320 bytes before `Value` boxed its tensor); this writes only the tag (int8-static digits_mlp at batch 1, whose
/// QDQ graph has 60 slots: memmove went from 18% to 12% of the run, perf).
fn empty_slots(count: usize) -> Vec<Option<Entry>> {
    std::iter::repeat_with(|| None).take(count).collect()
}

/// The entry a step reads: a clone (an `Arc` clone) before the value's last use, the value itself
/// at it; `None` for an omitted input.
fn read_slot(slots: &mut [Option<Entry>], read: Option<Read>) -> Option<Entry> {
    match read? {
        Read::Clone(slot) => slots[slot].clone(),
        Read::Move(slot) => slots[slot].take(),
    }
}

/// Writes a step's results into the slots of its outputs, after checking it made as many as the
/// node names.
fn store(
    step: &crate::plan::Step,
    slots: &mut [Option<Entry>],
    results: impl ExactSizeIterator<Item = Entry>,
    node_error: impl Fn(String) -> RuntimeError,
) -> Result<()> {
    if results.len() < step.required_results {
        return Err(node_error(format!("produced {} outputs, the node names {}", results.len(), step.required_results)));
    }
    for (slot, value) in step.outputs.iter().zip(results) {
        if let Some(slot) = slot {
            slots[*slot] = Some(value);
        }
    }
    Ok(())
}

/// How long one step of a profiled run took. A step is one node, or several the planner fused
/// into one kernel (then `node` is the first node's label and `op_type` its op's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTime {
    pub node: String,
    pub op_type: String,
    pub elapsed: Duration,
}

impl Body {
    /// Runs the subgraph once: `captured` are the outer values its holding node captured (all of
    /// them, in the node's order), `inputs` its formal inputs in order. Returns its outputs.
    pub(crate) fn run(&self, captured: &[Value], inputs: Vec<Value>) -> std::result::Result<Vec<Value>, OpError> {
        if inputs.len() != self.inputs.len() {
            fail!("subgraph {} takes {} inputs, got {}", self.name, self.inputs.len(), inputs.len());
        }
        let mut slots = empty_slots(self.graph.slot_count);
        for (slot, value) in &self.graph.constants {
            slots[*slot] = Some(Entry::Tensor(value.clone()));
        }
        for &(index, slot) in &self.captures {
            let Some(value) = captured.get(index) else { fail!("subgraph {} lacks captured value {index}", self.name) };
            slots[slot] = Some(Entry::Tensor(value.clone()));
        }
        for (&slot, value) in self.inputs.iter().zip(inputs) {
            slots[slot] = Some(Entry::Tensor(value));
        }
        execute(&self.graph, &mut slots, &self.device, None).map_err(|err| OpError::new(format!("in {}: {err}", self.name)))?;
        self.graph
            .outputs
            .iter()
            .map(|(name, slot)| match &slots[*slot] {
                Some(Entry::Tensor(value)) => Ok(value.clone()),
                Some(other) => fail!("subgraph {} output '{name}' is a {}, not a tensor", self.name, other.kind_name()),
                None => fail!("subgraph {} output '{name}' was not computed", self.name),
            })
            .collect()
    }
}

/// What a run is fed: host tensors ([`Session::run`]) or device values ([`Session::forward`]).
trait Feed {
    fn dtype(&self) -> whittle_ir::DataType;
    fn dims(&self) -> Vec<i64>;
}

impl Feed for Tensor {
    fn dtype(&self) -> whittle_ir::DataType {
        self.dtype
    }

    fn dims(&self) -> Vec<i64> {
        self.dims.clone()
    }
}

impl Feed for Value {
    fn dtype(&self) -> whittle_ir::DataType {
        Value::dtype(self)
    }

    fn dims(&self) -> Vec<i64> {
        self.shape().iter().map(|&size| size as i64).collect()
    }
}

/// A value's type as the IR's text form writes it.
fn describe_value(value: &Value) -> String {
    describe(value.dtype(), Some(&Shape::known(&Feed::dims(value))))
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
