//! What the quantization ops share: quantization parameters laid out against the tensor they
//! apply to (per tensor, per axis, blocked), the saturating round-half-to-even conversion to the
//! integer types, requantization of int32 accumulators, and the integer GEMM core.
//!
//! [`integer_matmul`] is the one place where integer products are computed: MatMulInteger and
//! QLinearMatMul call it directly, ConvInteger and QLinearConv through [`integer_conv`], which
//! lowers the convolution to it by im2col. On burn-flex, with an exact int8 kernel for the CPU
//! (AVX-512 VNNI here), it runs on rten-gemm's u8 x i8 -> i32 GEMM (`kernels::int8`), every dtype
//! pair mapped onto it by a 128 shift, MatMulInteger's constant B packed at plan time. Elsewhere (other
//! devices, a CPU whose kernel may saturate, zero points varying over the batch) it widens both
//! operands to int32 burn tensors, subtracts the zero points and multiplies with burn's integer
//! matmul. Both accumulate in int32, wrapping on overflow, which ONNX allows: "the accumulation may
//! overflow if and only if in 32 bits"; so both give the same result bit for bit.
//!
//! Float arithmetic follows ONNX Runtime, which the interop tests compare against bit for bit:
//! quantization divides in the scale's dtype (or the `precision` attribute's), rounds half to even
//! and adds the zero point in f32; requantization multiplies the f32 accumulator by the f32
//! multiplier `scale_a * scale_b / scale_y`.

use burn_tensor::ops::PadMode;
use burn_tensor::{DType, Device, FloatDType, Int, IntDType, Slice, Tensor, TensorData};
use whittle_ir::DataType;

use crate::broadcast::{arithmetic, Arithmetic};
use crate::codes::{code_storage, is_float_code, narrow_integer_range};
use crate::kernels::int8::{self, ConstantIntRhs};
use crate::ops::cast::{cast_with, to_burn_type, Rounding};
use crate::ops::{fail, normalize_axis, NodeContext, OpError};
use crate::spatial::Resolved;
use crate::value::{map_float, with_kind, with_rank, ElementKind, Value};

/// The range of a burn integer type values can be quantized to; 4- and 2-bit types are in
/// [`quantized_range`].
pub(crate) fn integer_range(dtype: DataType) -> Option<(i32, i32)> {
    match dtype {
        DataType::U8 => Some((0, 255)),
        DataType::I8 => Some((-128, 127)),
        DataType::U16 => Some((0, 65535)),
        DataType::I16 => Some((-32768, 32767)),
        _ => None,
    }
}

/// The range of any integer type QuantizeLinear produces, the 4- and 2-bit ones included.
fn quantized_range(dtype: DataType) -> Option<(i32, i32)> {
    integer_range(dtype).or_else(|| narrow_integer_range(dtype).map(|(low, high)| (low as i32, high as i32)))
}

/// Whether QuantizeLinear can produce `dtype`: the integer types, float8 and float4.
pub(crate) fn is_quantized_type(dtype: DataType) -> bool {
    quantized_range(dtype).is_some() || (is_float_code(dtype) && dtype != DataType::F8E8M0)
}

/// Refuses attribute `name` in a model that imports an opset older than `since`, the first one
/// that defines it.
pub(crate) fn attribute_since(node: &NodeContext<'_>, name: &str, since: i64) -> Result<(), OpError> {
    if node.opset < since && node.node.attribute(name).is_some() {
        return Err(OpError::attribute(name, format!("is defined from opset {since}, the model imports opset {}", node.opset)));
    }
    Ok(())
}

/// The quantized type named by an `output_dtype` attribute, checked at plan time.
pub(crate) fn quantized_type_attribute(name: &str, code: i64) -> Result<DataType, OpError> {
    let dtype = i32::try_from(code).map(DataType::from_code).unwrap_or(DataType::Other(-1));
    if is_quantized_type(dtype) {
        return Ok(dtype);
    }
    Err(OpError::attribute(
        name,
        format!(
            "quantizing to {dtype} (code {code}) is not implemented: the runtime quantizes to u8, i8, u16, i16, u4, i4, u2, i2, float8 and float4"
        ),
    ))
}

/// The float type named by a `precision` or `output_dtype` attribute, checked at plan time.
pub(crate) fn float_type_attribute(name: &str, code: i64) -> Result<DataType, OpError> {
    let dtype = i32::try_from(code).map(DataType::from_code).unwrap_or(DataType::Other(-1));
    match dtype {
        DataType::F32 | DataType::F16 | DataType::BF16 => Ok(dtype),
        _ => Err(OpError::attribute(name, format!("must name f32, f16 or bf16, found {dtype} (code {code})"))),
    }
}

fn int_dtype(dtype: DataType) -> Result<IntDType, OpError> {
    Ok(match dtype {
        DataType::U8 => IntDType::U8,
        DataType::I8 => IntDType::I8,
        DataType::U16 => IntDType::U16,
        DataType::I16 => IntDType::I16,
        DataType::I32 => IntDType::I32,
        DataType::I64 => IntDType::I64,
        other => fail!("{other} is not an integer type the quantization ops produce"),
    })
}

fn float_dtype(dtype: DataType) -> Result<FloatDType, OpError> {
    Ok(match dtype {
        DataType::F32 => FloatDType::F32,
        DataType::F64 => FloatDType::F64,
        DataType::F16 => FloatDType::F16,
        DataType::BF16 => FloatDType::BF16,
        other => fail!("{other} is not a float type"),
    })
}

/// `value` converted to the float type `dtype`; integers convert exactly up to 2^24 in f32, and
/// code types (float8, float4, 4- and 2-bit integers) exactly to f32.
pub(crate) fn to_float(value: Value, dtype: DataType) -> Result<Value, OpError> {
    if value.dtype() == dtype {
        return Ok(value);
    }
    let value = to_burn_type(value)?;
    let target = float_dtype(dtype)?;
    let shape = value.shape().to_vec();
    let converted = with_rank!(value.burn_rank(), D => match value.kind() {
        ElementKind::Float => Value::from_float(value.float::<D>()?.cast(target), dtype)?,
        ElementKind::Int => Value::from_float(value.int::<D>()?.cast(target), dtype)?,
        ElementKind::Bool => fail!("expected a numeric tensor, got {}", value.dtype()),
    });
    converted.reshape(&shape)
}

/// The device a value lives on, for the small host-made values the ops add.
fn device_of(value: &Value) -> Result<Device, OpError> {
    if value.kind() == ElementKind::Bool {
        fail!("expected a numeric tensor, got {}", value.dtype());
    }
    Ok(value.device())
}

/// A host tensor uploaded next to `like`.
pub(crate) fn upload(tensor: &whittle_ir::Tensor, like: &Value) -> Result<Value, OpError> {
    Value::from_ir(tensor, &device_of(like)?)
}

/// A scale or zero point of QuantizeLinear or DequantizeLinear reshaped to broadcast against `x`:
/// one value (per tensor), a 1-D tensor of one value per index of `axis` (per axis), or, with a
/// `block_size`, a tensor of x's rank whose `axis` holds one value per block of that many indices
/// (blocked), repeated here to x's shape.
pub(crate) fn quantization_parameter(
    param: Value,
    x_shape: &[usize],
    axis: i64,
    block_size: usize,
    name: &str,
) -> Result<Value, OpError> {
    let rank = x_shape.len();
    if param.element_count() == 1 {
        return param.reshape(&vec![1; rank]);
    }
    let shape = param.shape().to_vec();
    let axis = normalize_axis(axis, rank).map_err(|err| OpError::new(format!("{name}: {}", err.reason)))?;
    let size = x_shape[axis];
    if block_size == 0 {
        if shape != [size] {
            fail!("{name} {shape:?} must be a scalar or have one value per index of axis {axis} of x {x_shape:?} ({size})");
        }
        let mut target = vec![1; rank];
        target[axis] = size;
        return param.reshape(&target);
    }
    let blocks = size.div_ceil(block_size);
    let expected: Vec<usize> = (0..rank).map(|i| if i == axis { blocks } else { x_shape[i] }).collect();
    if shape != expected {
        fail!("{name} {shape:?} must have shape {expected:?}: x {x_shape:?} in blocks of {block_size} along axis {axis}");
    }
    // Element i of the axis reads the parameter of block i / block_size.
    let positions: Vec<i64> = (0..size).map(|i| (i / block_size) as i64).collect();
    let device = device_of(&param)?;
    let index = Tensor::<1, Int>::from_data(TensorData::new(positions, [size]), (&device, DType::I64));
    let dtype = param.dtype();
    let kind = param.kind();
    if kind == ElementKind::Bool {
        fail!("{name} must be numeric, got {dtype}");
    }
    // Selection moves elements only, so zero points of code types take part as their codes.
    Ok(
        with_rank!(param.burn_rank(), D => with_kind!(kind, K => Value::from_typed(param.typed::<D, K>()?.select(axis, index), dtype)?)),
    )
}

/// `saturate(round(values) + zero_point)` as the integer type `dtype`: rounds half to even in
/// f32, adds the zero point (which broadcasts to `values`), and clamps to the type's range.
///
/// Adding after rounding in f32 is exact: zero points have at most 16 bits, and a rounded value
/// too large for the sum to be exact saturates anyway.
pub(crate) fn saturate(values: Value, zero_point: Option<Value>, dtype: DataType) -> Result<Value, OpError> {
    let Some((low, high)) = quantized_range(dtype) else {
        fail!("quantizing to {dtype} is not implemented: the runtime quantizes to u8, i8, u16, i16, u4, i4, u2 and i2");
    };
    let shape = values.shape().to_vec();
    let rounded = map_float!(to_float(values, DataType::F32)?, t => t.round())?;
    let shifted = match zero_point {
        Some(zero_point) => arithmetic(Arithmetic::Add, rounded, to_float(zero_point, DataType::F32)?)?,
        None => rounded,
    };
    if shifted.shape() != shape {
        fail!("the zero point widens the result from {shape:?} to {:?}", shifted.shape());
    }
    let target = match code_storage(dtype) {
        // 4- and 2-bit results are held as their values in u8 or i8.
        Some(storage) => IntDType::from(storage),
        None => int_dtype(dtype)?,
    };
    let converted = with_rank!(shifted.burn_rank(), D => {
        // Saturation happens here; the cast then only meets integral values in range.
        let clamped = shifted.float::<D>()?.clamp(low as f32, high as f32);
        Value::from_int(clamped.cast(target), dtype)?
    });
    converted.reshape(&shape)
}

/// `saturate(round(x / scale) + zero_point)`, with `x` and `scale` in the dtype the division is
/// done in and `scale` and `zero_point` broadcasting to `x`.
pub(crate) fn quantize(x: Value, scale: Value, zero_point: Option<Value>, dtype: DataType) -> Result<Value, OpError> {
    let quotient = arithmetic(Arithmetic::Div, x, scale)?;
    saturate(quotient, zero_point, dtype)
}

/// `x / scale + zero_point` (in the dtype of x and scale) converted to the float8 or float4 type
/// `dtype`, rounding to nearest even, with `saturate` for float8 (float4 always saturates).
///
/// The spec requires a zero zero point for these types, so a non-zero one is an error; adding the
/// zero (as the formula and the reference's float4 path do) still matters: `-0 + 0` is `+0`.
pub(crate) fn quantize_to_float_code(
    x: Value,
    scale: Value,
    zero_point: Option<Value>,
    dtype: DataType,
    saturate: bool,
) -> Result<Value, OpError> {
    let mut quotient = arithmetic(Arithmetic::Div, x, scale)?;
    if let Some(zero_point) = zero_point {
        let division = quotient.dtype();
        require_zero(zero_point.clone(), "y_zero_point")?;
        quotient = arithmetic(Arithmetic::Add, quotient, to_float(zero_point, division)?)?;
    }
    cast_with(quotient, dtype, Rounding { saturate, ..Rounding::DEFAULT })
}

/// Refuses a float8 or float4 zero point that is not zero (of either sign).
pub(crate) fn require_zero(zero_point: Value, name: &str) -> Result<(), OpError> {
    let dtype = zero_point.dtype();
    if to_float(zero_point, DataType::F32)?.to_f64_vec()?.iter().any(|&value| value != 0.0) {
        fail!("{name} of type {dtype} must be zero");
    }
    Ok(())
}

/// The f32 factor `scale_a * scale_b / scale_y` that takes an integer product's accumulator to
/// the output's quantization; the scales broadcast against each other.
pub(crate) fn output_multiplier(scale_a: Value, scale_b: Value, scale_y: Value) -> Result<Value, OpError> {
    let product = arithmetic(Arithmetic::Mul, to_float(scale_a, DataType::F32)?, to_float(scale_b, DataType::F32)?)?;
    arithmetic(Arithmetic::Div, product, to_float(scale_y, DataType::F32)?)
}

/// `saturate(round(accumulator * multiplier) + zero_point)`: an int32 accumulator requantized to
/// `dtype`, the multiplication in f32 as ONNX Runtime does it. `multiplier` and `zero_point`
/// broadcast to the accumulator.
pub(crate) fn requantize(
    accumulator: Value,
    multiplier: Value,
    zero_point: Option<Value>,
    dtype: DataType,
) -> Result<Value, OpError> {
    let scaled = arithmetic(Arithmetic::Mul, to_float(accumulator, DataType::F32)?, multiplier)?;
    saturate(scaled, zero_point, dtype)
}

/// Checks an operand of [`integer_matmul`] and its zero point.
fn check_operand(name: &str, operand: &Value, zero_point: Option<&Value>) -> Result<(), OpError> {
    if !matches!(operand.dtype(), DataType::U8 | DataType::I8) {
        fail!("{name} must be u8 or i8, got {}", operand.dtype());
    }
    let Some(zero_point) = zero_point else { return Ok(()) };
    if zero_point.dtype() != operand.dtype() {
        fail!("the zero point of {name} must be {} like {name}, got {}", operand.dtype(), zero_point.dtype());
    }
    let fits =
        zero_point.rank() == operand.rank() && zero_point.shape().iter().zip(operand.shape()).all(|(&z, &x)| z == x || z == 1);
    if !fits {
        fail!("the zero point {:?} of {name} does not broadcast to {name} {:?}", zero_point.shape(), operand.shape());
    }
    Ok(())
}

/// The integer GEMM core: `(a - a_zero) @ (b - b_zero)` in int32.
///
/// `a` is `[batch..., M, K]` and `b` `[batch..., K, N]`, both u8 or i8, of one rank of 2 or more,
/// their batch axes equal or 1. A zero point has its operand's dtype and rank, each of its sizes
/// that of the operand or 1: per tensor (all 1s), per row of `a` (`[..., M, 1]`) or per column of
/// `b` (`[..., 1, N]`). The result is `[batch..., M, N]` int32.
pub(crate) fn integer_matmul(a: Value, a_zero: Option<Value>, b: Value, b_zero: Option<Value>) -> Result<Value, OpError> {
    integer_matmul_packed(a, a_zero, b, b_zero, None)
}

/// [`integer_matmul`] with `b`'s packing for the int8 kernel, when `b` is a constant packed at plan
/// time (used only when it fits `b`'s dtype and shape).
pub(crate) fn integer_matmul_packed(
    a: Value,
    a_zero: Option<Value>,
    b: Value,
    b_zero: Option<Value>,
    packed: Option<&ConstantIntRhs>,
) -> Result<Value, OpError> {
    check_operand("A", &a, a_zero.as_ref())?;
    check_operand("B", &b, b_zero.as_ref())?;
    let (a_shape, b_shape) = (a.shape(), b.shape());
    let rank = a_shape.len();
    if rank < 2 || b_shape.len() != rank {
        fail!("integer product operands {a_shape:?} and {b_shape:?} must have one rank of 2 or more");
    }
    let batch_fits = a_shape[..rank - 2].iter().zip(&b_shape[..rank - 2]).all(|(&x, &y)| x == y || x == 1 || y == 1);
    if a_shape[rank - 1] != b_shape[rank - 2] || !batch_fits {
        fail!("integer product operands {a_shape:?} and {b_shape:?} do not multiply");
    }
    if let Some(product) = kernel_matmul(&a, a_zero.as_ref(), &b, b_zero.as_ref(), packed)? {
        return Ok(product);
    }
    Ok(with_rank!(rank, D => {
        let a = centered::<D>(a, a_zero)?;
        let b = centered::<D>(b, b_zero)?;
        Value::from_int(a.matmul(b), DataType::I32)?
    }))
}

/// A checked integer product on the int8 kernel (`kernels::int8`); `None` where it does not apply
/// (no exact kernel for this CPU, not flex, an empty product, zero points that vary over the batch)
/// and burn computes it instead.
fn kernel_matmul(
    a: &Value,
    a_zero: Option<&Value>,
    b: &Value,
    b_zero: Option<&Value>,
    packed: Option<&ConstantIntRhs>,
) -> Result<Option<Value>, OpError> {
    let Some(executor) = int8::executor() else { return Ok(None) };
    let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
    let rank = a_shape.len();
    let (m, k, n) = (a_shape[rank - 2], a_shape[rank - 1], b_shape[rank - 1]);
    let (batch_a, batch_b) = (&a_shape[..rank - 2], &b_shape[..rank - 2]);
    let varies_over_batch =
        |zero: Option<&Value>| zero.is_some_and(|zero| zero.shape()[..rank - 2].iter().any(|&size| size != 1));
    if m * k * n == 0 || varies_over_batch(a_zero) || varies_over_batch(b_zero) {
        return Ok(None);
    }
    let Some((a_bytes, a_signed)) = int8::flex_bytes(a) else { return Ok(None) };
    let shared_b = batch_b.iter().all(|&size| size == 1);
    let b_signed = b.dtype() == DataType::I8;
    let packed = packed.filter(|packed| shared_b && [packed.k, packed.n] == [k, n] && packed.signed == b_signed);
    let b_values = match packed {
        Some(_) => None,
        None => match int8::flex_bytes(b) {
            Some((bytes, signed)) => Some(int8::rhs_bytes(&bytes, signed)),
            None => return Ok(None),
        },
    };
    // Zero points of one value or one per row / column, in the kernel's types. An absent one is 0,
    // which the shift between u8 and i8 makes non-zero: that operand gets one too.
    let spread = |zero: Option<&Value>, count: usize, shifted: bool| -> Result<Option<Vec<i64>>, OpError> {
        let values = match zero {
            Some(zero) => zero.to_i64_vec()?,
            None if shifted => vec![0],
            None => return Ok(None),
        };
        Ok(Some(if values.len() == count { values } else { vec![values[0]; count] }))
    };
    let a_zero = spread(a_zero, m, a_signed)?.map(|values| int8::lhs_zero(&values, a_signed));
    let b_zero = spread(b_zero, n, !b_signed)?.map(|values| int8::rhs_zero(&values, b_signed));
    let a_rows = int8::lhs_bytes(&a_bytes, a_signed);
    let batch: Vec<usize> = batch_a.iter().zip(batch_b).map(|(&x, &y)| x.max(y)).collect();
    let entries: usize = batch.iter().product();
    let mut out = vec![0i32; entries * m * n];
    let rhs = |t: usize| match (packed, &b_values) {
        (Some(packed), _) => int8::Rhs::Constant(packed),
        (None, Some(values)) => int8::Rhs::Matrix(&values[t * k * n..(t + 1) * k * n]),
        (None, None) => int8::Rhs::Matrix(&[]),
    };
    if shared_b {
        // Every batch entry multiplies the same B: one product of all their rows.
        let rows = entries * m;
        let a_zero = a_zero.map(|zero| zero.repeat(entries));
        int8::gemm(executor, &mut out, &a_rows, a_zero.as_deref(), rhs(0), b_zero.as_deref(), [rows, k, n])?;
    } else {
        for (t, out) in out.chunks_exact_mut(m * n).enumerate() {
            let (ta, tb) = (broadcast_entry(t, &batch, batch_a), broadcast_entry(t, &batch, batch_b));
            let a_entry = &a_rows[ta * m * k..(ta + 1) * m * k];
            int8::gemm(executor, out, a_entry, a_zero.as_deref(), rhs(tb), b_zero.as_deref(), [m, k, n])?;
        }
    }
    let mut shape = batch;
    shape.extend([m, n]);
    int8::output(out, &shape).map(Some)
}

/// The entry of an operand with batch axes `operand` (each the output's size or 1) that output batch
/// entry `t` of `batch` reads.
fn broadcast_entry(t: usize, batch: &[usize], operand: &[usize]) -> usize {
    let (mut rest, mut entry, mut stride) = (t, 0, 1);
    for (&size, &own) in batch.iter().zip(operand).rev() {
        let index = rest % size;
        rest /= size;
        if own != 1 {
            entry += index * stride;
        }
        stride *= own;
    }
    entry
}

/// `x - zero_point` widened to int32.
fn centered<const D: usize>(x: Value, zero_point: Option<Value>) -> Result<Tensor<D, Int>, OpError> {
    let x = x.int::<D>()?.cast(IntDType::I32);
    Ok(match zero_point {
        Some(zero_point) => x - zero_point.int::<D>()?.cast(IntDType::I32),
        None => x,
    })
}

/// The integer convolution of ConvInteger and QLinearConv: `conv(x - x_zero, w - w_zero)` in int32.
///
/// `x` is `[N, C, spatial...]`, `w` `[M, C / group, kernel...]`, checked and resolved into `window`
/// by `conv::resolve_conv`; `x_zero` is one value, `w_zero` one value or one per filter. The
/// convolution is lowered to [`integer_matmul`] by im2col on burn tensors: x is padded with its
/// zero point (so that padding contributes `x_zero - x_zero = 0`), one strided slice per kernel
/// position gathers the patches into `[N, group, C / group * kernel, P]` (P output positions), and
/// the weights `[1, group, M / group, C / group * kernel]` multiply them, per filter zero points
/// being per-row ones. The product `[N, group, M / group, P]` is the output `[N, M, out...]` as is.
pub(crate) fn integer_conv(
    x: Value,
    x_zero: Option<Value>,
    w: Value,
    w_zero: Option<Value>,
    window: &Resolved,
    group: usize,
) -> Result<Value, OpError> {
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    let (batch, channels, filters) = (x_shape[0], x_shape[1], w_shape[0]);
    let spatial = &x_shape[2..];
    let outputs: Vec<usize> = (0..spatial.len())
        .map(|axis| {
            let (begin, end) = window.padding[axis];
            let extent = (window.kernel[axis] - 1) * window.dilations[axis] + 1;
            (spatial[axis] + begin + end - extent) / window.strides[axis] + 1
        })
        .collect();
    let positions: usize = outputs.iter().product();
    let kernel_size: usize = window.kernel.iter().product();
    if x.element_count() == 0 || w.element_count() == 0 {
        fail!("empty integer convolutions are not implemented (x {x_shape:?}, w {w_shape:?})");
    }
    // integer_matmul checks these too, but under the names A and B of the product.
    let dtype = x.dtype();
    for (name, operand, zero) in [("x", &x, &x_zero), ("w", &w, &w_zero)] {
        if !matches!(operand.dtype(), DataType::U8 | DataType::I8) {
            fail!("{name} must be u8 or i8, got {}", operand.dtype());
        }
        if let Some(zero) = zero.as_ref().filter(|zero| zero.dtype() != operand.dtype()) {
            fail!("{name}_zero_point must be {} like {name}, got {}", operand.dtype(), zero.dtype());
        }
    }
    let x_zero = match x_zero {
        None => None,
        Some(zero) if zero.element_count() == 1 => Some(zero.reshape(&[1, 1, 1, 1])?),
        Some(zero) => fail!("x_zero_point {:?} must be a scalar", zero.shape()),
    };
    let (group_channels, group_filters) = (channels / group, filters / group);
    let w_zero = match w_zero {
        None => None,
        Some(zero) if zero.element_count() == 1 => Some(zero.reshape(&[1, 1, 1, 1])?),
        Some(zero) if zero.shape() == [filters] => Some(zero.reshape(&[1, group, group_filters, 1])?),
        Some(zero) => fail!("w_zero_point {:?} must be a scalar or have one value per filter ({filters})", zero.shape()),
    };
    let pad_value = match &x_zero {
        Some(zero) => zero.to_i64_vec()?[0],
        None => 0,
    };
    let patches = with_rank!(x.burn_rank(), D => {
        let mut padding = [(0, 0); D];
        for (axis, &pair) in window.padding.iter().enumerate() {
            padding[2 + axis] = pair;
        }
        // Every u8 and i8 value is exact in the f32 that burn's pad takes.
        let padded = x.int::<D>()?.pad(padding, PadMode::Constant(pad_value as f32));
        let mut columns = Vec::with_capacity(kernel_size);
        for offset in 0..kernel_size {
            // The kernel position `offset` in row-major order, as the weights store it.
            let mut slices = vec![Slice::from(..); D];
            let mut rest = offset;
            for axis in (0..spatial.len()).rev() {
                let at = rest % window.kernel[axis];
                rest /= window.kernel[axis];
                let start = at * window.dilations[axis];
                let end = start + (outputs[axis] - 1) * window.strides[axis] + 1;
                slices[2 + axis] = Slice::new(start as isize, Some(end as isize), window.strides[axis] as isize);
            }
            columns.push(padded.clone().slice(slices.as_slice()).reshape([batch, channels, 1, positions]));
        }
        Tensor::cat(columns, 2).reshape([batch, group, group_channels * kernel_size, positions])
    });
    let patches = Value::from_int(patches, dtype)?;
    let w = w.reshape(&[1, group, group_filters, group_channels * kernel_size])?;
    let product = integer_matmul(w, w_zero, patches, x_zero)?;
    let mut shape = vec![batch, filters];
    shape.extend_from_slice(&outputs);
    product.reshape(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_support::*;

    #[test]
    fn saturate_rounds_half_to_even_then_clamps() {
        let values = f32_value(&[8], &[0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.5, -300.0]);
        let out = saturate(values, None, DataType::I8).unwrap();
        assert_eq!(out.dtype(), DataType::I8);
        assert_eq!(out.to_i64_vec().unwrap(), vec![0, 2, 2, 0, -2, 126, 127, -128]);
    }

    #[test]
    fn saturate_adds_the_zero_point_after_rounding() {
        // round(2.5) + 1 = 3, where round(2.5 + 1) would be 4.
        let zero_point = int_value(DataType::U8, &[1], &[1]);
        let out = saturate(f32_value(&[2], &[2.5, 300.0]), Some(zero_point), DataType::U8).unwrap();
        assert_eq!(out.to_i64_vec().unwrap(), vec![3, 255]);
    }

    #[test]
    fn integer_matmul_subtracts_per_row_and_per_column_zero_points() {
        // a = [[1, 2], [3, 4]] with row zero points [1, 2]: [[0, 1], [1, 2]];
        // b = [[5, 6], [7, 8]] with column zero points [5, 0]: [[0, 6], [2, 8]].
        // [[0*0 + 1*2, 0*6 + 1*8], [1*0 + 2*2, 1*6 + 2*8]] = [[2, 8], [4, 22]].
        let a = int_value(DataType::U8, &[2, 2], &[1, 2, 3, 4]);
        let b = int_value(DataType::I8, &[2, 2], &[5, 6, 7, 8]);
        let out = integer_matmul(
            a,
            Some(int_value(DataType::U8, &[2, 1], &[1, 2])),
            b,
            Some(int_value(DataType::I8, &[1, 2], &[5, 0])),
        )
        .unwrap();
        assert_eq!(out.dtype(), DataType::I32);
        assert_eq!(out.shape(), &[2, 2]);
        assert_eq!(out.to_i64_vec().unwrap(), vec![2, 8, 4, 22]);
    }

    #[test]
    fn integer_matmul_checks_its_operands() {
        let a = int_value(DataType::U8, &[2, 2], &[1, 2, 3, 4]);
        let err = integer_matmul(a.clone(), Some(int_value(DataType::I8, &[1, 1], &[0])), a.clone(), None).unwrap_err();
        assert_eq!(err.reason, "the zero point of A must be u8 like A, got i8");
        let err = integer_matmul(
            a.clone(),
            Some(int_value(DataType::U8, &[1, 2], &[0, 0])),
            int_value(DataType::U8, &[3, 1], &[0; 3]),
            None,
        )
        .unwrap_err();
        assert_eq!(err.reason, "integer product operands [2, 2] and [3, 1] do not multiply");
        let err = integer_matmul(f32_value(&[1, 1], &[1.0]), None, a, None).unwrap_err();
        assert_eq!(err.reason, "A must be u8 or i8, got f32");
    }

    #[test]
    fn blocked_parameters_repeat_per_block() {
        // x [2, 5] in blocks of 2 along axis 1: 3 blocks, the last one short.
        let param = f32_value(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = quantization_parameter(param, &[2, 5], 1, 2, "y_scale").unwrap();
        assert_close(&out, &[2, 5], &[1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0]);
        let err = quantization_parameter(f32_value(&[2, 2], &[1.0; 4]), &[2, 5], 1, 2, "y_scale").unwrap_err();
        assert_eq!(err.reason, "y_scale [2, 2] must have shape [2, 3]: x [2, 5] in blocks of 2 along axis 1");
    }

    #[test]
    fn per_axis_parameters_need_one_value_per_index() {
        let out = quantization_parameter(f32_value(&[3], &[1.0, 2.0, 3.0]), &[2, 3, 4], -2, 0, "s").unwrap();
        assert_eq!(out.shape(), &[1, 3, 1]);
        let err = quantization_parameter(f32_value(&[2], &[1.0, 2.0]), &[2, 3, 4], 1, 0, "s").unwrap_err();
        assert_eq!(err.reason, "s [2] must be a scalar or have one value per index of axis 1 of x [2, 3, 4] (3)");
    }
}
