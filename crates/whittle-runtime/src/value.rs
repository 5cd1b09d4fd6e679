//! Run-time values: burn tensors of any rank and element type, bridged to ONNX's run-time ranks.
//!
//! ONNX ranks are known at run time only; burn's `Tensor<D, K>` fixes the rank `D` at compile time.
//! burn 0.22 already erases both backend and rank underneath: a `Tensor<D, K>` is a `BridgeTensor`
//! (a type-erased backend tensor that knows its shape and dtype) plus a `PhantomData`, and
//! `Tensor::into_bridge` / `Tensor::from_bridge` (feature `extension`) convert between the two for
//! free. So a [`Value`] stores the `BridgeTensor` with its ONNX dtype and shape, and an op that needs
//! a typed tensor asks for one of a given rank (`value.float::<D>()`), with the rank checked first:
//! `from_bridge` does not check it, and a tensor of the wrong `D` panics inside burn later. Ops that
//! work at any rank pick `D` with [`with_rank!`], a `match` over `1..=MAX_RANK` that instantiates the
//! body once per rank; since `Tensor<D, K>` is only a phantom wrapper, each instance is small.
//!
//! The alternative, an enum over ranks x element kinds, would duplicate that erasure in a few hundred
//! generated variants and make every op match on them.
//!
//! Two differences from ONNX need care:
//! - burn has no rank-0 tensors (`from_data` refuses them), so an ONNX scalar is stored as a burn
//!   tensor of shape `[1]`; [`Value::shape`] is always the ONNX shape.
//! - A device creates tensors in its default dtypes (f32 and i32 on flex) unless told otherwise, so
//!   every tensor is created with an explicit dtype, and int64 stays int64.
//!
//! Element types burn has no type for (float8, float4, e8m0, 4- and 2-bit integers; "code types")
//! are held as one code per element in a u8 or i8 int tensor, with the logical dtype in `dtype`
//! ([`held_dtype`]; `codes.rs` has the formats). Data-movement ops reach the storage through
//! [`Value::typed`] and move codes untouched; [`Value::float`], [`Value::int`], [`Value::bool`],
//! `to_i64_vec` and `to_f64_vec` refuse code types, so no op can compute on float8 bits as if
//! they were u8 numbers; only the conversions (Cast, CastLike, QuantizeLinear, DequantizeLinear)
//! read them, through [`Value::codes`]. Upload unpacks 4- and 2-bit storage and download packs it
//! again, so ONNX bytes round-trip exactly.
//!
//! Hot kernels read a value's memory without copying through `Tensor::try_into_primitive::<Flex>()`,
//! which gives burn-flex's own tensor (an `Arc` over its bytes; see the `flex_storage_is_shared`
//! test); copying out with `into_data` is only for the run's boundary and for small shape-like inputs.

use burn_tensor::kind::{Basic, BridgeTensor};
use burn_tensor::{Bool, DType, Device, Float, Int, Tensor, TensorData};
use whittle_ir::DataType;

use crate::codes::{code_storage, pack, unpack};
use crate::error::RuntimeError;
use crate::ops::OpError;

/// The highest rank a value may have. ONNX sets no limit; burn needs one rank per instantiation.
pub const MAX_RANK: usize = 8;

/// Evaluates `$body` with `$D` bound to the const `$rank` (`1..=MAX_RANK`).
///
/// Ranks come from [`Value::burn_rank`], which is in range by construction; anything else is a bug
/// in this crate, hence the `unreachable!`.
macro_rules! with_rank {
    ($rank:expr, $D:ident => $body:expr) => {
        match $rank {
            1 => {
                const $D: usize = 1;
                $body
            }
            2 => {
                const $D: usize = 2;
                $body
            }
            3 => {
                const $D: usize = 3;
                $body
            }
            4 => {
                const $D: usize = 4;
                $body
            }
            5 => {
                const $D: usize = 5;
                $body
            }
            6 => {
                const $D: usize = 6;
                $body
            }
            7 => {
                const $D: usize = 7;
                $body
            }
            8 => {
                const $D: usize = 8;
                $body
            }
            rank => unreachable!("burn rank {rank} outside 1..={}", $crate::value::MAX_RANK),
        }
    };
}
pub(crate) use with_rank;

/// Applies `$body` (an expression over the float tensor `$t` of any rank) to a float value, keeping
/// its dtype and ONNX shape. For elementwise ops, whose result has the input's shape.
macro_rules! map_float {
    ($value:expr, $t:ident => $body:expr) => {{
        let value: $crate::value::Value = $value;
        let dtype = value.dtype();
        let shape = value.shape().to_vec();
        let result = $crate::value::with_rank!(value.burn_rank(), D => {
            let $t = value.float::<D>()?;
            $crate::value::Value::from_float($body, dtype)?
        });
        result.reshape(&shape)
    }};
}
pub(crate) use map_float;

/// Evaluates `$body` with the type `$K` bound to the burn kind (`Float`, `Int` or `Bool`) of
/// `$kind`, an [`ElementKind`]: data-movement ops, which treat every element type alike, are then
/// written once over `Tensor<D, $K>` with [`Value::typed`] and [`Value::from_typed`].
macro_rules! with_kind {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            $crate::value::ElementKind::Float => {
                type $K = burn_tensor::Float;
                $body
            }
            $crate::value::ElementKind::Int => {
                type $K = burn_tensor::Int;
                $body
            }
            $crate::value::ElementKind::Bool => {
                type $K = burn_tensor::Bool;
                $body
            }
        }
    };
}
pub(crate) use with_kind;

/// Which of burn's tensor kinds holds a dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Float,
    Int,
    Bool,
}

/// burn's dtype and kind for an ONNX dtype burn computes on, or `None` where burn has no such
/// type (strings, complex numbers, and the code types that [`held_dtype`] holds as codes).
pub fn burn_dtype(dtype: DataType) -> Option<(DType, ElementKind)> {
    use ElementKind::{Bool as B, Float as F, Int as I};
    Some(match dtype {
        DataType::F32 => (DType::F32, F),
        DataType::F64 => (DType::F64, F),
        DataType::F16 => (DType::F16, F),
        DataType::BF16 => (DType::BF16, F),
        DataType::I64 => (DType::I64, I),
        DataType::I32 => (DType::I32, I),
        DataType::I16 => (DType::I16, I),
        DataType::I8 => (DType::I8, I),
        DataType::U64 => (DType::U64, I),
        DataType::U32 => (DType::U32, I),
        DataType::U16 => (DType::U16, I),
        DataType::U8 => (DType::U8, I),
        DataType::Bool => (DType::Bool(burn_tensor::BoolStore::Native), B),
        _ => return None,
    })
}

/// burn's dtype and kind holding an ONNX dtype: [`burn_dtype`] for the types burn computes on, and
/// an int tensor of u8 or i8 codes, one per element, for the code types burn has no type for
/// (float8, float4, e8m0, 4- and 2-bit integers; see `codes.rs`).
pub fn held_dtype(dtype: DataType) -> Option<(DType, ElementKind)> {
    burn_dtype(dtype).or_else(|| code_storage(dtype).map(|storage| (storage, ElementKind::Int)))
}

/// A tensor value flowing through a graph: a burn tensor with its ONNX dtype and shape.
#[derive(Debug, Clone)]
pub struct Value {
    /// Boxed: burn's tensor is about 300 bytes, and every step moves its inputs and results
    /// through a few `Vec`s and slots, each move a memmove call. A quarter of digits_cnn's run at
    /// batch 1 was memmove (perf, fp32 and int8 alike); boxed, the fastest runs went 8.4 -> 7.9 us
    /// (fp32) and 6.7 -> 6.3 us (int8-static), transformer_tiny's 88 -> 82 and 74 -> 68 us, in the
    /// same minutes. A clone (a read before the value's last use) now allocates the box.
    tensor: Box<BridgeTensor>,
    dtype: DataType,
    /// The ONNX shape; the burn tensor has this shape, or `[1]` when this is empty.
    shape: Vec<usize>,
}

impl Value {
    /// The value holding `tensor` (burn's, already of the held type for `dtype`) with `shape`.
    fn held(tensor: BridgeTensor, dtype: DataType, shape: Vec<usize>) -> Value {
        Value { tensor: Box::new(tensor), dtype, shape }
    }

    /// Uploads a host tensor to `device`, keeping its dtype.
    pub(crate) fn from_ir(tensor: &whittle_ir::Tensor, device: &Device) -> Result<Value, OpError> {
        let Some((dtype, kind)) = held_dtype(tensor.dtype) else {
            return Err(OpError::new(format!("dtype {} is not supported by the runtime", tensor.dtype)));
        };
        // burn's cubecl backends (wgpu) store bools as u8 or u32 words and refuse the native bool
        // store; a bool tensor takes the device's own store, as burn's comparison ops produce it.
        let dtype = if kind == ElementKind::Bool { DType::from(device.settings().bool_dtype) } else { dtype };
        check_device_dtype(dtype, tensor.dtype, device)?;
        let shape = tensor
            .dims
            .iter()
            .map(|&dim| usize::try_from(dim))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OpError::new(format!("dims {:?} are not sizes", tensor.dims)))?;
        check_rank(shape.len())?;
        let Some(bytes) = tensor.bytes() else {
            return Err(OpError::new("string tensors are not supported by the runtime"));
        };
        let burn_shape = burn_shape(&shape);
        let unpacked;
        let bytes = match code_storage(tensor.dtype) {
            Some(_) => {
                // The IR checked on construction that the packed bytes fill the shape.
                unpacked = unpack(tensor.dtype, bytes, shape.iter().product());
                &unpacked[..]
            }
            None => bytes,
        };
        // The IR's little-endian bytes are burn's native layout on every target burn-flex builds
        // for (x86-64, aarch64, wasm32). The copy into `TensorData` is the one upload copy.
        let data = match kind {
            // burn's native bool store is one byte per element, 0 or 1; ONNX allows any non-zero byte.
            ElementKind::Bool => TensorData::new(bytes.iter().map(|&byte| byte != 0).collect::<Vec<bool>>(), burn_shape.clone()),
            _ => TensorData::try_from_bytes_vec(bytes.to_vec(), burn_shape.clone(), dtype)
                .map_err(|err| OpError::new(format!("bytes do not match dims {:?}: {err:?}", tensor.dims)))?,
        };
        let bridge = with_rank!(burn_shape.len(), D => match kind {
            ElementKind::Float => Tensor::<D, Float>::from_data(data, (device, dtype)).into_bridge(),
            ElementKind::Int => Tensor::<D, Int>::from_data(data, (device, dtype)).into_bridge(),
            ElementKind::Bool => Tensor::<D, Bool>::from_data(data, (device, dtype)).into_bridge(),
        });
        Ok(Value::held(bridge, tensor.dtype, shape))
    }

    /// Downloads the value into a host tensor called `name`.
    pub(crate) fn to_ir(&self, name: &str) -> Result<whittle_ir::Tensor, OpError> {
        let Some((dtype, _)) = held_dtype(self.dtype) else {
            return Err(OpError::new(format!("dtype {} has no host form", self.dtype)));
        };
        let mut bytes = self.host_data(dtype)?.into_bytes().to_vec();
        if code_storage(self.dtype).is_some() {
            bytes = pack(self.dtype, &bytes);
        }
        let dims = self.shape.iter().map(|&dim| dim as i64).collect();
        whittle_ir::Tensor::from_bytes(name, self.dtype, dims, bytes).map_err(|err| OpError::new(err.to_string()))
    }

    /// The elements as i64, for small shape-like inputs (axes, sizes, indices) read on the host.
    pub(crate) fn to_i64_vec(&self) -> Result<Vec<i64>, OpError> {
        self.refuse_codes()?;
        if self.kind() != ElementKind::Int {
            return Err(OpError::new(format!("expected an integer tensor, got {}", self.dtype)));
        }
        let data = self.host_data(DType::I64)?;
        data.try_to_vec::<i64>().map_err(|err| OpError::new(format!("cannot read {} tensor: {err:?}", self.dtype)))
    }

    /// The elements as f32, for tests.
    #[cfg(test)]
    pub(crate) fn to_f32_vec(&self) -> Result<Vec<f32>, OpError> {
        let data = self.host_data(DType::F32)?;
        data.try_to_vec::<f32>().map_err(|err| OpError::new(format!("cannot read {} tensor: {err:?}", self.dtype)))
    }

    fn host_data(&self, dtype: DType) -> Result<TensorData, OpError> {
        let data = with_rank!(self.burn_rank(), D => match self.kind() {
            ElementKind::Float => Tensor::<D, Float>::from_bridge((*self.tensor).clone()).try_into_data(),
            ElementKind::Int => Tensor::<D, Int>::from_bridge((*self.tensor).clone()).try_into_data(),
            ElementKind::Bool => Tensor::<D, Bool>::from_bridge((*self.tensor).clone()).try_into_data(),
        })
        .map_err(|err| OpError::new(format!("reading the tensor failed: {}", first_and_last_cause(&format!("{err:?}")))))?;
        if data.dtype() == dtype {
            Ok(data)
        } else {
            data.try_cast(dtype).map_err(|err| OpError::new(format!("cannot convert {} to {dtype:?}: {err:?}", self.dtype)))
        }
    }

    /// Wraps a float tensor produced by an op; `dtype` is the ONNX dtype it holds.
    pub(crate) fn from_float<const D: usize>(tensor: Tensor<D, Float>, dtype: DataType) -> Result<Value, OpError> {
        Value::from_typed(tensor, dtype)
    }

    /// A float value of `dtype` holding `values` in `shape`, for small constants computed on the
    /// host (in f64, rounded once to `dtype`).
    pub(crate) fn float_from_f64(values: Vec<f64>, shape: &[usize], dtype: DataType, device: &Device) -> Result<Value, OpError> {
        let Some((burn, ElementKind::Float)) = burn_dtype(dtype) else {
            return Err(OpError::new(format!("expected a float dtype, got {dtype}")));
        };
        if values.len() != shape.iter().product::<usize>() {
            return Err(OpError::new(format!("{} values do not fill shape {shape:?}", values.len())));
        }
        check_rank(shape.len())?;
        check_device_dtype(burn, dtype, device)?;
        let data = TensorData::new(values, burn_shape(shape));
        let bridge = with_rank!(shape.len().max(1), D => Tensor::<D, Float>::from_data(data, (device, burn)).into_bridge());
        Ok(Value::held(bridge, dtype, shape.to_vec()))
    }

    /// Wraps an integer tensor produced by an op.
    pub(crate) fn from_int<const D: usize>(tensor: Tensor<D, Int>, dtype: DataType) -> Result<Value, OpError> {
        Value::from_typed(tensor, dtype)
    }

    /// Wraps a bool tensor produced by an op (ONNX dtype bool).
    pub(crate) fn from_bool<const D: usize>(tensor: Tensor<D, Bool>) -> Result<Value, OpError> {
        Value::from_typed(tensor, DataType::Bool)
    }

    /// The tensor as a tensor of kind `K` (float, int or bool) and burn rank `D`, for data
    /// movement: code types come as their storage (see [`Value::codes`]), so an op calling this
    /// must not compute on the elements.
    pub(crate) fn typed<const D: usize, K: Basic>(self) -> Result<Tensor<D, K>, OpError> {
        self.check_kind_and_rank(D, element_kind(K::KIND))?;
        Ok(Tensor::from_bridge(*self.tensor))
    }

    /// The codes of a value of a code type (float8, float4, e8m0, 4- and 2-bit integers) as an
    /// int tensor of their storage dtype (u8, or i8 for the signed integers), for the conversions
    /// that know what the codes mean.
    pub(crate) fn codes<const D: usize>(self) -> Result<Tensor<D, Int>, OpError> {
        if code_storage(self.dtype).is_none() {
            return Err(OpError::new(format!("expected a value of a code type, got {}", self.dtype)));
        }
        self.check_kind_and_rank(D, ElementKind::Int)?;
        Ok(Tensor::from_bridge(*self.tensor))
    }

    /// A value of code type `dtype` and `shape` from its storage bytes, one per element.
    pub(crate) fn from_code_bytes(storage: Vec<u8>, dtype: DataType, shape: &[usize], device: &Device) -> Result<Value, OpError> {
        let Some(held) = code_storage(dtype) else {
            return Err(OpError::new(format!("expected a code type, got {dtype}")));
        };
        if storage.len() != shape.iter().product::<usize>() {
            return Err(OpError::new(format!("{} codes do not fill shape {shape:?}", storage.len())));
        }
        check_rank(shape.len())?;
        let burn_shape = burn_shape(shape);
        let data = TensorData::try_from_bytes_vec(storage, burn_shape.clone(), held)
            .map_err(|err| OpError::new(format!("codes do not match shape {shape:?}: {err:?}")))?;
        let bridge = with_rank!(burn_shape.len(), D => Tensor::<D, Int>::from_data(data, (device, held)).into_bridge());
        Ok(Value::held(bridge, dtype, shape.to_vec()))
    }

    /// The same tensor under another dtype held the same way; for 4- and 2-bit integers, whose
    /// storage (u8, or sign-extended i8) holds their values, so they compute as u8 or i8.
    pub(crate) fn relabel(self, dtype: DataType) -> Result<Value, OpError> {
        if held_dtype(dtype) != held_dtype(self.dtype) {
            return Err(OpError::new(format!("{} is not held like {dtype}", self.dtype)));
        }
        Ok(Value { dtype, ..self })
    }

    /// Refuses a value of a code type, whose elements are codes rather than numbers.
    fn refuse_codes(&self) -> Result<(), OpError> {
        if code_storage(self.dtype).is_some() {
            return Err(OpError::new(format!(
                "{} elements are stored as codes, which only data-movement ops, Cast, CastLike, QuantizeLinear and DequantizeLinear take",
                self.dtype
            )));
        }
        Ok(())
    }

    /// Wraps a tensor of any kind produced by an op; `dtype` is the ONNX dtype it holds and must be
    /// of the tensor's kind.
    pub(crate) fn from_typed<const D: usize, K: Basic>(tensor: Tensor<D, K>, dtype: DataType) -> Result<Value, OpError> {
        let Some((held, kind)) = held_dtype(dtype) else {
            return Err(OpError::new(format!("dtype {dtype} is not supported by the runtime")));
        };
        if kind != element_kind(K::KIND) {
            return Err(OpError::new(format!("dtype {dtype} is not held by a {:?} tensor", K::KIND)));
        }
        // Codes keep their storage dtype through data movement; anything else is a bug upstream
        // that would relabel numbers as codes.
        if code_storage(dtype).is_some() && tensor.dtype() != held {
            return Err(OpError::new(format!("{dtype} codes must be held as {held:?}, got {:?}", tensor.dtype())));
        }
        let shape = tensor.dims().to_vec();
        check_rank(D)?;
        // f32 is every device's own type; other results are checked, as ops make them by casts too.
        if tensor.dtype() != DType::F32 {
            check_device_dtype(tensor.dtype(), dtype, &tensor.device())?;
        }
        // Every op result passes here, so the re-tag covers all kinds and constructors at once.
        Ok(Value::held(retag(tensor).into_bridge(), dtype, shape))
    }

    /// An int64 value of `shape` holding `values`, made on the host (shapes, sizes, indices).
    pub(crate) fn from_i64s(shape: &[usize], values: Vec<i64>, device: &Device) -> Result<Value, OpError> {
        if shape.iter().product::<usize>() != values.len() {
            return Err(OpError::new(format!("{} values do not fill shape {shape:?}", values.len())));
        }
        check_rank(shape.len())?;
        let burn_shape = burn_shape(shape);
        if values.is_empty() {
            return Value::empty(DataType::I64, shape, device);
        }
        check_device_dtype(DType::I64, DataType::I64, device)?;
        let data = TensorData::new(values, burn_shape.clone());
        let bridge = with_rank!(burn_shape.len(), D => Tensor::<D, Int>::from_data(data, (device, DType::I64)).into_bridge());
        Ok(Value::held(bridge, DataType::I64, shape.to_vec()))
    }

    /// The elements of a numeric tensor as f64, for small inputs read on the host (Range's bounds,
    /// Resize's scales and regions).
    pub(crate) fn to_f64_vec(&self) -> Result<Vec<f64>, OpError> {
        self.refuse_codes()?;
        let data = self.host_data(DType::F64)?;
        data.try_to_vec::<f64>().map_err(|err| OpError::new(format!("cannot read {} tensor: {err:?}", self.dtype)))
    }

    /// The device the value lives on.
    pub fn device(&self) -> Device {
        with_rank!(self.burn_rank(), D => match self.kind() {
            ElementKind::Float => Tensor::<D, Float>::from_bridge((*self.tensor).clone()).device(),
            ElementKind::Int => Tensor::<D, Int>::from_bridge((*self.tensor).clone()).device(),
            ElementKind::Bool => Tensor::<D, Bool>::from_bridge((*self.tensor).clone()).device(),
        })
    }

    /// Whether the value lives on `device`, tape included: burn's `Device` equality does not tell
    /// flex from flex with autodiff, so a plain value would pass for one on the tape (found by
    /// `training::values_from_the_plain_device_are_moved_onto_the_tape`).
    pub(crate) fn is_on(&self, device: &Device) -> bool {
        let own = self.device();
        own == *device && own.is_autodiff() == device.is_autodiff()
    }

    /// The value copied to `device` (a feed made on another device than the session's).
    pub(crate) fn moved_to(self, device: &Device) -> Result<Value, OpError> {
        // `to_device` between flex and flex with autodiff is a no-op (burn sees one device), so a
        // change of tape goes through the host: only feeds and replaced parameters take it.
        if self.device().is_autodiff() != device.is_autodiff() {
            return Value::from_ir(&self.to_ir("moved value")?, device);
        }
        let Value { tensor, dtype, shape } = self;
        let tensor = *tensor;
        let (burn, kind) = held_dtype(dtype).ok_or_else(|| OpError::new(format!("dtype {dtype} has no burn type")))?;
        check_device_dtype(burn, dtype, device)?;
        let tensor = with_rank!(shape.len().max(1), D => match kind {
            ElementKind::Float => Tensor::<D, Float>::from_bridge(tensor).to_device(device).into_bridge(),
            ElementKind::Int => Tensor::<D, Int>::from_bridge(tensor).to_device(device).into_bridge(),
            ElementKind::Bool => Tensor::<D, Bool>::from_bridge(tensor).to_device(device).into_bridge(),
        });
        Ok(Value::held(tensor, dtype, shape))
    }

    /// The float value as a leaf of the autodiff tape whose gradient a backward pass keeps
    /// ([`Value::grad`]); the value must live on an autodiff device.
    pub(crate) fn require_grad(self) -> Result<Value, OpError> {
        if !self.device().is_autodiff() {
            return Err(OpError::new(format!("a {} value records gradients only on an autodiff device", self.dtype)));
        }
        let dtype = self.dtype;
        let shape = self.shape.clone();
        with_rank!(self.burn_rank(), D => Value::from_float(self.float::<D>()?.require_grad(), dtype)?).reshape(&shape)
    }

    /// The value cut from the tape that produced it (a float value; others carry no tape).
    pub fn detach(self) -> Value {
        if self.kind() != ElementKind::Float || !self.device().is_autodiff() {
            return self;
        }
        let Value { tensor, dtype, shape } = self;
        let tensor = *tensor;
        let tensor = with_rank!(shape.len().max(1), D => Tensor::<D, Float>::from_bridge(tensor).detach().into_bridge());
        Value::held(tensor, dtype, shape)
    }

    /// The gradient `grads` holds for this value, a leaf made by [`Value::require_grad`] (a
    /// session's parameter); `None` when the backward pass did not reach it.
    #[cfg(feature = "autodiff")]
    pub(crate) fn grad_of(&self, grads: &burn_tensor::Gradients) -> Option<Value> {
        if self.kind() != ElementKind::Float {
            return None;
        }
        let tensor =
            with_rank!(self.burn_rank(), D => Tensor::<D, Float>::from_bridge((*self.tensor).clone()).grad(grads)?.into_bridge());
        Some(Value::held(tensor, self.dtype, self.shape.clone()))
    }

    /// A value of `dtype` and `shape` with no elements (a size in `shape` is 0).
    ///
    /// burn's narrow, cat and repeat assert non-empty inputs, so ops whose result is empty build
    /// it here instead of calling them.
    pub(crate) fn empty(dtype: DataType, shape: &[usize], device: &Device) -> Result<Value, OpError> {
        if !shape.contains(&0) {
            return Err(OpError::new(format!("shape {shape:?} is not empty")));
        }
        let dims = shape.iter().map(|&size| size as i64).collect();
        let host =
            whittle_ir::Tensor::from_bytes("empty", dtype, dims, Vec::new()).map_err(|err| OpError::new(err.to_string()))?;
        Value::from_ir(&host, device)
    }

    /// The ONNX element type.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// The ONNX shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The ONNX rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub(crate) fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The rank of the burn tensor: the ONNX rank, or 1 for a scalar.
    pub(crate) fn burn_rank(&self) -> usize {
        self.shape.len().max(1)
    }

    /// Which burn tensor kind holds the elements.
    pub(crate) fn kind(&self) -> ElementKind {
        match held_dtype(self.dtype) {
            Some((_, kind)) => kind,
            // Values are only built from dtypes `held_dtype` knows.
            None => unreachable!("value of dtype {} has no burn kind", self.dtype),
        }
    }

    /// The tensor as a float tensor of burn rank `D`.
    pub(crate) fn float<const D: usize>(self) -> Result<Tensor<D, Float>, OpError> {
        self.check_typed(D, ElementKind::Float)?;
        Ok(Tensor::from_bridge(*self.tensor))
    }

    /// The tensor as an integer tensor of burn rank `D`.
    pub(crate) fn int<const D: usize>(self) -> Result<Tensor<D, Int>, OpError> {
        self.check_typed(D, ElementKind::Int)?;
        Ok(Tensor::from_bridge(*self.tensor))
    }

    /// The tensor as a bool tensor of burn rank `D`.
    pub(crate) fn bool<const D: usize>(self) -> Result<Tensor<D, Bool>, OpError> {
        self.check_typed(D, ElementKind::Bool)?;
        Ok(Tensor::from_bridge(*self.tensor))
    }

    /// Checks kind and rank for an op that computes on the elements, which codes are not.
    fn check_typed(&self, rank: usize, kind: ElementKind) -> Result<(), OpError> {
        self.refuse_codes()?;
        self.check_kind_and_rank(rank, kind)
    }

    fn check_kind_and_rank(&self, rank: usize, kind: ElementKind) -> Result<(), OpError> {
        if self.kind() != kind {
            return Err(OpError::new(format!("expected a {kind:?} tensor, got {}", self.dtype)));
        }
        if self.burn_rank() != rank {
            return Err(OpError::new(format!("expected rank {rank}, got shape {:?}", self.shape)));
        }
        Ok(())
    }

    /// The same elements in a new ONNX shape with the same element count.
    ///
    /// Goes through a rank-1 tensor so that the source and target ranks are dispatched one after the
    /// other (2 x 8 instances instead of 8 x 8); on flex a reshape of a contiguous tensor only
    /// changes its layout, and a strided one is copied once, as any reshape would.
    pub(crate) fn reshape(self, shape: &[usize]) -> Result<Value, OpError> {
        let count: usize = shape.iter().product();
        if count != self.element_count() {
            return Err(OpError::new(format!("cannot reshape {:?} to {:?}", self.shape, shape)));
        }
        check_rank(shape.len())?;
        if shape == self.shape.as_slice() {
            return Ok(self);
        }
        let target = burn_shape(shape);
        let Value { tensor, dtype, shape: source } = self;
        let tensor = *tensor;
        let source_rank = source.len().max(1);
        let bridge = match held_dtype(dtype).map(|(_, kind)| kind) {
            Some(ElementKind::Float) => reshape_kind::<Float>(tensor, source_rank, &target),
            Some(ElementKind::Int) => reshape_kind::<Int>(tensor, source_rank, &target),
            Some(ElementKind::Bool) => reshape_kind::<Bool>(tensor, source_rank, &target),
            None => unreachable!("value of dtype {dtype} has no burn kind"),
        };
        Ok(Value::held(bridge, dtype, shape.to_vec()))
    }

    /// The shape with leading 1s up to `rank`, as ONNX's multidirectional broadcasting aligns shapes.
    pub(crate) fn unsqueeze_to(self, rank: usize) -> Result<Value, OpError> {
        if self.rank() >= rank {
            return Ok(self);
        }
        let mut shape = vec![1; rank - self.rank()];
        shape.extend_from_slice(&self.shape);
        self.reshape(&shape)
    }
}

/// The public API of values, for callers that train through [`crate::Session::forward`]: errors
/// are the crate's [`RuntimeError`].
impl Value {
    /// Uploads a host tensor to `device`, keeping its dtype.
    pub fn upload(tensor: &whittle_ir::Tensor, device: &Device) -> Result<Value, RuntimeError> {
        Value::from_ir(tensor, device).map_err(|err| RuntimeError::BadValue { value: tensor.name.clone(), reason: err.reason })
    }

    /// Downloads the value into a host tensor called `name`.
    pub fn download(&self, name: &str) -> Result<whittle_ir::Tensor, RuntimeError> {
        self.to_ir(name).map_err(|err| RuntimeError::BadValue { value: name.to_string(), reason: err.reason })
    }

    /// The value as a burn float tensor of rank `D` (1 for a scalar); fails for other kinds and ranks.
    pub fn into_float<const D: usize>(self) -> Result<Tensor<D, Float>, RuntimeError> {
        self.float::<D>().map_err(RuntimeError::value)
    }

    /// A burn float tensor as a value of ONNX dtype `dtype`, which must be the tensor's own.
    pub fn from_float_tensor<const D: usize>(tensor: Tensor<D, Float>, dtype: DataType) -> Result<Value, RuntimeError> {
        Value::from_float(tensor, dtype).map_err(RuntimeError::value)
    }

    /// The value on `device` (a feed made on another device than the session's).
    pub fn on_device(self, device: &Device) -> Result<Value, RuntimeError> {
        self.moved_to(device).map_err(RuntimeError::value)
    }

    /// The float value as a leaf of the autodiff tape whose gradient a backward pass keeps
    /// ([`Value::grad`]); the value must live on an autodiff device.
    pub fn with_grad(self) -> Result<Value, RuntimeError> {
        self.require_grad().map_err(RuntimeError::value)
    }

    /// The gradient `grads` holds for this value, a leaf made by [`Value::with_grad`] (a
    /// session's parameter); `None` when the backward pass did not reach it.
    #[cfg(feature = "autodiff")]
    pub fn grad(&self, grads: &burn_tensor::Gradients) -> Option<Value> {
        self.grad_of(grads)
    }
}

/// The tensor with its bridge kind set from its dtype.
///
/// burn-tensor 0.22.1 tags some results with the wrong bridge kind: integer `equal`,
/// `not_equal`, `equal_elem`, `not_equal_elem` and `greater` return bool data tagged as int, and a
/// bool tensor's `cast` to an int dtype returns int data tagged as bool (`bridge/ops/int.rs`,
/// `bool_cast_to_int_impl` in `tensor/api/cast.rs`). Ops on the typed tensor still work, but
/// `Tensor::from_bridge` checks the tag and panics when the value is read back; going through the
/// dispatch tensor re-tags it by dtype, at no cost.
fn retag<const D: usize, K: burn_tensor::kind::Basic>(tensor: Tensor<D, K>) -> Tensor<D, K> {
    Tensor::from_dispatch(tensor.into_dispatch())
}

/// Our kind for burn's kind tag.
fn element_kind(kind: burn_tensor::kind::Kind) -> ElementKind {
    match kind {
        burn_tensor::kind::Kind::Float => ElementKind::Float,
        burn_tensor::kind::Kind::Int => ElementKind::Int,
        burn_tensor::kind::Kind::Bool => ElementKind::Bool,
    }
}

fn reshape_kind<K: burn_tensor::kind::Basic>(tensor: BridgeTensor, source_rank: usize, target: &[usize]) -> BridgeTensor {
    let count: usize = target.iter().product();
    if count == 0 {
        // burn's reshape reads a 0 in the target as "keep this axis's size" (ONNX's allowzero=0
        // rule) and indexes the source shape with it, which panics or picks a wrong size when the
        // ranks differ. An empty tensor has no elements to keep, so a new one of the target shape
        // is the same value.
        let (device, dtype) = with_rank!(source_rank, S => {
            let typed = Tensor::<S, K>::from_bridge(tensor);
            (typed.device(), typed.dtype())
        });
        return with_rank!(target.len(), D => {
            let mut dims = [0usize; D];
            dims.copy_from_slice(target);
            Tensor::<D, K>::empty(dims, (&device, dtype)).into_bridge()
        });
    }
    let flat: Tensor<1, K> = with_rank!(source_rank, S => Tensor::<S, K>::from_bridge(tensor).reshape([count]));
    with_rank!(target.len(), D => {
        let mut dims = [0usize; D];
        dims.copy_from_slice(target);
        flat.reshape(dims).into_bridge()
    })
}

/// The burn shape for an ONNX shape: the same, or `[1]` for a scalar.
fn burn_shape(shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    }
}

/// The first line and the innermost cause of a burn execution error.
///
/// A failed GPU run reports a chain of `Caused by:` lines, backtrace notes and one line per kernel
/// it skipped after the failure (vgg19 on lavapipe: 23 lines, to say that a 411 MB buffer could not
/// be allocated); a message needs the first and the last cause.
fn first_and_last_cause(text: &str) -> String {
    let causes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !matches!(*line, "Caused by:" | "Asked at:" | "Backtrace:" | "No backtrace available")
                && !line.starts_with("skipped ")
        })
        .collect();
    match causes.as_slice() {
        [] => text.to_string(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

/// Fails when `device` cannot hold the burn dtype `burn` (of ONNX dtype `dtype`), or holds it but
/// computes in it wrongly (f64 on wgpu, see `device::computes_f64`). Without the check burn
/// panics, or a cast into the dtype gives zeros (bf16 on wgpu).
fn check_device_dtype(burn: DType, dtype: DataType, device: &Device) -> Result<(), OpError> {
    if !device.supports_dtype(burn) || (burn == DType::F64 && !crate::device::computes_f64(device)) {
        return Err(OpError::new(format!(
            "dtype {dtype} is not supported by device {}{}",
            crate::device::device_name(device),
            if burn == DType::F64 { " (its f64 exp, log and sin give wrong results; run f64 models on cpu)" } else { "" }
        )));
    }
    Ok(())
}

fn check_rank(rank: usize) -> Result<(), OpError> {
    if rank > MAX_RANK {
        return Err(OpError::new(format!("rank {rank} is above the {MAX_RANK} this runtime supports")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn int64_and_scalars_survive_a_round_trip() {
        let host = whittle_ir::Tensor::from_i64("x", vec![], &[-(1 << 40)]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        assert_eq!(value.shape(), &[] as &[usize]);
        assert_eq!(value.burn_rank(), 1);
        assert_eq!(value.to_ir("x").unwrap(), host);
        assert_eq!(value.to_i64_vec().unwrap(), vec![-(1 << 40)]);
    }

    #[test]
    fn every_burn_dtype_round_trips_its_bytes() {
        for &dtype in DataType::ALL {
            if burn_dtype(dtype).is_none() || !device().supports_dtype(burn_dtype(dtype).unwrap().0) {
                continue;
            }
            let width = dtype.bit_width().unwrap() / 8;
            // Bytes 0..n are a valid pattern for every type here except bool (0/1 only) and
            // floats, where small byte values are subnormals that a backend might flush; use 1s.
            let bytes: Vec<u8> = match dtype {
                DataType::Bool => vec![0, 1, 1, 0, 1, 0],
                _ if dtype.is_float() => (0..6 * width).map(|i| if i % width == width - 1 { 0x3c } else { 0 }).collect(),
                _ => (0..6 * width).map(|i| i as u8).collect(),
            };
            let host = whittle_ir::Tensor::from_bytes("t", dtype, vec![2, 3], bytes).unwrap();
            let value = Value::from_ir(&host, &device()).unwrap();
            assert_eq!(value.to_ir("t").unwrap(), host, "{dtype}");
        }
    }

    #[test]
    fn code_types_round_trip_their_packed_bytes() {
        use DataType::*;
        // Five elements: 4-bit types fill two and a half bytes, 2-bit ones one and a quarter; the
        // unused high bits of the last byte are zero, as ONNX writes them.
        let cases: [(DataType, &[u8]); 10] = [
            (F8E4M3FN, &[0x00, 0x7f, 0x80, 0xfe, 0x38]),
            (F8E4M3FNUZ, &[0x00, 0x80, 0x7f, 0xff, 0x01]),
            (F8E5M2, &[0x7c, 0xfc, 0x7e, 0x3c, 0x01]),
            (F8E5M2FNUZ, &[0x80, 0x7f, 0xff, 0x00, 0x40]),
            (F8E8M0, &[0x00, 0x7f, 0xfe, 0xff, 0x80]),
            (F4E2M1, &[0xf1, 0x8e, 0x07]),
            (I4, &[0x8f, 0x70, 0x01]),
            (U4, &[0xff, 0x10, 0x0a]),
            (I2, &[0b1110_0100, 0b10]),
            (U2, &[0b0001_1011, 0b11]),
        ];
        for (dtype, bytes) in cases {
            let host = whittle_ir::Tensor::from_bytes("t", dtype, vec![5], bytes.to_vec()).unwrap();
            let value = Value::from_ir(&host, &device()).unwrap();
            assert_eq!(value.kind(), ElementKind::Int, "{dtype}");
            assert_eq!(value.to_ir("t").unwrap(), host, "{dtype}");
            let moved = value.reshape(&[5, 1]).unwrap().reshape(&[5]).unwrap();
            assert_eq!(moved.to_ir("t").unwrap(), host, "{dtype} after reshapes");
        }
        // Storage is one element per byte, signed types sign-extended.
        let host = whittle_ir::Tensor::from_bytes("t", I4, vec![3], vec![0x8f, 0x07]).unwrap();
        let codes = Value::from_ir(&host, &device()).unwrap().codes::<1>().unwrap();
        assert_eq!(codes.into_data().try_to_vec::<i8>().unwrap(), vec![-1, -8, 7]);
    }

    #[test]
    fn code_types_are_refused_where_elements_are_read_as_numbers() {
        let host = whittle_ir::Tensor::from_bytes("t", DataType::F8E4M3FN, vec![2], vec![0x38, 0x40]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        let expected = "f8e4m3fn elements are stored as codes, which only data-movement ops, Cast, CastLike, QuantizeLinear and DequantizeLinear take";
        assert_eq!(value.clone().int::<1>().unwrap_err().reason, expected);
        assert_eq!(value.to_i64_vec().unwrap_err().reason, expected);
        assert_eq!(value.to_f64_vec().unwrap_err().reason, expected);
        // Data movement sees the storage.
        assert_eq!(value.clone().typed::<1, Int>().unwrap().dims(), [2]);
        // A tensor of another storage dtype cannot be labelled as codes.
        let numbers = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), (&device(), DType::I64));
        assert!(Value::from_int(numbers, DataType::F8E4M3FN).is_err());
    }

    #[test]
    fn execution_errors_keep_their_first_line_and_innermost_cause() {
        // The shape of cubecl's report for vgg19 on lavapipe, shortened.
        let text = "An error happened during execution\nCaused by:\n  Several failures at once\nCaused by:\n  \
                    The bytes were never written\n  skipped `KernelBinop`: it needed memory 39785\nCaused by:\n  \
                    can't allocate buffer of size: 411041792\nNo backtrace available\nAsked at:\nNo backtrace available";
        assert_eq!(first_and_last_cause(text), "An error happened during execution: can't allocate buffer of size: 411041792");
        assert_eq!(first_and_last_cause("one line"), "one line");
    }

    #[test]
    fn reshape_keeps_elements_in_row_major_order() {
        let host = whittle_ir::Tensor::from_f32("x", vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        let reshaped = value.clone().reshape(&[3, 1, 2]).unwrap();
        assert_eq!(reshaped.shape(), &[3, 1, 2]);
        assert_eq!(reshaped.to_f32_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(value.reshape(&[4]).is_err());
    }

    #[test]
    fn empty_values_reshape_to_any_empty_shape_keeping_their_dtype() {
        // burn's reshape reads a target size of 0 as "keep the source axis", which panicked with an
        // index out of bounds when the source had fewer axes (node/test_reshape_allowzero_reordered).
        let host = whittle_ir::Tensor::from_i64("x", vec![0, 3, 4], &[]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        for target in [&[3, 4, 0][..], &[0], &[2, 0, 1, 5], &[12, 0]] {
            let reshaped = value.clone().reshape(target).unwrap();
            assert_eq!(reshaped.shape(), target);
            let back = reshaped.to_ir("x").unwrap();
            assert_eq!(back.dtype, DataType::I64);
            assert_eq!(back.dims, target.iter().map(|&dim| dim as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn typed_access_checks_kind_and_rank() {
        let host = whittle_ir::Tensor::from_f32("x", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        assert!(value.clone().float::<3>().is_err());
        assert!(value.clone().int::<2>().is_err());
        assert_eq!(value.float::<2>().unwrap().dims(), [2, 2]);
    }

    #[test]
    fn flex_storage_is_shared_not_copied() {
        // The property hot kernels rely on: taking the backend tensor out of a value twice gives
        // the same memory, so a kernel can read weights in place on every call.
        let host = whittle_ir::Tensor::from_f32("w", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let value = Value::from_ir(&host, &device()).unwrap();
        let first = value.clone().float::<2>().unwrap().try_into_primitive::<burn_flex::Flex>().unwrap();
        let second = value.float::<2>().unwrap().try_into_primitive::<burn_flex::Flex>().unwrap();
        assert_eq!(first.bytes().as_ptr(), second.bytes().as_ptr());
        assert_eq!(first.as_slice::<f32>(), Some(&[1.0f32, 2.0, 3.0, 4.0][..]));
    }
}
