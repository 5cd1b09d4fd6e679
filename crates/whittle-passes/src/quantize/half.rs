//! FP16 / BF16 conversion: f32 initializers and computation moved to a half type, with the ops
//! that are unsafe or unsupported in half precision kept in f32 behind Casts, and the model's
//! inputs and outputs kept f32 unless asked otherwise.
//!
//! Which values are f32 is taken from a run of the model in whittle's runtime (every value of the
//! main graph observed once), not from declarations, which exporters often leave out. Kept in f32:
//! - ops of other domains (ai.onnx.ml and custom ops), and ops holding subgraphs (If, Loop, Scan),
//!   whose bodies read outer values by name and would see them change type;
//! - ops whose inputs or outputs are f32 whatever the data type (Resize and Upsample scales,
//!   quantization scales), random generators (their `dtype`), Range (counts that half precision
//!   cannot hold exactly past 2048), reductions that overflow 65504 easily (sums, products, L2,
//!   log-sum-exp), CumSum, TopK, NonMaxSuppression, RoiAlign, Constant nodes written with
//!   `value_float(s)`;
//! - any node reading an f32 constant beyond the half type's range (65504 for f16);
//! - nodes the user excludes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use whittle_ir::{AttrValue, Attribute, DataType, Model, Node, Tensor, Type};

use super::qdq::{finish, Kept, Names};
use crate::error::{PassError, Result};
use crate::filter::NodeFilter;

/// Ops kept in f32 (see the module documentation for why each is here).
pub const BLOCKED: &[&str] = &[
    "Range",
    "Resize",
    "Upsample",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSumExp",
    "CumSum",
    "TopK",
    "NonMaxSuppression",
    "RoiAlign",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
];

/// What the conversion did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HalfReport {
    pub initializers_converted: usize,
    pub casts_added: usize,
    pub nodes_in_half: usize,
}

/// Converts `model` to `half` (f16 or bf16). `types` gives the dtype of every value of the main
/// graph (from a run); `kept` receives the nodes left in f32 and why.
pub fn convert_to_half(
    model: &mut Model,
    half: DataType,
    keep_io_types: bool,
    types: &BTreeMap<String, DataType>,
    filter: &NodeFilter,
    kept: &mut Vec<Kept>,
) -> Result<HalfReport> {
    if !matches!(half, DataType::F16 | DataType::BF16) {
        return Err(PassError::Options { reason: format!("{half} is not a half-precision type") });
    }
    let max = if half == DataType::F16 { 65504.0 } else { f32::MAX };
    let graph = &mut model.graph;
    let mut names = Names::of(graph);
    let is_f32 = |name: &str| types.get(name) == Some(&DataType::F32);

    // Which nodes stay f32, and why.
    let initializers: BTreeMap<String, Tensor> = graph.initializers.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let mut blocked = vec![false; graph.nodes.len()];
    for (index, node) in graph.nodes.iter().enumerate() {
        let domain = whittle_ir::canonical_domain(&node.domain);
        let reason = if domain != whittle_ir::DEFAULT_DOMAIN {
            Some(format!("op of domain {domain}"))
        } else if !filter.allows(&node.name, &node.op_type) {
            Some("excluded".to_string())
        } else if node.subgraphs().next().is_some() {
            Some("holds subgraphs, which would see outer values change type".to_string())
        } else if BLOCKED.contains(&node.op_type.as_str()) {
            Some(format!("{} is kept in f32 (unsafe or fixed-type in half precision)", node.op_type))
        } else if node.op_type == "Constant" && node.attributes.iter().any(|a| a.name.starts_with("value_float")) {
            Some("Constant written with value_float(s)".to_string())
        } else if node.op_type == "LayerNormalization" && node.outputs.iter().skip(1).any(|output| !output.is_empty()) {
            Some("its mean and inverse std outputs stay f32 (stash_type)".to_string())
        } else {
            node.inputs
                .iter()
                .filter_map(|input| initializers.get(input))
                .filter(|t| t.dtype == DataType::F32)
                .find(|t| t.to_f32_vec().is_some_and(|values| values.iter().any(|v| v.is_finite() && v.abs() > max)))
                .map(|t| format!("reads '{}', whose values exceed the {half} range", t.name))
        };
        if let Some(reason) = reason {
            blocked[index] = true;
            kept.push(Kept { node: node.label(), op_type: node.op_type.clone(), reason });
        }
    }

    // The values that become half: outputs of converted nodes, and f32 initializers and graph
    // inputs that converted nodes read.
    let feed_inputs: BTreeSet<String> = graph.feed_inputs().map(|input| input.name.clone()).collect();
    let mut half_values: BTreeSet<String> = BTreeSet::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        if !blocked[index] {
            half_values.extend(node.outputs.iter().filter(|o| !o.is_empty() && is_f32(o)).cloned());
        }
    }
    // Inputs whose types are not kept are fed in half directly.
    if !keep_io_types {
        half_values.extend(feed_inputs.iter().filter(|input| is_f32(input)).cloned());
    }
    let mut report = HalfReport { nodes_in_half: blocked.iter().filter(|b| !**b).count(), ..HalfReport::default() };
    let mut added = Vec::new();
    // f32 values read by converted nodes, and their half version.
    let mut to_half: BTreeMap<String, String> = BTreeMap::new();
    // half values read by kept nodes, and their f32 version.
    let mut to_float: BTreeMap<String, String> = BTreeMap::new();
    let mut new_initializers = Vec::new();
    // By index: the loop rewrites `graph.nodes[index]` while the closures below borrow other state.
    #[allow(clippy::needless_range_loop)]
    for index in 0..graph.nodes.len() {
        for slot in 0..graph.nodes[index].inputs.len() {
            let input = graph.nodes[index].inputs[slot].clone();
            if input.is_empty() {
                continue;
            }
            let value_is_half = half_values.contains(&input);
            let value_is_f32 =
                !value_is_half && (is_f32(&input) || initializers.get(&input).is_some_and(|t| t.dtype == DataType::F32));
            let replacement = match (blocked[index], value_is_half, value_is_f32) {
                (false, false, true) => Some(to_half.entry(input.clone()).or_insert_with(|| {
                    let name = names.fresh(&format!("{input}_{}", half.name()));
                    match initializers.get(&input) {
                        Some(tensor) => {
                            new_initializers.push(to_half_tensor(tensor, &name, half));
                            report.initializers_converted += 1;
                        }
                        None => {
                            added.push(cast(&mut names, &input, &name, half));
                            report.casts_added += 1;
                        }
                    }
                    name
                })),
                (true, true, _) => Some(to_float.entry(input.clone()).or_insert_with(|| {
                    let name = names.fresh(&format!("{input}_f32"));
                    added.push(cast(&mut names, &input, &name, DataType::F32));
                    report.casts_added += 1;
                    name
                })),
                _ => None,
            };
            if let Some(replacement) = replacement {
                graph.nodes[index].inputs[slot] = replacement.clone();
            }
        }
        if !blocked[index] {
            convert_attributes(&mut graph.nodes[index], half);
        }
    }
    graph.initializers.extend(new_initializers);
    if !keep_io_types {
        for input in graph.inputs.iter_mut().filter(|input| half_values.contains(&input.name)) {
            set_dtype(&mut input.ty, half);
        }
    }
    // Graph outputs: half values are cast back to f32 under their own name, or declared half.
    let outputs: Vec<String> = graph.outputs.iter().map(|output| output.name.clone()).collect();
    for output in outputs.iter().filter(|output| half_values.contains(*output)) {
        if keep_io_types {
            let inner = names.fresh(&format!("{output}_{}", half.name()));
            for node in &mut graph.nodes {
                for value in node.outputs.iter_mut().chain(node.inputs.iter_mut()).filter(|value| *value == output) {
                    *value = inner.clone();
                }
            }
            added.push(cast(&mut names, &inner, output, DataType::F32));
            report.casts_added += 1;
        } else if let Some(info) = graph.outputs.iter_mut().find(|info| &info.name == output) {
            set_dtype(&mut info.ty, half);
        }
    }
    // Declared intermediate types of converted values are stale; they are optional, so drop them.
    graph.value_info.retain(|info| !half_values.contains(&info.name));
    finish(graph, added, "half")?;
    Ok(report)
}

fn set_dtype(ty: &mut Option<Type>, dtype: DataType) {
    if let Some(Type { kind: whittle_ir::TypeKind::Tensor { elem, .. }, .. }) = ty {
        *elem = dtype;
    }
}

fn cast(names: &mut Names, input: &str, output: &str, to: DataType) -> Node {
    let mut node = Node::new(names.fresh(&format!("{output}/Cast")), "Cast", &[input], &[output]);
    node.attributes.push(Attribute::new("to", AttrValue::Int(i64::from(to.code()))));
    node
}

/// Attributes that fix an f32 output type, moved to `half` on a converted node.
fn convert_attributes(node: &mut Node, half: DataType) {
    let f32_code = i64::from(DataType::F32.code());
    for attribute in &mut node.attributes {
        match (node.op_type.as_str(), attribute.name.as_str(), &mut attribute.value) {
            ("Cast" | "EyeLike", "to" | "dtype", AttrValue::Int(code)) if *code == f32_code => *code = i64::from(half.code()),
            ("Constant" | "ConstantOfShape", "value", AttrValue::Tensor(tensor)) if tensor.dtype == DataType::F32 => {
                *tensor = to_half_tensor(tensor, &tensor.name.clone(), half);
            }
            _ => {}
        }
    }
}

/// `tensor`'s values rounded to `half` (to nearest even), under `name`.
pub(super) fn to_half_tensor(tensor: &Tensor, name: &str, half: DataType) -> Tensor {
    let values = tensor.to_f32_vec().unwrap_or_default();
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| {
            if half == DataType::F16 { half::f16::from_f32(v).to_bits() } else { half::bf16::from_f32(v).to_bits() }.to_le_bytes()
        })
        .collect();
    // Two bytes per element of the same dims: the count always matches.
    Tensor::from_bytes(name, half, tensor.dims.clone(), bytes).expect("two bytes per element")
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Graph, Shape, ValueInfo};
    use whittle_runtime::{RuntimeOptions, Session};

    use super::*;

    /// `x -> Mul(w) -> ReduceSum(axes) -> Add(big) -> y`: Mul converts; ReduceSum is blocked; Add
    /// reads a constant beyond f16's range and stays f32.
    fn model() -> Model {
        let f32s = |name: &str, dims: Vec<i64>, values: &[f32]| Tensor::from_f32(name, dims, values).unwrap();
        let graph = Graph {
            nodes: vec![
                Node::new("mul", "Mul", &["x", "w"], &["scaled"]),
                Node::new("sum", "ReduceSum", &["scaled", "axes"], &["summed"]),
                Node::new("add", "Add", &["summed", "big"], &["y"]),
            ],
            inputs: vec![ValueInfo::new("x", Some(Type::tensor(DataType::F32, Some(Shape::known(&[2, 3])))))],
            outputs: vec![ValueInfo::new("y", Some(Type::tensor(DataType::F32, None)))],
            initializers: vec![
                f32s("w", vec![3], &[0.5, 1.0 / 3.0, 2.0]),
                Tensor::from_i64("axes", vec![1], &[1]).unwrap(),
                f32s("big", vec![1], &[70000.0]),
            ],
            ..Graph::default()
        };
        Model::new(graph, 10, 18)
    }

    #[test]
    fn blocked_ops_stay_f32_behind_casts_and_outputs_stay_close() {
        let original = model();
        let x = Tensor::from_f32("x", vec![2, 3], &[1.0, 2.0, 3.0, -4.0, 5.0, 6.5]).unwrap();
        let types: BTreeMap<String, DataType> =
            ["x", "w", "scaled", "summed", "y", "big"].iter().map(|name| (name.to_string(), DataType::F32)).collect();
        let mut converted = original.clone();
        let mut kept = Vec::new();
        let report = convert_to_half(&mut converted, DataType::F16, true, &types, &NodeFilter::default(), &mut kept).unwrap();
        converted.validate().unwrap();
        let reasons: Vec<(&str, &str)> = kept.iter().map(|k| (k.node.as_str(), k.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("sum", "ReduceSum is kept in f32 (unsafe or fixed-type in half precision)"),
                ("add", "reads 'big', whose values exceed the f16 range")
            ]
        );
        // x -> f16 for Mul, Mul's f16 output -> f32 for ReduceSum; y was produced in f32 already.
        assert_eq!((report.nodes_in_half, report.initializers_converted, report.casts_added), (1, 1, 2));
        let w = converted.graph.initializers.iter().find(|t| t.name == "w_f16").unwrap();
        assert_eq!(w.dtype, DataType::F16);

        let run = |model: &Model| {
            let session = Session::new(model, &RuntimeOptions::default()).unwrap();
            session.run(vec![("x".into(), x.clone())]).unwrap().remove(0).1.to_f32_vec().unwrap()
        };
        // Row sums in f64: 0.5 + 2/3 + 6 = 7.1666..., -2 + 5/3 + 13 = 12.666...; plus 70000.
        let (want, got) = (run(&original), run(&converted));
        for (expected, (a, b)) in [70_007.166_666_7_f64, 70_012.666_666_7].iter().zip(want.iter().zip(&got)) {
            assert!((f64::from(*a) - expected).abs() < 1e-2, "f32 {a} vs {expected}");
            // 1/3 in f16 is off by 1e-4 relative: 5 * that is what the half path may lose.
            assert!((f64::from(*b) - expected).abs() < 5e-3 * 5.0, "f16 {b} vs {expected}");
        }
    }

    #[test]
    fn only_half_types_are_accepted() {
        let mut model = model();
        let err = convert_to_half(&mut model, DataType::F64, true, &BTreeMap::new(), &NodeFilter::default(), &mut Vec::new());
        assert_eq!(err.unwrap_err().to_string(), "f64 is not a half-precision type");
    }
}
