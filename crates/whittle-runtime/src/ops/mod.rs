//! The operators the runtime implements: a closed [`Op`] enum built from one list, one file per op.
//!
//! Each op file holds the op's attributes, parsed and validated from the IR node at plan time with
//! the defaults of the ONNX spec for the model's opset, its evaluation on burn tensors, and its unit
//! tests. A node whose op is not in the list becomes [`Op::Opaque`]; the planner rejects it before
//! anything runs, with an error naming node, op, domain and opset.
//!
//! Opset ranges were checked against the operator schemas of onnx 1.23.2 (the package pinned for the
//! interop tests, whose newest ai.onnx opset is [`NEWEST_OPSET`]): each op accepts the versions from
//! the first one whose semantics its file implements up to that opset.

use std::ops::RangeInclusive;

use whittle_ir::{canonical_domain, AttrValue, Node, DEFAULT_DOMAIN};

use crate::error::RuntimeError;
use crate::host::{Entry, HostInputs};
pub use crate::int_input::IntsInput;
pub(crate) use crate::plan::Subgraph;
pub use crate::reduce::{ArgReduction, Reduction};
pub use crate::spatial::{AutoPad, Window};
use crate::value::Value;

/// The newest ai.onnx opset whose operator definitions were checked (onnx 1.23.2 defines 28).
pub const NEWEST_OPSET: i64 = 28;

/// Why an op could not be parsed or evaluated. The planner and executor add node and op names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpError {
    /// The attribute at fault, for errors found while parsing attributes.
    pub attribute: Option<String>,
    pub reason: String,
}

impl OpError {
    pub fn new(reason: impl Into<String>) -> OpError {
        OpError { attribute: None, reason: reason.into() }
    }

    pub fn attribute(attribute: &str, reason: impl Into<String>) -> OpError {
        OpError { attribute: Some(attribute.to_string()), reason: reason.into() }
    }

    /// The crate error for this reason at `node`.
    pub fn at(self, node: &Node) -> RuntimeError {
        match self.attribute {
            Some(attribute) => {
                RuntimeError::BadAttribute { node: node.label(), op: node.op_type.clone(), attribute, reason: self.reason }
            }
            None => RuntimeError::Node { node: node.label(), op: node.op_type.clone(), reason: self.reason },
        }
    }
}

/// Returns early with an [`OpError`] built like `format!`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::ops::OpError::new(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// One op's file: parsing from a node and evaluation.
pub(crate) trait Operator: Sized {
    /// The op type within [`Operator::DOMAIN`].
    const OP_TYPE: &'static str;
    /// The canonical domain (`ai.onnx` for the default one, `ai.onnx.ml` for the classic-ML ops).
    const DOMAIN: &'static str = DEFAULT_DOMAIN;
    /// The opsets whose definition of the op the file implements.
    const OPSETS: RangeInclusive<i64>;
    /// Every attribute the op defines in those opsets; any other is an error at plan time.
    const ATTRIBUTES: &'static [&'static str];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError>;

    fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError>;
}

macro_rules! ops {
    ($($module:ident :: $name:ident,)*) => {
        $(pub mod $module;)*

        /// A node's operator with its parsed attributes.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Op {
            $($name($module::$name),)*
            /// An op this runtime does not implement, kept by name so that the error can say which.
            Opaque { domain: String, op_type: String },
            /// A quantized layer the planner fused into one integer kernel (`crate::fuse_int8`),
            /// never parsed from a node; the ops it replaces are ai.onnx ones.
            Int8(Box<crate::fuse_int8::Int8Product>),
        }

        impl Op {
            /// Parses `node`, whose domain is imported at `opset`. Unknown ops become [`Op::Opaque`];
            /// known ops with a bad attribute or an unsupported opset are errors.
            pub(crate) fn parse(context: &NodeContext<'_>) -> Result<Op, RuntimeError> {
                let node = context.node;
                let domain = canonical_domain(&node.domain);
                $(if domain == <$module::$name as Operator>::DOMAIN && node.op_type == <$module::$name as Operator>::OP_TYPE {
                    return parse_op::<$module::$name>(context).map(Op::$name);
                })*
                Ok(Op::Opaque { domain: domain.to_string(), op_type: node.op_type.clone() })
            }

            /// Parses `node` of a model that imports its domain at `opset`, for code outside a
            /// session (graph passes): shape-like inputs are left to run time, and control-flow
            /// ops, whose bodies are planned by a session, are errors.
            pub fn from_node(node: &Node, opset: i64) -> Result<Op, RuntimeError> {
                Op::parse(&NodeContext { node, opset, constant: &|_| None, subgraphs: &Subgraphs::default() })
            }

            /// Whether this runtime implements `op_type` of `domain` (canonical) as a tensor op.
            pub(crate) fn implements(domain: &str, op_type: &str) -> bool {
                $((domain == <$module::$name as Operator>::DOMAIN && op_type == <$module::$name as Operator>::OP_TYPE) ||)* false
            }

            /// The canonical domain of the op.
            pub fn domain(&self) -> &str {
                match self {
                    $(Op::$name(_) => <$module::$name as Operator>::DOMAIN,)*
                    Op::Opaque { domain, .. } => domain,
                    Op::Int8(_) => DEFAULT_DOMAIN,
                }
            }

            /// The ONNX op type.
            pub fn op_type(&self) -> &str {
                match self {
                    $(Op::$name(_) => <$module::$name as Operator>::OP_TYPE,)*
                    Op::Opaque { op_type, .. } => op_type,
                    Op::Int8(op) => op.op_type(),
                }
            }

            pub(crate) fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
                match self {
                    $(Op::$name(op) => op.eval(inputs),)*
                    Op::Opaque { domain, op_type } => fail!("op {op_type} of domain {domain} is not implemented"),
                    Op::Int8(op) => op.eval(inputs),
                }
            }
        }
    };
}

ops! {
    abs::Abs,
    add::Add,
    and::And,
    arg_max::ArgMax,
    arg_min::ArgMin,
    attention::Attention,
    average_pool::AveragePool,
    batch_normalization::BatchNormalization,
    bit_shift::BitShift,
    cast::Cast,
    cast_like::CastLike,
    ceil::Ceil,
    clip::Clip,
    concat::Concat,
    constant::Constant,
    constant_of_shape::ConstantOfShape,
    conv::Conv,
    conv_integer::ConvInteger,
    conv_transpose::ConvTranspose,
    cos::Cos,
    depth_to_space::DepthToSpace,
    dequantize_linear::DequantizeLinear,
    div::Div,
    dropout::Dropout,
    dynamic_quantize_linear::DynamicQuantizeLinear,
    elu::Elu,
    equal::Equal,
    erf::Erf,
    exp::Exp,
    expand::Expand,
    flatten::Flatten,
    floor::Floor,
    gather::Gather,
    gather_elements::GatherElements,
    gelu::Gelu,
    gemm::Gemm,
    global_average_pool::GlobalAveragePool,
    global_lp_pool::GlobalLpPool,
    global_max_pool::GlobalMaxPool,
    greater::Greater,
    greater_or_equal::GreaterOrEqual,
    hard_sigmoid::HardSigmoid,
    hard_swish::HardSwish,
    identity::Identity,
    r#if::If,
    instance_normalization::InstanceNormalization,
    layer_normalization::LayerNormalization,
    leaky_relu::LeakyRelu,
    less::Less,
    less_or_equal::LessOrEqual,
    log::Log,
    log_softmax::LogSoftmax,
    r#loop::Loop,
    lp_pool::LpPool,
    lrn::Lrn,
    mat_mul::MatMul,
    mat_mul_integer::MatMulInteger,
    max::Max,
    max_pool::MaxPool,
    mean::Mean,
    min::Min,
    modulo::Mod,
    mul::Mul,
    neg::Neg,
    normalizer::Normalizer,
    not::Not,
    or::Or,
    p_relu::PRelu,
    pad::Pad,
    pow::Pow,
    q_linear_conv::QLinearConv,
    q_linear_mat_mul::QLinearMatMul,
    quantize_linear::QuantizeLinear,
    range::Range,
    reciprocal::Reciprocal,
    reduce_l1::ReduceL1,
    reduce_l2::ReduceL2,
    reduce_log_sum::ReduceLogSum,
    reduce_log_sum_exp::ReduceLogSumExp,
    reduce_max::ReduceMax,
    reduce_mean::ReduceMean,
    reduce_min::ReduceMin,
    reduce_prod::ReduceProd,
    reduce_sum::ReduceSum,
    reduce_sum_square::ReduceSumSquare,
    relu::Relu,
    reshape::Reshape,
    resize::Resize,
    rms_normalization::RmsNormalization,
    round::Round,
    scan::Scan,
    selu::Selu,
    shape::Shape,
    sigmoid::Sigmoid,
    sign::Sign,
    sin::Sin,
    size::Size,
    slice::Slice,
    softmax::Softmax,
    softplus::Softplus,
    softsign::Softsign,
    space_to_depth::SpaceToDepth,
    split::Split,
    sqrt::Sqrt,
    squeeze::Squeeze,
    sub::Sub,
    sum::Sum,
    tanh::Tanh,
    tile::Tile,
    transpose::Transpose,
    unsqueeze::Unsqueeze,
    upsample::Upsample,
    r#where::Where,
    xor::Xor,
}

/// An op that reads or produces values burn cannot hold (string tensors, sequences, maps): it is
/// evaluated on [`Entry`]s instead of [`Value`]s. The classic-ML ops that end scikit-learn models
/// (string class labels, ZipMap's `seq(map)`) are the ones that need it.
pub(crate) trait HostOperator: Sized {
    const OP_TYPE: &'static str;
    const DOMAIN: &'static str = DEFAULT_DOMAIN;
    const OPSETS: RangeInclusive<i64>;
    const ATTRIBUTES: &'static [&'static str];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError>;

    /// Whether output `index` is a host value rather than a tensor, known at plan time so that the
    /// planner can reject a tensor op reading it before anything runs.
    fn host_output(&self, index: usize) -> bool;

    fn eval(&self, inputs: HostInputs) -> Result<Vec<Entry>, OpError>;
}

macro_rules! host_ops {
    ($($module:ident :: $name:ident,)*) => {
        $(pub mod $module;)*

        /// A node's host operator (see [`HostOperator`]) with its parsed attributes.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum HostOp {
            $($name($module::$name),)*
        }

        impl HostOp {
            /// Parses `node` when its op is a host op; `None` for every other op.
            pub(crate) fn parse(context: &NodeContext<'_>) -> Option<Result<HostOp, RuntimeError>> {
                let node = context.node;
                let domain = canonical_domain(&node.domain);
                $(if domain == <$module::$name as HostOperator>::DOMAIN && node.op_type == <$module::$name as HostOperator>::OP_TYPE {
                    return Some(parse_checked::<$module::$name>(
                        context,
                        <$module::$name as HostOperator>::OPSETS,
                        <$module::$name as HostOperator>::ATTRIBUTES,
                        <$module::$name as HostOperator>::parse,
                    ).map(HostOp::$name));
                })*
                None
            }

            pub fn domain(&self) -> &str {
                match self {
                    $(HostOp::$name(_) => <$module::$name as HostOperator>::DOMAIN,)*
                }
            }

            pub fn op_type(&self) -> &str {
                match self {
                    $(HostOp::$name(_) => <$module::$name as HostOperator>::OP_TYPE,)*
                }
            }

            pub(crate) fn host_output(&self, index: usize) -> bool {
                match self {
                    $(HostOp::$name(op) => op.host_output(index),)*
                }
            }

            pub(crate) fn eval(&self, inputs: HostInputs) -> Result<Vec<Entry>, OpError> {
                match self {
                    $(HostOp::$name(op) => op.eval(inputs),)*
                }
            }
        }
    };
}

host_ops! {
    linear_classifier::LinearClassifier,
    zip_map::ZipMap,
}

fn parse_op<T: Operator>(context: &NodeContext<'_>) -> Result<T, RuntimeError> {
    parse_checked(context, T::OPSETS, T::ATTRIBUTES, T::parse)
}

/// Checks the opset and attribute names, then parses with `parse`.
fn parse_checked<T>(
    context: &NodeContext<'_>,
    opsets: RangeInclusive<i64>,
    attributes: &[&str],
    parse: fn(&NodeContext<'_>) -> Result<T, OpError>,
) -> Result<T, RuntimeError> {
    let node = context.node;
    if !opsets.contains(&context.opset) {
        return Err(RuntimeError::UnsupportedOpset {
            node: node.label(),
            op: node.op_type.clone(),
            opset: context.opset,
            supported: format!("{}..={}", opsets.start(), opsets.end()),
        });
    }
    if let Some(unknown) = node.attributes.iter().find(|attribute| !attributes.contains(&attribute.name.as_str())) {
        return Err(OpError::attribute(&unknown.name, format!("{} defines no such attribute", node.op_type)).at(node));
    }
    parse(context).map_err(|err| err.at(node))
}

/// A node being planned: its attributes, its opset, and the initializers it reads.
pub(crate) struct NodeContext<'a> {
    pub node: &'a Node,
    pub opset: i64,
    /// Looks up an initializer that feeds cannot override; `None` for computed values.
    pub constant: &'a dyn Fn(&str) -> Option<&'a whittle_ir::Tensor>,
    /// The node's graph attributes, already planned (empty for nodes without subgraphs).
    pub subgraphs: &'a Subgraphs,
}

/// The planned graph attributes of a node (If branches, Loop and Scan bodies).
///
/// The outer values the subgraphs read (the union of their free names, sorted) are appended to the
/// node's inputs, so that the executor hands them to the op like any other input and the memory plan
/// keeps them alive until the node has run: at run time, inputs `explicit..explicit + captured`
/// are those values, where `explicit` is the number of inputs the node names.
#[derive(Debug, Default)]
pub(crate) struct Subgraphs {
    pub bodies: Vec<(String, Subgraph)>,
    pub captured: usize,
}

impl NodeContext<'_> {
    /// The planned GRAPH attribute `name`.
    pub fn subgraph(&self, name: &str) -> Result<Subgraph, OpError> {
        match self.subgraphs.bodies.iter().find(|(attribute, _)| attribute == name) {
            Some((_, body)) => Ok(body.clone()),
            None => match self.value(name) {
                None => Err(OpError::attribute(name, "is required")),
                Some(AttrValue::Graph(_)) => Err(OpError::attribute(name, "subgraphs can only be planned inside a session")),
                Some(other) => Err(OpError::attribute(name, format!("expected GRAPH, found {}", other.type_name()))),
            },
        }
    }

    /// A FLOATS attribute, or `None` when absent.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OpError> {
        match self.value(name) {
            None => Ok(None),
            Some(AttrValue::Floats(values)) => Ok(Some(values.clone())),
            Some(other) => Err(OpError::attribute(name, format!("expected FLOATS, found {}", other.type_name()))),
        }
    }

    /// A STRINGS attribute as UTF-8, or `None` when absent.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, OpError> {
        match self.value(name) {
            None => Ok(None),
            Some(AttrValue::Strings(values)) => values
                .iter()
                .map(|bytes| {
                    String::from_utf8(bytes.clone()).map_err(|_| OpError::attribute(name, format!("is not UTF-8: {bytes:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(OpError::attribute(name, format!("expected STRINGS, found {}", other.type_name()))),
        }
    }
}

impl NodeContext<'_> {
    fn value(&self, name: &str) -> Option<&AttrValue> {
        self.node.attribute(name).map(|attribute| &attribute.value)
    }

    /// An INT attribute, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, OpError> {
        Ok(self.optional_int(name)?.unwrap_or(default))
    }

    pub fn optional_int(&self, name: &str) -> Result<Option<i64>, OpError> {
        match self.value(name) {
            None => Ok(None),
            Some(AttrValue::Int(value)) => Ok(Some(*value)),
            Some(other) => Err(OpError::attribute(name, format!("expected INT, found {}", other.type_name()))),
        }
    }

    /// An INT attribute that must be 0 or 1.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, OpError> {
        match self.int(name, i64::from(default))? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(OpError::attribute(name, format!("must be 0 or 1, found {other}"))),
        }
    }

    /// An INTS attribute, or `None` when absent.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.value(name) {
            None => Ok(None),
            Some(AttrValue::Ints(values)) => Ok(Some(values.clone())),
            Some(other) => Err(OpError::attribute(name, format!("expected INTS, found {}", other.type_name()))),
        }
    }

    /// A FLOAT attribute, or `default` when absent.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, OpError> {
        match self.value(name) {
            None => Ok(default),
            Some(AttrValue::Float(value)) => Ok(*value),
            Some(other) => Err(OpError::attribute(name, format!("expected FLOAT, found {}", other.type_name()))),
        }
    }

    /// A STRING attribute as UTF-8, or `default` when absent.
    pub fn string(&self, name: &str, default: &str) -> Result<String, OpError> {
        match self.value(name) {
            None => Ok(default.to_string()),
            Some(AttrValue::String(bytes)) => {
                String::from_utf8(bytes.clone()).map_err(|_| OpError::attribute(name, format!("is not UTF-8: {bytes:?}")))
            }
            Some(other) => Err(OpError::attribute(name, format!("expected STRING, found {}", other.type_name()))),
        }
    }

    /// Whether input `index` is given (present and not the empty name of an omitted optional input).
    pub fn has_input(&self, index: usize) -> bool {
        self.node.inputs.get(index).is_some_and(|name| !name.is_empty())
    }

    /// Input `index` when an initializer that feeds cannot override holds it, so that ops can
    /// prepare constant operands once at plan time (the f32 kernels pack their weights).
    pub fn constant_input(&self, index: usize) -> Option<&whittle_ir::Tensor> {
        let name = self.node.inputs.get(index).filter(|name| !name.is_empty())?;
        (self.constant)(name)
    }

    /// The values of integer input `index` when an initializer holds it, so that shape-like inputs
    /// (axes, split sizes, target shapes) are read once at plan time instead of on every run.
    pub fn constant_ints(&self, index: usize) -> Result<Option<Vec<i64>>, OpError> {
        let Some(name) = self.node.inputs.get(index).filter(|name| !name.is_empty()) else {
            return Ok(None);
        };
        let Some(tensor) = (self.constant)(name) else {
            return Ok(None);
        };
        read_ints(tensor).map(Some).map_err(|reason| OpError::new(format!("input '{name}': {reason}")))
    }
}

fn read_ints(tensor: &whittle_ir::Tensor) -> Result<Vec<i64>, String> {
    let bytes = tensor.bytes().ok_or("expected an integer tensor, found strings")?;
    match tensor.dtype {
        whittle_ir::DataType::I64 => {
            Ok(bytes.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
        }
        whittle_ir::DataType::I32 => {
            Ok(bytes.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
        }
        other => Err(format!("expected int64 or int32, found {other}")),
    }
}

/// The inputs of one node at run time, in node order; `None` for omitted optional inputs.
///
/// Values arrive owned: the executor moves a value in at its last use and clones it (an `Arc` clone)
/// otherwise, so burn can reuse a buffer in place when nothing else holds it.
#[derive(Debug)]
pub(crate) struct Inputs {
    values: Vec<Option<Value>>,
    device: Option<burn_tensor::Device>,
}

impl Inputs {
    pub fn new(values: Vec<Option<Value>>) -> Inputs {
        Inputs { values, device: None }
    }

    /// The same inputs, with the session's device for ops that create values from nothing
    /// (Constant has no input to take a device from).
    pub fn on(self, device: burn_tensor::Device) -> Inputs {
        Inputs { device: Some(device), ..self }
    }

    /// The device to create new values on: the session's, else that of the first input present.
    pub fn device(&self) -> Result<burn_tensor::Device, OpError> {
        if let Some(device) = &self.device {
            return Ok(device.clone());
        }
        match self.values.iter().flatten().next() {
            Some(value) => Ok(value.device()),
            None => fail!("no device to create the output on"),
        }
    }

    /// Required input `index`.
    pub fn take(&mut self, index: usize) -> Result<Value, OpError> {
        match self.values.get_mut(index).and_then(Option::take) {
            Some(value) => Ok(value),
            None => fail!("input {index} is required but missing"),
        }
    }

    /// Optional input `index`.
    pub fn take_optional(&mut self, index: usize) -> Option<Value> {
        self.values.get_mut(index).and_then(Option::take)
    }

    /// The `count` outer values a control-flow node's subgraphs read, appended after its `explicit`
    /// inputs (see [`Subgraphs`]).
    pub fn take_captured(&mut self, explicit: usize, count: usize) -> Result<Vec<Value>, OpError> {
        (explicit..explicit + count).map(|index| self.take(index)).collect()
    }

    /// Every input, for variadic ops, whose inputs are all required.
    pub fn take_all(&mut self) -> Result<Vec<Value>, OpError> {
        (0..self.values.len()).map(|index| self.take(index)).collect()
    }

    /// Every input still present, in order, skipping omitted ones (Concat's variadic input).
    pub fn take_present(&mut self) -> Vec<Value> {
        self.values.iter_mut().filter_map(Option::take).collect()
    }
}

/// The axis `axis` (negative counts from the end) of a tensor of `rank`, checked.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let rank_i64 = rank as i64;
    let normalized = if axis < 0 { axis + rank_i64 } else { axis };
    if !(0..rank_i64).contains(&normalized) {
        fail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(normalized as usize)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the op unit tests: build values and nodes, run one op.

    use burn_tensor::Device;
    use whittle_ir::{AttrValue, Attribute, DataType, Node};

    use super::{NodeContext, Op};
    use crate::error::RuntimeError;
    use crate::ops::Inputs;
    use crate::value::Value;

    pub fn device() -> Device {
        Device::flex()
    }

    pub fn f32_value(dims: &[i64], values: &[f32]) -> Value {
        let tensor = whittle_ir::Tensor::from_f32("t", dims.to_vec(), values).unwrap();
        Value::from_ir(&tensor, &device()).unwrap()
    }

    pub fn i64_value(dims: &[i64], values: &[i64]) -> Value {
        let tensor = whittle_ir::Tensor::from_i64("t", dims.to_vec(), values).unwrap();
        Value::from_ir(&tensor, &device()).unwrap()
    }

    pub fn bool_value(dims: &[i64], values: &[bool]) -> Value {
        let bytes = values.iter().map(|&value| u8::from(value)).collect();
        typed_value(DataType::Bool, dims, bytes)
    }

    /// A value of the integer type `dtype` from i64 elements, each truncated to the type's width.
    pub fn int_value(dtype: DataType, dims: &[i64], values: &[i64]) -> Value {
        let width = dtype.bit_width().unwrap() / 8;
        let bytes = values.iter().flat_map(|value| value.to_le_bytes()[..width].to_vec()).collect();
        typed_value(dtype, dims, bytes)
    }

    /// A value of any dtype from its little-endian bytes.
    pub fn typed_value(dtype: DataType, dims: &[i64], bytes: Vec<u8>) -> Value {
        let tensor = whittle_ir::Tensor::from_bytes("t", dtype, dims.to_vec(), bytes).unwrap();
        Value::from_ir(&tensor, &device()).unwrap()
    }

    /// The elements of a bool value; panics on other dtypes.
    /// A value of a code type (float8, float4, 4- and 2-bit integers) from its packed ONNX bytes.
    pub fn code_value(dtype: DataType, dims: &[i64], packed: &[u8]) -> Value {
        Value::from_ir(&whittle_ir::Tensor::from_bytes("t", dtype, dims.to_vec(), packed.to_vec()).unwrap(), &device()).unwrap()
    }

    /// The packed ONNX bytes of a value, as it downloads.
    pub fn packed_bytes(value: &Value) -> Vec<u8> {
        value.to_ir("t").unwrap().bytes().unwrap().to_vec()
    }

    pub fn bools(value: &Value) -> Vec<bool> {
        assert_eq!(value.dtype(), DataType::Bool);
        value.to_ir("t").unwrap().bytes().unwrap().iter().map(|&byte| byte != 0).collect()
    }

    /// A node of `op_type` with `attributes`, reading inputs named `in0`, `in1`, ...
    pub fn node(op_type: &str, inputs: usize, outputs: usize, attributes: Vec<(&str, AttrValue)>) -> Node {
        let input_names: Vec<String> = (0..inputs).map(|i| format!("in{i}")).collect();
        let output_names: Vec<String> = (0..outputs).map(|i| format!("out{i}")).collect();
        let mut node = Node::new(
            "n",
            op_type,
            &input_names.iter().map(String::as_str).collect::<Vec<_>>(),
            &output_names.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        node.attributes = attributes.into_iter().map(|(name, value)| Attribute::new(name, value)).collect();
        node
    }

    /// Parses `node` at `opset` with the given constant inputs (by input index).
    pub fn parse(node: &Node, opset: i64, constants: &[(usize, whittle_ir::Tensor)]) -> Result<Op, RuntimeError> {
        let named: Vec<(String, whittle_ir::Tensor)> =
            constants.iter().map(|(index, tensor)| (node.inputs[*index].clone(), tensor.clone())).collect();
        let lookup = |name: &str| named.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        Op::parse(&NodeContext { node, opset, constant: &lookup, subgraphs: &Default::default() })
    }

    /// Parses and runs `node` on `inputs`; panics on errors, which tests compare by message.
    pub fn run(node: &Node, opset: i64, inputs: Vec<Value>) -> Vec<Value> {
        try_run(node, opset, inputs).unwrap()
    }

    pub fn try_run(node: &Node, opset: i64, inputs: Vec<Value>) -> Result<Vec<Value>, String> {
        let op = parse(node, opset, &[]).map_err(|err| err.to_string())?;
        op.eval(Inputs::new(inputs.into_iter().map(Some).collect()).on(device())).map_err(|err| err.reason)
    }

    /// Parses and runs `node` on `inputs`, where `None` is an omitted optional input.
    pub fn try_run_optional(node: &Node, opset: i64, inputs: Vec<Option<Value>>) -> Result<Vec<Value>, String> {
        let op = parse(node, opset, &[]).map_err(|err| err.to_string())?;
        op.eval(Inputs::new(inputs).on(device())).map_err(|err| err.reason)
    }

    /// A value declaration of a tensor type; `dims` `None` for an undeclared shape.
    pub fn info(name: &str, dtype: DataType, dims: Option<&[i64]>) -> whittle_ir::ValueInfo {
        let shape = dims.map(whittle_ir::Shape::known);
        whittle_ir::ValueInfo::new(name, Some(whittle_ir::Type::tensor(dtype, shape)))
    }

    /// A graph of `nodes` with `inputs` and `outputs`, for subgraph and session tests.
    pub fn graph(
        name: &str,
        nodes: Vec<Node>,
        inputs: Vec<whittle_ir::ValueInfo>,
        outputs: Vec<whittle_ir::ValueInfo>,
    ) -> whittle_ir::Graph {
        whittle_ir::Graph { name: name.into(), nodes, inputs, outputs, ..whittle_ir::Graph::default() }
    }

    /// A node with a GRAPH attribute per `(name, graph)`.
    pub fn with_subgraphs(mut node: Node, subgraphs: Vec<(&str, whittle_ir::Graph)>) -> Node {
        for (name, graph) in subgraphs {
            node.attributes.push(Attribute::new(name, AttrValue::Graph(Box::new(graph))));
        }
        node
    }

    /// Plans `graph` (ai.onnx at `opset`) in a session on the default backend.
    pub fn session(graph: whittle_ir::Graph, opset: i64) -> Result<crate::Session, RuntimeError> {
        crate::Session::new(&whittle_ir::Model::new(graph, 10, opset), &crate::RuntimeOptions::default())
    }

    pub fn bool_tensor(name: &str, dims: Vec<i64>, values: &[bool]) -> whittle_ir::Tensor {
        whittle_ir::Tensor::from_bytes(name, DataType::Bool, dims, values.iter().map(|&v| u8::from(v)).collect()).unwrap()
    }

    pub fn f32_tensor(name: &str, dims: Vec<i64>, values: &[f32]) -> whittle_ir::Tensor {
        whittle_ir::Tensor::from_f32(name, dims, values).unwrap()
    }

    /// Parses and runs host-op `node` on tensor `inputs`.
    pub fn try_run_host(node: &Node, opset: i64, inputs: Vec<Value>) -> Result<Vec<crate::host::Entry>, String> {
        let context = NodeContext { node, opset, constant: &|_| None, subgraphs: &Default::default() };
        let op = super::HostOp::parse(&context).expect("a host op").map_err(|err| err.to_string())?;
        let entries = inputs.into_iter().map(|value| Some(crate::host::Entry::Tensor(value))).collect();
        op.eval(crate::host::HostInputs::new(entries)).map_err(|err| err.reason)
    }

    /// Asserts that `value` is f32 of `dims` and within 1e-5 (absolute and relative) of `expected`.
    pub fn assert_close(value: &Value, dims: &[usize], expected: &[f64]) {
        assert_eq!(value.dtype(), DataType::F32);
        assert_eq!(value.shape(), dims);
        let actual = value.to_f32_vec().unwrap();
        assert_eq!(actual.len(), expected.len());
        for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let tolerance = 1e-5 * e.abs().max(1.0);
            assert!((f64::from(a) - e).abs() <= tolerance, "element {index}: got {a}, expected {e}\nall: {actual:?}");
        }
    }

    /// The loop nest of a naive direct 2-D convolution, for the reference results of the conv
    /// tests: `x [n, c, h, w]` with `w_shape [m, c / group, kh, kw]`, output `[n, m, oh, ow]`, top
    /// and left padding `pads`. Each output starts at `init(f)` (`f` its output channel) and adds
    /// `product(xi, wi, f)` for every tap inside the image, `xi` and `wi` being flat indices into
    /// the input and the weights.
    #[allow(clippy::too_many_arguments)]
    pub fn reference_conv2d<T: Copy + std::ops::AddAssign>(
        [n, c, h, w]: [usize; 4],
        [m, cg, kh, kw]: [usize; 4],
        [oh, ow]: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        pads: [usize; 2],
        init: impl Fn(usize) -> T,
        product: impl Fn(usize, usize, usize) -> T,
    ) -> Vec<T> {
        let group = c / cg;
        let mg = m / group;
        let mut out = Vec::with_capacity(n * m * oh * ow);
        for b in 0..n {
            for f in 0..m {
                let g = f / mg;
                for i in 0..oh {
                    for j in 0..ow {
                        let mut sum = init(f);
                        for ci in 0..cg {
                            for a in 0..kh {
                                for d in 0..kw {
                                    let y = (i * strides[0] + a * dilations[0]) as isize - pads[0] as isize;
                                    let z = (j * strides[1] + d * dilations[1]) as isize - pads[1] as isize;
                                    if y < 0 || z < 0 || y >= h as isize || z >= w as isize {
                                        continue;
                                    }
                                    let xi = ((b * c + g * cg + ci) * h + y as usize) * w + z as usize;
                                    sum += product(xi, ((f * cg + ci) * kh + a) * kw + d, f);
                                }
                            }
                        }
                        out.push(sum);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::Node;

    use super::gemm::Gemm;
    use super::Op;

    #[test]
    fn data_movement_carries_codes_and_arithmetic_refuses_them() {
        use whittle_ir::{AttrValue, DataType};

        use super::test_support::*;
        // E5M2 [[1, 2], [4, -inf]] transposed, concatenated and gathered keeps its codes.
        let x = || code_value(DataType::F8E5M2, &[2, 2], &[0x3c, 0x40, 0x44, 0xfc]);
        let transposed = run(&node("Transpose", 1, 1, vec![]), 21, vec![x()]).remove(0);
        assert_eq!(packed_bytes(&transposed), vec![0x3c, 0x44, 0x40, 0xfc]);
        let joined = run(&node("Concat", 2, 1, vec![("axis", AttrValue::Int(0))]), 21, vec![x(), transposed]).remove(0);
        assert_eq!(joined.shape(), &[4, 2]);
        let gathered = run(&node("Gather", 2, 1, vec![]), 21, vec![joined, i64_value(&[1], &[1])]).remove(0);
        assert_eq!(gathered.shape(), &[1, 2]);
        assert_eq!(packed_bytes(&gathered), vec![0x44, 0xfc]);
        let err = try_run(&node("Add", 2, 1, vec![]), 21, vec![x(), x()]).unwrap_err();
        assert!(err.contains("f8e5m2 elements are stored as codes"), "{err}");
        let err = try_run(&node("Relu", 1, 1, vec![]), 21, vec![code_value(DataType::I4, &[1], &[0x01])]).unwrap_err();
        assert!(err.contains("i4 elements are stored as codes"), "{err}");
    }

    #[test]
    fn from_node_fills_spec_defaults_and_keeps_unknown_ops_opaque() {
        let gemm = Op::from_node(&Node::new("g", "Gemm", &["a", "b"], &["y"]), 13).unwrap();
        assert_eq!(
            gemm,
            Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false, packed: None, activation: None })
        );
        let mut custom = Node::new("c", "Gemm", &["a"], &["y"]);
        custom.domain = "com.example".into();
        let opaque = Op::from_node(&custom, 1).unwrap();
        assert_eq!(opaque, Op::Opaque { domain: "com.example".into(), op_type: "Gemm".into() });
        assert_eq!(opaque.op_type(), "Gemm");
    }
}
