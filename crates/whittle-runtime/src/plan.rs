//! The execution plan: nodes parsed into ops, in topological order, over numbered value slots, with
//! each value's last use marked so that the executor frees intermediates as early as possible.
//!
//! Every value (feed, initializer, node output) gets a slot. A step reads its inputs from slots: the
//! last read of a value moves it out of its slot, which frees it once the op is done with it, and
//! lets burn update a buffer in place when nothing else holds it; earlier reads clone it (an `Arc`
//! clone, no data copy). Graph outputs are never moved, and a node output nothing reads gets no slot
//! and is dropped when the node returns.
//!
//! Before last uses are marked, an inference BatchNormalization over a Conv with constant weights is
//! folded into the Conv (`crate::fold`), then an activation whose input is produced by a Conv, Gemm
//! or MatMul with no other reader is fused into that op's kernel (`crate::fuse`), then quantized
//! layers (QDQ and dynamic) into one integer kernel each (`crate::fuse_int8`).
//!
//! Subgraphs (If branches, Loop and Scan bodies) are planned the same way, once, into [`Body`]s
//! with slots of their own, and held by their node's op. The outer values a subgraph reads are
//! extra inputs of the node holding it, so they follow the same rule: kept alive until that node has
//! run, moved into it when it is their last reader.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use burn_tensor::Device;
use whittle_ir::{canonical_domain, AttrValue, DataType, DimValue, Graph, Model, Shape, Tensor, Type, TypeKind};

use crate::device::Int8Kernels;
use crate::error::{Result, RuntimeError};
use crate::ops::{HostOp, NodeContext, Op, Subgraphs};
use crate::value::{held_dtype, Value, MAX_RANK};

/// How a step reads one input slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Clone the value: something reads it later.
    Clone(usize),
    /// Take the value out of its slot: this is its last use.
    Move(usize),
}

/// What evaluates a step: a tensor op, or a host op for values burn cannot hold.
#[derive(Debug)]
pub(crate) enum Kernel {
    Tensor(Op),
    Host(HostOp),
}

impl Kernel {
    pub fn op_type(&self) -> &str {
        match self {
            Kernel::Tensor(op) => op.op_type(),
            Kernel::Host(op) => op.op_type(),
        }
    }
}

/// One node to evaluate.
#[derive(Debug)]
pub(crate) struct Step {
    pub label: String,
    pub kernel: Kernel,
    /// One entry per node input, then one per outer value its subgraphs read (see
    /// [`crate::ops::Subgraphs`]); `None` for an omitted optional input.
    pub inputs: Vec<Option<Read>>,
    /// One entry per node output; `None` where the output is omitted or nothing reads it.
    pub outputs: Vec<Option<usize>>,
    /// How many results the op must return: up to the last output the node names (trailing
    /// optional outputs may be omitted).
    pub required_results: usize,
}

/// A value the caller must feed, with its declared type.
#[derive(Debug, Clone)]
pub(crate) struct InputSpec {
    pub name: String,
    pub slot: usize,
    pub dtype: DataType,
    /// `None` when the model declares no shape (any rank is accepted).
    pub shape: Option<Shape>,
}

/// The steps of one graph (the main graph or a subgraph) over its own slots.
#[derive(Debug)]
pub(crate) struct GraphPlan {
    pub steps: Vec<Step>,
    /// Initializers uploaded to the device, with their slots.
    pub constants: Vec<(usize, Value)>,
    /// Graph outputs and their slots.
    pub outputs: Vec<(String, usize)>,
    pub slot_count: usize,
}

/// Everything `Session::run` needs, computed once.
#[derive(Debug)]
pub(crate) struct Plan {
    pub graph: GraphPlan,
    pub inputs: Vec<InputSpec>,
    /// In a training plan, the main graph's float initializers that no feed overrides, by name,
    /// with their index in `graph.constants`; empty otherwise.
    pub parameters: Vec<(String, usize)>,
}

/// A subgraph planned once at `Session::new` and run by its control-flow op, once per branch taken
/// or per iteration. Its slots are its own: a run fills them from the constants, from the outer
/// values the holding node captured, and from the formal inputs the op passes.
#[derive(Debug)]
pub(crate) struct Body {
    /// The attribute holding it (`then_branch`, `body`, ...), for messages.
    pub name: String,
    pub graph: GraphPlan,
    /// The slots of the subgraph's formal inputs, in declaration order.
    pub inputs: Vec<usize>,
    /// `(index among the holding node's captured values, slot)` for each outer value it reads.
    pub captures: Vec<(usize, usize)>,
    /// The declared types of its outputs (Loop and Scan need element types of empty scan outputs).
    pub output_types: Vec<Option<Type>>,
    /// The device its values live on, for the values the op makes itself (iteration counters).
    pub device: Device,
}

/// A shared handle on a planned [`Body`]; ops hold it. Two handles are equal when they are the same
/// planned subgraph (the plans themselves hold device tensors, which have no equality).
#[derive(Clone)]
pub(crate) struct Subgraph(Arc<Body>);

impl Subgraph {
    pub fn body(&self) -> &Body {
        &self.0
    }
}

impl PartialEq for Subgraph {
    fn eq(&self, other: &Subgraph) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Subgraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subgraph({}, {} steps)", self.0.name, self.0.graph.steps.len())
    }
}

type ConstantLookup<'a> = dyn Fn(&str) -> Option<&'a Tensor> + 'a;

impl Plan {
    pub fn new(model: &Model, device: &Device) -> Result<Plan> {
        Plan::with_int8_kernels(model, device, Int8Kernels::Best)
    }

    /// [`Plan::new`] with the fused int8 layers on `int8_kernels`.
    pub fn with_int8_kernels(model: &Model, device: &Device, int8_kernels: Int8Kernels) -> Result<Plan> {
        let graph = &model.graph;
        // Validates subgraphs too, with the outer values they may read.
        graph.validate()?;
        // Initializers listed among the inputs may be overridden by a feed (ONNX IR 4 and later), so
        // only the others are constants that ops may read at plan time.
        let declared_input = |name: &str| graph.inputs.iter().any(|input| input.name == name);
        // In a training plan float initializers are parameters, which change between runs and
        // whose gradients flow back through the ops that read them: no op may fold or pack them.
        let training = device.is_autodiff();
        let parameter = |tensor: &Tensor| training && tensor.dtype.is_float();
        let constant = |name: &str| graph.initializer(name).filter(|tensor| !declared_input(name) && !parameter(tensor));
        let mut planner = Planner::new(model, device, int8_kernels, graph);
        planner.plan_nodes(&constant)?;

        // Inputs are checked after the ops, so that a model with an op this runtime lacks is reported
        // as such rather than by the first input type that op would have needed.
        let mut inputs = Vec::new();
        for input in graph.feed_inputs() {
            let (dtype, shape) = match input.ty.as_ref().map(|ty| &ty.kind) {
                Some(TypeKind::Tensor { elem, shape }) => (*elem, shape.clone()),
                Some(_) => {
                    return Err(RuntimeError::UnsupportedInput {
                        input: input.name.clone(),
                        reason: format!(
                            "only tensor inputs are supported, this one is {}",
                            input.ty.as_ref().map(|ty| ty.to_string()).unwrap_or_default()
                        ),
                    })
                }
                None => {
                    return Err(RuntimeError::UnsupportedInput {
                        input: input.name.clone(),
                        reason: "it has no declared type".into(),
                    })
                }
            };
            if held_dtype(dtype).is_none() {
                return Err(RuntimeError::UnsupportedInput {
                    input: input.name.clone(),
                    reason: format!("dtype {dtype} is not supported"),
                });
            }
            if let Some(shape) = &shape {
                if shape.rank() > MAX_RANK {
                    return Err(RuntimeError::UnsupportedInput {
                        input: input.name.clone(),
                        reason: format!("rank {} is above the {MAX_RANK} this runtime supports", shape.rank()),
                    });
                }
            }
            inputs.push(InputSpec { name: input.name.clone(), slot: planner.slot_of(&input.name), dtype, shape });
        }
        let candidates: Vec<(String, usize)> = graph
            .initializers
            .iter()
            .filter(|tensor| parameter(tensor) && !declared_input(&tensor.name))
            .map(|tensor| (tensor.name.clone(), planner.slot_of(&tensor.name)))
            .collect();
        let mut graph_plan = planner.finish()?;
        let mut parameters = Vec::new();
        for (name, slot) in candidates {
            // An initializer no node reads is not uploaded.
            let Some(index) = graph_plan.constants.iter().position(|(at, _)| *at == slot) else { continue };
            let (_, value) = &mut graph_plan.constants[index];
            *value = value
                .clone()
                .require_grad()
                .map_err(|err| RuntimeError::UnsupportedInitializer { tensor: name.clone(), reason: err.reason })?;
            parameters.push((name, index));
        }
        Ok(Plan { graph: graph_plan, inputs, parameters })
    }
}

/// Plans one graph: slots by name, steps in topological order, and which slots hold host values.
struct Planner<'a> {
    model: &'a Model,
    device: &'a Device,
    graph: &'a Graph,
    slots: HashMap<String, usize>,
    /// Slots that a host op fills with a value burn cannot hold.
    host: HashSet<usize>,
    steps: Vec<Step>,
    /// The kernels of fused int8 layers, for this graph and the bodies of its If and Loop nodes.
    int8_kernels: Int8Kernels,
}

impl<'a> Planner<'a> {
    fn new(model: &'a Model, device: &'a Device, int8_kernels: Int8Kernels, graph: &'a Graph) -> Planner<'a> {
        Planner { model, device, graph, slots: HashMap::new(), host: HashSet::new(), steps: Vec::new(), int8_kernels }
    }

    fn slot_of(&mut self, name: &str) -> usize {
        let next = self.slots.len();
        *self.slots.entry(name.to_string()).or_insert(next)
    }

    fn plan_nodes(&mut self, constant: &ConstantLookup<'a>) -> Result<()> {
        let graph = self.graph;
        for index in graph.topological_order()? {
            let node = &graph.nodes[index];
            let domain = canonical_domain(&node.domain);
            let opset = self.model.opset_version(&node.domain);
            let unsupported = || RuntimeError::UnsupportedOp {
                node: node.label(),
                op: node.op_type.clone(),
                domain: domain.to_string(),
                opset: opset.map_or_else(|| "not imported".to_string(), |opset| opset.to_string()),
            };
            let Some(opset) = opset else { return Err(unsupported()) };

            // Subgraphs are planned before their node parses, so that the op holds them; an op this
            // runtime lacks is reported as itself, not by an op inside its subgraphs.
            let captured: Vec<String> =
                node.subgraphs().flat_map(Graph::free_values).collect::<BTreeSet<_>>().into_iter().collect();
            let mut subgraphs = Subgraphs { bodies: Vec::new(), captured: captured.len() };
            if node.subgraphs().next().is_some() {
                if !Op::implements(domain, &node.op_type) {
                    return Err(unsupported());
                }
                for name in &captured {
                    if self.slots.get(name).is_some_and(|slot| self.host.contains(slot)) {
                        return Err(RuntimeError::Node {
                            node: node.label(),
                            op: node.op_type.clone(),
                            reason: format!("a subgraph reads '{name}', a non-tensor value, which subgraphs cannot take"),
                        });
                    }
                }
                for attribute in &node.attributes {
                    if let AttrValue::Graph(subgraph) = &attribute.value {
                        let body = plan_body(
                            self.model,
                            self.device,
                            self.int8_kernels,
                            &attribute.name,
                            subgraph,
                            &captured,
                            constant,
                        )?;
                        subgraphs.bodies.push((attribute.name.clone(), Subgraph(Arc::new(body))));
                    }
                }
            }

            // A closure, so that the lookup's lifetime can shorten to this context's.
            let context = NodeContext { node, opset, constant: &|name| constant(name), subgraphs: &subgraphs };
            let kernel = match HostOp::parse(&context) {
                Some(host) => Kernel::Host(host?),
                None => match Op::parse(&context)? {
                    Op::Opaque { .. } => return Err(unsupported()),
                    op => Kernel::Tensor(op),
                },
            };
            let names = node.inputs.iter().chain(&captured);
            let inputs: Vec<Option<Read>> =
                names.map(|name| (!name.is_empty()).then(|| Read::Clone(self.slot_of(name)))).collect();
            if matches!(kernel, Kernel::Tensor(_)) {
                let host_input = node.inputs.iter().zip(&inputs).find_map(|(name, read)| match read {
                    Some(Read::Clone(slot)) if self.host.contains(slot) => Some(name),
                    _ => None,
                });
                if let Some(name) = host_input {
                    return Err(RuntimeError::Node {
                        node: node.label(),
                        op: node.op_type.clone(),
                        reason: format!(
                            "input '{name}' is a non-tensor value (strings, sequence or map), which this op cannot take"
                        ),
                    });
                }
            }
            let outputs: Vec<Option<usize>> =
                node.outputs.iter().map(|name| (!name.is_empty()).then(|| self.slot_of(name))).collect();
            if let Kernel::Host(host) = &kernel {
                for (index, slot) in outputs.iter().enumerate() {
                    if let Some(slot) = slot.filter(|_| host.host_output(index)) {
                        self.host.insert(slot);
                    }
                }
            }
            let required_results = node.outputs.iter().rposition(|name| !name.is_empty()).map_or(0, |last| last + 1);
            self.steps.push(Step { label: node.label(), kernel, inputs, outputs, required_results });
        }
        Ok(())
    }

    /// Uploads the initializers, resolves the outputs and marks last uses.
    fn finish(mut self) -> Result<GraphPlan> {
        // Weights are uploaded only once every node has parsed, so that an unsupported op is reported
        // before the (possibly large) upload. (A subgraph's own initializers, usually a few scalars,
        // are uploaded when its node is planned.)
        let graph = self.graph;
        let initializer_slots: Vec<usize> = graph.initializers.iter().map(|tensor| self.slot_of(&tensor.name)).collect();
        let outputs: Vec<(String, usize)> =
            graph.outputs.iter().map(|output| (output.name.clone(), self.slot_of(&output.name))).collect();
        let mut slot_count = self.slots.len();
        let output_slots: Vec<usize> = outputs.iter().map(|&(_, slot)| slot).collect();
        // The constants ops may read at plan time: this graph's initializers that no feed overrides,
        // by slot, so that the planner steps' lookups cost no search.
        let mut constant_slots: Vec<Option<&Tensor>> = vec![None; slot_count];
        for (tensor, &slot) in graph.initializers.iter().zip(&initializer_slots) {
            if !graph.inputs.iter().any(|input| input.name == tensor.name) {
                constant_slots[slot] = Some(tensor);
            }
        }
        let constant = |slot: usize| constant_slots.get(slot).copied().flatten();
        // A training plan runs every node on burn's ops, which record the tape: folding, fusing and
        // packing would bake parameters into kernels that autodiff cannot see through.
        let training = self.device.is_autodiff();
        let folded = if training {
            crate::fold::Folded::default()
        } else {
            crate::fold::fold_batch_norms(&mut self.steps, &constant, &output_slots, &mut slot_count)
        };
        if !training {
            crate::fuse::fuse_bias(&mut self.steps, &output_slots, slot_count, &constant);
            crate::fuse::fuse_activations(&mut self.steps, &output_slots, slot_count);
            // Quantized layers read their weights at plan time, through the same constants.
            let (device, kernels) = (self.device, self.int8_kernels);
            crate::fuse_int8::fuse_int8(&mut self.steps, &output_slots, slot_count, &constant, device, kernels);
            crate::fuse_int8::pool_int8(&mut self.steps, &output_slots, slot_count);
            crate::fuse_int8::chain_int8(&mut self.steps, &output_slots, slot_count);
        }
        // Only constants that a step or the caller reads are uploaded: every run puts each one in
        // its slot, and the weights a fused step packed for itself (a quantized layer's int8 W, its
        // scales and zero points) are read by nothing. Int8-static digits_mlp, whose one chain step
        // reads none of its initializers, went from 4.2 to 3.0 us a run at batch 1 (p50, one
        // thread; fp32 4.1 us in the same minute).
        let mut read = vec![false; slot_count];
        for step in &self.steps {
            for Read::Clone(slot) | Read::Move(slot) in step.inputs.iter().flatten().copied() {
                read[slot] = true;
            }
        }
        for &slot in &output_slots {
            read[slot] = true;
        }
        let mut constants = Vec::new();
        let uploads = graph.initializers.iter().zip(initializer_slots.iter().copied());
        let uploads = uploads.filter(|(_, slot)| !folded.unread.contains(slot));
        let uploads = uploads.chain(folded.constants.iter().map(|(slot, tensor)| (tensor, *slot)));
        for (tensor, slot) in uploads.filter(|&(_, slot)| read[slot]) {
            let value = Value::from_ir(tensor, self.device)
                .map_err(|err| RuntimeError::UnsupportedInitializer { tensor: tensor.name.clone(), reason: err.reason })?;
            constants.push((slot, value));
        }
        mark_last_uses(&mut self.steps, &outputs, slot_count);
        Ok(GraphPlan { steps: self.steps, constants, outputs, slot_count })
    }
}

/// Plans subgraph `graph` (attribute `name`) of a node whose subgraphs read the outer values
/// `captured`; `outer` looks up the constants of the enclosing graphs.
fn plan_body<'a>(
    model: &'a Model,
    device: &'a Device,
    int8_kernels: Int8Kernels,
    name: &str,
    graph: &'a Graph,
    captured: &[String],
    outer: &ConstantLookup<'a>,
) -> Result<Body> {
    let mut planner = Planner::new(model, device, int8_kernels, graph);
    // Formal inputs first: their slots are what the op fills on each run.
    let inputs: Vec<usize> = graph.inputs.iter().map(|input| planner.slot_of(&input.name)).collect();
    let free = graph.free_values();
    let captures: Vec<(usize, usize)> = captured
        .iter()
        .enumerate()
        .filter(|(_, value)| free.contains(*value))
        .map(|(index, value)| (index, planner.slot_of(value)))
        .collect();
    let training = device.is_autodiff();
    let parameter = |tensor: &Tensor| training && tensor.dtype.is_float();
    let own = |value: &str| {
        graph.initializer(value).filter(|tensor| !graph.inputs.iter().any(|input| input.name == value) && !parameter(tensor))
    };
    let constant = |value: &str| own(value).or_else(|| if free.contains(value) { outer(value) } else { None });
    planner.plan_nodes(&constant)?;
    if let Some(output) =
        graph.outputs.iter().find(|output| planner.slots.get(&output.name).is_some_and(|slot| planner.host.contains(slot)))
    {
        return Err(RuntimeError::BadValue {
            value: output.name.clone(),
            reason: format!("subgraph {name} returns a non-tensor value, which control flow cannot carry"),
        });
    }
    let output_types = graph.outputs.iter().map(|output| output.ty.clone()).collect();
    Ok(Body { name: name.to_string(), graph: planner.finish()?, inputs, captures, output_types, device: device.clone() })
}

/// Turns the last read of each slot into a move, and drops outputs that nothing reads.
fn mark_last_uses(steps: &mut [Step], outputs: &[(String, usize)], slot_count: usize) {
    let mut is_graph_output = vec![false; slot_count];
    for &(_, slot) in outputs {
        is_graph_output[slot] = true;
    }
    let mut read = vec![false; slot_count];
    // Walking backwards, the first read met is the last one executed. Within a node the later input
    // position is read last (`Inputs` are taken in order), so positions are walked backwards too.
    for step in steps.iter_mut().rev() {
        for output in step.outputs.iter_mut() {
            if let Some(slot) = *output {
                if !read[slot] && !is_graph_output[slot] {
                    *output = None;
                }
            }
        }
        for input in step.inputs.iter_mut().rev() {
            if let Some(Read::Clone(slot)) = *input {
                if !read[slot] && !is_graph_output[slot] {
                    *input = Some(Read::Move(slot));
                }
                read[slot] = true;
            }
        }
    }
}

/// Whether a declared dim accepts `size`; symbolic dims are checked across inputs by the caller.
pub(crate) fn fixed_dim_accepts(dim: &DimValue, size: usize) -> bool {
    match dim {
        DimValue::Known(known) => usize::try_from(*known).is_ok_and(|known| known == size),
        DimValue::Symbolic(_) | DimValue::Unknown => true,
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Graph, Node, Tensor, Type, ValueInfo};

    use super::*;

    fn f32_input(name: &str, dims: &[i64]) -> ValueInfo {
        ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(dims)))))
    }

    #[test]
    fn last_reads_move_and_unread_outputs_are_dropped() {
        // y = Relu(x); z = Add(y, y); w = Relu(z) is the output; t = Relu(x) is read by nothing.
        let graph = Graph {
            name: "g".into(),
            nodes: vec![
                Node::new("r", "Relu", &["x"], &["y"]),
                Node::new("a", "Add", &["y", "y"], &["z"]),
                Node::new("w", "Relu", &["z"], &["w"]),
                Node::new("t", "Relu", &["x"], &["t"]),
            ],
            inputs: vec![f32_input("x", &[2])],
            outputs: vec![f32_input("w", &[2])],
            ..Graph::default()
        };
        let plan = Plan::new(&Model::new(graph, 10, 18), &Device::flex()).unwrap();
        let x = plan.inputs[0].slot;
        let plan_steps = &plan.graph.steps;
        let reads: Vec<Vec<Option<Read>>> = plan_steps.iter().map(|step| step.inputs.clone()).collect();
        // x is read by r (not last) and t (last); y is read twice by a, the second read moves it.
        assert_eq!(reads[0], vec![Some(Read::Clone(x))]);
        let Some(Read::Clone(y)) = reads[1][0] else { panic!("first read of y should clone: {reads:?}") };
        assert_eq!(reads[1][1], Some(Read::Move(y)));
        assert!(matches!(reads[2][0], Some(Read::Move(_))));
        assert_eq!(reads[3], vec![Some(Read::Move(x))]);
        assert_eq!(plan_steps[3].outputs, vec![None]);
        assert!(plan_steps[2].outputs[0].is_some());
    }

    #[test]
    fn overridable_initializers_are_not_folded() {
        // Reshape's shape is an initializer that is also a graph input: a feed may replace it, so
        // the plan must not read it at plan time (it would otherwise be folded as a constant).
        let shape = Tensor::from_i64("s", vec![1], &[4]).unwrap();
        let graph = Graph {
            name: "g".into(),
            nodes: vec![Node::new("r", "Reshape", &["x", "s"], &["y"])],
            inputs: vec![
                f32_input("x", &[2, 2]),
                ValueInfo::new("s", Some(Type::tensor(DataType::I64, Some(Shape::known(&[1]))))),
            ],
            outputs: vec![f32_input("y", &[4])],
            initializers: vec![shape],
            ..Graph::default()
        };
        let plan = Plan::new(&Model::new(graph, 10, 18), &Device::flex()).unwrap();
        let Kernel::Tensor(crate::ops::Op::Reshape(reshape)) = &plan.graph.steps[0].kernel else { panic!("expected Reshape") };
        assert_eq!(reshape.shape, None);
    }

    #[test]
    fn outer_values_read_by_subgraphs_are_inputs_of_the_holding_node() {
        // z = If(c) { x + x } else { x }; x's only reader is the If, through its branches, so the If
        // step takes it as an extra input and moves it; a later reader would make that a clone.
        let branch = |name: &str, nodes: Vec<Node>, out: &str| Graph {
            name: name.into(),
            nodes,
            outputs: vec![f32_input(out, &[2])],
            ..Graph::default()
        };
        let mut node = Node::new("if", "If", &["c"], &["z"]);
        node.attributes = vec![
            whittle_ir::Attribute::new(
                "then_branch",
                AttrValue::Graph(Box::new(branch("then", vec![Node::new("add", "Add", &["x", "x"], &["t"])], "t"))),
            ),
            whittle_ir::Attribute::new("else_branch", AttrValue::Graph(Box::new(branch("else", vec![], "x")))),
        ];
        let build = |later_reader: bool| {
            let mut nodes = vec![node.clone()];
            let mut outputs = vec![f32_input("z", &[2])];
            if later_reader {
                nodes.push(Node::new("relu", "Relu", &["x"], &["r"]));
                outputs.push(f32_input("r", &[2]));
            }
            let inputs =
                vec![ValueInfo::new("c", Some(Type::tensor(DataType::Bool, Some(Shape::known(&[]))))), f32_input("x", &[2])];
            let graph = Graph { name: "g".into(), nodes, inputs, outputs, ..Graph::default() };
            Plan::new(&Model::new(graph, 10, 18), &Device::flex()).unwrap()
        };
        let plan = build(false);
        let x = plan.inputs[1].slot;
        assert_eq!(plan.graph.steps[0].inputs[1], Some(Read::Move(x)));
        let plan = build(true);
        assert_eq!(plan.graph.steps[0].inputs[1], Some(Read::Clone(plan.inputs[1].slot)));
        let Kernel::Tensor(Op::If(op)) = &plan.graph.steps[0].kernel else { panic!("an If step") };
        // The else branch returns the captured value itself.
        assert_eq!(op.else_branch.body().captures.len(), 1);
    }
}
