//! Cleanup rules: nodes that compute nothing (Identity, inference Dropout, Cast or Reshape to what
//! the value already is), pairs that cancel or merge (Transpose, Squeeze/Unsqueeze, Reshape chains),
//! nodes nobody reads, and nodes that repeat an earlier one.

use whittle_ir::{AttrValue, DataType, DimValue, Node};

use crate::attrs::{attr_int, attr_ints, set_attr};
use crate::error::Result;
use crate::infer::{axes_of, constant_ints, normalize_axis};
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[
    Rule { name: "dead-node", op_types: &[], apply: dead_node },
    Rule { name: "identity", op_types: &["Identity"], apply: identity },
    Rule { name: "inference-dropout", op_types: &["Dropout"], apply: inference_dropout },
    Rule { name: "cast-to-same-type", op_types: &["Cast"], apply: cast_to_same_type },
    Rule { name: "reshape-to-same-shape", op_types: &["Reshape"], apply: reshape_to_same_shape },
    Rule { name: "reshape-chain", op_types: &["Reshape"], apply: reshape_chain },
    Rule { name: "transpose-chain", op_types: &["Transpose"], apply: transpose_chain },
    Rule { name: "squeeze-unsqueeze-pair", op_types: &["Squeeze", "Unsqueeze"], apply: squeeze_unsqueeze_pair },
    Rule { name: "common-subexpression", op_types: &[], apply: common_subexpression },
];

/// The one output a single-output node makes.
fn only_output(node: &Node) -> Option<&str> {
    match node.outputs.as_slice() {
        [output] if !output.is_empty() => Some(output),
        _ => None,
    }
}

/// Removes node `index` whose output `output` equals its input `input`.
fn pass_through(view: &GraphView<'_>, index: usize) -> Option<Patch> {
    let node = view.node(index);
    let input = node.inputs.first().filter(|input| !input.is_empty())?;
    Some(Patch::bypass(index, node.outputs.first()?, input))
}

fn dead_node(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let dead = node.outputs.iter().all(|output| output.is_empty() || view.is_unused(output));
    Ok(dead.then(|| Patch { remove: vec![index], ..Patch::default() }))
}

fn identity(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    Ok(only_output(view.node(index)).and_then(|_| pass_through(view, index)))
}

fn inference_dropout(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    // The mask output must be unused: a graph that reads it needs the Dropout.
    if node.outputs.iter().skip(1).any(|mask| !mask.is_empty() && !view.is_unused(mask)) {
        return Ok(None);
    }
    let opset = view.context.opset;
    let inference = if opset < 7 {
        attr_int(node, "is_test") == Some(1)
    } else if opset < 12 {
        true
    } else {
        match node.inputs.get(2).filter(|name| !name.is_empty()) {
            None => true,
            Some(training) => {
                view.constant(training).and_then(|tensor| tensor.bytes()).is_some_and(|bytes| bytes.iter().all(|&b| b == 0))
            }
        }
    };
    Ok(if inference { pass_through(view, index) } else { None })
}

fn cast_to_same_type(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let (Some(input), Some(to)) = (node.inputs.first(), attr_int(node, "to")) else { return Ok(None) };
    let same = view.value_type(input).is_some_and(|ty| ty.dtype == DataType::from_code(to as i32));
    Ok(if same { pass_through(view, index) } else { None })
}

/// Dims that say the same size for certain: fixed and equal, or the same symbol.
fn surely_equal(a: &[DimValue], b: &[DimValue]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y && *x != DimValue::Unknown)
}

fn reshape_to_same_shape(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let (Some(input), Some(output)) = (node.inputs.first(), only_output(node)) else { return Ok(None) };
    let input_dims = view.value_type(input).and_then(|ty| ty.dims.clone());
    let output_dims = view.value_type(output).and_then(|ty| ty.dims.clone());
    let same = matches!((input_dims, output_dims), (Some(a), Some(b)) if surely_equal(&a, &b));
    Ok(if same { pass_through(view, index) } else { None })
}

fn reshape_chain(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let (Some(input), Some(shape)) = (node.inputs.first(), node.inputs.get(1)) else { return Ok(None) };
    let Some((inner_index, inner)) = view.sole_producer(input, "Reshape") else { return Ok(None) };
    // A 0 in the outer shape copies a dim of the inner result, which differs from the source's.
    let copies_dims = view.constant(shape).and_then(constant_ints).is_none_or(|target| target.contains(&0));
    if copies_dims && attr_int(node, "allowzero") != Some(1) {
        return Ok(None);
    }
    let mut merged = node.clone();
    merged.inputs[0] = inner.inputs[0].clone();
    Ok(Some(Patch::replace_with(vec![inner_index, index], merged)))
}

fn transpose_chain(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let Some(input) = node.inputs.first() else { return Ok(None) };
    let perm_of = |node: &Node| {
        attr_ints(node, "perm").or_else(|| {
            let rank = view.value_type(node.inputs.first()?)?.rank()? as i64;
            Some((0..rank).rev().collect())
        })
    };
    let Some(outer) = perm_of(node) else { return Ok(None) };
    let is_identity = |perm: &[i64]| perm.iter().enumerate().all(|(axis, &p)| p == axis as i64);
    if is_identity(&outer) {
        return Ok(pass_through(view, index));
    }
    let Some((inner_index, inner)) = view.sole_producer(input, "Transpose") else { return Ok(None) };
    let Some(first) = perm_of(inner) else { return Ok(None) };
    if first.len() != outer.len() {
        return Ok(None);
    }
    // out[i] = mid[outer[i]] = x[first[outer[i]]].
    let composed: Option<Vec<i64>> =
        outer.iter().map(|&axis| usize::try_from(axis).ok().and_then(|axis| first.get(axis).copied())).collect();
    let Some(composed) = composed else { return Ok(None) };
    let source = &inner.inputs[0];
    if is_identity(&composed) {
        let output = &node.outputs[0];
        return Ok(Some(Patch {
            remove: vec![inner_index, index],
            replace: vec![(output.clone(), source.clone())],
            ..Patch::default()
        }));
    }
    let mut merged = node.clone();
    merged.inputs[0] = source.clone();
    set_attr(&mut merged, "perm", AttrValue::Ints(composed));
    Ok(Some(Patch::replace_with(vec![inner_index, index], merged)))
}

/// Axes of a Squeeze or Unsqueeze, made non-negative against `rank`, sorted.
fn sorted_axes(view: &GraphView<'_>, node: &Node, rank: Option<usize>) -> Option<Vec<i64>> {
    let axes = axes_of(node, view.context.opset, 13, &|name| view.constant(name))??;
    let mut axes: Vec<i64> = if axes.iter().all(|&axis| axis >= 0) {
        axes
    } else {
        let rank = rank?;
        axes.iter().map(|&axis| normalize_axis(axis, rank).map(|axis| axis as i64)).collect::<Option<_>>()?
    };
    axes.sort_unstable();
    Some(axes)
}

fn squeeze_unsqueeze_pair(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let Some(input) = node.inputs.first() else { return Ok(None) };
    let inner_type = if node.op_type == "Squeeze" { "Unsqueeze" } else { "Squeeze" };
    let Some((inner_index, inner)) = view.sole_producer(input, inner_type) else { return Ok(None) };
    let source = &inner.inputs[0];
    // Squeeze axes count in the wider shape, Unsqueeze axes in the result: both in the rank with the 1s.
    let wide_rank = view.value_type(if node.op_type == "Squeeze" { input } else { &node.outputs[0] }).and_then(|ty| ty.rank());
    let (Some(outer_axes), Some(inner_axes)) = (sorted_axes(view, node, wide_rank), sorted_axes(view, inner, wide_rank)) else {
        return Ok(None);
    };
    if outer_axes != inner_axes {
        return Ok(None);
    }
    let output = &node.outputs[0];
    Ok(Some(Patch { remove: vec![inner_index, index], replace: vec![(output.clone(), source.clone())], ..Patch::default() }))
}

/// Ops whose result is not a function of their inputs.
const NONDETERMINISTIC: &[&str] =
    &["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"];

fn common_subexpression(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let Some(first_input) = node.inputs.first().filter(|input| !input.is_empty()) else { return Ok(None) };
    if NONDETERMINISTIC.contains(&node.op_type.as_str()) || node.subgraphs().next().is_some() {
        return Ok(None);
    }
    let twin = view.readers(first_input).iter().copied().filter(|&other| other < index).find(|&other| {
        let other = view.node(other);
        other.op_type == node.op_type
            && whittle_ir::canonical_domain(&other.domain) == whittle_ir::canonical_domain(&node.domain)
            && other.inputs == node.inputs
            && other.attributes == node.attributes
            && other.outputs.len() == node.outputs.len()
    });
    let Some(twin) = twin else { return Ok(None) };
    let twin = view.node(twin);
    let replace: Vec<(String, String)> = node
        .outputs
        .iter()
        .zip(&twin.outputs)
        .filter(|(output, _)| !output.is_empty())
        .map(|(output, kept)| (output.clone(), kept.clone()))
        .collect();
    // An output the twin omits cannot be taken from it.
    if replace.iter().any(|(_, kept)| kept.is_empty()) {
        return Ok(None);
    }
    Ok(Some(Patch { remove: vec![index], replace, ..Patch::default() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::{check, graph};
    use whittle_ir::{Attribute, Tensor};

    #[test]
    fn identity_and_dropout_go_and_graph_outputs_keep_their_names() {
        let nodes = vec![
            Node::new("id", "Identity", &["x"], &["a"]),
            Node::new("relu", "Relu", &["a"], &["b"]),
            Node::new("drop", "Dropout", &["b"], &["y"]),
        ];
        let fused = check(graph(nodes, &[("x", &[2])], &["y"]), "cleanup", &["identity", "inference-dropout"], "nodes 1: Relu");
        assert_eq!(fused.graph.nodes[0].outputs, vec!["y".to_string()]);
        // A graph output that is a graph input cannot lose its last node.
        let nodes = vec![Node::new("drop", "Dropout", &["x"], &["y"])];
        check(graph(nodes, &[("x", &[2])], &["y"]), "cleanup", &[], "nodes 1: Dropout");
    }

    #[test]
    fn transposes_that_cancel_disappear_and_others_merge() {
        let mut t1 = Node::new("t1", "Transpose", &["x"], &["a"]);
        t1.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![1, 2, 0])));
        let mut t2 = Node::new("t2", "Transpose", &["a"], &["b"]);
        t2.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![2, 0, 1])));
        let relu = Node::new("r", "Relu", &["b"], &["y"]);
        check(graph(vec![t1, t2, relu], &[("x", &[2, 3, 4])], &["y"]), "cleanup", &["transpose-chain"], "nodes 1: Relu");

        let mut t1 = Node::new("t1", "Transpose", &["x"], &["a"]);
        t1.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![1, 0, 2])));
        let mut t2 = Node::new("t2", "Transpose", &["a"], &["y"]);
        t2.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![0, 2, 1])));
        // y[i,j,k] = a[i,k,j] = x[k,i,j]: perm [2, 0, 1].
        let merged =
            check(graph(vec![t1, t2], &[("x", &[2, 3, 4])], &["y"]), "cleanup", &["transpose-chain"], "nodes 1: Transpose");
        assert_eq!(attr_ints(&merged.graph.nodes[0], "perm"), Some(vec![1, 2, 0]));
    }

    #[test]
    fn squeeze_then_unsqueeze_of_the_same_axes_cancels() {
        let mut squeeze = Node::new("s", "Squeeze", &["x"], &["a"]);
        squeeze.attributes.push(Attribute::new("axes", AttrValue::Ints(vec![1])));
        let mut unsqueeze = Node::new("u", "Unsqueeze", &["a"], &["b"]);
        unsqueeze.attributes.push(Attribute::new("axes", AttrValue::Ints(vec![-2])));
        let relu = Node::new("r", "Relu", &["b"], &["y"]);
        let model = crate::rules::tests::model_at(graph(vec![squeeze, unsqueeze, relu], &[("x", &[4, 1, 3])], &["y"]), 11);
        crate::rules::tests::check_model(model, "cleanup", &["squeeze-unsqueeze-pair"], "nodes 1: Relu");
    }

    #[test]
    fn cast_and_reshape_to_what_the_value_is_go() {
        let mut cast = Node::new("c", "Cast", &["x"], &["a"]);
        cast.attributes.push(Attribute::new("to", AttrValue::Int(1)));
        let reshape = Node::new("r", "Reshape", &["a", "shape"], &["b"]);
        let relu = Node::new("relu", "Relu", &["b"], &["y"]);
        let mut g = graph(vec![cast, reshape, relu], &[("x", &[2, 3])], &["y"]);
        g.initializers.push(Tensor::from_i64("shape", vec![2], &[2, -1]).unwrap());
        check(g, "cleanup", &["cast-to-same-type", "reshape-to-same-shape"], "nodes 1: Relu");
    }

    #[test]
    fn reshape_chains_collapse_unless_the_outer_shape_copies_a_dim() {
        let nodes = vec![Node::new("r1", "Reshape", &["x", "s1"], &["a"]), Node::new("r2", "Reshape", &["a", "s2"], &["y"])];
        let mut g = graph(nodes, &[("x", &[2, 3, 4])], &["y"]);
        g.initializers.push(Tensor::from_i64("s1", vec![2], &[6, 4]).unwrap());
        g.initializers.push(Tensor::from_i64("s2", vec![2], &[4, 6]).unwrap());
        check(g.clone(), "cleanup", &["reshape-chain"], "nodes 1: Reshape");
        g.initializers[1] = Tensor::from_i64("s2", vec![3], &[0, 2, -1]).unwrap();
        check(g, "cleanup", &[], "nodes 2: Reshape Reshape");
    }

    #[test]
    fn repeated_nodes_are_computed_once_and_unread_nodes_go() {
        let nodes = vec![
            Node::new("a", "Relu", &["x"], &["a"]),
            Node::new("b", "Relu", &["x"], &["b"]),
            Node::new("sum", "Add", &["a", "b"], &["y"]),
            Node::new("unused", "Neg", &["x"], &["z"]),
        ];
        check(graph(nodes, &[("x", &[2])], &["y"]), "cleanup", &["common-subexpression", "dead-node"], "nodes 2: Relu Add");
    }

    #[test]
    fn dropout_in_training_mode_stays() {
        // The runtime runs training mode only with ratio 0, which keeps the check deterministic.
        let drop = Node::new("drop", "Dropout", &["x", "ratio", "training"], &["y"]);
        let mut g = graph(vec![drop], &[("x", &[2])], &["y"]);
        g.initializers.push(crate::rules::tests::scalar_f32("ratio", 0.0));
        g.initializers.push(Tensor::from_bytes("training", DataType::Bool, vec![], vec![1]).unwrap());
        check(g, "cleanup", &[], "nodes 1: Dropout");
    }
}
