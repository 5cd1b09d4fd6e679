//! The execution plan: nodes parsed into ops, in topological order, over numbered value slots, with
//! each value's last use marked so that the executor frees intermediates as early as possible.
//!
//! Every value (feed, initializer, node output) gets a slot. A step reads its inputs from slots: the
//! last read of a value moves it out of its slot, which frees it once the op is done with it, and
//! lets burn update a buffer in place when nothing else holds it; earlier reads clone it (an `Arc`
//! clone, no data copy). Graph outputs are never moved, and a node output nothing reads gets no slot
//! and is dropped when the node returns.

use std::collections::HashMap;

use burn_tensor::Device;
use whittle_ir::{canonical_domain, DataType, DimValue, Model, Shape, TypeKind};

use crate::error::{Result, RuntimeError};
use crate::ops::{NodeContext, Op};
use crate::value::{burn_dtype, Value, MAX_RANK};

/// How a step reads one input slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Clone the value: something reads it later.
    Clone(usize),
    /// Take the value out of its slot: this is its last use.
    Move(usize),
}

/// One node to evaluate.
#[derive(Debug)]
pub(crate) struct Step {
    pub label: String,
    pub op: Op,
    /// One entry per node input; `None` for an omitted optional input.
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

/// Everything `Session::run` needs, computed once.
#[derive(Debug)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub inputs: Vec<InputSpec>,
    /// Initializers uploaded to the device, with their slots.
    pub constants: Vec<(usize, Value)>,
    /// Graph outputs and their slots.
    pub outputs: Vec<(String, usize)>,
    pub slot_count: usize,
}

impl Plan {
    pub fn new(model: &Model, device: &Device) -> Result<Plan> {
        let graph = &model.graph;
        graph.validate()?;
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot_of = |name: &str| -> usize {
            let next = slots.len();
            *slots.entry(name.to_string()).or_insert(next)
        };

        // Initializers listed among the inputs may be overridden by a feed (ONNX IR 4 and later), so
        // only the others are constants that ops may read at plan time.
        let declared_input = |name: &str| graph.inputs.iter().any(|input| input.name == name);
        let constant = |name: &str| graph.initializer(name).filter(|_| !declared_input(name));

        let order = graph.topological_order()?;
        let mut steps = Vec::with_capacity(order.len());
        for &index in &order {
            let node = &graph.nodes[index];
            let domain = canonical_domain(&node.domain);
            let opset = model.opset_version(&node.domain);
            let unsupported = || RuntimeError::UnsupportedOp {
                node: node.label(),
                op: node.op_type.clone(),
                domain: domain.to_string(),
                opset: opset.map_or_else(|| "not imported".to_string(), |opset| opset.to_string()),
            };
            let Some(opset) = opset else { return Err(unsupported()) };
            let op = Op::parse(&NodeContext { node, opset, constant: &constant })?;
            if matches!(op, Op::Opaque { .. }) {
                return Err(unsupported());
            }
            let inputs = node.inputs.iter().map(|name| (!name.is_empty()).then(|| Read::Clone(slot_of(name)))).collect();
            let outputs = node.outputs.iter().map(|name| (!name.is_empty()).then(|| slot_of(name))).collect();
            let required_results = node.outputs.iter().rposition(|name| !name.is_empty()).map_or(0, |last| last + 1);
            steps.push(Step { label: node.label(), op, inputs, outputs, required_results });
        }

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
            if burn_dtype(dtype).is_none() {
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
            inputs.push(InputSpec { name: input.name.clone(), slot: slot_of(&input.name), dtype, shape });
        }

        // Weights are uploaded only once every node has parsed, so that an unsupported op is reported
        // before the (possibly large) upload.
        let mut constants = Vec::new();
        for tensor in &graph.initializers {
            let value = Value::from_ir(tensor, device)
                .map_err(|err| RuntimeError::UnsupportedInitializer { tensor: tensor.name.clone(), reason: err.reason })?;
            constants.push((slot_of(&tensor.name), value));
        }

        let outputs: Vec<(String, usize)> =
            graph.outputs.iter().map(|output| (output.name.clone(), slot_of(&output.name))).collect();
        let slot_count = slots.len();
        mark_last_uses(&mut steps, &outputs, slot_count);
        Ok(Plan { steps, inputs, constants, outputs, slot_count })
    }
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
        let reads: Vec<Vec<Option<Read>>> = plan.steps.iter().map(|step| step.inputs.clone()).collect();
        // x is read by r (not last) and t (last); y is read twice by a, the second read moves it.
        assert_eq!(reads[0], vec![Some(Read::Clone(x))]);
        let Some(Read::Clone(y)) = reads[1][0] else { panic!("first read of y should clone: {reads:?}") };
        assert_eq!(reads[1][1], Some(Read::Move(y)));
        assert!(matches!(reads[2][0], Some(Read::Move(_))));
        assert_eq!(reads[3], vec![Some(Read::Move(x))]);
        assert_eq!(plan.steps[3].outputs, vec![None]);
        assert!(plan.steps[2].outputs[0].is_some());
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
        let crate::ops::Op::Reshape(reshape) = &plan.steps[0].op else { panic!("expected Reshape") };
        assert_eq!(reshape.shape, None);
    }
}
