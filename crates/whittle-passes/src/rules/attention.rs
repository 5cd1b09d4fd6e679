//! The scaled dot-product attention pattern, `MatMul(Softmax(MatMul(Q, Kᵀ) / c), V)` on 4-D
//! `[batch, heads, sequence, head size]` values, rewritten to one Attention (opset 23).

use whittle_ir::{AttrValue, Attribute, Node};

use super::constant_scalar;
use crate::attrs::{attr_int, attr_ints};
use crate::error::Result;
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[Rule { name: "attention-pattern", op_types: &["Softmax"], apply: attention_pattern }];

fn rank(view: &GraphView<'_>, value: &str) -> Option<usize> {
    view.value_type(value)?.rank()
}

/// Anchored on the Softmax: its input is the scaled `Q Kᵀ`, its single reader the MatMul with V.
fn attention_pattern(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    if view.context.opset < 23 {
        return Ok(None);
    }
    let softmax = view.node(index);
    let softmax_out = &softmax.outputs[0];
    if rank(view, softmax_out) != Some(4) || !matches!(attr_int(softmax, "axis").unwrap_or(-1), -1 | 3) {
        return Ok(None);
    }
    // Before opset 13 Softmax's default axis is 1; -1 or 3 on rank 4 means the last axis in every opset.
    if view.context.opset < 13 && attr_int(softmax, "axis").is_none() {
        return Ok(None);
    }
    let Some((scale_index, scaling)) =
        view.sole_producer(&softmax.inputs[0], "Div").or_else(|| view.sole_producer(&softmax.inputs[0], "Mul"))
    else {
        return Ok(None);
    };
    let [scores, factor] = scaling.inputs.as_slice() else { return Ok(None) };
    let Some(factor) = constant_scalar(view, factor).filter(|factor| factor.is_finite() && *factor != 0.0) else {
        return Ok(None);
    };
    let scale = if scaling.op_type == "Div" { 1.0 / factor } else { factor };
    let Some((qk_index, qk)) = view.sole_producer(scores, "MatMul") else { return Ok(None) };
    let [q, k_transposed] = qk.inputs.as_slice() else { return Ok(None) };
    let Some((kt_index, kt)) = view.sole_producer(k_transposed, "Transpose") else { return Ok(None) };
    // Kᵀ swaps the last two axes of K [B,H,S,D]: perm [0,1,3,2] of K itself, or [0,2,3,1] of the
    // [B,S,H,D] value K is a [0,2,1,3] transpose of.
    let mut patch = Patch { remove: vec![kt_index, qk_index, scale_index, index], ..Patch::default() };
    let k = match attr_ints(kt, "perm").as_deref() {
        Some([0, 1, 3, 2]) => kt.inputs[0].clone(),
        Some([0, 2, 3, 1]) => {
            let name = view.fresh_name(&format!("{}_keys", kt.outputs[0]), &[]);
            let mut keys = Node::new(kt.name.clone(), "Transpose", &[&kt.inputs[0]], &[&name]);
            keys.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![0, 2, 1, 3])));
            patch.add.push(keys);
            name
        }
        _ => return Ok(None),
    };
    let Some((reader, weighted)) = view.sole_reader(softmax_out, "MatMul") else { return Ok(None) };
    if weighted.inputs[0] != *softmax_out {
        return Ok(None);
    }
    let v = &weighted.inputs[1];
    if [q.as_str(), v.as_str()].iter().any(|value| rank(view, value) != Some(4)) {
        return Ok(None);
    }
    patch.remove.push(reader);
    let mut attention = Node::new(softmax.name.clone(), "Attention", &[q, &k, v], &[&weighted.outputs[0]]);
    attention.attributes.push(Attribute::new("scale", AttrValue::Float(scale as f32)));
    patch.add.push(attention);
    Ok(Some(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::{graph, model_at, scalar_f32};

    /// The attention of a torch export: K arrives as [B,S,H,D] and is transposed to [B,H,D,S].
    fn attention_graph() -> whittle_ir::Graph {
        let mut kt = Node::new("kt", "Transpose", &["k"], &["k_t"]);
        kt.attributes.push(Attribute::new("perm", AttrValue::Ints(vec![0, 2, 3, 1])));
        let mut softmax = Node::new("softmax", "Softmax", &["scaled"], &["p"]);
        softmax.attributes.push(Attribute::new("axis", AttrValue::Int(-1)));
        let nodes = vec![
            kt,
            Node::new("qk", "MatMul", &["q", "k_t"], &["scores"]),
            Node::new("div", "Div", &["scores", "sqrt_d"], &["scaled"]),
            softmax,
            Node::new("pv", "MatMul", &["p", "v"], &["y"]),
        ];
        let mut g = graph(nodes, &[("q", &[1, 2, 3, 4]), ("k", &[1, 3, 2, 4]), ("v", &[1, 2, 3, 4])], &["y"]);
        g.initializers.push(scalar_f32("sqrt_d", 2.0));
        g
    }

    #[test]
    fn the_attention_pattern_becomes_attention_at_opset_23() {
        // whittle's runtime has no Attention yet: the rewrite is checked against ONNX Runtime by the
        // integration test; here, its structure.
        let mut model = model_at(attention_graph(), 23);
        let context = crate::PassContext::for_model(&model);
        let runs = crate::passes::by_names(&["fuse-attention"]).unwrap().run(&mut model, &context).unwrap();
        assert_eq!(runs[0].rules["attention-pattern"].count, 1);
        let ops: Vec<&str> = model.graph.nodes.iter().map(|node| node.op_type.as_str()).collect();
        assert_eq!(ops, ["Transpose", "Attention"]);
        let attention = &model.graph.nodes[1];
        assert_eq!(attention.inputs, ["q", "k_t_keys", "v"]);
        assert_eq!(attention.outputs, ["y"]);
        assert_eq!(crate::attrs::attr_float(attention, "scale"), Some(0.5));
        assert_eq!(attr_ints(&model.graph.nodes[0], "perm"), Some(vec![0, 2, 1, 3]));
    }

    #[test]
    fn attention_stays_below_opset_23_and_when_the_scores_are_read_elsewhere() {
        crate::rules::tests::check_model(
            model_at(attention_graph(), 22),
            "fuse-attention",
            &[],
            "nodes 5: Transpose MatMul Div Softmax MatMul",
        );
        let mut g = attention_graph();
        g.outputs.push(whittle_ir::ValueInfo::new("p", None));
        let mut model = model_at(g, 23);
        let context = crate::PassContext::for_model(&model);
        let runs = crate::passes::by_names(&["fuse-attention"]).unwrap().run(&mut model, &context).unwrap();
        assert_eq!(runs[0].fired(), 0);
    }
}
