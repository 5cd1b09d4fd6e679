//! whittle's own f32 CPU kernels for the ops where burn-flex is slow: GEMM with weights packed once
//! ([`gemm`]) and 2-D convolution lowered to it ([`conv`]), with the bias and an activation applied
//! in the kernel's output loop ([`Activation`]); inference BatchNormalization and MaxPool
//! ([`elementwise`]), whose per-call cost on burn-flex dominated the small CNN fixture.
//!
//! They run only where they apply: on burn-flex, on f32 values (see [`flex_f32`]); every other
//! device and dtype (ndarray, wgpu, f16, f64, and autodiff later, whose tensors are not flex's own)
//! keeps burn's op, so each op still works everywhere. The GEMM is rten-gemm's: safe to call, with
//! pre-packed A and B inputs, a virtual im2col input and bias vectors, and it runs on rayon's current
//! pool, which `whittle-eval`'s `with_threads` sets, as burn-flex's own kernels do.
//!
//! Why: burn-flex's conv2d measured 98-140 GFLOP/s on 3x3 convolutions against ONNX Runtime's ~270,
//! and on the 8x8 images of `digits_cnn` a Conv call took 10 us (batch 1) to 45 us (batch 8) where
//! ORT runs the whole model in 9 us and 21 us.
//!
//! Invariants: a kernel reads its inputs in place (flex's `Arc` over the bytes, no copy, unless a
//! strided view has to be made contiguous) and writes one new buffer, which becomes the output
//! value without another copy. Kernel results match burn's to f32 rounding (both accumulate in f32,
//! in a different order).

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod int8;

use burn_flex::{Flex, FlexTensor};
use burn_tensor::{Float, Tensor, TensorData};
use whittle_ir::DataType;

use crate::ops::{fail, OpError};
use crate::value::{with_rank, Value};

/// An elementwise activation run inside a kernel's output loop, fused there from the node that
/// followed the kernel's op (see [`crate::fuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`; NaN stays NaN, as burn's relu keeps it.
    Relu,
}

impl Activation {
    /// Applies the activation to every element of `values`.
    pub(crate) fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Relu => {
                for value in values {
                    if *value <= 0.0 {
                        *value = 0.0;
                    }
                }
            }
        }
    }

    /// Applies the activation to a value with burn's ops, for the devices and dtypes the kernels do
    /// not cover.
    pub(crate) fn apply_burn(self, value: Value) -> Result<Value, OpError> {
        match self {
            Activation::Relu => crate::value::map_float!(value, t => burn_tensor::activation::relu(t)),
        }
    }
}

/// Applies `activation`, when there is one, with burn's ops.
pub(crate) fn activate_burn(value: Value, activation: Option<Activation>) -> Result<Value, OpError> {
    match activation {
        Some(activation) => activation.apply_burn(value),
        None => Ok(value),
    }
}

/// burn-flex's own tensor behind an f32 value, or `None` when the value is not f32 or lives on
/// another device (then the caller runs burn's op). Shares the value's memory: an `Arc` clone.
pub(crate) fn flex_f32(value: &Value) -> Option<FlexTensor> {
    if value.dtype() != DataType::F32 {
        return None;
    }
    with_rank!(value.burn_rank(), D => value.clone().float::<D>().ok()?.try_into_primitive::<Flex>().ok())
}

/// The elements of a flex f32 tensor in row-major order, as a slice: the tensor itself when it is
/// contiguous, else a contiguous copy made once.
#[derive(Debug)]
pub(crate) struct Contiguous(FlexTensor);

impl std::ops::Deref for Contiguous {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // `contiguous` only builds this from a contiguous f32 tensor, for which `as_slice` is `Some`.
        self.0.as_slice::<f32>().unwrap_or_default()
    }
}

/// `tensor`'s elements in row-major order: in place when it is contiguous, copied once when it is a
/// strided view.
pub(crate) fn contiguous(tensor: &FlexTensor) -> Contiguous {
    if tensor.as_slice::<f32>().is_some() {
        Contiguous(tensor.clone())
    } else {
        Contiguous(tensor.to_contiguous())
    }
}

/// The f32 weights of an initializer, read at plan time for packing; `None` for other dtypes.
pub(crate) fn constant_f32(tensor: &whittle_ir::Tensor) -> Option<(Vec<f32>, Vec<usize>)> {
    if tensor.dtype != DataType::F32 {
        return None;
    }
    let bytes = tensor.bytes()?;
    let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let dims = tensor.dims.iter().map(|&dim| usize::try_from(dim).ok()).collect::<Option<Vec<_>>>()?;
    Some((values, dims))
}

/// A kernel's output buffer as an f32 value of `shape` on flex, without copying it.
pub(crate) fn output(values: Vec<f32>, shape: &[usize]) -> Result<Value, OpError> {
    if values.len() != shape.iter().product::<usize>() || shape.is_empty() || shape.len() > crate::MAX_RANK {
        fail!("kernel output of {} values does not fit shape {shape:?}", values.len());
    }
    let tensor = FlexTensor::from_data(TensorData::new(values, shape.to_vec()));
    with_rank!(shape.len(), D => Value::from_float(Tensor::<D, Float>::from_primitive::<Flex>(tensor), DataType::F32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_support::f32_value;

    #[test]
    fn flex_values_are_read_in_place_and_outputs_wrap_their_buffer() {
        let value = f32_value(&[2, 3], &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
        let tensor = flex_f32(&value).unwrap();
        assert_eq!(&*contiguous(&tensor), &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
        let mut values = contiguous(&tensor).to_vec();
        Activation::Relu.apply(&mut values);
        let out = output(values, &[3, 2]).unwrap();
        assert_eq!(out.shape(), &[3, 2]);
        assert_eq!(out.to_f32_vec().unwrap(), vec![1.0, 0.0, 3.0, 0.0, 5.0, 0.0]);
        assert!(output(vec![1.0], &[2]).is_err());
    }

    #[test]
    fn other_dtypes_are_left_to_burn() {
        let value = crate::ops::test_support::i64_value(&[2], &[1, 2]);
        assert!(flex_f32(&value).is_none());
    }

    #[test]
    fn strided_views_are_made_contiguous() {
        let value = f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let transposed = Value::from_float(value.float::<2>().unwrap().transpose(), DataType::F32).unwrap();
        let tensor = flex_f32(&transposed).unwrap();
        assert_eq!(&*contiguous(&tensor), &[1.0, 3.0, 2.0, 4.0]);
    }
}
