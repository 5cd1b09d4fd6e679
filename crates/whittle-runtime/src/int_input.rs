//! Shape-like integer inputs (axes, starts, pads, target shapes, repeats).
//!
//! ONNX moved most of these from attributes to inputs over the opsets. A model almost always feeds
//! them from initializers, which are read once at plan time; a computed one is read on the host at
//! every run. [`IntsInput`] holds which of the three cases a node is in, so that each op reads its
//! integer inputs the same way.

use crate::ops::{Inputs, NodeContext, OpError};

/// Where an op finds a list of integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntsInput {
    /// Not given: the op's default applies.
    Absent,
    /// Known at plan time, from an attribute or an initializer.
    Constant(Vec<i64>),
    /// Computed by the graph: read input `index` at run time.
    Computed(usize),
}

impl IntsInput {
    /// Input `index` of `node`.
    pub(crate) fn input(node: &NodeContext<'_>, index: usize) -> Result<IntsInput, OpError> {
        if !node.has_input(index) {
            return Ok(IntsInput::Absent);
        }
        Ok(match node.constant_ints(index)? {
            Some(values) => IntsInput::Constant(values),
            None => IntsInput::Computed(index),
        })
    }

    /// The INTS attribute `name` of `node`.
    pub(crate) fn attribute(node: &NodeContext<'_>, name: &str) -> Result<IntsInput, OpError> {
        Ok(node.ints(name)?.map_or(IntsInput::Absent, IntsInput::Constant))
    }

    /// The INTS attribute `name` before opset `from`, input `index` from it on, as ONNX moved many
    /// of them (Squeeze's axes at 13, the reductions' at 18); the attribute is an error from `from`.
    pub(crate) fn moved(node: &NodeContext<'_>, name: &str, index: usize, from: i64) -> Result<IntsInput, OpError> {
        if node.opset < from {
            return IntsInput::attribute(node, name);
        }
        if node.node.attribute(name).is_some() {
            return Err(OpError::attribute(name, format!("is an input from opset {from} on")));
        }
        IntsInput::input(node, index)
    }

    /// The values known at plan time, for checks that can be made before anything runs.
    pub fn constant(&self) -> Option<&[i64]> {
        match self {
            IntsInput::Constant(values) => Some(values),
            _ => None,
        }
    }

    /// The values, or `None` when absent; a computed input is taken out of `inputs` and read.
    pub(crate) fn read(&self, inputs: &mut Inputs) -> Result<Option<Vec<i64>>, OpError> {
        match self {
            IntsInput::Absent => Ok(None),
            IntsInput::Constant(values) => Ok(Some(values.clone())),
            IntsInput::Computed(index) => Ok(Some(inputs.take(*index)?.to_i64_vec()?)),
        }
    }
}
