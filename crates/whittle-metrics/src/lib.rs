//! How far one model's outputs are from another's: element-wise closeness for conformance tests,
//! fidelity (max abs error, cosine similarity, top-1 agreement) and task accuracy for reports.
//!
//! Everything is computed in f64 from `whittle_ir::Tensor`s, so the numbers do not depend on the
//! runtime or device that produced the outputs.

mod fidelity;

pub use fidelity::{accuracy, argmax_rows, Fidelity, FidelityAccumulator};

use whittle_ir::{DataType, Tensor, TensorData};

/// What keeps two tensors from being compared or from being close.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    #[error("output '{output}': expected {expected}, got {actual}")]
    DtypeMismatch { output: String, expected: DataType, actual: DataType },
    #[error("output '{output}': expected shape {expected:?}, got {actual:?}")]
    ShapeMismatch { output: String, expected: Vec<i64>, actual: Vec<i64> },
    #[error("output '{output}': {dtype} values cannot be compared")]
    Unsupported { output: String, dtype: DataType },
    #[error(
        "output '{output}': element {index} is {actual}, expected {expected} (|diff| {diff:e} > atol {atol:e} + rtol {rtol:e} * |expected|); {mismatches} of {count} elements differ"
    )]
    NotClose {
        output: String,
        index: usize,
        expected: f64,
        actual: f64,
        diff: f64,
        atol: f64,
        rtol: f64,
        mismatches: usize,
        count: usize,
    },
    #[error("output '{output}': strings differ at element {index}")]
    StringsDiffer { output: String, index: usize },
    #[error("{what}: {count} predictions for {labels} labels")]
    LabelCount { what: String, count: usize, labels: usize },
}

/// The elements of a numeric tensor as f64 (bool as 0/1); `None` for strings and types without a
/// defined conversion (complex, 4-bit, 8-bit floats).
pub fn to_f64(tensor: &Tensor) -> Option<Vec<f64>> {
    let TensorData::Bytes(bytes) = &tensor.data else { return None };
    macro_rules! read {
        ($ty:ty, $convert:expr) => {
            bytes
                .chunks_exact(std::mem::size_of::<$ty>())
                .map(|chunk| chunk.try_into().ok().map(|array| $convert(<$ty>::from_le_bytes(array))))
                .collect()
        };
    }
    match tensor.dtype {
        DataType::F32 => read!(f32, f64::from),
        DataType::F64 => read!(f64, |v| v),
        DataType::F16 => read!(u16, |bits| half::f16::from_bits(bits).to_f64()),
        DataType::BF16 => read!(u16, |bits| half::bf16::from_bits(bits).to_f64()),
        DataType::I8 => read!(i8, f64::from),
        DataType::U8 => read!(u8, f64::from),
        DataType::Bool => read!(u8, |v| if v == 0 { 0.0 } else { 1.0 }),
        DataType::I16 => read!(i16, f64::from),
        DataType::U16 => read!(u16, f64::from),
        DataType::I32 => read!(i32, f64::from),
        DataType::U32 => read!(u32, f64::from),
        // Wide integers beyond 2^53 lose precision; exact comparison of those goes through bytes.
        DataType::I64 => read!(i64, |v| v as f64),
        DataType::U64 => read!(u64, |v| v as f64),
        _ => None,
    }
}

/// Checks `actual` against `expected` as `numpy.testing.assert_allclose` does:
/// `|actual - expected| <= atol + rtol * |expected|` element-wise, NaN equal to NaN. Integer, bool
/// and string tensors must match exactly.
pub fn assert_close(output: &str, expected: &Tensor, actual: &Tensor, rtol: f64, atol: f64) -> Result<(), MetricsError> {
    if expected.dtype != actual.dtype {
        return Err(MetricsError::DtypeMismatch { output: output.into(), expected: expected.dtype, actual: actual.dtype });
    }
    if expected.dims != actual.dims {
        return Err(MetricsError::ShapeMismatch {
            output: output.into(),
            expected: expected.dims.clone(),
            actual: actual.dims.clone(),
        });
    }
    if let (TensorData::Strings(a), TensorData::Strings(b)) = (&expected.data, &actual.data) {
        return match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(index) => Err(MetricsError::StringsDiffer { output: output.into(), index }),
            None => Ok(()),
        };
    }
    let exact = !expected.dtype.is_float();
    if exact && expected.data == actual.data {
        return Ok(());
    }
    let (Some(want), Some(got)) = (to_f64(expected), to_f64(actual)) else {
        if expected.data == actual.data {
            return Ok(());
        }
        return Err(MetricsError::Unsupported { output: output.into(), dtype: expected.dtype });
    };
    let (rtol, atol) = if exact { (0.0, 0.0) } else { (rtol, atol) };
    let mut first = None;
    let mut mismatches = 0;
    for (index, (&e, &a)) in want.iter().zip(&got).enumerate() {
        let close = if e.is_nan() || a.is_nan() {
            e.is_nan() && a.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            e == a
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        if !close {
            mismatches += 1;
            first.get_or_insert((index, e, a));
        }
    }
    match first {
        None => Ok(()),
        Some((index, expected, actual)) => Err(MetricsError::NotClose {
            output: output.into(),
            index,
            expected,
            actual,
            diff: (actual - expected).abs(),
            atol,
            rtol,
            mismatches,
            count: want.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(values: &[f32]) -> Tensor {
        Tensor::from_f32("t", vec![values.len() as i64], values).unwrap()
    }

    #[test]
    fn closeness_follows_numpy_allclose() {
        // |1.0011 - 1.0| = 1.1e-3 > 1e-7 + 1e-3 * 1.0, while |1.0009 - 1.0| = 9e-4 is within.
        assert!(assert_close("y", &f32s(&[1.0, f32::NAN]), &f32s(&[1.0009, f32::NAN]), 1e-3, 1e-7).is_ok());
        let err = assert_close("y", &f32s(&[1.0, 2.0]), &f32s(&[1.0011, 2.0]), 1e-3, 1e-7).unwrap_err();
        assert!(matches!(err, MetricsError::NotClose { index: 0, mismatches: 1, count: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("output 'y': element 0 is 1.0010999"), "{err}");
        assert!(assert_close("y", &f32s(&[f32::INFINITY]), &f32s(&[f32::INFINITY]), 0.0, 0.0).is_ok());
        assert!(assert_close("y", &f32s(&[f32::INFINITY]), &f32s(&[f32::NEG_INFINITY]), 1.0, 1.0).is_err());
        assert!(assert_close("y", &f32s(&[1.0]), &f32s(&[f32::NAN]), 1.0, 1.0).is_err());
    }

    #[test]
    fn integers_must_match_exactly_and_types_and_shapes_must_agree() {
        let a = Tensor::from_i64("i", vec![2], &[1, 2]).unwrap();
        let b = Tensor::from_i64("i", vec![2], &[1, 3]).unwrap();
        assert!(matches!(assert_close("i", &a, &b, 1.0, 1.0), Err(MetricsError::NotClose { index: 1, .. })));
        assert!(matches!(assert_close("i", &a, &f32s(&[1.0, 2.0]), 1.0, 1.0), Err(MetricsError::DtypeMismatch { .. })));
        let reshaped = Tensor::from_i64("i", vec![1, 2], &[1, 2]).unwrap();
        assert!(matches!(assert_close("i", &a, &reshaped, 1.0, 1.0), Err(MetricsError::ShapeMismatch { .. })));
    }

    #[test]
    fn half_precision_widens_exactly() {
        let bits = [half::f16::from_f32(0.333_251_95).to_bits(), half::f16::from_f32(-2.0).to_bits()];
        let bytes = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let tensor = Tensor::from_bytes("h", DataType::F16, vec![2], bytes).unwrap();
        assert_eq!(to_f64(&tensor), Some(vec![0.333_251_953_125, -2.0]));
    }
}
