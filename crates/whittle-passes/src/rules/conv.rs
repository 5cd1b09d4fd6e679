//! Fusions into Conv, ConvTranspose and Gemm weights: BatchNormalization folded into the layer
//! before it, per-channel Add and Mul by constants folded into Conv bias and weights, and a
//! constant Pad folded into the pads of Conv, AveragePool or MaxPool (see [`pad_into_window`] for
//! when that is exact).

use whittle_ir::{AttrValue, DataType, Node, Tensor};

use crate::attrs::{attr_float, attr_int, attr_ints, attr_string, set_attr};
use crate::error::Result;
use crate::infer::constant_ints;
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[
    Rule { name: "batchnorm-into-conv", op_types: &["BatchNormalization"], apply: batchnorm_into_weights },
    Rule { name: "add-into-conv-bias", op_types: &["Add"], apply: add_into_conv_bias },
    Rule { name: "mul-into-conv-weights", op_types: &["Mul"], apply: mul_into_conv_weights },
    Rule { name: "pad-into-window", op_types: &["Conv", "AveragePool", "MaxPool"], apply: pad_into_window },
];

/// f32 elements of a constant, as f64 for the arithmetic.
fn values(tensor: &Tensor) -> Option<Vec<f64>> {
    (tensor.dtype == DataType::F32)
        .then(|| tensor.to_f32_vec())
        .flatten()
        .map(|values| values.into_iter().map(f64::from).collect())
}

fn f32_tensor(name: String, dims: Vec<i64>, values: &[f64]) -> Option<Tensor> {
    let narrowed: Vec<f32> = values.iter().map(|&value| value as f32).collect();
    Tensor::from_f32(name, dims, &narrowed).ok()
}

/// The per-output-channel values of `tensor` for `channels` channels, when it is a scalar or a
/// vector along the channel axis (axis 1 of a rank-`rank` result): `[C]` for rank 2, `[C,1,1]` or
/// `[1,C,1,1]` for images. A tensor that would widen the result is refused.
fn per_channel(tensor: &Tensor, channels: usize, rank: usize) -> Option<Vec<f64>> {
    let values = values(tensor)?;
    if tensor.dims.len() > rank {
        return None;
    }
    let offset = rank - tensor.dims.len();
    for (axis, &size) in tensor.dims.iter().enumerate() {
        let allowed = if axis + offset == 1 { size == 1 || size as usize == channels } else { size == 1 };
        if !allowed {
            return None;
        }
    }
    match values.len() {
        1 => Some(vec![values[0]; channels]),
        n if n == channels => Some(values),
        _ => None,
    }
}

/// A weighted layer and what folding needs of it: weights, bias and the output-channel layout.
struct Layer<'a> {
    index: usize,
    node: &'a Node,
    weights: &'a Tensor,
    bias: Option<Vec<f64>>,
    channels: usize,
}

/// The Conv, ConvTranspose or Gemm producing `value` alone, with constant f32 weights and bias.
fn weighted_layer<'a>(view: &GraphView<'a>, value: &str, op_types: &[&str]) -> Option<Layer<'a>> {
    let (index, node) = op_types.iter().find_map(|op_type| view.sole_producer(value, op_type))?;
    let weights = view.constant(node.inputs.get(1)?)?;
    values(weights)?;
    let channels = match node.op_type.as_str() {
        "Conv" => *weights.dims.first()? as usize,
        "ConvTranspose" => *weights.dims.get(1)? as usize * attr_int(node, "group").unwrap_or(1) as usize,
        _ => {
            let trans_b = attr_int(node, "transB") == Some(1);
            if weights.dims.len() != 2 {
                return None;
            }
            weights.dims[if trans_b { 0 } else { 1 }] as usize
        }
    };
    let bias = match node.inputs.get(2).filter(|name| !name.is_empty()) {
        None => None,
        Some(name) => {
            let tensor = view.constant(name)?;
            let rank = if node.op_type == "Gemm" { 2 } else { tensor.dims.len().max(1) };
            let mut bias = if node.op_type == "Gemm" { per_channel(tensor, channels, rank)? } else { values(tensor)? };
            if node.op_type == "Gemm" {
                // Gemm's C is scaled by beta; a folded bias carries it, and beta becomes 1.
                let beta = f64::from(attr_float(node, "beta").unwrap_or(1.0));
                bias.iter_mut().for_each(|value| *value *= beta);
            }
            Some(bias)
        }
    };
    if bias.as_ref().is_some_and(|bias| bias.len() != channels) {
        return None;
    }
    Some(Layer { index, node, weights, bias, channels })
}

impl Layer<'_> {
    /// The output channel each weight element belongs to.
    fn channel_of(&self, element: usize) -> usize {
        let dims: Vec<usize> = self.weights.dims.iter().map(|&dim| dim as usize).collect();
        match self.node.op_type.as_str() {
            "Conv" => element / dims[1..].iter().product::<usize>().max(1),
            "ConvTranspose" => {
                // Weights are [C_in, C_out / group, k...]; input channel c feeds group c / (C_in / group).
                let group = attr_int(self.node, "group").unwrap_or(1).max(1) as usize;
                let kernel: usize = dims[2..].iter().product::<usize>().max(1);
                let input_channel = element / (dims[1] * kernel);
                let within = (element / kernel) % dims[1];
                (input_channel / (dims[0] / group).max(1)) * dims[1] + within
            }
            _ if attr_int(self.node, "transB") == Some(1) => element / dims[1],
            _ => element % dims[1],
        }
    }

    /// The layer with weights scaled by `scale` and bias `bias` per output channel, writing `output`.
    fn rebuilt(&self, view: &GraphView<'_>, scale: Option<&[f64]>, bias: &[f64], output: &str) -> Option<Patch> {
        let mut node = self.node.clone();
        node.outputs = vec![output.to_string()];
        let mut patch = Patch { remove: vec![self.index], ..Patch::default() };
        let mut taken = Vec::new();
        if let Some(scale) = scale {
            let weights = values(self.weights)?;
            let scaled: Vec<f64> = weights
                .iter()
                .enumerate()
                .map(|(element, &w)| scale.get(self.channel_of(element)).map(|s| w * s))
                .collect::<Option<_>>()?;
            let name = view.fresh_name(&format!("{}_folded_weight", output), &taken);
            taken.push(name.clone());
            patch.initializers.push(f32_tensor(name.clone(), self.weights.dims.clone(), &scaled)?);
            node.inputs[1] = name;
        }
        let name = view.fresh_name(&format!("{}_folded_bias", output), &taken);
        patch.initializers.push(f32_tensor(name.clone(), vec![self.channels as i64], bias)?);
        node.inputs.resize(2, String::new());
        node.inputs.push(name);
        if node.op_type == "Gemm" {
            set_attr(&mut node, "beta", AttrValue::Float(1.0));
        }
        patch.add.push(node);
        Some(patch)
    }
}

fn batchnorm_into_weights(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let bn = view.node(index);
    // Training mode (opset 14's attribute, or statistics outputs that something reads) updates statistics.
    if attr_int(bn, "training_mode") == Some(1)
        || bn.outputs.iter().skip(1).any(|output| !output.is_empty() && !view.is_unused(output))
    {
        return Ok(None);
    }
    if view.context.opset < 9 && attr_int(bn, "spatial") == Some(0) {
        return Ok(None);
    }
    let Some(layer) = weighted_layer(view, &bn.inputs[0], &["Conv", "ConvTranspose", "Gemm"]) else { return Ok(None) };
    let params: Option<Vec<Vec<f64>>> = bn.inputs[1..].iter().map(|name| view.constant(name).and_then(values)).collect();
    let Some([gamma, beta, mean, var]) = params.as_deref() else { return Ok(None) };
    let channels = layer.channels;
    if [gamma, beta, mean, var].iter().any(|param| param.len() != channels) {
        return Ok(None);
    }
    let epsilon = f64::from(attr_float(bn, "epsilon").unwrap_or(1e-5));
    let scale: Vec<f64> = (0..channels).map(|c| gamma[c] / (var[c] + epsilon).sqrt()).collect();
    let old_bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; channels]);
    let bias: Vec<f64> = (0..channels).map(|c| (old_bias[c] - mean[c]) * scale[c] + beta[c]).collect();
    let Some(mut patch) = layer.rebuilt(view, Some(&scale), &bias, &bn.outputs[0]) else { return Ok(None) };
    patch.remove.push(index);
    Ok(Some(patch))
}

/// `(layer output, constant)` of a binary node with one constant operand, in either order.
fn layer_and_constant<'a>(view: &GraphView<'a>, node: &Node) -> Option<(Layer<'a>, &'a Tensor)> {
    let [a, b] = node.inputs.as_slice() else { return None };
    let (value, constant) = if let Some(constant) = view.constant(b) { (a, constant) } else { (b, view.constant(a)?) };
    let layer = weighted_layer(view, value, &["Conv"])?;
    Some((layer, constant))
}

fn add_into_conv_bias(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    Ok(fold_per_channel(view, index, |layer, add| {
        let bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; layer.channels]);
        (None, bias.iter().zip(add).map(|(b, a)| b + a).collect())
    }))
}

fn mul_into_conv_weights(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    Ok(fold_per_channel(view, index, |layer, scale| {
        let bias = layer.bias.clone().unwrap_or_else(|| vec![0.0; layer.channels]);
        (Some(scale.to_vec()), bias.iter().zip(scale).map(|(b, s)| b * s).collect())
    }))
}

/// Folds binary node `index` of a Conv output and a per-channel constant into the Conv: `fold`
/// gives the weight scale (if any) and the new bias from the constant's per-channel values.
fn fold_per_channel(
    view: &GraphView<'_>,
    index: usize,
    fold: impl Fn(&Layer<'_>, &[f64]) -> (Option<Vec<f64>>, Vec<f64>),
) -> Option<Patch> {
    let node = view.node(index);
    let (layer, constant) = layer_and_constant(view, node)?;
    let values = per_channel(constant, layer.channels, layer.weights.dims.len())?;
    let (scale, bias) = fold(&layer, &values);
    let mut patch = layer.rebuilt(view, scale.as_deref(), &bias, &node.outputs[0])?;
    patch.remove.push(index);
    Some(patch)
}

/// The pads of a constant-mode Pad node, as `[begin..., end...]` over all axes, and the value it
/// pads with.
fn constant_pads(view: &GraphView<'_>, pad: &Node) -> Option<(Vec<i64>, f32)> {
    if attr_string(pad, "mode").is_some_and(|mode| mode != b"constant") {
        return None;
    }
    if view.context.opset < 11 {
        let value = attr_float(pad, "value").unwrap_or(0.0);
        return Some((attr_ints(pad, "pads").or_else(|| attr_ints(pad, "paddings"))?, value));
    }
    // Opset 18's axes input names which axes the pads cover; only the full form is folded.
    if pad.inputs.get(3).is_some_and(|axes| !axes.is_empty()) {
        return None;
    }
    let value = match pad.inputs.get(2).filter(|value| !value.is_empty()) {
        Some(value) => match view.constant(value)?.to_f32_vec()?[..] {
            [value] => value,
            _ => return None,
        },
        None => 0.0,
    };
    Some((constant_ints(view.constant(pad.inputs.get(1)?)?)?, value))
}

/// Whether every element of `value` is known to be `>= 0` (or NaN) from the op producing it.
fn non_negative(view: &GraphView<'_>, value: &str) -> bool {
    view.producer(value).is_some_and(|(_, node)| matches!(node.op_type.as_str(), "Relu" | "Sigmoid" | "Softmax" | "Abs"))
}

/// Whether MaxPool `node` ignoring pads `pads` (`[begin..., end...]` over spatial axes) computes what
/// it computes on the input padded with `value`: padded elements never win a max when they are
/// `-inf`, or `0` below non-negative inputs, as long as every window still covers one real element
/// (a pad at most the dilated kernel's reach, `(k - 1) * d`). ceil_mode's extra windows are defined
/// differently on padded and real elements, and Indices would index the padded tensor: both refused.
fn max_pool_accepts(view: &GraphView<'_>, node: &Node, pad_input: &str, pads: &[i64], value: f32) -> bool {
    let ignorable = value == f32::NEG_INFINITY || (value == 0.0 && non_negative(view, pad_input));
    if !ignorable || attr_int(node, "ceil_mode").unwrap_or(0) != 0 || node.outputs.get(1).is_some_and(|out| !out.is_empty()) {
        return false;
    }
    let Some(kernel) = attr_ints(node, "kernel_shape") else { return false };
    let spatial = kernel.len();
    let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
    if pads.len() != 2 * spatial || dilations.len() != spatial {
        return false;
    }
    (0..spatial).all(|axis| {
        let reach = (kernel[axis] - 1) * dilations[axis];
        pads[axis] <= reach && pads[axis + spatial] <= reach
    })
}

fn pad_into_window(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let node = view.node(index);
    let Some(input) = node.inputs.first() else { return Ok(None) };
    let Some((pad_index, pad)) = view.sole_producer(input, "Pad") else { return Ok(None) };
    if attr_string(node, "auto_pad").is_some_and(|auto_pad| auto_pad != b"NOTSET") {
        return Ok(None);
    }
    // AveragePool divides by the window's size only if padding counts, as zeros from Pad do.
    if node.op_type == "AveragePool" {
        let own_pads = attr_ints(node, "pads").is_some_and(|pads| pads.iter().any(|&p| p != 0));
        if attr_int(node, "count_include_pad") != Some(1) && own_pads {
            return Ok(None);
        }
    }
    let Some((pads, value)) = constant_pads(view, pad) else { return Ok(None) };
    if node.op_type != "MaxPool" && value != 0.0 {
        return Ok(None);
    }
    let rank = pads.len() / 2;
    if rank < 3 || pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Ok(None);
    }
    let spatial = rank - 2;
    // Batch and channel axes must not be padded: Conv and pooling pad only spatial axes.
    if pads[0] != 0 || pads[1] != 0 || pads[rank] != 0 || pads[rank + 1] != 0 {
        return Ok(None);
    }
    let mut merged_pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]);
    if merged_pads.len() != 2 * spatial {
        return Ok(None);
    }
    for axis in 0..spatial {
        merged_pads[axis] += pads[axis + 2];
        merged_pads[axis + spatial] += pads[rank + axis + 2];
    }
    if node.op_type == "MaxPool" && !max_pool_accepts(view, node, &pad.inputs[0], &merged_pads, value) {
        return Ok(None);
    }
    let mut fused = node.clone();
    fused.inputs[0] = pad.inputs[0].clone();
    set_attr(&mut fused, "pads", AttrValue::Ints(merged_pads));
    if node.op_type == "AveragePool" {
        set_attr(&mut fused, "count_include_pad", AttrValue::Int(1));
    }
    Ok(Some(Patch::replace_with(vec![pad_index, index], fused)))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Attribute, Node};

    use super::*;
    use crate::rules::tests::{check, graph, ramp, scalar_f32};

    fn conv_graph(tail: Vec<Node>, extra: Vec<Tensor>) -> whittle_ir::Graph {
        let mut nodes = vec![Node::new("conv", "Conv", &["x", "w", "b"], &["c"])];
        nodes.extend(tail);
        let mut g = graph(nodes, &[("x", &[1, 2, 5, 5])], &["y"]);
        g.initializers.push(ramp("w", &[3, 2, 3, 3], 0.1));
        g.initializers.push(ramp("b", &[3], 0.5));
        g.initializers.extend(extra);
        g
    }

    #[test]
    fn batchnorm_folds_into_conv() {
        let bn = Node::new("bn", "BatchNormalization", &["c", "gamma", "beta", "mean", "var"], &["y"]);
        let params = vec![ramp("gamma", &[3], 0.7), ramp("beta", &[3], -0.2), ramp("mean", &[3], 0.3), ramp("var", &[3], 0.9)];
        check(conv_graph(vec![bn], params), "fuse-conv", &["batchnorm-into-conv"], "nodes 1: Conv");
    }

    #[test]
    fn batchnorm_folds_into_conv_transpose_with_groups_and_into_gemm() {
        let mut deconv = Node::new("deconv", "ConvTranspose", &["x", "w"], &["c"]);
        deconv.attributes.push(Attribute::new("group", AttrValue::Int(2)));
        let bn = Node::new("bn", "BatchNormalization", &["c", "gamma", "beta", "mean", "var"], &["y"]);
        let mut g = graph(vec![deconv, bn], &[("x", &[1, 4, 3, 3])], &["y"]);
        // Weights [C_in 4, C_out/group 3, 2, 2]: 6 output channels.
        g.initializers.extend([
            ramp("w", &[4, 3, 2, 2], 0.1),
            ramp("gamma", &[6], 0.7),
            ramp("beta", &[6], -0.2),
            ramp("mean", &[6], 0.3),
            ramp("var", &[6], 0.9),
        ]);
        check(g, "fuse-conv", &["batchnorm-into-conv"], "nodes 1: ConvTranspose");

        let mut gemm = Node::new("fc", "Gemm", &["x", "w", "b"], &["c"]);
        gemm.attributes.push(Attribute::new("transB", AttrValue::Int(1)));
        gemm.attributes.push(Attribute::new("beta", AttrValue::Float(0.5)));
        let bn = Node::new("bn", "BatchNormalization", &["c", "gamma", "beta", "mean", "var"], &["y"]);
        let mut g = graph(vec![gemm, bn], &[("x", &[2, 4])], &["y"]);
        g.initializers.extend([
            ramp("w", &[3, 4], 0.1),
            ramp("b", &[3], 0.4),
            ramp("gamma", &[3], 0.7),
            ramp("beta", &[3], -0.2),
            ramp("mean", &[3], 0.3),
            ramp("var", &[3], 0.9),
        ]);
        check(g, "fuse-conv", &["batchnorm-into-conv"], "nodes 1: Gemm");
    }

    #[test]
    fn per_channel_mul_and_add_fold_but_wider_constants_do_not() {
        let mul = Node::new("mul", "Mul", &["c", "scale"], &["m"]);
        let add = Node::new("add", "Add", &["shift", "m"], &["y"]);
        let consts = vec![ramp("scale", &[3, 1, 1], 0.9), ramp("shift", &[1, 3, 1, 1], 0.2)];
        check(conv_graph(vec![mul, add], consts), "fuse-conv", &["add-into-conv-bias", "mul-into-conv-weights"], "nodes 1: Conv");
        // A [3,3,3] constant adds along more than the channel axis.
        let add = Node::new("add", "Add", &["c", "wide"], &["y"]);
        check(conv_graph(vec![add], vec![ramp("wide", &[3, 3, 3], 0.2)]), "fuse-conv", &[], "nodes 2: Conv Add");
    }

    #[test]
    fn malformed_nodes_are_left_alone() {
        // A BatchNormalization with two of its five inputs: no rule may index the missing ones.
        let bn = Node::new("bn", "BatchNormalization", &["c", "gamma"], &["y"]);
        let mut model = crate::rules::tests::model_at(conv_graph(vec![bn], vec![ramp("gamma", &[3], 0.7)]), 18);
        let context = crate::PassContext::for_model(&model);
        let runs = crate::passes::by_names(&["fuse-conv"]).unwrap().run(&mut model, &context).unwrap();
        assert_eq!(runs[0].fired(), 0);
    }

    #[test]
    fn zero_pads_fold_into_conv_and_average_pool() {
        let pad = Node::new("pad", "Pad", &["x", "pads"], &["p"]);
        let conv = Node::new("conv", "Conv", &["p", "w"], &["c"]);
        let mut pool = Node::new("pool", "AveragePool", &["q"], &["y"]);
        pool.attributes.push(Attribute::new("kernel_shape", AttrValue::Ints(vec![2, 2])));
        let pad2 = Node::new("pad2", "Pad", &["c", "pads2"], &["q"]);
        let mut g = graph(vec![pad, conv, pad2, pool], &[("x", &[1, 2, 5, 5])], &["y"]);
        g.initializers.push(Tensor::from_i64("pads", vec![8], &[0, 0, 1, 2, 0, 0, 1, 0]).unwrap());
        g.initializers.push(Tensor::from_i64("pads2", vec![8], &[0, 0, 1, 1, 0, 0, 1, 1]).unwrap());
        g.initializers.push(ramp("w", &[3, 2, 3, 3], 0.1));
        check(g.clone(), "fuse-conv", &["pad-into-window"], "nodes 2: Conv AveragePool");
        // Padding the channel axis is not a Conv pad.
        g.initializers[0] = Tensor::from_i64("pads", vec![8], &[0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        g.initializers[2] = ramp("w", &[3, 3, 3, 3], 0.1);
        check(g, "fuse-conv", &["pad-into-window"], "nodes 3: Pad Conv AveragePool");
    }

    /// Relu -> Pad(value) -> MaxPool(kernel 3x3, `extra` attributes), with pads `pads` on H and W.
    fn relu_pad_pool(value: f32, pads: [i64; 2], extra: Vec<Attribute>) -> whittle_ir::Graph {
        let relu = Node::new("relu", "Relu", &["x"], &["r"]);
        let pad = Node::new("pad", "Pad", &["r", "pads", "value"], &["p"]);
        let mut pool = Node::new("pool", "MaxPool", &["p"], &["y"]);
        pool.attributes.push(Attribute::new("kernel_shape", AttrValue::Ints(vec![3, 3])));
        pool.attributes.push(Attribute::new("strides", AttrValue::Ints(vec![2, 2])));
        pool.attributes.extend(extra);
        let mut g = graph(vec![relu, pad, pool], &[("x", &[1, 2, 6, 6])], &["y"]);
        let [begin, end] = pads;
        g.initializers.push(Tensor::from_i64("pads", vec![8], &[0, 0, begin, begin, 0, 0, end, end]).unwrap());
        g.initializers.push(scalar_f32("value", value));
        g
    }

    #[test]
    fn pads_that_never_win_the_max_fold_into_max_pool() {
        // Zero padding under Relu, and -inf padding anywhere, cannot win a window that holds a real
        // element; the differential check in `check` runs both graphs on the same inputs.
        check(relu_pad_pool(0.0, [1, 1], vec![]), "fuse-conv", &["pad-into-window"], "nodes 2: Relu MaxPool");
        check(relu_pad_pool(f32::NEG_INFINITY, [2, 1], vec![]), "fuse-conv", &["pad-into-window"], "nodes 2: Relu MaxPool");
        // A non-zero pad value could win the max; a pad beyond the kernel's reach leaves windows of
        // padding only; ceil_mode and an Indices output are refused.
        check(relu_pad_pool(0.5, [1, 1], vec![]), "fuse-conv", &[], "nodes 3: Relu Pad MaxPool");
        check(relu_pad_pool(0.0, [3, 0], vec![]), "fuse-conv", &[], "nodes 3: Relu Pad MaxPool");
        let ceil = vec![Attribute::new("ceil_mode", AttrValue::Int(1))];
        check(relu_pad_pool(0.0, [1, 1], ceil), "fuse-conv", &[], "nodes 3: Relu Pad MaxPool");
        let mut with_indices = relu_pad_pool(0.0, [1, 1], vec![]);
        with_indices.nodes[2].outputs.push("indices".into());
        with_indices.outputs.push(whittle_ir::ValueInfo::new("indices", None));
        check(with_indices, "fuse-conv", &[], "nodes 3: Relu Pad MaxPool");
    }

    #[test]
    fn zero_padding_of_possibly_negative_values_stays_before_max_pool() {
        let mut g = relu_pad_pool(0.0, [1, 1], vec![]);
        g.nodes[0].op_type = "Tanh".into();
        check(g, "fuse-conv", &[], "nodes 3: Tanh Pad MaxPool");
    }
}
