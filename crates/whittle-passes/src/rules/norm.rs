//! Subgraphs that spell out one op: the LayerNormalization pattern (opset 17) and the erf and tanh
//! forms of GELU (opset 20), rewritten to the op when the model's opset has it.

use whittle_ir::{AttrValue, Attribute, Node};

use crate::error::Result;
use crate::infer::{axes_of, normalize_axis};
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[
    Rule { name: "layernorm-pattern", op_types: &["Div"], apply: layernorm_pattern },
    Rule { name: "gelu-erf-pattern", op_types: &["Erf"], apply: gelu_erf_pattern },
    Rule { name: "gelu-tanh-pattern", op_types: &["Tanh"], apply: gelu_tanh_pattern },
];

/// The constant scalar value of `value`, if it is a one-element float constant.
fn scalar(view: &GraphView<'_>, value: &str) -> Option<f64> {
    let values = view.constant(value)?.to_f32_vec()?;
    (values.len() == 1).then(|| f64::from(values[0]))
}

fn near(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|value| (value - expected).abs() <= 1e-4 * expected.abs().max(1.0))
}

/// The single reader of `value` when it has type `op_type`, with its index.
fn sole_reader<'a>(view: &GraphView<'a>, value: &str, op_type: &str) -> Option<(usize, &'a Node)> {
    if !view.has_one_reader(value) {
        return None;
    }
    let index = view.readers(value)[0];
    let node = view.node(index);
    (node.op_type == op_type).then_some((index, node))
}

/// The operand of binary `node` other than `value`.
fn other_operand<'a>(node: &'a Node, value: &str) -> Option<&'a str> {
    match node.inputs.as_slice() {
        [a, b] if a == value => Some(b),
        [a, b] if b == value => Some(a),
        _ => None,
    }
}

/// The producer of `value` with type `op_type`, read by nothing else.
fn sole_input<'a>(view: &GraphView<'a>, value: &str, op_type: &str) -> Option<(usize, &'a Node)> {
    view.sole_producer(value, op_type)
}

/// The trailing axes a ReduceMean reduces, as the first of them, when they run to the last axis.
fn trailing_mean_axis(view: &GraphView<'_>, node: &Node, rank: usize) -> Option<i64> {
    if crate::attrs::attr_int(node, "keepdims") == Some(0) {
        return None;
    }
    let mut axes: Vec<usize> = axes_of(node, view.context.opset, 18, &|name| view.constant(name))??
        .iter()
        .map(|&axis| normalize_axis(axis, rank))
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    let first = *axes.first()?;
    (axes.iter().enumerate().all(|(offset, &axis)| axis == first + offset) && *axes.last()? == rank - 1).then_some(first as i64)
}

/// ReduceMean, Sub, Pow 2, ReduceMean, Add epsilon, Sqrt, Div; then Mul by scale and Add of bias
/// when present. Anchored on the Div.
fn layernorm_pattern(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    if view.context.opset < 17 {
        return Ok(None);
    }
    let div = view.node(index);
    let [centered, deviation] = div.inputs.as_slice() else { return Ok(None) };
    let Some((sqrt_index, sqrt)) = sole_input(view, deviation, "Sqrt") else { return Ok(None) };
    let Some((eps_add_index, eps_add)) = sole_input(view, &sqrt.inputs[0], "Add") else { return Ok(None) };
    let Some(variance) = eps_add.inputs.iter().find(|input| view.constant(input).is_none()) else { return Ok(None) };
    let Some(epsilon) = other_operand(eps_add, variance).and_then(|eps| scalar(view, eps)) else { return Ok(None) };
    let Some((var_mean_index, var_mean)) = sole_input(view, variance, "ReduceMean") else { return Ok(None) };
    let Some((pow_index, pow)) = sole_input(view, &var_mean.inputs[0], "Pow") else { return Ok(None) };
    if pow.inputs[0] != *centered || !near(pow.inputs.get(1).and_then(|exponent| scalar(view, exponent)), 2.0) {
        return Ok(None);
    }
    // The centred value feeds exactly the Pow and the Div.
    let Some((sub_index, sub)) = view.producer(centered) else { return Ok(None) };
    if sub.op_type != "Sub" || view.readers(centered).len() != 2 || view.is_graph_output(centered) {
        return Ok(None);
    }
    let [x, mean] = sub.inputs.as_slice() else { return Ok(None) };
    let Some((mean_index, mean_node)) = sole_input(view, mean, "ReduceMean") else { return Ok(None) };
    if mean_node.inputs[0] != *x {
        return Ok(None);
    }
    let Some(rank) = view.value_type(x).and_then(|ty| ty.rank()) else { return Ok(None) };
    let (Some(axis), Some(var_axis)) = (trailing_mean_axis(view, mean_node, rank), trailing_mean_axis(view, var_mean, rank))
    else {
        return Ok(None);
    };
    let Some(normalized_dims) = view.sizes(x).map(|sizes| sizes[axis as usize..].to_vec()) else { return Ok(None) };
    if axis != var_axis {
        return Ok(None);
    }
    let mut remove = vec![mean_index, sub_index, pow_index, var_mean_index, eps_add_index, sqrt_index, index];
    let mut output = div.outputs[0].clone();
    let mut scale = None;
    let mut bias = None;
    let fits = |value: &str| {
        view.constant(value).is_some_and(|tensor| {
            tensor.dims == normalized_dims[normalized_dims.len() - tensor.dims.len().min(normalized_dims.len())..]
                && tensor.dims.len() <= normalized_dims.len()
                && whittle_ir::element_count(&tensor.dims) == whittle_ir::element_count(&normalized_dims)
        })
    };
    if let Some((mul_index, mul)) = sole_reader(view, &output, "Mul") {
        if let Some(gamma) = other_operand(mul, &output).filter(|gamma| fits(gamma)) {
            scale = Some(gamma.to_string());
            remove.push(mul_index);
            output = mul.outputs[0].clone();
            if let Some((add_index, add)) = sole_reader(view, &output, "Add") {
                if let Some(beta) = other_operand(add, &output).filter(|beta| fits(beta)) {
                    bias = Some(beta.to_string());
                    remove.push(add_index);
                    output = add.outputs[0].clone();
                }
            }
        }
    }
    let mut patch = Patch { remove, ..Patch::default() };
    let scale = match scale {
        Some(scale) => scale,
        None => {
            let count = normalized_dims.iter().product::<i64>() as usize;
            let name = view.fresh_name(&format!("{output}_scale"), &[]);
            let Ok(ones) = whittle_ir::Tensor::from_f32(name.clone(), normalized_dims.clone(), &vec![1.0; count]) else {
                return Ok(None);
            };
            patch.initializers.push(ones);
            name
        }
    };
    let inputs: Vec<&str> = match &bias {
        Some(bias) => vec![x, &scale, bias],
        None => vec![x, &scale],
    };
    let mut norm = Node::new(div.name.clone(), "LayerNormalization", &inputs, &[&output]);
    norm.attributes.push(Attribute::new("axis", AttrValue::Int(axis)));
    norm.attributes.push(Attribute::new("epsilon", AttrValue::Float(epsilon as f32)));
    patch.add.push(norm);
    Ok(Some(patch))
}

/// From `inner` = f(x) with `Add(inner, 1)` onwards: the `0.5 * x * (1 + inner)` tail of both GELU
/// forms, as the nodes it spans and the value it ends in.
fn gelu_tail(view: &GraphView<'_>, x: &str, inner: &str) -> Option<(Vec<usize>, String)> {
    let (plus_index, plus) = sole_reader(view, inner, "Add")?;
    if !near(other_operand(plus, inner).and_then(|one| scalar(view, one)), 1.0) {
        return None;
    }
    let sum = &plus.outputs[0];
    let (mul_index, mul) = sole_reader(view, sum, "Mul")?;
    let other = other_operand(mul, sum)?;
    let mut nodes = vec![plus_index, mul_index];
    let output = if other == x {
        // (x * sum) * 0.5
        let (half_index, half) = sole_reader(view, &mul.outputs[0], "Mul")?;
        if !near(other_operand(half, &mul.outputs[0]).and_then(|half| scalar(view, half)), 0.5) {
            return None;
        }
        nodes.push(half_index);
        half.outputs[0].clone()
    } else if near(scalar(view, other), 0.5) {
        // (sum * 0.5) * x
        let (x_index, x_mul) = sole_reader(view, &mul.outputs[0], "Mul")?;
        if other_operand(x_mul, &mul.outputs[0]) != Some(x) {
            return None;
        }
        nodes.push(x_index);
        x_mul.outputs[0].clone()
    } else {
        // (x * 0.5) * sum
        let (half_index, half) = sole_input(view, other, "Mul")?;
        if other_operand(half, x).and_then(|half| scalar(view, half)).is_none_or(|value| !near(Some(value), 0.5)) {
            return None;
        }
        nodes.push(half_index);
        mul.outputs[0].clone()
    };
    Some((nodes, output))
}

fn gelu(view: &GraphView<'_>, mut nodes: Vec<usize>, x: &str, output: &str, approximate: &str) -> Option<Patch> {
    nodes.sort_unstable();
    let anchor = view.node(nodes[0]);
    let mut node = Node::new(anchor.name.clone(), "Gelu", &[x], &[output]);
    if approximate == "tanh" {
        node.attributes.push(Attribute::new("approximate", AttrValue::String(b"tanh".to_vec())));
    }
    Some(Patch::replace_with(nodes, node))
}

/// `0.5 * x * (1 + erf(x / sqrt(2)))`, with the division written as a Mul by 1/sqrt(2) or not.
fn gelu_erf_pattern(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    if view.context.opset < 20 {
        return Ok(None);
    }
    let erf = view.node(index);
    let Some((scale_index, scale)) = sole_input(view, &erf.inputs[0], "Div").or_else(|| sole_input(view, &erf.inputs[0], "Mul"))
    else {
        return Ok(None);
    };
    let [x, factor] = scale.inputs.as_slice() else { return Ok(None) };
    let expected = if scale.op_type == "Div" { std::f64::consts::SQRT_2 } else { std::f64::consts::FRAC_1_SQRT_2 };
    if !near(scalar(view, factor), expected) {
        return Ok(None);
    }
    let Some((mut nodes, output)) = gelu_tail(view, x, &erf.outputs[0]) else { return Ok(None) };
    nodes.extend([scale_index, index]);
    Ok(gelu(view, nodes, x, &output, "none"))
}

/// `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, with x^3 as Pow(x, 3).
fn gelu_tanh_pattern(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    if view.context.opset < 20 {
        return Ok(None);
    }
    let tanh = view.node(index);
    let Some((scaled_index, scaled)) = sole_input(view, &tanh.inputs[0], "Mul") else { return Ok(None) };
    let Some(inner) = scaled.inputs.iter().find(|input| view.constant(input).is_none()) else { return Ok(None) };
    if !near(other_operand(scaled, inner).and_then(|factor| scalar(view, factor)), (2.0 / std::f64::consts::PI).sqrt()) {
        return Ok(None);
    }
    let Some((sum_index, sum)) = sole_input(view, inner, "Add") else { return Ok(None) };
    let found = sum.inputs.iter().find_map(|cubic| {
        let (cubic_index, cubic_node) = sole_input(view, cubic, "Mul")?;
        let cube = cubic_node.inputs.iter().find(|input| view.constant(input).is_none())?;
        if !near(other_operand(cubic_node, cube).and_then(|factor| scalar(view, factor)), 0.044715) {
            return None;
        }
        let (pow_index, pow) = sole_input(view, cube, "Pow")?;
        let x = other_operand(sum, cubic)?;
        (pow.inputs[0] == x && near(pow.inputs.get(1).and_then(|exponent| scalar(view, exponent)), 3.0))
            .then(|| (x.to_string(), vec![cubic_index, pow_index]))
    });
    let Some((x, cubic_nodes)) = found else { return Ok(None) };
    let Some((mut nodes, output)) = gelu_tail(view, &x, &tanh.outputs[0]) else { return Ok(None) };
    nodes.extend(cubic_nodes);
    nodes.extend([sum_index, scaled_index, index]);
    Ok(gelu(view, nodes, &x, &output, "tanh"))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Attribute, Node};

    use super::*;
    use crate::rules::tests::{check_model, graph, model_at, ramp, scalar_f32};

    #[test]
    fn the_layernorm_pattern_becomes_layer_normalization() {
        let mut mean = Node::new("mean", "ReduceMean", &["x"], &["mu"]);
        mean.attributes.push(Attribute::new("axes", AttrValue::Ints(vec![-1])));
        let mut var = Node::new("var", "ReduceMean", &["sq"], &["v"]);
        var.attributes.push(Attribute::new("axes", AttrValue::Ints(vec![-1])));
        let nodes = vec![
            mean,
            Node::new("sub", "Sub", &["x", "mu"], &["d"]),
            Node::new("pow", "Pow", &["d", "two"], &["sq"]),
            var,
            Node::new("add_eps", "Add", &["v", "eps"], &["ve"]),
            Node::new("sqrt", "Sqrt", &["ve"], &["s"]),
            Node::new("div", "Div", &["d", "s"], &["n"]),
            Node::new("mul", "Mul", &["n", "gamma"], &["g"]),
            Node::new("add", "Add", &["g", "beta"], &["y"]),
        ];
        let mut g = graph(nodes, &[("x", &[2, 3, 4])], &["y"]);
        g.initializers.extend([
            scalar_f32("two", 2.0),
            scalar_f32("eps", 1e-5),
            ramp("gamma", &[4], 0.5),
            ramp("beta", &[4], 0.1),
        ]);
        // Opset 17 has ReduceMean's axes as an attribute and LayerNormalization.
        check_model(model_at(g.clone(), 17), "fuse-patterns", &["layernorm-pattern"], "nodes 1: LayerNormalization");
        check_model(model_at(g, 16), "fuse-patterns", &[], "nodes 9: ReduceMean Sub Pow ReduceMean Add Sqrt Div Mul Add");
    }

    #[test]
    fn both_gelu_forms_become_gelu_at_opset_20() {
        let nodes = vec![
            Node::new("div", "Div", &["x", "sqrt2"], &["a"]),
            Node::new("erf", "Erf", &["a"], &["e"]),
            Node::new("plus", "Add", &["e", "one"], &["f"]),
            Node::new("mul", "Mul", &["x", "f"], &["g"]),
            Node::new("half", "Mul", &["g", "half"], &["y"]),
        ];
        let mut g = graph(nodes, &[("x", &[2, 5])], &["y"]);
        g.initializers.extend([scalar_f32("sqrt2", std::f32::consts::SQRT_2), scalar_f32("one", 1.0), scalar_f32("half", 0.5)]);
        check_model(model_at(g.clone(), 20), "fuse-patterns", &["gelu-erf-pattern"], "nodes 1: Gelu");
        check_model(model_at(g, 18), "fuse-patterns", &[], "nodes 5: Div Erf Add Mul Mul");

        let nodes = vec![
            Node::new("pow", "Pow", &["x", "three"], &["cube"]),
            Node::new("cubic", "Mul", &["k", "cube"], &["kc"]),
            Node::new("sum", "Add", &["x", "kc"], &["inner"]),
            Node::new("scaled", "Mul", &["inner", "c"], &["t_in"]),
            Node::new("tanh", "Tanh", &["t_in"], &["t"]),
            Node::new("plus", "Add", &["t", "one"], &["f"]),
            Node::new("halfx", "Mul", &["x", "half"], &["hx"]),
            Node::new("mul", "Mul", &["hx", "f"], &["y"]),
        ];
        let mut g = graph(nodes, &[("x", &[2, 5])], &["y"]);
        let c = (2.0 / std::f32::consts::PI).sqrt();
        g.initializers.extend([
            scalar_f32("three", 3.0),
            scalar_f32("k", 0.044715),
            scalar_f32("c", c),
            scalar_f32("one", 1.0),
            scalar_f32("half", 0.5),
        ]);
        check_model(model_at(g, 20), "fuse-patterns", &["gelu-tanh-pattern"], "nodes 1: Gelu");
    }
}
