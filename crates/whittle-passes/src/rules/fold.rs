//! Constant folding: Constant nodes become initializers, nodes whose inputs are all constant are
//! evaluated by whittle's runtime, and Shape and Size of statically shaped values become constants,
//! which lets Shape -> Gather -> Concat -> Reshape subgraphs fold away.

use whittle_ir::{canonical_domain, AttrValue, DataType, Graph, Model, Tensor, ValueInfo, DEFAULT_DOMAIN};
use whittle_runtime::{RuntimeOptions, Session};

use crate::attrs::attr_int;
use crate::error::Result;
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[
    Rule { name: "constant-to-initializer", op_types: &["Constant"], apply: constant_to_initializer },
    Rule { name: "shape-of-static-value", op_types: &["Shape", "Size"], apply: shape_of_static_value },
    Rule { name: "constant-fold", op_types: &[], apply: constant_fold },
];

/// Ops that are never folded: random ones, and those whose constant inputs are cheaper than
/// their result in a way the size budget would not see (none yet beyond the random ones).
const NOT_FOLDED: &[&str] =
    &["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Constant"];

/// The tensor a Constant node holds, in any of its attribute forms.
fn constant_value(node: &whittle_ir::Node, name: &str) -> Option<Tensor> {
    let attribute = node.attributes.first()?;
    let tensor = match &attribute.value {
        AttrValue::Tensor(tensor) => Tensor { name: name.to_string(), ..tensor.clone() },
        AttrValue::Float(value) => Tensor::from_f32(name, vec![], &[*value]).ok()?,
        AttrValue::Floats(values) => Tensor::from_f32(name, vec![values.len() as i64], values).ok()?,
        AttrValue::Int(value) => Tensor::from_i64(name, vec![], &[*value]).ok()?,
        AttrValue::Ints(values) => Tensor::from_i64(name, vec![values.len() as i64], values).ok()?,
        _ => return None,
    };
    (node.attributes.len() == 1).then_some(tensor)
}

/// Whether the patch may turn `outputs` into initializers: graph outputs keep their producers, and
/// before IR version 4 every initializer would also have to be declared as an input.
fn may_become_initializers(view: &GraphView<'_>, outputs: &[String]) -> bool {
    view.context.ir_version >= 4 && outputs.iter().all(|output| !output.is_empty() && !view.is_graph_output(output))
}

fn constant_to_initializer(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    if !may_become_initializers(view, &node.outputs) || node.outputs.len() != 1 {
        return Ok(None);
    }
    let Some(tensor) = constant_value(node, &node.outputs[0]) else { return Ok(None) };
    Ok(Some(Patch { remove: vec![index], initializers: vec![tensor], ..Patch::default() }))
}

fn shape_of_static_value(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    if !may_become_initializers(view, &node.outputs) || node.outputs.len() != 1 {
        return Ok(None);
    }
    let Some(sizes) = node.inputs.first().and_then(|input| view.sizes(input)) else { return Ok(None) };
    let output = &node.outputs[0];
    let tensor = if node.op_type == "Size" {
        Tensor::from_i64(output, vec![], &[sizes.iter().product()])
    } else {
        let rank = sizes.len() as i64;
        let clamp = |value: i64| (if value < 0 { value + rank } else { value }).clamp(0, rank) as usize;
        let start = clamp(attr_int(node, "start").unwrap_or(0));
        let end = clamp(attr_int(node, "end").unwrap_or(rank)).max(start);
        Tensor::from_i64(output, vec![(end - start) as i64], &sizes[start..end])
    };
    Ok(tensor.ok().map(|tensor| Patch { remove: vec![index], initializers: vec![tensor], ..Patch::default() }))
}

fn constant_fold(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let inputs: Vec<&String> = node.inputs.iter().filter(|input| !input.is_empty()).collect();
    if canonical_domain(&node.domain) != DEFAULT_DOMAIN
        || inputs.is_empty()
        || NOT_FOLDED.contains(&node.op_type.as_str())
        || node.subgraphs().next().is_some()
        || !may_become_initializers(view, &node.outputs)
    {
        return Ok(None);
    }
    let Some(constants) = inputs.iter().map(|input| view.constant(input)).collect::<Option<Vec<&Tensor>>>() else {
        return Ok(None);
    };
    // Sizes known before running keep a ConstantOfShape or Expand of 400 MB from being computed at all.
    let budget = view.context.fold_max_bytes;
    let too_big = |output: &String| {
        view.value_type(output).and_then(|ty| Some((ty.dtype, ty.sizes()?))).is_some_and(|(dtype, sizes)| {
            whittle_ir::element_count(&sizes).and_then(|count| dtype.storage_bytes(count)).is_none_or(|bytes| bytes > budget)
        })
    };
    if node.outputs.iter().any(too_big) {
        return Ok(None);
    }
    let Some(results) = evaluate(view, node, &constants) else { return Ok(None) };
    if results.iter().any(|tensor| tensor.byte_len() > budget) {
        return Ok(None);
    }
    Ok(Some(Patch { remove: vec![index], initializers: results, ..Patch::default() }))
}

/// Runs `node` alone on its constant inputs in the runtime; `None` when the runtime cannot run it.
fn evaluate(view: &GraphView<'_>, node: &whittle_ir::Node, constants: &[&Tensor]) -> Option<Vec<Tensor>> {
    let graph = Graph {
        name: "fold".into(),
        nodes: vec![node.clone()],
        outputs: node.outputs.iter().map(|output| ValueInfo::new(output.clone(), None)).collect(),
        initializers: constants.iter().map(|tensor| (*tensor).clone()).collect(),
        ..Graph::default()
    };
    let mut model = Model::new(graph, view.context.ir_version.max(4), view.context.opset);
    model.opset_imports = vec![whittle_ir::OpsetImport { domain: String::new(), version: view.context.opset }];
    let session = Session::new(&model, &RuntimeOptions::default()).ok()?;
    let outputs = session.run(Vec::new()).ok()?;
    // The runtime cannot hold every dtype; a value it changed in kind must not be folded.
    outputs.into_iter().map(|(name, tensor)| (tensor.dtype != DataType::Undefined).then_some(Tensor { name, ..tensor })).collect()
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Attribute, Node};

    use super::*;
    use crate::rules::tests::{check, graph};

    #[test]
    fn shape_subgraphs_of_static_values_fold_into_one_reshape() {
        // x[2,3,4] -> Shape -> Gather(0) -> Unsqueeze -> Concat with [-1] -> Reshape: y[2,12].
        let mut gather = Node::new("g", "Gather", &["shape", "zero"], &["batch"]);
        gather.attributes.push(Attribute::new("axis", AttrValue::Int(0)));
        let mut concat = Node::new("c", "Concat", &["batch_1d", "minus_one"], &["target"]);
        concat.attributes.push(Attribute::new("axis", AttrValue::Int(0)));
        let nodes = vec![
            Node::new("s", "Shape", &["x"], &["shape"]),
            gather,
            Node::new("u", "Unsqueeze", &["batch", "axes"], &["batch_1d"]),
            concat,
            Node::new("r", "Reshape", &["x", "target"], &["y"]),
        ];
        let mut g = graph(nodes, &[("x", &[2, 3, 4])], &["y"]);
        g.initializers.push(Tensor::from_i64("zero", vec![], &[0]).unwrap());
        g.initializers.push(Tensor::from_i64("axes", vec![1], &[0]).unwrap());
        g.initializers.push(Tensor::from_i64("minus_one", vec![1], &[-1]).unwrap());
        let folded = check(g, "cleanup", &["constant-fold", "shape-of-static-value"], "nodes 1: Reshape");
        let target = folded.graph.initializer("target").unwrap();
        assert_eq!(crate::infer::constant_ints(target), Some(vec![2, -1]));
    }

    #[test]
    fn constants_become_initializers_and_fold_through_arithmetic() {
        let mut constant = Node::new("k", "Constant", &[], &["k"]);
        constant.attributes.push(Attribute::new("value_floats", AttrValue::Floats(vec![1.0, 2.0])));
        let nodes = vec![constant, Node::new("n", "Neg", &["k"], &["nk"]), Node::new("a", "Add", &["x", "nk"], &["y"])];
        let folded =
            check(graph(nodes, &[("x", &[2])], &["y"]), "cleanup", &["constant-fold", "constant-to-initializer"], "nodes 1: Add");
        assert_eq!(folded.graph.initializer("nk").unwrap().to_f32_vec(), Some(vec![-1.0, -2.0]));
    }

    #[test]
    fn folding_respects_the_size_budget() {
        // ConstantOfShape([1024, 1024]) of f32 is 4 MiB: over a 1 MiB budget it stays a node.
        let nodes = vec![Node::new("fill", "ConstantOfShape", &["dims"], &["big"]), Node::new("a", "Add", &["x", "big"], &["y"])];
        let mut g = graph(nodes, &[("x", &[1024, 1024])], &["y"]);
        g.initializers.push(Tensor::from_i64("dims", vec![2], &[1024, 1024]).unwrap());
        let mut model = crate::rules::tests::model_at(g, 18);
        let mut context = crate::PassContext::for_model(&model);
        context.fold_max_bytes = 1 << 20;
        let runs = crate::passes::by_names(&["cleanup"]).unwrap().run(&mut model, &context).unwrap();
        assert_eq!(runs[0].fired(), 0);
        assert_eq!(model.graph.nodes.len(), 2);
    }
}
