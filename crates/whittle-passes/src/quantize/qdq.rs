//! Static INT8 quantization in the QDQ form: QuantizeLinear/DequantizeLinear pairs on the
//! activation inputs of Conv, MatMul and Gemm, their weights quantized per channel (or per tensor)
//! and their biases to int32, all in standard ONNX ops that ONNX Runtime fuses into its integer
//! kernels.
//!
//! Activations are quantized where a layer reads them, never between a layer and the activation
//! function after it: Conv -> Relu -> Conv gets its pair on the Relu's output, the next Conv's
//! input, so the Relu's zeros and the clipped range are what the integer range spends its levels on.
//! Weights keep their float initializer's name on a DequantizeLinear output, so layers that are
//! not quantized and any other reader see the same values as before.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use whittle_ir::{AttrValue, Attribute, DataType, Graph, Model, Node, Tensor};
use whittle_quant::{quantize_bias, quantize_weights, Granularity, QParams, QuantType};

use crate::attrs::attr_int;
use crate::error::{PassError, Result};
use crate::filter::NodeFilter;
use crate::patch::prune_unused;

/// The op types this pass quantizes.
pub const QUANTIZABLE: &[&str] = &["Conv", "Gemm", "MatMul"];

/// Types and schemes of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QdqOptions {
    pub weight_type: QuantType,
    pub weight_symmetric: bool,
    /// One scale per output channel (needs opset 13); per tensor otherwise.
    pub per_channel: bool,
    pub activation_type: QuantType,
    pub activation_symmetric: bool,
}

impl Default for QdqOptions {
    /// Signed symmetric per-channel weights and unsigned asymmetric activations: the U8S8 scheme
    /// ONNX Runtime's x86 integer kernels are fastest with, and the one its quantizer defaults to.
    fn default() -> QdqOptions {
        QdqOptions {
            weight_type: QuantType::I8,
            weight_symmetric: true,
            per_channel: true,
            activation_type: QuantType::U8,
            activation_symmetric: false,
        }
    }
}

/// A node the pass can quantize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// The node's label (its name, or its first output when it has none).
    pub node: String,
    pub op_type: String,
    /// The activation it reads (input 0), its weight initializer and its bias initializer.
    pub input: String,
    pub weight: String,
    pub bias: Option<String>,
    /// Its output, whose error against the float model tells how much this layer lost.
    pub output: String,
    /// The weight axis of the output channels.
    pub channel_axis: usize,
}

/// A node of a quantizable type that stays in float, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

/// The layers of `model`'s main graph that can be quantized, and the quantizable nodes that cannot
/// or that `filter` keeps in float.
pub fn find_layers(model: &Model, filter: &NodeFilter) -> (Vec<Layer>, Vec<Kept>) {
    let graph = &model.graph;
    let (mut layers, mut kept) = (Vec::new(), Vec::new());
    for node in graph.nodes.iter().filter(|node| node.domain.is_empty() || node.domain == "ai.onnx") {
        if !QUANTIZABLE.contains(&node.op_type.as_str()) {
            continue;
        }
        let keep = |reason: String| Kept { node: node.label(), op_type: node.op_type.clone(), reason };
        if !filter.allows(&node.name, &node.op_type) {
            kept.push(keep("excluded".into()));
            continue;
        }
        match layer(graph, node) {
            Ok(layer) => layers.push(layer),
            Err(reason) => kept.push(keep(reason)),
        }
    }
    (layers, kept)
}

fn layer(graph: &Graph, node: &Node) -> Result<Layer, String> {
    let input = |index: usize| node.inputs.get(index).filter(|name| !name.is_empty());
    let (Some(activation), Some(weight_name)) = (input(0), input(1)) else {
        return Err("it has fewer than two inputs".into());
    };
    if graph.initializer(activation).is_some() {
        return Err(format!("its input '{activation}' is a constant (fold it first)"));
    }
    let weight = graph.initializer(weight_name).filter(|tensor| tensor.dtype == DataType::F32).ok_or_else(|| {
        match graph.initializer(weight_name) {
            Some(tensor) => format!("its weight '{weight_name}' is {}, not f32", tensor.dtype),
            None => format!("its second input '{weight_name}' is an activation, not a constant weight"),
        }
    })?;
    let rank = weight.dims.len();
    let channel_axis = match node.op_type.as_str() {
        "Conv" if rank >= 3 => 0,
        "Gemm" if rank == 2 => {
            if attr_int(node, "transB").unwrap_or(0) != 0 {
                0
            } else {
                1
            }
        }
        "MatMul" if rank >= 2 => rank - 1,
        _ => return Err(format!("its weight '{weight_name}' has rank {rank}")),
    };
    let channels = weight.dims[channel_axis];
    // A bias is quantized when it is one value per output channel; other broadcasts stay float.
    let bias = match node.op_type.as_str() {
        "Conv" | "Gemm" => input(2)
            .filter(|name| graph.initializer(name).is_some_and(|b| b.dtype == DataType::F32 && b.dims == [channels]))
            .cloned(),
        _ => None,
    };
    Ok(Layer {
        node: node.label(),
        op_type: node.op_type.clone(),
        input: activation.clone(),
        weight: weight_name.clone(),
        bias,
        output: node.outputs.first().cloned().unwrap_or_default(),
        channel_axis,
    })
}

/// Parameters chosen for one quantized layer, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizedLayer {
    pub node: String,
    pub op_type: String,
    /// The activation's scale and zero point; `None` when they are computed at run time (dynamic).
    pub input_scale: Option<f32>,
    pub input_zero_point: Option<i32>,
    /// One per channel, or one.
    pub weight_scales: usize,
    pub bias_quantized: bool,
}

/// Rewrites `layers` of `model` into the QDQ form, activations quantized with `ranges` (by tensor
/// name; every layer's input must have one).
pub fn insert_qdq(
    model: &mut Model,
    layers: &[Layer],
    ranges: &BTreeMap<String, (f32, f32)>,
    options: &QdqOptions,
) -> Result<Vec<QuantizedLayer>> {
    let opset = model.opset_version("").unwrap_or(1);
    let error = |layer: &Layer, reason: String| PassError::Node { node: layer.node.clone(), op: layer.op_type.clone(), reason };
    let needed = if options.per_channel { 13 } else { 10 };
    if opset < needed {
        let scheme = if options.per_channel { "per-channel quantization" } else { "QuantizeLinear" };
        let reason = format!("{scheme} needs opset {needed}, the model imports {opset}");
        return Err(layers
            .first()
            .map_or(PassError::Opset { from: opset, to: needed, reason: reason.clone() }, |l| error(l, reason)));
    }
    let graph = &mut model.graph;
    let mut names = Names::of(graph);
    let mut activations: BTreeMap<String, (String, QParams)> = BTreeMap::new();
    let mut weights: BTreeMap<String, (String, Vec<f32>)> = BTreeMap::new();
    let mut added = Vec::new();
    let mut report = Vec::new();
    for layer in layers {
        let Some(index) = graph.nodes.iter().position(|node| node.label() == layer.node) else {
            return Err(error(layer, "the node is not in the graph".into()));
        };
        if !activations.contains_key(&layer.input) {
            let &(min, max) = ranges
                .get(&layer.input)
                .ok_or_else(|| error(layer, format!("no calibrated range for its input '{}'", layer.input)))?;
            let params = QParams::from_range(min, max, options.activation_type, options.activation_symmetric)
                .map_err(|err| error(layer, format!("input '{}': {err}", layer.input)))?;
            let scale = names.fresh(&format!("{}_scale", layer.input));
            let zero_point = names.fresh(&format!("{}_zero_point", layer.input));
            let quantized = names.fresh(&format!("{}_quantized", layer.input));
            let dequantized = names.fresh(&format!("{}_dequantized", layer.input));
            graph.initializers.push(scalar_f32(&scale, params.scale));
            graph.initializers.push(quantized_tensor(&zero_point, params.qtype, &[params.zero_point], vec![]));
            added.push(node(
                &names.fresh(&format!("{quantized}/QuantizeLinear")),
                "QuantizeLinear",
                &[&layer.input, &scale, &zero_point],
                &quantized,
                None,
            ));
            added.push(node(
                &names.fresh(&format!("{dequantized}/DequantizeLinear")),
                "DequantizeLinear",
                &[&quantized, &scale, &zero_point],
                &dequantized,
                None,
            ));
            activations.insert(layer.input.clone(), (dequantized, params));
        }
        let (activation, input_params) = activations[&layer.input].clone();
        if !weights.contains_key(&layer.weight) {
            let (dequantized, scales) =
                quantize_weight(graph, &mut names, &mut added, layer, options).map_err(|reason| error(layer, reason))?;
            weights.insert(layer.weight.clone(), (dequantized, scales));
        }
        let (weight, weight_scales) = weights[&layer.weight].clone();
        let bias = match &layer.bias {
            Some(name) => Some(
                quantize_layer_bias(graph, &mut names, &mut added, name, input_params.scale, &weight_scales, options.per_channel)
                    .map_err(|reason| error(layer, reason))?,
            ),
            None => None,
        };
        let node = &mut graph.nodes[index];
        node.inputs[0] = activation;
        node.inputs[1] = weight;
        if let Some(bias) = &bias {
            node.inputs[2] = bias.clone();
        }
        report.push(QuantizedLayer {
            node: layer.node.clone(),
            op_type: layer.op_type.clone(),
            input_scale: Some(input_params.scale),
            input_zero_point: Some(input_params.zero_point),
            weight_scales: weight_scales.len(),
            bias_quantized: bias.is_some(),
        });
    }
    finish(graph, added, "int8-static")?;
    Ok(report)
}

/// Adds `added`, restores topological order and drops what nothing reads any more.
pub(super) fn finish(graph: &mut Graph, added: Vec<Node>, pass: &str) -> Result<()> {
    graph.nodes.extend(added);
    let order = graph.topological_order().map_err(|err| PassError::InvalidGraph { pass: pass.into(), error: Box::new(err) })?;
    let mut nodes: Vec<Option<Node>> = std::mem::take(&mut graph.nodes).into_iter().map(Some).collect();
    graph.nodes = order.into_iter().filter_map(|index| nodes[index].take()).collect();
    prune_unused(graph);
    Ok(())
}

fn quantize_weight(
    graph: &mut Graph,
    names: &mut Names,
    added: &mut Vec<Node>,
    layer: &Layer,
    options: &QdqOptions,
) -> Result<(String, Vec<f32>), String> {
    let tensor = graph.initializer(&layer.weight).ok_or_else(|| format!("weight '{}' is gone", layer.weight))?;
    let values = tensor.to_f32_vec().ok_or_else(|| format!("weight '{}' cannot be read", layer.weight))?;
    let shape: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
    let granularity =
        if options.per_channel { Granularity::PerChannel { axis: layer.channel_axis } } else { Granularity::PerTensor };
    let q = quantize_weights(&values, &shape, granularity, options.weight_type, options.weight_symmetric)
        .map_err(|err| format!("weight '{}': {err}", layer.weight))?;
    let base = &layer.weight;
    let (quantized, scale, zero_point) = (
        names.fresh(&format!("{base}_quantized")),
        names.fresh(&format!("{base}_scale")),
        names.fresh(&format!("{base}_zero_point")),
    );
    let dequantized = names.fresh(&format!("{base}_dequantized"));
    let dims = tensor.dims.clone();
    let per_axis = if options.per_channel { vec![q.scales.len() as i64] } else { vec![] };
    graph.initializers.push(bytes_tensor(&quantized, q.qtype, dims, q.bytes));
    graph.initializers.push(f32_tensor(&scale, per_axis.clone(), &q.scales));
    graph.initializers.push(quantized_tensor(&zero_point, q.qtype, &q.zero_points, per_axis));
    let axis = options.per_channel.then_some(layer.channel_axis as i64);
    added.push(node(
        &names.fresh(&format!("{dequantized}/DequantizeLinear")),
        "DequantizeLinear",
        &[&quantized, &scale, &zero_point],
        &dequantized,
        axis,
    ));
    Ok((dequantized, q.scales))
}

fn quantize_layer_bias(
    graph: &mut Graph,
    names: &mut Names,
    added: &mut Vec<Node>,
    bias: &str,
    input_scale: f32,
    weight_scales: &[f32],
    per_channel: bool,
) -> Result<String, String> {
    let tensor = graph.initializer(bias).ok_or_else(|| format!("bias '{bias}' is gone"))?;
    let values = tensor.to_f32_vec().ok_or_else(|| format!("bias '{bias}' cannot be read"))?;
    let q = quantize_bias(&values, input_scale, weight_scales).map_err(|err| format!("bias '{bias}': {err}"))?;
    let scales: Vec<f32> = weight_scales.iter().map(|&w| input_scale * w).collect();
    let (quantized, scale) = (names.fresh(&format!("{bias}_quantized")), names.fresh(&format!("{bias}_scale")));
    let dequantized = names.fresh(&format!("{bias}_dequantized"));
    let bytes = q.iter().flat_map(|v| v.to_le_bytes()).collect();
    graph.initializers.push(bytes_tensor_of(&quantized, DataType::I32, vec![values.len() as i64], bytes));
    let per_axis = if per_channel { vec![scales.len() as i64] } else { vec![] };
    graph.initializers.push(f32_tensor(&scale, per_axis, &scales));
    let axis = per_channel.then_some(0);
    added.push(node(
        &names.fresh(&format!("{dequantized}/DequantizeLinear")),
        "DequantizeLinear",
        &[&quantized, &scale],
        &dequantized,
        axis,
    ));
    Ok(dequantized)
}

pub(super) fn node(name: &str, op_type: &str, inputs: &[&str], output: &str, axis: Option<i64>) -> Node {
    let mut node = Node::new(name, op_type, inputs, &[output]);
    if let Some(axis) = axis {
        node.attributes.push(Attribute::new("axis", AttrValue::Int(axis)));
    }
    node
}

pub(super) fn scalar_f32(name: &str, value: f32) -> Tensor {
    f32_tensor(name, vec![], &[value])
}

pub(super) fn f32_tensor(name: &str, dims: Vec<i64>, values: &[f32]) -> Tensor {
    bytes_tensor_of(name, DataType::F32, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub(super) fn quantized_tensor(name: &str, qtype: QuantType, values: &[i32], dims: Vec<i64>) -> Tensor {
    bytes_tensor(name, qtype, dims, values.iter().map(|&v| qtype.to_byte(v)).collect())
}

pub(super) fn bytes_tensor(name: &str, qtype: QuantType, dims: Vec<i64>, bytes: Vec<u8>) -> Tensor {
    let dtype = match qtype {
        QuantType::U8 => DataType::U8,
        QuantType::I8 => DataType::I8,
    };
    bytes_tensor_of(name, dtype, dims, bytes)
}

pub(super) fn bytes_tensor_of(name: &str, dtype: DataType, dims: Vec<i64>, bytes: Vec<u8>) -> Tensor {
    // Sizes are computed here from the same dims, so the byte count always matches.
    Tensor::from_bytes(name, dtype, dims, bytes).expect("byte count computed from dims")
}

/// Every value and node name of a graph, to make new ones that collide with none.
pub(super) struct Names(BTreeSet<String>);

impl Names {
    pub(super) fn of(graph: &Graph) -> Names {
        let mut names = BTreeSet::new();
        for node in &graph.nodes {
            names.insert(node.name.clone());
            names.extend(node.inputs.iter().chain(&node.outputs).cloned());
        }
        names.extend(graph.inputs.iter().chain(&graph.outputs).chain(&graph.value_info).map(|info| info.name.clone()));
        names.extend(graph.initializers.iter().map(|tensor| tensor.name.clone()));
        Names(names)
    }

    pub(super) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut suffix = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{suffix}");
            suffix += 1;
        }
        self.0.insert(name.clone());
        name
    }
}
