//! Dynamic INT8 quantization: weights quantized ahead (per channel or per tensor), activations at
//! run time by DynamicQuantizeLinear, products in MatMulInteger / ConvInteger, and the int32 result
//! scaled back to float (`Cast`, `Mul` by `x_scale * w_scale`, `Add` of the float bias), the form
//! ONNX Runtime's `quantize_dynamic` writes. No calibration: each input's range is its own.

use whittle_ir::{AttrValue, Attribute, DataType, Graph, Model, Node};
use whittle_quant::{quantize_weights, Granularity, QuantType};

use super::qdq::{bytes_tensor, f32_tensor, finish, quantized_tensor, Kept, Layer, Names, QdqOptions, QuantizedLayer};
use crate::attrs::{attr_float, attr_int};
use crate::error::{PassError, Result};

/// Why dynamic quantization keeps `layer` in float, when it does: it has no form for Gemm with a
/// transposed input or scaling, nor for batched MatMul weights.
pub fn unsupported(model: &Model, layer: &Layer) -> Option<Kept> {
    let node = model.graph.nodes.iter().find(|node| node.label() == layer.node)?;
    let rank = model.graph.initializer(&layer.weight).map_or(0, |w| w.dims.len());
    let reason = match node.op_type.as_str() {
        "Gemm" if attr_int(node, "transA").unwrap_or(0) != 0 => "Gemm with transA=1 has no MatMulInteger form",
        "Gemm" if attr_float(node, "alpha").unwrap_or(1.0) != 1.0 || attr_float(node, "beta").unwrap_or(1.0) != 1.0 => {
            "Gemm with alpha or beta other than 1 has no MatMulInteger form"
        }
        "MatMul" if rank != 2 => "MatMulInteger takes 2-D weights here",
        _ => return None,
    };
    Some(Kept { node: layer.node.clone(), op_type: layer.op_type.clone(), reason: reason.into() })
}

/// Rewrites `layers` (none of them [`unsupported`]) into the dynamic form.
pub fn insert_dynamic(model: &mut Model, layers: &[Layer], options: &QdqOptions) -> Result<Vec<QuantizedLayer>> {
    let error = |layer: &Layer, reason: String| PassError::Node { node: layer.node.clone(), op: layer.op_type.clone(), reason };
    if options.activation_type != QuantType::U8 || options.activation_symmetric {
        let reason = "int8-dynamic quantizes activations to asymmetric u8 (DynamicQuantizeLinear)".to_string();
        return Err(PassError::Options { reason });
    }
    let opset = model.opset_version("").unwrap_or(1);
    if opset < 11 {
        return Err(PassError::Opset { from: opset, to: 11, reason: "DynamicQuantizeLinear needs opset 11".into() });
    }
    let graph = &mut model.graph;
    let mut names = Names::of(graph);
    let mut quantized_inputs: Vec<(String, [String; 3])> = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut report = Vec::new();
    for layer in layers {
        let Some(index) = graph.nodes.iter().position(|node| node.label() == layer.node) else {
            return Err(error(layer, "the node is not in the graph".into()));
        };
        let original = graph.nodes[index].clone();
        let activation = match quantized_inputs.iter().find(|(input, _)| input == &layer.input) {
            Some((_, outputs)) => outputs.clone(),
            None => {
                let outputs = ["quantized", "scale", "zero_point"].map(|part| names.fresh(&format!("{}_{part}", layer.input)));
                let mut dynamic = Node::new(
                    names.fresh(&format!("{}/DynamicQuantizeLinear", layer.input)),
                    "DynamicQuantizeLinear",
                    &[&layer.input],
                    &[],
                );
                dynamic.outputs = outputs.to_vec();
                added.push(dynamic);
                quantized_inputs.push((layer.input.clone(), outputs.clone()));
                outputs
            }
        };
        let [x_q, x_scale, x_zp] = &activation;
        let weight = weight(graph, &mut names, layer, options).map_err(|reason| error(layer, reason))?;
        let base = &layer.output;
        let accumulator = names.fresh(&format!("{base}_int32"));
        let (integer_op, mut integer) = match original.op_type.as_str() {
            "Conv" => ("ConvInteger", original.attributes.clone()),
            _ => ("MatMulInteger", Vec::new()),
        };
        let mut product = Node::new(
            names.fresh(&format!("{}/{integer_op}", layer.node)),
            integer_op,
            &[x_q, &weight.quantized, x_zp, &weight.zero_point],
            &[&accumulator],
        );
        product.attributes.append(&mut integer);
        let as_float = names.fresh(&format!("{base}_float"));
        let mut cast = Node::new(names.fresh(&format!("{}/Cast", layer.node)), "Cast", &[&accumulator], &[&as_float]);
        cast.attributes.push(Attribute::new("to", AttrValue::Int(i64::from(DataType::F32.code()))));
        let scale = names.fresh(&format!("{base}_scale"));
        let scale_node =
            Node::new(names.fresh(&format!("{}/Mul_scale", layer.node)), "Mul", &[x_scale, &weight.scale], &[&scale]);
        let bias = original.inputs.get(2).filter(|name| !name.is_empty()).cloned();
        let scaled = if bias.is_some() { names.fresh(&format!("{base}_unbiased")) } else { layer.output.clone() };
        let rescale = Node::new(names.fresh(&format!("{}/Mul", layer.node)), "Mul", &[&as_float, &scale], &[&scaled]);
        added.extend([product, cast, scale_node, rescale]);
        if let Some(bias) = bias {
            let bias = match original.op_type.as_str() {
                // Conv's bias is one per output channel: reshaped to broadcast over the spatial axes.
                "Conv" => {
                    let tensor =
                        graph.initializer(&bias).ok_or_else(|| error(layer, format!("bias '{bias}' is not an initializer")))?;
                    let values = tensor.to_f32_vec().ok_or_else(|| error(layer, format!("bias '{bias}' is not f32")))?;
                    let name = names.fresh(&format!("{bias}_channels"));
                    graph.initializers.push(f32_tensor(&name, weight.broadcast_dims.clone(), &values));
                    name
                }
                _ => bias,
            };
            added.push(Node::new(names.fresh(&format!("{}/Add", layer.node)), "Add", &[&scaled, &bias], &[&layer.output]));
        }
        removed.push(index);
        report.push(QuantizedLayer {
            node: layer.node.clone(),
            op_type: layer.op_type.clone(),
            input_scale: None,
            input_zero_point: None,
            weight_scales: weight.scales,
            bias_quantized: false,
        });
    }
    removed.sort_unstable();
    for index in removed.into_iter().rev() {
        graph.nodes.remove(index);
    }
    finish(graph, added, "int8-dynamic")?;
    Ok(report)
}

/// A weight quantized for an integer op, and the names of its parts.
struct Weight {
    quantized: String,
    zero_point: String,
    /// Shaped to broadcast against the integer op's output: `[N]` for MatMul, `[M, 1, ...]` for Conv.
    scale: String,
    broadcast_dims: Vec<i64>,
    scales: usize,
}

fn weight(graph: &mut Graph, names: &mut Names, layer: &Layer, options: &QdqOptions) -> Result<Weight, String> {
    let tensor = graph.initializer(&layer.weight).ok_or_else(|| format!("weight '{}' is gone", layer.weight))?;
    let mut values = tensor.to_f32_vec().ok_or_else(|| format!("weight '{}' cannot be read", layer.weight))?;
    let mut dims = tensor.dims.clone();
    let conv = layer.op_type == "Conv";
    // MatMulInteger multiplies by [K, N]: a Gemm weight stored [N, K] (transB) is transposed once here.
    if layer.op_type == "Gemm" && layer.channel_axis == 0 {
        let (n, k) = (dims[0] as usize, dims[1] as usize);
        values = (0..k * n).map(|i| values[(i % n) * k + i / n]).collect();
        dims = vec![k as i64, n as i64];
    }
    let axis = if conv { 0 } else { 1 };
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let granularity = if options.per_channel { Granularity::PerChannel { axis } } else { Granularity::PerTensor };
    let q = quantize_weights(&values, &shape, granularity, options.weight_type, options.weight_symmetric)
        .map_err(|err| format!("weight '{}': {err}", layer.weight))?;
    let base = &layer.weight;
    let (quantized, scale, zero_point) = (
        names.fresh(&format!("{base}_quantized")),
        names.fresh(&format!("{base}_scale")),
        names.fresh(&format!("{base}_zero_point")),
    );
    let channels = q.scales.len() as i64;
    let per_channel = |trailing: usize| if options.per_channel { [vec![channels], vec![1; trailing]].concat() } else { vec![] };
    let broadcast_dims = if conv { [vec![dims[0]], vec![1; dims.len() - 2]].concat() } else { vec![dims[1]] };
    let scale_dims = per_channel(if conv { dims.len() - 2 } else { 0 });
    graph.initializers.push(bytes_tensor(&quantized, q.qtype, dims, q.bytes));
    graph.initializers.push(f32_tensor(&scale, scale_dims, &q.scales));
    // One zero point when they are all equal (always, for symmetric weights): ONNX Runtime's
    // ConvInteger takes no other (1.31: "Non per-tensor quantization is not supported now").
    if q.zero_points.iter().all(|&zero| zero == q.zero_points[0]) {
        graph.initializers.push(quantized_tensor(&zero_point, q.qtype, &q.zero_points[..1], vec![]));
    } else if conv {
        return Err(format!(
            "weight '{}': per-channel zero points are not accepted by ConvInteger; use symmetric weights",
            layer.weight
        ));
    } else {
        graph.initializers.push(quantized_tensor(&zero_point, q.qtype, &q.zero_points, per_channel(0)));
    }
    Ok(Weight { quantized, zero_point, scale, broadcast_dims, scales: q.scales.len() })
}
