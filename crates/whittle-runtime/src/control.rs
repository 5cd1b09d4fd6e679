//! What If, Loop and Scan share: reading a condition or trip count, and the host-side slicing and
//! stacking of scan inputs and outputs.
//!
//! Slicing one index off an axis and stacking along a new axis are byte copies in row-major order
//! whatever the dtype, so they are done on host tensors (one download per scan input, one upload per
//! element and per scan output) instead of one burn kernel per kind and rank. Loop bodies are small;
//! the body's own ops stay on the device.

use burn_tensor::Device;
use whittle_ir::{DataType, Tensor, Type, TypeKind};

use crate::ops::{fail, OpError};
use crate::value::Value;

/// The single bool of a condition tensor (`If`'s `cond`, Loop's `cond` and `cond_out`).
pub(crate) fn condition(value: &Value, what: &str) -> Result<bool, OpError> {
    if value.dtype() != DataType::Bool || value.element_count() != 1 {
        fail!("{what} must be a bool tensor of one element, got {} of shape {:?}", value.dtype(), value.shape());
    }
    let host = value.to_ir(what)?;
    Ok(host.bytes().is_some_and(|bytes| bytes[0] != 0))
}

/// The single integer of a scalar tensor (Loop's `M`).
pub(crate) fn scalar_int(value: &Value, what: &str) -> Result<i64, OpError> {
    let values = value.to_i64_vec()?;
    match values.as_slice() {
        [single] => Ok(*single),
        _ => fail!("{what} must hold one integer, got shape {:?}", value.shape()),
    }
}

/// A scalar tensor on `device`.
pub(crate) fn scalar(device: &Device, dtype: DataType, bytes: Vec<u8>) -> Result<Value, OpError> {
    let host = Tensor::from_bytes("scalar", dtype, vec![], bytes).map_err(|err| OpError::new(err.to_string()))?;
    Value::from_ir(&host, device)
}

fn element_bytes(dtype: DataType) -> Result<usize, OpError> {
    match dtype.bit_width() {
        Some(bits) if bits % 8 == 0 => Ok(bits / 8),
        _ => fail!("dtype {dtype} cannot be sliced or stacked"),
    }
}

/// Index `index` of `axis` of `tensor`: a tensor of one rank less.
pub(crate) fn slice_axis(tensor: &Tensor, axis: usize, index: usize) -> Result<Tensor, OpError> {
    let width = element_bytes(tensor.dtype)?;
    let Some(bytes) = tensor.bytes() else { fail!("string tensors cannot be sliced") };
    let dims: Vec<usize> = tensor.dims.iter().map(|&dim| dim as usize).collect();
    if axis >= dims.len() || index >= dims[axis] {
        fail!("index {index} of axis {axis} is out of range for shape {:?}", tensor.dims);
    }
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product::<usize>() * width;
    let mut out = Vec::with_capacity(outer * inner);
    for block in 0..outer {
        let start = (block * dims[axis] + index) * inner;
        out.extend_from_slice(&bytes[start..start + inner]);
    }
    let mut sliced_dims = tensor.dims.clone();
    sliced_dims.remove(axis);
    Tensor::from_bytes(tensor.name.clone(), tensor.dtype, sliced_dims, out).map_err(|err| OpError::new(err.to_string()))
}

/// `parts` (of one dtype and shape) stacked along a new axis `axis`.
pub(crate) fn stack_axis(parts: &[Tensor], axis: usize, what: &str) -> Result<Tensor, OpError> {
    let Some(first) = parts.first() else { fail!("{what}: nothing to stack") };
    if let Some(other) = parts.iter().find(|part| part.dtype != first.dtype || part.dims != first.dims) {
        fail!("{what}: iterations produced different types, {}{:?} and {}{:?}", first.dtype, first.dims, other.dtype, other.dims);
    }
    if axis > first.dims.len() {
        fail!("{what}: axis {axis} is out of range for rank {}", first.dims.len() + 1);
    }
    let width = element_bytes(first.dtype)?;
    let dims: Vec<usize> = first.dims.iter().map(|&dim| dim as usize).collect();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis..].iter().product::<usize>() * width;
    let mut out = Vec::with_capacity(outer * inner * parts.len());
    for block in 0..outer {
        for part in parts {
            let Some(bytes) = part.bytes() else { fail!("{what}: string tensors cannot be stacked") };
            out.extend_from_slice(&bytes[block * inner..(block + 1) * inner]);
        }
    }
    let mut stacked_dims = first.dims.clone();
    stacked_dims.insert(axis, parts.len() as i64);
    Tensor::from_bytes(what, first.dtype, stacked_dims, out).map_err(|err| OpError::new(err.to_string()))
}

/// The per-iteration values of a scan output stacked along `axis` (reversed first when `reverse`),
/// on `device`. With no iterations the element shape comes from the body's declared output type,
/// which must then be fully known.
pub(crate) fn stack_scan_output(
    values: Vec<Value>,
    axis: usize,
    reverse: bool,
    declared: Option<&Type>,
    device: &Device,
    what: &str,
) -> Result<Value, OpError> {
    if values.is_empty() {
        let known = match declared.map(|ty| &ty.kind) {
            Some(TypeKind::Tensor { elem, shape: Some(shape) }) => {
                shape.0.iter().map(|dim| dim.size()).collect::<Option<Vec<i64>>>().map(|dims| (*elem, dims))
            }
            _ => None,
        };
        let Some((dtype, mut dims)) = known else {
            fail!("{what}: no iteration ran, and the body does not declare the element shape of an empty result")
        };
        if axis > dims.len() {
            fail!("{what}: axis {axis} is out of range for rank {}", dims.len() + 1);
        }
        dims.insert(axis, 0);
        let empty = Tensor::from_bytes(what, dtype, dims, Vec::new()).map_err(|err| OpError::new(err.to_string()))?;
        return Value::from_ir(&empty, device);
    }
    let mut parts = values.iter().map(|value| value.to_ir(what)).collect::<Result<Vec<_>, _>>()?;
    if reverse {
        parts.reverse();
    }
    Value::from_ir(&stack_axis(&parts, axis, what)?, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_and_stacking_invert_each_other_on_every_axis() {
        // [[1, 2, 3], [4, 5, 6]]
        let tensor = Tensor::from_i64("t", vec![2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        let column = slice_axis(&tensor, 1, 2).unwrap();
        assert_eq!(column, Tensor::from_i64("t", vec![2], &[3, 6]).unwrap());
        let row = slice_axis(&tensor, 0, 1).unwrap();
        assert_eq!(row, Tensor::from_i64("t", vec![3], &[4, 5, 6]).unwrap());
        for axis in 0..2 {
            let parts: Vec<Tensor> = (0..tensor.dims[axis] as usize).map(|i| slice_axis(&tensor, axis, i).unwrap()).collect();
            let stacked = stack_axis(&parts, axis, "t").unwrap();
            assert_eq!(stacked, tensor, "axis {axis}");
        }
        assert!(slice_axis(&tensor, 1, 3).is_err());
    }

    #[test]
    fn stacking_refuses_parts_of_different_shapes() {
        let a = Tensor::from_i64("a", vec![2], &[1, 2]).unwrap();
        let b = Tensor::from_i64("b", vec![3], &[1, 2, 3]).unwrap();
        let err = stack_axis(&[a, b], 0, "scan").unwrap_err();
        assert!(err.reason.contains("different types"), "{}", err.reason);
    }
}
