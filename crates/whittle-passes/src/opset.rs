//! Moving a model to a newer ai.onnx opset, when none of its ops changed meaning in between.
//!
//! Fused forms need new ops (Gelu is opset 20); `--target-opset` asks for them. A node's meaning is
//! fixed by the newest version of its op at or below the model's opset, so raising the opset is only
//! safe if no op the model uses got a new version in between, or the new version only added types
//! or attributes whose defaults keep the old meaning ([`type_only`]).

use whittle_ir::{canonical_domain, Model, DEFAULT_DOMAIN};

use crate::error::{PassError, Result};
use crate::since_versions::{SIGNATURE_UNCHANGED, SINCE_VERSIONS};

/// New versions whose signature changed only by attributes whose default is the old behaviour
/// (AveragePool 19's `dilations`, Cast 19's `saturate`, which only float8 targets read), or by element
/// types the schema comparison cannot see as a plain superset; checked against the onnx 1.23.2
/// operator changelog.
const DEFAULTS_KEEP_MEANING: &[(&str, i64)] = &[("AveragePool", 19), ("Cast", 19)];

/// Versions with an unchanged signature whose meaning may still have moved: Resize 19 added a
/// coordinate mode and rewrote the description of the existing ones, so it is not stepped over.
const SIGNATURE_ONLY_NOT_TRUSTED: &[(&str, i64)] = &[("Resize", 19)];

/// Whether version `version` of `op` only added element types or default-preserving attributes, so a
/// node written for an older version means the same under it. Opset 22 (bfloat16 for Conv, pooling,
/// the trigonometric and random ops, ...) and 21/23 (int4, float4 for the data-movement ops) are
/// almost all of this kind.
fn type_only(op: &str, version: i64) -> bool {
    let key = (op, version);
    DEFAULTS_KEEP_MEANING.contains(&key) || (SIGNATURE_UNCHANGED.contains(&key) && !SIGNATURE_ONLY_NOT_TRUSTED.contains(&key))
}

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
            if let Some(version) = versions.iter().find(|&&v| v > from && v <= to && !type_only(&node.op_type, v)) {
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

    #[test]
    fn versions_that_only_added_types_are_stepped_over() {
        let graph = |op: &str| Graph { nodes: vec![Node::new("n", op, &["x"], &["y"])], ..Graph::default() };
        // Conv 22 and MaxPool 22 added bfloat16, nothing else: a CNN at opset 18 can use Attention's opset.
        for op in ["Conv", "MaxPool", "GlobalAveragePool", "Dropout"] {
            let mut model = Model::new(graph(op), 10, 18);
            upgrade(&mut model, 23).unwrap_or_else(|err| panic!("{op}: {err}"));
        }
        // Resize 19's signature is unchanged, but its coordinate modes were redescribed.
        let mut resize = Model::new(graph("Resize"), 10, 18);
        assert_eq!(
            upgrade(&mut resize, 19).unwrap_err().to_string(),
            "cannot move the model from opset 18 to 19: Resize changed in opset 19 (node 'n')"
        );
        // Attention 24 added inputs.
        let mut attention = Model::new(graph("Attention"), 10, 23);
        assert!(upgrade(&mut attention, 24).is_err());
    }
}
