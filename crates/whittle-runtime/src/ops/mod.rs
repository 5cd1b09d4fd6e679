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
pub use crate::int_input::IntsInput;
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
            /// session (graph passes): shape-like inputs are left to run time.
            pub fn from_node(node: &Node, opset: i64) -> Result<Op, RuntimeError> {
                Op::parse(&NodeContext { node, opset, constant: &|_| None })
            }

            /// The canonical domain of the op.
            pub fn domain(&self) -> &str {
                match self {
                    $(Op::$name(_) => <$module::$name as Operator>::DOMAIN,)*
                    Op::Opaque { domain, .. } => domain,
                }
            }

            /// The ONNX op type.
            pub fn op_type(&self) -> &str {
                match self {
                    $(Op::$name(_) => <$module::$name as Operator>::OP_TYPE,)*
                    Op::Opaque { op_type, .. } => op_type,
                }
            }

            pub(crate) fn eval(&self, inputs: Inputs) -> Result<Vec<Value>, OpError> {
                match self {
                    $(Op::$name(op) => op.eval(inputs),)*
                    Op::Opaque { domain, op_type } => fail!("op {op_type} of domain {domain} is not implemented"),
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
    instance_normalization::InstanceNormalization,
    layer_normalization::LayerNormalization,
    leaky_relu::LeakyRelu,
    less::Less,
    less_or_equal::LessOrEqual,
    log::Log,
    log_softmax::LogSoftmax,
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
    round::Round,
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

fn parse_op<T: Operator>(context: &NodeContext<'_>) -> Result<T, RuntimeError> {
    let node = context.node;
    if !T::OPSETS.contains(&context.opset) {
        return Err(RuntimeError::UnsupportedOpset {
            node: node.label(),
            op: node.op_type.clone(),
            opset: context.opset,
            supported: format!("{}..={}", T::OPSETS.start(), T::OPSETS.end()),
        });
    }
    if let Some(unknown) = node.attributes.iter().find(|attribute| !T::ATTRIBUTES.contains(&attribute.name.as_str())) {
        return Err(OpError::attribute(&unknown.name, format!("{} defines no such attribute", T::OP_TYPE)).at(node));
    }
    T::parse(context).map_err(|err| err.at(node))
}

/// A node being planned: its attributes, its opset, and the initializers it reads.
pub(crate) struct NodeContext<'a> {
    pub node: &'a Node,
    pub opset: i64,
    /// Looks up an initializer that feeds cannot override; `None` for computed values.
    pub constant: &'a dyn Fn(&str) -> Option<&'a whittle_ir::Tensor>,
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
        Op::parse(&NodeContext { node, opset, constant: &lookup })
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
}

#[cfg(test)]
mod tests {
    use whittle_ir::Node;

    use super::gemm::Gemm;
    use super::Op;

    #[test]
    fn from_node_fills_spec_defaults_and_keeps_unknown_ops_opaque() {
        let gemm = Op::from_node(&Node::new("g", "Gemm", &["a", "b"], &["y"]), 13).unwrap();
        assert_eq!(gemm, Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false }));
        let mut custom = Node::new("c", "Gemm", &["a"], &["y"]);
        custom.domain = "com.example".into();
        let opaque = Op::from_node(&custom, 1).unwrap();
        assert_eq!(opaque, Op::Opaque { domain: "com.example".into(), op_type: "Gemm".into() });
        assert_eq!(opaque.op_type(), "Gemm");
    }
}
