//! Constant tensors (initializers, attribute values) stored as packed little-endian bytes.

use std::fmt;
use std::sync::Arc;

use crate::{DataType, IrError, Metadata};

/// The elements of a tensor.
///
/// Numbers are kept in one canonical form whatever field the file used: packed little-endian bytes,
/// sub-byte types two (or four) to a byte, low bits first. One form means one equality, one hash and
/// one way to read them. The bytes sit behind an `Arc` because graph passes clone graphs and the
/// weights are most of a model's size.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TensorData {
    Bytes(Arc<[u8]>),
    Strings(Vec<Vec<u8>>),
}

impl fmt::Debug for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorData::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            TensorData::Strings(strings) => write!(f, "Strings({} strings)", strings.len()),
        }
    }
}

/// A constant tensor: an initializer, or the value of a tensor attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tensor {
    pub name: String,
    pub dtype: DataType,
    pub dims: Vec<i64>,
    pub data: TensorData,
    pub doc_string: String,
    pub metadata_props: Metadata,
    /// `(begin, end)` of a tensor stored in chunks; kept as given.
    pub segment: Option<(i64, i64)>,
}

impl Tensor {
    /// A tensor over packed bytes; checks that their count matches the shape.
    pub fn from_bytes(name: impl Into<String>, dtype: DataType, dims: Vec<i64>, bytes: Vec<u8>) -> Result<Tensor, IrError> {
        let name = name.into();
        let tensor = Tensor {
            name,
            dtype,
            dims,
            data: TensorData::Bytes(bytes.into()),
            doc_string: String::new(),
            metadata_props: Vec::new(),
            segment: None,
        };
        tensor.check_data_size()?;
        Ok(tensor)
    }

    /// A float32 tensor.
    pub fn from_f32(name: impl Into<String>, dims: Vec<i64>, values: &[f32]) -> Result<Tensor, IrError> {
        let bytes = values.iter().flat_map(|value| value.to_le_bytes()).collect();
        Tensor::from_bytes(name, DataType::F32, dims, bytes)
    }

    /// An int64 tensor.
    pub fn from_i64(name: impl Into<String>, dims: Vec<i64>, values: &[i64]) -> Result<Tensor, IrError> {
        let bytes = values.iter().flat_map(|value| value.to_le_bytes()).collect();
        Tensor::from_bytes(name, DataType::I64, dims, bytes)
    }

    /// Number of elements the dims describe; `None` when a dim is negative or the product overflows.
    pub fn element_count(&self) -> Option<usize> {
        element_count(&self.dims)
    }

    /// Bytes of element storage (for strings, the sum of their lengths).
    pub fn byte_len(&self) -> usize {
        match &self.data {
            TensorData::Bytes(bytes) => bytes.len(),
            TensorData::Strings(strings) => strings.iter().map(Vec::len).sum(),
        }
    }

    /// The packed bytes, or `None` for a string tensor.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            TensorData::Bytes(bytes) => Some(bytes),
            TensorData::Strings(_) => None,
        }
    }

    /// The elements widened to f32, for the float and integer types that hold whole bytes.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        let bytes = self.bytes()?;
        let values = match self.dtype {
            DataType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DataType::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
            DataType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DataType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DataType::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
            DataType::U8 | DataType::Bool => bytes.iter().map(|&b| b as f32).collect(),
            DataType::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
            DataType::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
            _ => return None,
        };
        Some(values)
    }

    /// Checks that the stored data matches dtype and dims.
    pub fn check_data_size(&self) -> Result<(), IrError> {
        let elements = self.element_count().ok_or_else(|| IrError::BadTensor {
            tensor: self.name.clone(),
            reason: format!("dims {:?} do not describe a valid element count", self.dims),
        })?;
        match &self.data {
            TensorData::Strings(strings) => {
                if self.dtype != DataType::String {
                    return Err(IrError::BadTensor {
                        tensor: self.name.clone(),
                        reason: format!("{} tensor holds strings", self.dtype),
                    });
                }
                if strings.len() != elements {
                    return Err(IrError::BadTensor {
                        tensor: self.name.clone(),
                        reason: format!("dims {:?} need {elements} strings, found {}", self.dims, strings.len()),
                    });
                }
            }
            TensorData::Bytes(bytes) => {
                // Types whose size this build does not know are kept as given.
                if let Some(expected) = self.dtype.storage_bytes(elements) {
                    if bytes.len() != expected {
                        return Err(IrError::BadTensor {
                            tensor: self.name.clone(),
                            reason: format!("{} dims {:?} need {expected} bytes, found {}", self.dtype, self.dims, bytes.len()),
                        });
                    }
                } else if self.dtype == DataType::String {
                    return Err(IrError::BadTensor { tensor: self.name.clone(), reason: "string tensor holds bytes".into() });
                }
            }
        }
        Ok(())
    }
}

/// Number of elements of a shape of fixed sizes; `None` when a size is negative or the product overflows.
pub fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &dim| usize::try_from(dim).ok().and_then(|dim| acc.checked_mul(dim)))
}

/// A sparse tensor in ONNX's coordinate form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SparseTensor {
    pub values: Tensor,
    pub indices: Tensor,
    pub dims: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_size_is_checked_against_dims() {
        assert!(Tensor::from_f32("w", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]).is_ok());
        let err = Tensor::from_f32("w", vec![2, 3], &[1.0, 2.0]).unwrap_err();
        assert_eq!(err.to_string(), "tensor 'w': f32 dims [2, 3] need 24 bytes, found 8");
        let err = Tensor::from_bytes("q", DataType::I4, vec![3], vec![0x21]).unwrap_err();
        assert_eq!(err.to_string(), "tensor 'q': i4 dims [3] need 2 bytes, found 1");
    }

    #[test]
    fn negative_dims_are_rejected() {
        let err = Tensor::from_f32("w", vec![-1], &[]).unwrap_err();
        assert!(err.to_string().contains("do not describe a valid element count"), "{err}");
    }

    #[test]
    fn widening_reads_little_endian_values() {
        let t = Tensor::from_i64("shape", vec![2], &[-3, 7]).unwrap();
        assert_eq!(t.to_f32_vec(), Some(vec![-3.0, 7.0]));
    }
}
