//! u8/i8 x u8/i8 -> i32 matrix products on rten-gemm's int8 GEMM, with constant operands packed
//! once at plan time: the kernel behind `quant::integer_matmul` on burn-flex.
//!
//! rten-gemm has one integer GEMM, u8 (A, left) x i8 (B, right) -> i32, with per-row zero points of
//! A and per-column ones of B applied through row and column sums. It picks its micro-kernel for
//! the CPU once: AVX-512 with VNNI (`vpdpbusd`, exact i32 accumulation), AVX-512 or AVX2 without
//! VNNI (`vpmaddubsw`, whose pairwise i16 sums saturate), ARM dot / i8mm / mlal, or a portable
//! generic one. ONNX's integer products must be exact in int32, so a kernel that
//! [`may_saturate`](GemmExecutor::may_saturate) is not used: [`executor`] is `None` there and
//! `integer_matmul` keeps its exact burn path.
//!
//! The other dtype pairs reach the same kernel exactly: an i8 left operand becomes u8 by adding
//! 128 to it and to its zero point, a u8 right operand becomes i8 by subtracting 128 from both
//! (`x ^ 0x80` on the byte either way), which leaves every difference `x - zero_point`, and so the
//! product, unchanged.
//!
//! Measured on this machine's AVX512-VNNI core (criterion, `kernel/matmul_integer` in
//! `benches/kernels.rs`): see that bench's header.

use std::borrow::Cow;
use std::sync::OnceLock;

use burn_flex::{Flex, FlexTensor};
use burn_tensor::{Int, Tensor, TensorData};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix, QuantParams};
use rten_tensor::Matrix;
use whittle_ir::DataType;

use crate::kernels::gemm::Packed;
use crate::ops::{fail, OpError};
use crate::value::{with_rank, Value};

/// rten-gemm's u8 x i8 -> i32 executor, or `None` when its kernel for this CPU may saturate (AVX2
/// or AVX-512 without VNNI) and so would not be exact. Made once, leaked and shared like the f32
/// one (`kernels::gemm::executor`): packed matrices are valid only for the kernel that packed them.
pub(crate) fn executor() -> Option<&'static GemmExecutor<u8, i8, i32>> {
    static EXECUTOR: OnceLock<Option<&'static GemmExecutor<u8, i8, i32>>> = OnceLock::new();
    *EXECUTOR.get_or_init(|| {
        let executor = GemmExecutor::<u8, i8, i32>::default();
        (!executor.may_saturate()).then(|| &*Box::leak(Box::new(executor)))
    })
}

/// Whether an integer dtype is signed (i8) rather than unsigned (u8); other dtypes are `None`.
pub(crate) fn signed(dtype: DataType) -> Option<bool> {
    match dtype {
        DataType::U8 => Some(false),
        DataType::I8 => Some(true),
        _ => None,
    }
}

/// The left operand's bytes as the kernel's u8: as they are for u8, shifted by 128 for i8.
pub(crate) fn lhs_bytes(bytes: &[u8], signed: bool) -> Cow<'_, [u8]> {
    if signed {
        Cow::Owned(bytes.iter().map(|&byte| byte ^ 0x80).collect())
    } else {
        Cow::Borrowed(bytes)
    }
}

/// The right operand's bytes as the kernel's i8: reinterpreted for i8, shifted by 128 for u8.
pub(crate) fn rhs_bytes(bytes: &[u8], signed: bool) -> Vec<i8> {
    let flip = if signed { 0 } else { 0x80 };
    bytes.iter().map(|&byte| (byte ^ flip) as i8).collect()
}

/// Zero points of the left operand in the kernel's u8 (see [`lhs_bytes`]), from their values.
pub(crate) fn lhs_zero(values: &[i64], signed: bool) -> Vec<u8> {
    values.iter().map(|&value| (value + if signed { 128 } else { 0 }) as u8).collect()
}

/// Zero points of the right operand in the kernel's i8 (see [`rhs_bytes`]), from their values.
pub(crate) fn rhs_zero(values: &[i64], signed: bool) -> Vec<i8> {
    values.iter().map(|&value| (value - if signed { 0 } else { 128 }) as i8).collect()
}

/// The bytes of a u8 or i8 value on flex in row-major order, in place (flex's `Arc` over its memory;
/// copied once only when the value is a strided view).
pub(crate) struct FlexBytes {
    tensor: FlexTensor,
    range: (usize, usize),
}

impl std::ops::Deref for FlexBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.tensor.bytes()[self.range.0..self.range.1]
    }
}

/// [`FlexBytes`] of a u8 or i8 value, with whether it is signed; `None` for other dtypes and devices.
pub(crate) fn flex_bytes(value: &Value) -> Option<(FlexBytes, bool)> {
    let signed = signed(value.dtype())?;
    let tensor: FlexTensor =
        with_rank!(value.burn_rank(), D => value.clone().int::<D>().ok()?.try_into_primitive::<Flex>().ok())?;
    let tensor = if tensor.layout().contiguous_offsets().is_some() { tensor } else { tensor.to_contiguous() };
    let range = tensor.layout().contiguous_offsets()?;
    Some((FlexBytes { tensor, range }, signed))
}

/// A kernel's i32 output buffer as a value of `shape` on flex, without copying it.
pub(crate) fn output(values: Vec<i32>, shape: &[usize]) -> Result<Value, OpError> {
    if values.len() != shape.iter().product::<usize>() || shape.is_empty() || shape.len() > crate::MAX_RANK {
        fail!("kernel output of {} values does not fit shape {shape:?}", values.len());
    }
    let tensor = FlexTensor::from_data(TensorData::new(values, shape.to_vec()));
    with_rank!(shape.len(), D => Value::from_int(Tensor::<D, Int>::from_primitive::<Flex>(tensor), DataType::I32))
}

/// A constant right operand `[k, n]` packed at plan time (MatMulInteger's B), with its dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConstantIntRhs {
    pub k: usize,
    pub n: usize,
    pub signed: bool,
    pub packed: Packed<PackedBMatrix<i8>>,
}

impl ConstantIntRhs {
    /// Packs the u8 or i8 matrix `tensor`; `None` for other dtypes and ranks, without a kernel, or
    /// off flex (the op then packs nothing and runs as before).
    pub fn pack(tensor: &whittle_ir::Tensor) -> Option<ConstantIntRhs> {
        let executor = executor()?;
        let signed = signed(tensor.dtype)?;
        let [k, n] = constant_dims(tensor)?[..] else { return None };
        let bytes = tensor.bytes()?;
        if bytes.len() != k * n {
            return None;
        }
        let values = rhs_bytes(bytes, signed);
        let packed = Packed::new(executor.prepack_b(Matrix::from_data([k, n], values.as_slice())));
        Some(ConstantIntRhs { k, n, signed, packed })
    }
}

fn constant_dims(tensor: &whittle_ir::Tensor) -> Option<Vec<usize>> {
    tensor.dims.iter().map(|&dim| usize::try_from(dim).ok()).collect()
}

/// A right operand of [`gemm`]: `[k, n]` of the kernel's i8, or a packing.
#[derive(Clone, Copy)]
pub(crate) enum Rhs<'a> {
    Matrix(&'a [i8]),
    Packed(&'a PackedBMatrix<i8>),
}

/// `out = (a - a_zero[row]) @ (b - b_zero[column])` in i32, `out` `[m, n]` and `a` `[m, k]` row-major;
/// the zero points have one value per row of `a` and per column of `b` (or are `None`: zero).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    executor: &GemmExecutor<u8, i8, i32>,
    out: &mut [i32],
    a: &[u8],
    a_zero: Option<&[u8]>,
    b: Rhs<'_>,
    b_zero: Option<&[i8]>,
    [m, k, n]: [usize; 3],
) -> Result<(), OpError> {
    // rten's `Matrix::from_data` panics on a short buffer: sizes are checked here.
    let a_len = a.len();
    let b_len = match b {
        Rhs::Matrix(values) => values.len(),
        Rhs::Packed(_) => k * n,
    };
    if a_len != m * k || b_len != k * n || out.len() != m * n {
        fail!("int8 gemm kernel: operands of {a_len} and {b_len} values and an output of {} do not fit {m}x{k}x{n}", out.len());
    }
    let b_values = match b {
        Rhs::Matrix(values) => Some(values),
        Rhs::Packed(_) => None,
    };
    let a_rows = a;
    let a = GemmInputA::Unpacked(Matrix::from_data([m, k], a_rows));
    let b = match b {
        Rhs::Matrix(values) => GemmInputB::Unpacked(Matrix::from_data([k, n], values)),
        Rhs::Packed(packed) => GemmInputB::Packed(packed),
    };
    if [b.rows(), b.cols()] != [k, n] {
        fail!("int8 gemm kernel: packed operand [{}, {}] does not fit {m}x{k}x{n}", b.rows(), b.cols());
    }
    // rten reads zero points only for the operands it packs itself: `prepack_b` takes none and the
    // packing stores zeros. A packed B's zero points are applied here instead, from A's row sums:
    // `sum((a - za) * (b - zb)) = sum((a - za) * b) - zb * sum(a - za)`, in wrapping i32 like the
    // product itself (found by this file's tests: without it a packed B's zero points were lost).
    let a_quant = a_zero.map(|zero_point| QuantParams { zero_point });
    let (b_quant, b_correction) = match (b_values, b_zero) {
        (Some(_), Some(zero_point)) => (Some(QuantParams { zero_point }), None),
        (None, Some(zero_point)) => (None, Some(zero_point)),
        (_, None) => (None, None),
    };
    let options = GemmOptions { a_quant, b_quant, ..GemmOptions::default() };
    executor.gemm(out, a, b, options).map_err(|err| OpError::new(format!("int8 gemm kernel: {err}")))?;
    if let Some(b_zero) = b_correction {
        for (i, out_row) in out.chunks_exact_mut(n).enumerate() {
            let centered = row_sum(&a_rows[i * k..(i + 1) * k], a_zero.map_or(0, |zero| zero[i]));
            for (value, &zero) in out_row.iter_mut().zip(b_zero) {
                *value = value.wrapping_sub(i32::from(zero).wrapping_mul(centered));
            }
        }
    }
    Ok(())
}

/// `sum(row - zero)` in wrapping i32.
fn row_sum(row: &[u8], zero: u8) -> i32 {
    let sum = row.iter().fold(0i32, |sum, &value| sum.wrapping_add(i32::from(value)));
    sum.wrapping_sub((row.len() as i32).wrapping_mul(i32::from(zero)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(a - za[row]) @ (b - zb[col])` in i64 over values, not bytes.
    fn reference(a: &[i64], za: &[i64], b: &[i64], zb: &[i64], [m, k, n]: [usize; 3]) -> Vec<i32> {
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let sum: i64 = (0..k).map(|p| (a[i * k + p] - za[i]) * (b[p * n + j] - zb[j])).sum();
                out.push(sum as i32);
            }
        }
        out
    }

    fn bytes(values: &[i64]) -> Vec<u8> {
        values.iter().map(|&value| value as u8).collect()
    }

    #[test]
    fn every_dtype_pair_is_exact_packed_or_not() {
        let Some(executor) = executor() else { return };
        // Extreme values: 255 * -128 products in every position, which a saturating kernel gets wrong;
        // K = 300 spans depth blocks, M = 1 takes the gemv path, 17 columns leave a tile tail.
        for (m, k, n) in [(1, 300, 17), (5, 64, 33), (9, 3, 1)] {
            for (a_signed, b_signed) in [(false, true), (true, true), (false, false), (true, false)] {
                let range = |signed: bool, i: usize| if signed { [-128, 127, -1, 5][i % 4] } else { [255, 0, 254, 7][i % 4] };
                let a: Vec<i64> = (0..m * k).map(|i| range(a_signed, i / 3 + i)).collect();
                let b: Vec<i64> = (0..k * n).map(|i| range(b_signed, i + i / 5)).collect();
                let za: Vec<i64> = (0..m).map(|i| range(a_signed, i + 1)).collect();
                let zb: Vec<i64> = (0..n).map(|j| range(b_signed, j + 2)).collect();
                let expected = reference(&a, &za, &b, &zb, [m, k, n]);
                let a_rows = lhs_bytes(&bytes(&a), a_signed).into_owned();
                let b_matrix = rhs_bytes(&bytes(&b), b_signed);
                let (a_zero, b_zero) = (lhs_zero(&za, a_signed), rhs_zero(&zb, b_signed));
                let packed_b = executor.prepack_b(Matrix::from_data([k, n], b_matrix.as_slice()));
                for (case, rhs) in [("unpacked", Rhs::Matrix(&b_matrix)), ("packed b", Rhs::Packed(&packed_b))] {
                    let mut out = vec![i32::MIN; m * n];
                    gemm(executor, &mut out, &a_rows, Some(&a_zero), rhs, Some(&b_zero), [m, k, n]).unwrap();
                    assert_eq!(out, expected, "{case} {m}x{k}x{n}, a signed {a_signed}, b signed {b_signed}");
                }
            }
        }
    }

    #[test]
    fn constants_pack_only_integer_matrices() {
        if executor().is_none() {
            return;
        }
        let b = whittle_ir::Tensor::from_bytes("b", DataType::I8, vec![2, 3], bytes(&[1, -2, 3, -4, 5, -6])).unwrap();
        let packed = ConstantIntRhs::pack(&b).unwrap();
        assert_eq!((packed.k, packed.n, packed.signed), (2, 3, true));
        let f = whittle_ir::Tensor::from_f32("f", vec![2, 3], &[0.0; 6]).unwrap();
        assert!(ConstantIntRhs::pack(&f).is_none());
        let v = whittle_ir::Tensor::from_bytes("v", DataType::I8, vec![6], bytes(&[1, -2, 3, -4, 5, -6])).unwrap();
        assert!(ConstantIntRhs::pack(&v).is_none());
    }

    #[test]
    fn mismatched_operands_are_an_error_not_a_panic() {
        let Some(executor) = executor() else { return };
        let mut out = vec![0; 4];
        let err = gemm(executor, &mut out, &[0; 6], None, Rhs::Matrix(&[0; 6]), None, [2, 3, 3]).unwrap_err();
        assert_eq!(err.reason, "int8 gemm kernel: operands of 6 and 6 values and an output of 4 do not fit 2x3x3");
        let packed_b = executor.prepack_b(Matrix::from_data([2, 3], [0i8; 6].as_slice()));
        let mut out = vec![0; 6];
        let err = gemm(executor, &mut out, &[0; 6], None, Rhs::Packed(&packed_b), None, [2, 3, 3]).unwrap_err();
        assert_eq!(err.reason, "int8 gemm kernel: packed operand [2, 3] does not fit 2x3x3");
    }
}
