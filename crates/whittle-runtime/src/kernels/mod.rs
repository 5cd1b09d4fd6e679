//! whittle's own f32 CPU kernels for the ops where burn-flex is slow: GEMM with weights packed once
//! ([`gemm`]), products too small for its packing ([`small_gemm`]: attention's per-head ones), and
//! 2-D convolution lowered to it ([`conv`]) or, for small layers, computed directly
//! ([`direct_conv`]), with the bias and an activation applied
//! in the kernel's output loop ([`Activation`]); inference BatchNormalization and MaxPool
//! ([`elementwise`]), whose per-call cost on burn-flex dominated the small CNN fixture; and the
//! transformer's ops: vectorizing erf, exp and tanh with Erf and Gelu ([`activation`]), Softmax and
//! LayerNormalization rows ([`rows`]), broadcast arithmetic ([`binary`]) and fused Attention
//! ([`attention`]). Maps run in the input's own buffer when the value reaches them at its last use
//! ([`map_in_place`]), so a chain of elementwise steps allocates nothing.
//! Exact int8 products and convolutions for AVX2 CPUs without AVX512-VNNI: [`madd`].
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

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod direct_conv;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod int8;
pub(crate) mod madd;
pub(crate) mod rows;
pub(crate) mod small_gemm;
pub(crate) mod vnni;

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
                // An unconditional select, which vectorizes; the conditional store it replaced did
                // not, and took 13% of digits_cnn's run at batch 8 (perf). NaN fails `<= 0` and stays.
                for value in values {
                    *value = if *value <= 0.0 { 0.0 } else { *value };
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

/// A flex tensor's elements with their strides, the last axis contiguous: the tensor itself when its
/// strides allow (a transposed view of heads does), else a contiguous copy.
#[derive(Debug)]
pub(crate) struct Strided {
    tensor: FlexTensor,
    offset: usize,
    pub strides: Vec<usize>,
    pub dims: Vec<usize>,
}

impl Strided {
    pub(crate) fn new(tensor: FlexTensor) -> Strided {
        Strided::make(tensor, true)
    }

    /// The tensor itself for any non-negative strides, the last axis's too (a reader that gathers
    /// its elements, like `small_gemm`, needs no contiguous copy of attention's K^T); else a
    /// contiguous copy.
    pub(crate) fn with_any_strides(tensor: FlexTensor) -> Strided {
        Strided::make(tensor, false)
    }

    /// The view in place when its strides are non-negative and, if `unit_last_stride`, its last
    /// axis is contiguous; else a contiguous copy.
    fn make(tensor: FlexTensor, unit_last_stride: bool) -> Strided {
        let layout = tensor.layout();
        let dims = layout.shape().to_vec();
        let readable = !unit_last_stride || layout.strides().last().is_none_or(|&stride| stride == 1) || dims.last() == Some(&1);
        let strides: Option<Vec<usize>> = layout.strides().iter().map(|&stride| usize::try_from(stride).ok()).collect();
        match strides.filter(|_| readable) {
            Some(strides) => Strided { offset: layout.start_offset(), strides, dims, tensor },
            None => {
                let tensor = tensor.to_contiguous();
                let mut strides = vec![1; dims.len()];
                for axis in (0..dims.len().saturating_sub(1)).rev() {
                    strides[axis] = strides[axis + 1] * dims[axis + 1];
                }
                Strided { offset: tensor.layout().start_offset(), strides, dims, tensor }
            }
        }
    }

    /// The storage from the tensor's first element on.
    pub(crate) fn values(&self) -> &[f32] {
        &self.tensor.storage::<f32>()[self.offset..]
    }

    /// The bytes from the first element on, for bool tensors (one byte each).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.tensor.storage::<u8>()[self.offset..]
    }

    /// The stride of `axis` as broadcasting reads it: 0 on a size-1 axis.
    pub(crate) fn broadcast_stride(&self, axis: usize) -> usize {
        if self.dims[axis] == 1 {
            0
        } else {
            self.strides[axis]
        }
    }
}

/// `value` in `shape` as a view of the same memory, for a flex float value that is itself a strided
/// view (a Split output, a transpose) whose reshape needs no copy: splitting an axis (`[b, s, 64]`
/// of a `[b, s, 192]` buffer to `[b, s, 4, 16]`) or merging axes that are contiguous among
/// themselves. `None` when the value is contiguous (burn's reshape is already free), another
/// kind or device, empty, or when the new shape needs a copy.
///
/// burn-flex copies any non-contiguous tensor it reshapes: `transformer_tiny`'s Reshapes of Q, K
/// and V after Split cost 1.7 us each at batch 1, a copy the following Transpose and MatMul (which
/// read strides) do not need. The rule is numpy's (`_attempt_nocopy_reshape`).
pub(crate) fn reshape_view(value: &Value, shape: &[usize]) -> Option<Value> {
    if value.kind() != crate::value::ElementKind::Float || value.rank() == 0 || shape.is_empty() || shape.len() > crate::MAX_RANK
    {
        return None;
    }
    let tensor = with_rank!(value.burn_rank(), D => value.clone().float::<D>().ok()?.try_into_primitive::<Flex>().ok())?;
    let layout = tensor.layout();
    if layout.is_contiguous() || layout.num_elements() == 0 || shape.iter().product::<usize>() != layout.num_elements() {
        return None;
    }
    // Old axes of size 1 carry no stride information.
    let (old_dims, old_strides): (Vec<usize>, Vec<isize>) =
        layout.shape().iter().zip(layout.strides()).filter(|(&size, _)| size != 1).map(|(&size, &stride)| (size, stride)).unzip();
    let mut strides = vec![1isize; shape.len()];
    let (mut old, mut new) = (0, 0);
    while old < old_dims.len() && new < shape.len() {
        // The smallest groups of old axes [old, old_end) and new axes [new, new_end) of one size.
        let (mut old_end, mut new_end) = (old + 1, new + 1);
        let (mut old_size, mut new_size) = (old_dims[old], shape[new]);
        while old_size != new_size {
            if new_size < old_size {
                new_size *= *shape.get(new_end)?;
                new_end += 1;
            } else {
                old_size *= *old_dims.get(old_end)?;
                old_end += 1;
            }
        }
        // The old group must be one block of memory with the innermost stride...
        for axis in old..old_end - 1 {
            if old_strides[axis] != old_strides[axis + 1] * old_dims[axis + 1] as isize {
                return None;
            }
        }
        // ...which the new group lays out in row-major order.
        strides[new_end - 1] = old_strides[old_end - 1];
        for axis in (new + 1..new_end).rev() {
            strides[axis - 1] = strides[axis] * shape[axis] as isize;
        }
        (old, new) = (old_end, new_end);
    }
    let layout = burn_flex::Layout::new(burn_tensor::Shape::from(shape.to_vec()), strides, layout.start_offset());
    let view = FlexTensor::from_arc(tensor.data_arc(), layout, tensor.dtype());
    with_rank!(shape.len(), D => Value::from_float(Tensor::<D, Float>::from_primitive::<Flex>(view), value.dtype()).ok())
}

/// The images `x` `[N, C, H, W]` as planes `[N, C, H + top + bottom, W + left + right]` with
/// `fill` in the `padding` (`[(top, bottom), (left, right)]`) and `slack` more `fill` at the end,
/// each element through `map`. Shared by the f32 direct convolution and the int8 im2col, whose
/// inner loops then read windows without bounds logic of their own.
///
/// Rows are copied in fixed blocks of 4: a plain row copy is a `memmove` call, which on
/// digits_cnn's 4-wide rows cost more than the copy.
pub(crate) fn padded_planes<S: Copy, T: Copy>(
    x: &[S],
    [h, w]: [usize; 2],
    padding: [(usize, usize); 2],
    fill: T,
    slack: usize,
    map: impl Fn(S) -> T,
) -> Vec<T> {
    let (hp, wp) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1);
    let mut padded = vec![fill; x.len() / (h * w).max(1) * hp * wp + slack];
    for (plane, source) in padded.chunks_exact_mut(hp * wp).zip(x.chunks_exact(h * w)) {
        for (y, row) in source.chunks_exact(w).enumerate() {
            let start = (y + padding[0].0) * wp + padding[1].0;
            let mut targets = plane[start..start + w].chunks_exact_mut(4);
            let mut sources = row.chunks_exact(4);
            for (to, from) in (&mut targets).zip(&mut sources) {
                let block: [T; 4] = [map(from[0]), map(from[1]), map(from[2]), map(from[3])];
                to.copy_from_slice(&block);
            }
            for (to, &from) in targets.into_remainder().iter_mut().zip(sources.remainder()) {
                *to = map(from);
            }
        }
    }
    padded
}

/// Positions one register of 16 gathered output pixels may span in a padded plane: two registers.
pub(crate) const GATHER_SPAN: usize = 32;

/// Where a direct convolution reads each register of 16 output pixels (NCHW order) from a padded
/// plane whose rows are `pitch` apart: the position of the block's first pixel and, per lane, the
/// offset of that lane's pixel from it (below [`GATHER_SPAN`]; lanes past the last pixel read
/// offset 0 and are not stored), so that one two-register permute (`vpermt2ps`, `vpermt2d`) per
/// tap picks the block's inputs. `None` when a block spans more (wide images).
#[derive(Debug)]
pub(crate) struct Gather {
    pub starts: Vec<usize>,
    pub lanes: Vec<[i32; 16]>,
}

impl Gather {
    pub fn new([oh, ow]: [usize; 2], strides: [usize; 2], pitch: usize) -> Option<Gather> {
        let corners: Vec<usize> =
            (0..oh).flat_map(|oy| (0..ow).map(move |ox| oy * strides[0] * pitch + ox * strides[1])).collect();
        let mut starts = Vec::with_capacity(corners.len().div_ceil(16));
        let mut lanes = Vec::with_capacity(starts.capacity());
        for block in corners.chunks(16) {
            let start = block[0];
            if block[block.len() - 1] - start >= GATHER_SPAN {
                return None;
            }
            starts.push(start);
            lanes.push(std::array::from_fn(|lane| block.get(lane).map_or(0, |&corner| (corner - start) as i32)));
        }
        Some(Gather { starts, lanes })
    }
}

/// For a plane computed 16 positions at a time over rows `pitch` apart of which the first `width`
/// are real (`positions` in all): per register, the lanes that hold real values. A compress by
/// such a mask leaves the real values in row-major order (the direct convolutions' planes).
pub(crate) fn plane_masks(positions: usize, pitch: usize, width: usize) -> Vec<u16> {
    (0..positions)
        .step_by(16)
        .map(|start| {
            (0..16)
                .filter(|&lane| start + lane < positions && (start + lane) % pitch < width)
                .fold(0u16, |mask, lane| mask | 1 << lane)
        })
        .collect()
}

/// Stores the first `count` of `lanes` (a compressed register) at `plane[written..]`: the whole
/// register where it fits, since what follows is written next, else the `count` values alone.
/// Generic so that the int8 kernels store into outputs not yet written (`MaybeUninit<f32>`).
#[inline(always)]
pub(crate) fn store_compressed<T: Copy>(plane: &mut [T], written: usize, count: usize, lanes: [T; 16]) {
    match plane.get_mut(written..written + 16).and_then(|target| <&mut [T; 16]>::try_from(target).ok()) {
        Some(target) => *target = lanes,
        None => plane[written..written + count].iter_mut().zip(lanes).for_each(|(value, lane)| *value = lane),
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

/// A kernel's output buffer as an f32 value of `shape` on flex, without copying it. An empty
/// `shape` is an ONNX scalar (one value).
pub(crate) fn output(values: Vec<f32>, shape: &[usize]) -> Result<Value, OpError> {
    if values.len() != shape.iter().product::<usize>() || shape.len() > crate::MAX_RANK {
        fail!("kernel output of {} values does not fit shape {shape:?}", values.len());
    }
    let burn_shape = if shape.is_empty() { vec![1] } else { shape.to_vec() };
    wrap(FlexTensor::from_data(TensorData::new(values, burn_shape)), shape)
}

/// A flex f32 tensor (a kernel's output, or an input it overwrote in place) as the value of ONNX
/// shape `shape`; the tensor has `shape`'s element count.
pub(crate) fn wrap(tensor: FlexTensor, shape: &[usize]) -> Result<Value, OpError> {
    let rank = tensor.layout().num_dims();
    if rank == 0 || rank > crate::MAX_RANK || tensor.layout().num_elements() != shape.iter().product::<usize>() {
        fail!("kernel output {:?} does not fit shape {shape:?}", tensor.layout().shape());
    }
    let value = with_rank!(rank, D => Value::from_float(Tensor::<D, Float>::from_primitive::<Flex>(tensor), DataType::F32))?;
    value.reshape(shape)
}

/// Applies `map` to the elements of a flex f32 value, in its own buffer when nothing else holds it
/// (its last use), else in a copy; the value back (boxed) when it is not a flex f32 value.
pub(crate) fn map_in_place(value: Value, map: impl FnOnce(&mut [f32])) -> Result<Result<Value, OpError>, Box<Value>> {
    let Some(tensor) = flex_f32(&value) else { return Err(Box::new(value)) };
    let shape = value.shape().to_vec();
    // The value's own handle goes, so that the tensor is the buffer's only holder at a last use.
    drop(value);
    Ok(map_tensor_in_place(tensor, &shape, map))
}

/// Applies `map` to the elements of the flex f32 `tensor` of ONNX shape `shape`, in its buffer
/// when the tensor is the only holder of a contiguous one, else in a copy.
pub(crate) fn map_tensor_in_place(
    mut tensor: FlexTensor,
    shape: &[usize],
    map: impl FnOnce(&mut [f32]),
) -> Result<Value, OpError> {
    let count: usize = shape.iter().product();
    if tensor.layout().contiguous_offsets() == Some((0, count)) && tensor.is_unique() {
        if let Some(values) = tensor.try_storage_mut::<f32>().and_then(|values| values.get_mut(..count)) {
            map(values);
            return wrap(tensor, shape);
        }
    }
    let mut values = contiguous(&tensor).to_vec();
    map(&mut values);
    output(values, shape)
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
    fn strided_views_reshape_without_a_copy_where_their_strides_allow() {
        // x [2, 3, 6]; v = x[:, :, 1..5], a Split-like view of strides [18, 6, 1].
        let x: Vec<f32> = (0..36).map(|i| i as f32).collect();
        let base = f32_value(&[2, 3, 6], &x).float::<3>().unwrap();
        let view = Value::from_float(base.narrow(2, 1, 4), DataType::F32).unwrap();
        let expected: Vec<f32> = (0..24).map(|i| x[(i / 4) * 6 + 1 + i % 4]).collect();
        let source = flex_f32(&view).unwrap();
        for target in [&[2, 3, 2, 2][..], &[6, 4], &[1, 2, 3, 4, 1], &[2, 3, 4, 1]] {
            let reshaped = reshape_view(&view, target).unwrap_or_else(|| panic!("{target:?} is a view"));
            assert_eq!(reshaped.shape(), target);
            assert_eq!(reshaped.to_f32_vec().unwrap(), expected, "{target:?}");
            // The same memory, not a copy.
            assert_eq!(flex_f32(&reshaped).unwrap().bytes().as_ptr(), source.bytes().as_ptr());
        }
        // Merging the inner two axes would need stride 1 across rows of 6: a copy, left to burn.
        assert!(reshape_view(&view, &[2, 12]).is_none());
        assert!(reshape_view(&view, &[24]).is_none());
        // A contiguous value is burn's (already free) business.
        assert!(reshape_view(&f32_value(&[2, 2], &[1.0; 4]), &[4]).is_none());
    }

    #[test]
    fn strided_views_are_made_contiguous() {
        let value = f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let transposed = Value::from_float(value.float::<2>().unwrap().transpose(), DataType::F32).unwrap();
        let tensor = flex_f32(&transposed).unwrap();
        assert_eq!(&*contiguous(&tensor), &[1.0, 3.0, 2.0, 4.0]);
    }
}
