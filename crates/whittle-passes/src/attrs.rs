//! Reading and writing node attributes with the types the ONNX spec gives them.

use whittle_ir::{AttrValue, Attribute, Node, Tensor};

pub fn attr_int(node: &Node, name: &str) -> Option<i64> {
    match node.attribute(name).map(|attribute| &attribute.value) {
        Some(AttrValue::Int(value)) => Some(*value),
        _ => None,
    }
}

pub fn attr_float(node: &Node, name: &str) -> Option<f32> {
    match node.attribute(name).map(|attribute| &attribute.value) {
        Some(AttrValue::Float(value)) => Some(*value),
        _ => None,
    }
}

pub fn attr_ints(node: &Node, name: &str) -> Option<Vec<i64>> {
    match node.attribute(name).map(|attribute| &attribute.value) {
        Some(AttrValue::Ints(values)) => Some(values.clone()),
        _ => None,
    }
}

pub fn attr_string(node: &Node, name: &str) -> Option<Vec<u8>> {
    match node.attribute(name).map(|attribute| &attribute.value) {
        Some(AttrValue::String(value)) => Some(value.clone()),
        _ => None,
    }
}

pub fn attr_tensor<'a>(node: &'a Node, name: &str) -> Option<&'a Tensor> {
    match node.attribute(name).map(|attribute| &attribute.value) {
        Some(AttrValue::Tensor(tensor)) => Some(tensor),
        _ => None,
    }
}

/// Sets attribute `name`, replacing an existing one in place so attribute order stays stable.
pub fn set_attr(node: &mut Node, name: &str, value: AttrValue) {
    match node.attributes.iter_mut().find(|attribute| attribute.name == name) {
        Some(attribute) => attribute.value = value,
        None => node.attributes.push(Attribute::new(name, value)),
    }
}
