//! Static types of a graph's values: dtype and shape, with symbolic dims, for the ops rules need.
//!
//! Rules such as "Cast to the same type" or "Reshape to the same shape" only fire when the types
//! are known for certain, so inference is conservative: a value gets a type from the model's own
//! declarations (inputs, initializers, `value_info`) or from the rules below, which cover the ops
//! the passes look at; anything else stays unknown and no rule relies on it.

use std::collections::HashMap;

use whittle_ir::{AttrValue, DataType, DimValue, Graph, Node, Tensor};

use crate::attrs::{attr_int, attr_ints, attr_tensor};

/// What is known of one value: its element type, and its dims when the rank is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueType {
    pub dtype: DataType,
    pub dims: Option<Vec<DimValue>>,
}

impl ValueType {
    pub fn known(dtype: DataType, sizes: &[i64]) -> ValueType {
        ValueType { dtype, dims: Some(sizes.iter().map(|&size| DimValue::Known(size)).collect()) }
    }

    /// The sizes, when every dim is fixed.
    pub fn sizes(&self) -> Option<Vec<i64>> {
        self.dims.as_ref()?.iter().map(|dim| if let DimValue::Known(size) = dim { Some(*size) } else { None }).collect()
    }

    pub fn rank(&self) -> Option<usize> {
        self.dims.as_ref().map(Vec::len)
    }
}

/// Types by value name for `graph`, whose default domain is imported at `opset`. `constant` gives
/// the values of constant inputs (shapes, axes) that some ops read.
pub fn infer_types<'a>(
    graph: &'a Graph,
    opset: i64,
    constant: &dyn Fn(&str) -> Option<&'a Tensor>,
) -> HashMap<String, ValueType> {
    let mut types: HashMap<String, ValueType> = HashMap::new();
    let declared = graph.inputs.iter().chain(&graph.value_info).chain(&graph.outputs);
    for info in declared {
        let Some((dtype, shape)) = info.ty.as_ref().and_then(|ty| ty.as_tensor()) else { continue };
        if dtype == DataType::Undefined {
            continue;
        }
        let dims = shape.map(|shape| shape.0.iter().map(|dim| dim.value.clone()).collect());
        types.entry(info.name.clone()).or_insert(ValueType { dtype, dims });
    }
    for tensor in &graph.initializers {
        types.insert(tensor.name.clone(), ValueType::known(tensor.dtype, &tensor.dims));
    }
    let order = graph.topological_order().unwrap_or_else(|_| (0..graph.nodes.len()).collect());
    for index in order {
        let node = &graph.nodes[index];
        if !whittle_ir::canonical_domain(&node.domain).eq(whittle_ir::DEFAULT_DOMAIN) {
            continue;
        }
        let inputs: Vec<Option<&ValueType>> = node.inputs.iter().map(|input| types.get(input)).collect();
        let inferred = infer_node(node, opset, &inputs, constant);
        for (output, ty) in node.outputs.iter().zip(inferred) {
            if let (false, Some(ty)) = (output.is_empty(), ty) {
                types.entry(output.clone()).or_insert(ty);
            }
        }
    }
    types
}

/// Numpy broadcasting of two shapes; `None` when they cannot broadcast.
fn broadcast(a: &[DimValue], b: &[DimValue]) -> Option<Vec<DimValue>> {
    let rank = a.len().max(b.len());
    let at = |dims: &[DimValue], index: usize| {
        let offset = rank - dims.len();
        if index < offset {
            DimValue::Known(1)
        } else {
            dims[index - offset].clone()
        }
    };
    (0..rank)
        .map(|index| match (at(a, index), at(b, index)) {
            (x, y) if x == y => Some(x),
            (DimValue::Known(1), other) | (other, DimValue::Known(1)) => Some(other),
            (DimValue::Known(x), DimValue::Known(y)) if x != y => None,
            (DimValue::Known(size), _) | (_, DimValue::Known(size)) => Some(DimValue::Known(size)),
            _ => Some(DimValue::Unknown),
        })
        .collect()
}

/// `axis` (possibly negative) as an index into `rank` dims.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&axis).then_some(axis as usize)
}

/// The values of a constant int64 (or int32) input.
pub fn constant_ints(tensor: &Tensor) -> Option<Vec<i64>> {
    let bytes = tensor.bytes()?;
    match tensor.dtype {
        DataType::I64 => Some(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()),
        DataType::I32 => Some(bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64).collect()),
        _ => None,
    }
}

/// The axes of Squeeze, Unsqueeze or a reduction: an attribute before `input_since`, then input 1.
pub fn axes_of<'a>(
    node: &Node,
    opset: i64,
    input_since: i64,
    constant: &dyn Fn(&str) -> Option<&'a Tensor>,
) -> Option<Option<Vec<i64>>> {
    if opset < input_since {
        return Some(attr_ints(node, "axes"));
    }
    match node.inputs.get(1).filter(|name| !name.is_empty()) {
        None => Some(None),
        Some(name) => constant(name).and_then(constant_ints).map(Some),
    }
}

fn same(input: Option<&ValueType>) -> Option<ValueType> {
    input.cloned()
}

fn with_dims(dtype: DataType, dims: Option<Vec<DimValue>>) -> Option<ValueType> {
    Some(ValueType { dtype, dims })
}

fn infer_node<'a>(
    node: &Node,
    opset: i64,
    inputs: &[Option<&ValueType>],
    constant: &dyn Fn(&str) -> Option<&'a Tensor>,
) -> Vec<Option<ValueType>> {
    let first = inputs.first().copied().flatten();
    let dims_of = |index: usize| inputs.get(index).copied().flatten().and_then(|ty| ty.dims.clone());
    let one = |ty: Option<ValueType>| vec![ty];
    match node.op_type.as_str() {
        "Relu"
        | "Sigmoid"
        | "Tanh"
        | "Erf"
        | "Sqrt"
        | "Exp"
        | "Log"
        | "Neg"
        | "Abs"
        | "Identity"
        | "Softmax"
        | "LogSoftmax"
        | "LeakyRelu"
        | "Clip"
        | "LRN"
        | "InstanceNormalization"
        | "Gelu"
        | "HardSigmoid"
        | "Reciprocal"
        | "Floor"
        | "Ceil"
        | "Round"
        | "Sin"
        | "Cos"
        | "Elu"
        | "Selu"
        | "Softplus"
        | "Softsign"
        | "HardSwish"
        | "Mish"
        | "PRelu"
        | "Not"
        | "Dropout"
        | "BatchNormalization"
        | "LayerNormalization" => one(same(first)),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "Equal" | "Less" | "Greater" | "LessOrEqual"
        | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Where" => {
            let dtype = match node.op_type.as_str() {
                "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" => Some(DataType::Bool),
                "Where" => inputs.get(1).copied().flatten().map(|ty| ty.dtype),
                _ => first.map(|ty| ty.dtype),
            };
            let mut dims: Option<Vec<DimValue>> = Some(Vec::new());
            for index in 0..inputs.len() {
                dims = match (dims, dims_of(index)) {
                    (Some(acc), Some(next)) => broadcast(&acc, &next),
                    _ => None,
                };
            }
            one(dtype.map(|dtype| ValueType { dtype, dims }))
        }
        "Cast" => {
            let to = attr_int(node, "to").map(|code| DataType::from_code(code as i32));
            one(to.map(|dtype| ValueType { dtype, dims: dims_of(0) }))
        }
        "Shape" => {
            let rank = first.and_then(ValueType::rank);
            let length = rank.map(|rank| {
                let clamp = |value: i64| (if value < 0 { value + rank as i64 } else { value }).clamp(0, rank as i64);
                let start = clamp(attr_int(node, "start").unwrap_or(0));
                let end = clamp(attr_int(node, "end").unwrap_or(rank as i64));
                (end - start).max(0)
            });
            one(with_dims(DataType::I64, length.map(|length| vec![DimValue::Known(length)])))
        }
        "Size" => one(with_dims(DataType::I64, Some(Vec::new()))),
        "Constant" => one(attr_tensor(node, "value").map(|tensor| ValueType::known(tensor.dtype, &tensor.dims))),
        "ConstantOfShape" => {
            let dtype = attr_tensor(node, "value").map_or(DataType::F32, |tensor| tensor.dtype);
            let sizes = node.inputs.first().and_then(|name| constant(name)).and_then(constant_ints);
            one(with_dims(dtype, sizes.map(|sizes| sizes.into_iter().map(DimValue::Known).collect())))
        }
        "Reshape" => {
            let target = node.inputs.get(1).and_then(|name| constant(name)).and_then(constant_ints);
            let dims =
                target.and_then(|target| reshape_dims(dims_of(0).as_deref(), &target, attr_int(node, "allowzero") == Some(1)));
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Flatten" => {
            let dims = dims_of(0).and_then(|dims| {
                let axis = normalize_axis(attr_int(node, "axis").unwrap_or(1), dims.len() + 1)?;
                Some(vec![product(&dims[..axis]), product(&dims[axis..])])
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Transpose" => {
            let dims = dims_of(0).and_then(|dims| {
                let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..dims.len() as i64).rev().collect());
                (perm.len() == dims.len()).then_some(())?;
                perm.iter().map(|&axis| usize::try_from(axis).ok().and_then(|axis| dims.get(axis).cloned())).collect()
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Unsqueeze" | "Squeeze" => {
            let dims = dims_of(0).and_then(|dims| {
                let axes = axes_of(node, opset, 13, constant)?;
                if node.op_type == "Unsqueeze" {
                    unsqueeze_dims(&dims, &axes?)
                } else {
                    squeeze_dims(&dims, axes.as_deref())
                }
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Concat" => {
            let all: Option<Vec<Vec<DimValue>>> = (0..inputs.len()).map(dims_of).collect();
            let dims = all.and_then(|all| {
                let rank = all.first()?.len();
                let axis = normalize_axis(attr_int(node, "axis")?, rank)?;
                let mut dims = all[0].clone();
                dims[axis] = all.iter().try_fold(DimValue::Known(0), |acc, dims| match (acc, dims.get(axis)?) {
                    (DimValue::Known(a), DimValue::Known(b)) => Some(DimValue::Known(a + b)),
                    _ => Some(DimValue::Unknown),
                })?;
                Some(dims)
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Gather" => {
            let dims = dims_of(0).zip(dims_of(1)).and_then(|(data, indices)| {
                let axis = normalize_axis(attr_int(node, "axis").unwrap_or(0), data.len())?;
                Some([&data[..axis], &indices[..], &data[axis + 1..]].concat())
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "MatMul" => {
            let dims = dims_of(0).zip(dims_of(1)).and_then(|(a, b)| matmul_dims(&a, &b));
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Gemm" => {
            let dims = dims_of(0).zip(dims_of(1)).and_then(|(a, b)| {
                let (m, k) = if attr_int(node, "transA") == Some(1) { (1, 0) } else { (0, 1) };
                let n = if attr_int(node, "transB") == Some(1) { 0 } else { 1 };
                (a.len() == 2 && b.len() == 2 && k < 2).then(|| vec![a[m].clone(), b[n].clone()])
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "Conv" | "MaxPool" | "AveragePool" => {
            let dims = dims_of(0).and_then(|x| {
                let (channels, kernel) = if node.op_type == "Conv" {
                    let w = dims_of(1)?;
                    let kernel: Option<Vec<i64>> = w[2..].iter().map(known).collect();
                    (w.first().cloned()?, attr_ints(node, "kernel_shape").or(kernel)?)
                } else {
                    (x.get(1).cloned()?, attr_ints(node, "kernel_shape")?)
                };
                window_dims(node, &x, channels, &kernel)
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let dims = dims_of(0).filter(|dims| dims.len() >= 2).map(|dims| {
                let mut out = dims[..2].to_vec();
                out.extend(std::iter::repeat_n(DimValue::Known(1), dims.len() - 2));
                out
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" => {
            let since = if node.op_type == "ReduceSum" { 13 } else { 18 };
            let dims = dims_of(0).and_then(|dims| {
                let axes = axes_of(node, opset, since, constant)?;
                let keep = attr_int(node, "keepdims").unwrap_or(1) == 1;
                let axes: Vec<usize> = match axes {
                    Some(axes) if !axes.is_empty() => {
                        axes.iter().map(|&axis| normalize_axis(axis, dims.len())).collect::<Option<_>>()?
                    }
                    _ if attr_int(node, "noop_with_empty_axes") == Some(1) => return Some(dims),
                    _ => (0..dims.len()).collect(),
                };
                Some(
                    dims.iter()
                        .enumerate()
                        .filter_map(|(index, dim)| match (axes.contains(&index), keep) {
                            (false, _) => Some(dim.clone()),
                            (true, true) => Some(DimValue::Known(1)),
                            (true, false) => None,
                        })
                        .collect(),
                )
            });
            one(first.and_then(|ty| with_dims(ty.dtype, dims)))
        }
        _ => Vec::new(),
    }
}

fn known(dim: &DimValue) -> Option<i64> {
    match dim {
        DimValue::Known(size) => Some(*size),
        _ => None,
    }
}

fn product(dims: &[DimValue]) -> DimValue {
    dims.iter()
        .try_fold(1i64, |acc, dim| known(dim).and_then(|size| acc.checked_mul(size)))
        .map_or(DimValue::Unknown, DimValue::Known)
}

/// The output dims of a Reshape to `target` (with 0 copying the input dim unless `allowzero`, and one -1).
pub fn reshape_dims(input: Option<&[DimValue]>, target: &[i64], allowzero: bool) -> Option<Vec<DimValue>> {
    let mut dims: Vec<DimValue> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (index, &size) in target.iter().enumerate() {
        match size {
            -1 if infer_at.is_none() => {
                infer_at = Some(index);
                dims.push(DimValue::Unknown);
            }
            0 if !allowzero => dims.push(input?.get(index)?.clone()),
            size if size >= 0 => dims.push(DimValue::Known(size)),
            _ => return None,
        }
    }
    if let Some(at) = infer_at {
        let total = known(&product(input?));
        let rest = known(&product(&[&dims[..at], &dims[at + 1..]].concat()));
        dims[at] = match (total, rest) {
            (Some(total), Some(rest)) if rest > 0 && total % rest == 0 => DimValue::Known(total / rest),
            _ => DimValue::Unknown,
        };
    }
    Some(dims)
}

fn unsqueeze_dims(dims: &[DimValue], axes: &[i64]) -> Option<Vec<DimValue>> {
    let rank = dims.len() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&axis| normalize_axis(axis, rank)).collect::<Option<_>>()?;
    axes.sort_unstable();
    let mut source = dims.iter();
    (0..rank).map(|index| if axes.contains(&index) { Some(DimValue::Known(1)) } else { source.next().cloned() }).collect()
}

fn squeeze_dims(dims: &[DimValue], axes: Option<&[i64]>) -> Option<Vec<DimValue>> {
    match axes {
        Some(axes) => {
            let axes: Vec<usize> = axes.iter().map(|&axis| normalize_axis(axis, dims.len())).collect::<Option<_>>()?;
            Some(dims.iter().enumerate().filter(|(index, _)| !axes.contains(index)).map(|(_, dim)| dim.clone()).collect())
        }
        // Without axes every size-1 dim goes, which needs every dim known.
        None => dims
            .iter()
            .map(|dim| known(dim).map(|size| (size, dim)))
            .collect::<Option<Vec<_>>>()
            .map(|sizes| sizes.into_iter().filter(|(size, _)| *size != 1).map(|(_, dim)| dim.clone()).collect()),
    }
}

fn matmul_dims(a: &[DimValue], b: &[DimValue]) -> Option<Vec<DimValue>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let a2: Vec<DimValue> = if a.len() == 1 { vec![DimValue::Known(1), a[0].clone()] } else { a.to_vec() };
    let b2: Vec<DimValue> = if b.len() == 1 { vec![b[0].clone(), DimValue::Known(1)] } else { b.to_vec() };
    let batch = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let mut dims = batch;
    if a.len() > 1 {
        dims.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        dims.push(b2[b2.len() - 1].clone());
    }
    Some(dims)
}

/// Output dims of Conv and pooling: `[N, channels, spatial...]` from kernel, strides, pads, dilations.
fn window_dims(node: &Node, x: &[DimValue], channels: DimValue, kernel: &[i64]) -> Option<Vec<DimValue>> {
    let spatial = x.len().checked_sub(2)?;
    if kernel.len() != spatial {
        return None;
    }
    let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
    let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
    let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]);
    let auto_pad = match node.attribute("auto_pad").map(|attribute| &attribute.value) {
        Some(AttrValue::String(value)) => value.clone(),
        _ => b"NOTSET".to_vec(),
    };
    let ceil = attr_int(node, "ceil_mode") == Some(1);
    if strides.len() != spatial || dilations.len() != spatial || pads.len() != 2 * spatial {
        return None;
    }
    let mut dims = vec![x[0].clone(), channels];
    for axis in 0..spatial {
        let DimValue::Known(size) = x[axis + 2] else {
            dims.push(DimValue::Unknown);
            continue;
        };
        let stride = strides[axis].max(1);
        let out = match auto_pad.as_slice() {
            b"SAME_UPPER" | b"SAME_LOWER" => (size + stride - 1) / stride,
            b"VALID" => (size - (kernel[axis] - 1) * dilations[axis] - 1) / stride + 1,
            _ => {
                let span = size + pads[axis] + pads[axis + spatial] - (kernel[axis] - 1) * dilations[axis] - 1;
                if ceil {
                    // A last window that would start in the end padding is dropped, as ONNX says.
                    let mut out = (span + stride - 1) / stride + 1;
                    if (out - 1) * stride >= size + pads[axis] {
                        out -= 1;
                    }
                    out
                } else {
                    span.div_euclid(stride) + 1
                }
            }
        };
        dims.push(DimValue::Known(out));
    }
    Some(dims)
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Shape, Type, ValueInfo};

    use super::*;

    fn dims(text: &[i64]) -> Vec<DimValue> {
        text.iter().map(|&size| if size < 0 { DimValue::Symbolic("batch".into()) } else { DimValue::Known(size) }).collect()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&dims(&[-1, 1, 4]), &dims(&[3, 1])), Some(dims(&[-1, 3, 4])));
        assert_eq!(broadcast(&dims(&[2]), &dims(&[3])), None);
    }

    #[test]
    fn reshape_copies_zero_and_infers_minus_one() {
        assert_eq!(
            reshape_dims(Some(&dims(&[-1, 4, 6])), &[0, -1], false),
            Some(vec![DimValue::Symbolic("batch".into()), DimValue::Unknown])
        );
        assert_eq!(reshape_dims(Some(&dims(&[2, 4, 6])), &[0, -1], false), Some(dims(&[2, 24])));
    }

    #[test]
    fn conv_and_pool_shapes_follow_the_spec_formula() {
        // 8x8 input, 3x3 kernel, pad 1, stride 2: floor((8 + 2 - 3) / 2) + 1 = 4.
        let mut conv = Node::new("c", "Conv", &["x", "w"], &["y"]);
        conv.attributes.push(whittle_ir::Attribute::new("pads", AttrValue::Ints(vec![1, 1, 1, 1])));
        conv.attributes.push(whittle_ir::Attribute::new("strides", AttrValue::Ints(vec![2, 2])));
        let info = |name: &str, sizes: &[i64]| ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(sizes)))));
        let graph = Graph {
            name: "g".into(),
            nodes: vec![conv],
            inputs: vec![info("x", &[1, 3, 8, 8]), info("w", &[16, 3, 3, 3])],
            outputs: vec![ValueInfo::new("y", None)],
            ..Graph::default()
        };
        let types = infer_types(&graph, 18, &|_| None);
        assert_eq!(types["y"], ValueType::known(DataType::F32, &[1, 16, 4, 4]));
    }
}
