//! Moving a model to a newer ai.onnx opset, when none of its ops changed meaning in between.
//!
//! Fused forms need new ops (Gelu is opset 20); `--target-opset` asks for them. A node's meaning is
//! fixed by the newest version of its op at or below the model's opset, so raising the opset is only
//! safe if no op the model uses got a new version in between, or the new version only added types
//! or attributes whose defaults keep the old meaning (`TYPE_ONLY`).

use whittle_ir::{canonical_domain, Model, DEFAULT_DOMAIN};

use crate::error::{PassError, Result};
use crate::since_versions::SINCE_VERSIONS;

/// New versions that only add element types (float8, int4, ...) or attributes whose default is the
/// old behaviour, checked against the onnx 1.23.2 operator changelog.
const TYPE_ONLY: &[(&str, i64)] = &[
    ("Reshape", 19),
    ("Reshape", 21),
    ("Shape", 19),
    ("Shape", 21),
    ("Identity", 19),
    ("Identity", 21),
    ("Constant", 19),
    ("Constant", 21),
    ("Size", 19),
    ("Size", 21),
    ("Cast", 19),
    ("Equal", 19),
    ("Pad", 19),
    ("AveragePool", 19),
];

/// Raises `model`'s ai.onnx opset to `to`, or says which op stands in the way.
pub fn upgrade(model: &mut Model, to: i64) -> Result<()> {
    let from = model.opset_version("").unwrap_or(1);
    if to < from {
        return Err(PassError::Opset { from, to, reason: "whittle does not lower opsets".into() });
    }
    if to == from {
        return Ok(());
    }
    if to > whittle_runtime::ops::NEWEST_OPSET {
        return Err(PassError::Opset {
            from,
            to,
            reason: format!("the newest opset whittle knows is {}", whittle_runtime::ops::NEWEST_OPSET),
        });
    }
    let mut blocker: Option<String> = None;
    model.graph.visit_graphs(&mut |graph| {
        for node in graph.nodes.iter().filter(|node| canonical_domain(&node.domain) == DEFAULT_DOMAIN) {
            if blocker.is_some() {
                return;
            }
            let Some((_, versions)) = SINCE_VERSIONS.iter().find(|(op, _)| *op == node.op_type) else {
                blocker = Some(format!("node '{}': {} is not an ai.onnx op", node.label(), node.op_type));
                return;
            };
            if let Some(version) =
                versions.iter().find(|&&v| v > from && v <= to && !TYPE_ONLY.contains(&(node.op_type.as_str(), v)))
            {
                blocker = Some(format!("{} changed in opset {version} (node '{}')", node.op_type, node.label()));
            }
        }
    });
    if let Some(reason) = blocker {
        return Err(PassError::Opset { from, to, reason });
    }
    for opset in model.opset_imports.iter_mut().filter(|opset| canonical_domain(&opset.domain) == DEFAULT_DOMAIN) {
        opset.version = to;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Graph, Node};

    use super::*;

    #[test]
    fn upgrades_only_past_unchanged_ops() {
        let graph = |op: &str| Graph { nodes: vec![Node::new("n", op, &["x"], &["y"])], ..Graph::default() };
        let mut reshape = Model::new(graph("Reshape"), 10, 18);
        upgrade(&mut reshape, 20).unwrap();
        assert_eq!(reshape.opset_version(""), Some(20));
        let mut squeeze = Model::new(graph("Squeeze"), 10, 11);
        let err = upgrade(&mut squeeze, 13).unwrap_err();
        assert_eq!(err.to_string(), "cannot move the model from opset 11 to 13: Squeeze changed in opset 13 (node 'n')");
        assert!(upgrade(&mut squeeze, 9).is_err());
    }
}
