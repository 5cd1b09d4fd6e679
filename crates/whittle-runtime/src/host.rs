//! Values burn cannot hold, beside the tensors it can: what the executor keeps in a slot.
//!
//! burn tensors carry numbers and bools only. ONNX graphs can also carry string tensors, sequences
//! and maps; in the models whittle runs they only appear at the end of classic-ML pipelines
//! (scikit-learn's string class labels, ZipMap's `seq(map(int64, float))` probabilities), so they
//! stay on the host as [`whittle_ir::HostValue`]s: produced by host ops (`ops::HostOperator`),
//! read by host ops or returned as graph outputs. The planner knows statically which slots hold
//! host values and rejects a tensor op that would read one.

use whittle_ir::HostValue;

use crate::ops::{fail, OpError};
use crate::value::Value;

/// What a slot holds during a run.
///
/// With the `wgpu` feature burn's tensor primitive (and so `Value`) is 640 bytes; boxing it would add
/// an allocation per step on every backend to save moves of a few hundred bytes, so the lint stays off.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "wgpu", allow(clippy::large_enum_variant))]
pub(crate) enum Entry {
    Tensor(Value),
    Host(HostValue),
}

impl Entry {
    /// The value in words, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Entry::Tensor(_) => "tensor",
            Entry::Host(HostValue::Tensor(_)) => "host tensor",
            Entry::Host(host) => host.kind_name(),
        }
    }
}

/// The inputs of a host op, in node order; `None` for omitted optional inputs.
#[derive(Debug)]
pub(crate) struct HostInputs {
    values: Vec<Option<Entry>>,
}

impl HostInputs {
    pub fn new(values: Vec<Option<Entry>>) -> HostInputs {
        HostInputs { values }
    }

    /// Required input `index`, whatever it holds.
    pub fn take(&mut self, index: usize) -> Result<Entry, OpError> {
        match self.values.get_mut(index).and_then(Option::take) {
            Some(entry) => Ok(entry),
            None => fail!("input {index} is required but missing"),
        }
    }

    /// Required input `index`, which must be a burn tensor.
    pub fn take_tensor(&mut self, index: usize) -> Result<Value, OpError> {
        match self.take(index)? {
            Entry::Tensor(value) => Ok(value),
            other => fail!("input {index} must be a numeric tensor, got a {}", other.kind_name()),
        }
    }
}
