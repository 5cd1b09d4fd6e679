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
use crate::kernels::{vnni, Activation};
use crate::ops::{fail, OpError};
use crate::spatial::Window2d;
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
    /// The same matrix for [`gemv`], for matrices of at most [`PAIRED_LIMIT`] values.
    pub paired: Option<Packed<PairedColumns>>,
}

impl ConstantIntRhs {
    /// Packs the u8 or i8 matrix `tensor`; `None` for other dtypes and ranks, without a kernel, or
    /// off flex (the op then packs nothing and runs as before).
    pub fn pack(tensor: &whittle_ir::Tensor) -> Option<ConstantIntRhs> {
        let signed = signed(tensor.dtype)?;
        let [k, n] = constant_dims(tensor)?[..] else { return None };
        ConstantIntRhs::pack_bytes(tensor.bytes()?, signed, k, n, false)
    }
}

impl ConstantIntRhs {
    /// Packs the u8 or i8 bytes of a `[k, n]` matrix, stored row-major as `[k, n]`, or as `[n, k]`
    /// when `transposed` (Gemm's transB, a convolution's `[filters, depth]` weights); `None` without
    /// an exact kernel or when the bytes do not fit.
    pub fn pack_bytes(bytes: &[u8], signed: bool, k: usize, n: usize, transposed: bool) -> Option<ConstantIntRhs> {
        let executor = executor()?;
        if bytes.len() != k * n || k * n == 0 {
            return None;
        }
        let values = rhs_bytes(bytes, signed);
        let values = if transposed { (0..k * n).map(|i| values[(i % n) * k + i / n]).collect() } else { values };
        let packed = Packed::new(executor.prepack_b(Matrix::from_data([k, n], values.as_slice())));
        let paired = (k * n <= PAIRED_LIMIT && gemv_available()).then(|| Packed::new(PairedColumns::new(&values, k, n)));
        Some(ConstantIntRhs { k, n, signed, packed, paired })
    }
}

fn constant_dims(tensor: &whittle_ir::Tensor) -> Option<Vec<usize>> {
    tensor.dims.iter().map(|&dim| usize::try_from(dim).ok()).collect()
}

/// A right operand of [`gemm`]: `[k, n]` of the kernel's i8, or a constant packed at plan time
/// (with [`gemv`]'s layout too where it has one, which the product takes for few rows).
#[derive(Clone, Copy)]
pub(crate) enum Rhs<'a> {
    Matrix(&'a [i8]),
    Constant(&'a ConstantIntRhs),
}

/// Rows up to which a product with a constant right operand runs [`gemv`] rather than rten's GEMM
/// (for weights that `kernels::vnni` does not take, with nonzero zero points; x86 with AVX2 only),
/// whose micro-kernel computes 8 rows by 32 columns whatever the rows are. Measured on this
/// machine (one thread, ns a product, rten's packed B against `gemv`): 1x64x128 612 vs 201,
/// 1x128x64 590 vs 221, 1x64x10 282 vs 72, 1x784x512 22400 vs 11100, 2x64x128 740 vs 406, and
/// 4x64x128 975 vs 860, where the two meet.
pub(crate) const GEMV_ROWS: usize = 2;

/// Constants of at most this many values also keep [`gemv`]'s layout, 2 bytes a value: 2 MiB at
/// most per matrix, on layers small enough that rten's fixed costs weigh.
pub(crate) const PAIRED_LIMIT: usize = 1 << 20;

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
        Rhs::Constant(_) => k * n,
    };
    if a_len != m * k || b_len != k * n || out.len() != m * n {
        fail!("int8 gemm kernel: operands of {a_len} and {b_len} values and an output of {} do not fit {m}x{k}x{n}", out.len());
    }
    let b_values = match b {
        Rhs::Matrix(values) => Some(values),
        Rhs::Constant(_) => None,
    };
    let a_rows = a;
    let paired = match b {
        Rhs::Constant(constant) if m <= GEMV_ROWS => constant.paired.as_ref().map(Packed::get),
        _ => None,
    };
    let b = match b {
        Rhs::Matrix(values) => GemmInputB::Unpacked(Matrix::from_data([k, n], values)),
        Rhs::Constant(constant) => GemmInputB::Packed(constant.packed.get()),
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
    match paired {
        Some(paired) => {
            for (row, (out_row, a_row)) in out.chunks_exact_mut(n).zip(a_rows.chunks_exact(k)).enumerate() {
                gemv(out_row, a_row, a_zero.map_or(0, |zero| zero[row]), paired);
            }
        }
        None => {
            let options = GemmOptions { a_quant, b_quant, ..GemmOptions::default() };
            let a = GemmInputA::Unpacked(Matrix::from_data([m, k], a_rows));
            executor.gemm(out, a, b, options).map_err(|err| OpError::new(format!("int8 gemm kernel: {err}")))?;
        }
    }
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

/// Whether [`gemv`] has its AVX2 loop here; elsewhere (ARM's dot-product kernels) rten's GEMM
/// serves every product, its speed there unmeasured against the portable loop.
fn gemv_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        pulp::x86::V3::try_new().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Columns per group of [`PairedColumns`]: four AVX2 registers of eight i32 sums.
const GROUP: usize = 32;

/// A `[k, n]` matrix of the kernel's i8 laid out for [`gemv`]: groups of 32 columns, and in each,
/// for every pair of rows `(2q, 2q + 1)`, the 32 columns' two values side by side as i16
/// (`[column][2]`), zeros past `k` and `n`. One `vpmaddwd` of such 16 values with an activation
/// pair broadcast to every lane gives eight columns' `a[2q] * b[2q][j] + a[2q+1] * b[2q+1][j]`,
/// exact in i32.
#[derive(Debug)]
pub(crate) struct PairedColumns {
    groups: Vec<[[i16; 16]; 4]>,
    pairs: usize,
    n: usize,
}

impl PairedColumns {
    fn new(values: &[i8], k: usize, n: usize) -> PairedColumns {
        let pairs = k.div_ceil(2);
        let mut groups = vec![[[0i16; 16]; 4]; n.div_ceil(GROUP) * pairs];
        for (p, row) in values.chunks_exact(n).enumerate() {
            for (j, &value) in row.iter().enumerate() {
                let (group, lane) = (j / GROUP, j % GROUP);
                groups[group * pairs + p / 2][lane / 8][(lane % 8) * 2 + p % 2] = i16::from(value);
            }
        }
        PairedColumns { groups, pairs, n }
    }
}

/// `out[j] = sum((a[p] - a_zero) * b[p][j])` over the `k` values of the row `a` (the kernel's u8)
/// in wrapping i32, for a constant `b` laid out by [`PairedColumns`]. `a - a_zero` and `b` lie in
/// [-255, 255] and [-128, 127], so each pair sum of `vpmaddwd` is exact.
pub(crate) fn gemv(out: &mut [i32], a: &[u8], a_zero: u8, b: &PairedColumns) {
    debug_assert_eq!(out.len(), b.n);
    let zero = i32::from(a_zero);
    // The centered pair `(a[2q] - zero, a[2q + 1] - zero)` as the two i16 halves of one i32.
    let pair = |q: usize| {
        let low = i32::from(a[2 * q]) - zero;
        let high = a.get(2 * q + 1).map_or(0, |&value| i32::from(value) - zero);
        (low & 0xffff) | (high << 16)
    };
    let pairs: Vec<i32> = (0..b.pairs).map(pair).collect();
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| gemv_avx2(simd, out, &pairs, b));
    }
    gemv_portable(out, &pairs, b);
}

/// [`gemv`]'s loop on any CPU, the same sums as [`gemv_avx2`].
fn gemv_portable(out: &mut [i32], pairs: &[i32], b: &PairedColumns) {
    for (group, columns) in b.groups.chunks_exact(b.pairs).zip(out.chunks_mut(GROUP)) {
        let mut sums = [0i32; GROUP];
        for (&pair, values) in pairs.iter().zip(group) {
            let (low, high) = (i32::from(pair as i16), pair >> 16);
            for (lane, sum) in sums.iter_mut().enumerate() {
                let [first, second] = [values[lane / 8][(lane % 8) * 2], values[lane / 8][(lane % 8) * 2 + 1]];
                *sum = sum.wrapping_add(low * i32::from(first) + high * i32::from(second));
            }
        }
        columns.copy_from_slice(&sums[..columns.len()]);
    }
}

/// [`gemv`]'s loop with AVX2: per group, four registers of sums, one broadcast pair and four
/// `vpmaddwd` per pair of rows.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn gemv_avx2(simd: pulp::x86::V3, out: &mut [i32], pairs: &[i32], b: &PairedColumns) {
    use std::arch::x86_64::__m256i;
    for (group, columns) in b.groups.chunks_exact(b.pairs).zip(out.chunks_mut(GROUP)) {
        let mut sums = [simd.avx._mm256_setzero_si256(); 4];
        for (&pair, values) in pairs.iter().zip(group) {
            let pair = simd.avx._mm256_set1_epi32(pair);
            for (sum, &values) in sums.iter_mut().zip(values) {
                let values: __m256i = pulp::cast(values);
                *sum = simd.avx2._mm256_add_epi32(*sum, simd.avx2._mm256_madd_epi16(pair, values));
            }
        }
        let sums: [i32; GROUP] = pulp::cast(sums);
        columns.copy_from_slice(&sums[..columns.len()]);
    }
}

/// `sum(row - zero)` in wrapping i32.
fn row_sum(row: &[u8], zero: u8) -> i32 {
    let sum = row.iter().fold(0i32, |sum, &value| sum.wrapping_add(i32::from(value)));
    sum.wrapping_sub((row.len() as i32).wrapping_mul(i32::from(zero)))
}

/// `1.5 * 2^23`: adding and subtracting it rounds an f32 of magnitude below 2^22 to an integer,
/// half to even (the default rounding mode), in two vectorizable additions. `f32::round_ties_even`
/// is a libm call on the x86-64 baseline this crate builds for (no SSE4.1 `roundps`), and the
/// saturating `f32 as u8` a branchy conversion: the loop with them ran scalar, about 2.5 ns per
/// element, 21% of the int8-static transformer fixture's run at batch 8 (perf).
const ROUNDING_SHIFT: f32 = 12_582_912.0;

/// `2^23`: an integral f32 in `[0, 2^23)` plus this has the integer in its low mantissa bits.
const INTEGER_BITS: f32 = 8_388_608.0;

/// `2^22`: quotients are clamped to `[-2^22, 2^22]` before rounding, where [`ROUNDING_SHIFT`] is
/// exact; every quantized range lies far inside it, so the clamp changes no saturated result.
const ROUNDING_LIMIT: f32 = 4_194_304.0;

/// `saturate(round(value / scale) + zero_point)` for one f32 value, as QuantizeLinear and
/// DynamicQuantizeLinear define it (division in f32, round half to even, the zero point added in f32
/// after rounding, clamped to `[low, high]`), shifted by `offset` (128 for i8, 0 for u8) into the
/// kernel's u8. Branch-free so that the loop over a tensor vectorizes. NaN comes out as `low`
/// (`f32::max` returns the number).
#[inline(always)]
fn quantize_one(value: f32, scale: f32, zero_point: f32, [low, high]: [f32; 2], offset: f32) -> u8 {
    let quotient = (value / scale).clamp(-ROUNDING_LIMIT, ROUNDING_LIMIT);
    let rounded = (quotient + ROUNDING_SHIFT) - ROUNDING_SHIFT;
    let level = (rounded + zero_point).max(low).min(high) + offset;
    // `level` is an integer in [0, 255]: its bits after adding 2^23 hold it, no conversion needed.
    (level + INTEGER_BITS).to_bits() as u8
}

/// How f32 activations are quantized for the kernel: one scale and zero point (per tensor) and the
/// type the ONNX graph quantizes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ActivationQuant {
    pub scale: f32,
    /// The zero point's value in the quantized type (`-128..=127` for i8, `0..=255` for u8).
    pub zero_point: i32,
    pub signed: bool,
}

impl ActivationQuant {
    /// The quantized values of `values` in the kernel's u8 (i8 shifted by 128, see [`lhs_bytes`]).
    ///
    /// Compiled for every instruction set pulp dispatches to: on the baseline (SSE2) the loop ran 4
    /// lanes with a division each, 17% of the int8-static transformer fixture's run at batch 8
    /// (perf); the operations are the same IEEE ones on every path, so the bytes are too.
    ///
    /// On AVX-512F, [`vnni::quantize`] gives the same bytes by multiplying by the reciprocal of the
    /// scale, dividing again only the blocks of 16 where a product lies near a rounding boundary:
    /// `vdivps` on 16 lanes bound this loop on Intel's cores. Elsewhere the loop divides (on AVX2,
    /// 8 lanes divide in about 5 cycles).
    pub fn quantize(&self, values: &[f32]) -> Vec<u8> {
        if let Some(bytes) = vnni::quantize(values, self.scale, self.kernel_zero()) {
            return bytes;
        }
        self.quantize_by_division(values)
    }

    /// [`ActivationQuant::quantize`] by division, the definition.
    fn quantize_by_division(&self, values: &[f32]) -> Vec<u8> {
        struct Quantize<'a>(&'a ActivationQuant, &'a [f32]);
        impl pulp::WithSimd for Quantize<'_> {
            type Output = Vec<u8>;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<u8> {
                let Quantize(quant, values) = self;
                let (range, offset) = if quant.signed { ([-128.0, 127.0], 128.0) } else { ([0.0, 255.0], 0.0) };
                let zero_point = quant.zero_point as f32;
                // Collected, not written over a zero-filled buffer: the fill was a tenth of this
                // step.
                values.iter().map(|&value| quantize_one(value, quant.scale, zero_point, range, offset)).collect()
            }
        }
        pulp::Arch::new().dispatch(Quantize(self, values))
    }

    /// The zero point in the kernel's u8.
    pub fn kernel_zero(&self) -> u8 {
        (self.zero_point + if self.signed { 128 } else { 0 }) as u8
    }

    /// DynamicQuantizeLinear's parameters for data whose extremes are `min` and `max`: the range
    /// `[min(0, min), max(0, max)]` onto `[0, 255]`, all in f32. An all-zero range gets the scale
    /// `1 / 255`, as in the ONNX reference implementation.
    pub fn dynamic(min: f32, max: f32) -> ActivationQuant {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = if max == min { 1.0 } else { max - min } / 255.0;
        let zero_point = (0.0 - min / scale).clamp(0.0, 255.0).round_ties_even();
        ActivationQuant { scale, zero_point: zero_point as i32, signed: false }
    }

    /// [`ActivationQuant::dynamic`] over `values`; `None` when one is NaN (the op's general path
    /// defines that range).
    pub fn dynamic_over(values: &[f32]) -> Option<ActivationQuant> {
        struct Range<'a>(&'a [f32]);
        impl pulp::WithSimd for Range<'_> {
            type Output = Option<ActivationQuant>;
            // Compiled for each instruction set pulp dispatches to, like `quantize`.
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _simd: S) -> Option<ActivationQuant> {
                ActivationQuant::dynamic_over_loops(self.0)
            }
        }
        pulp::Arch::new().dispatch(Range(values))
    }

    /// [`ActivationQuant::dynamic_over`]'s loop, inlined into its per-instruction-set entry points.
    #[inline(always)]
    fn dynamic_over_loops(values: &[f32]) -> Option<ActivationQuant> {
        // Eight independent lanes of selects, which vectorize; a single `f32::min` chain over the
        // slice ran scalar (`maxss` with NaN checks, 10% of the int8-dynamic transformer fixture's
        // run at batch 8). The comparisons skip NaN, which is flagged on the side.
        const LANES: usize = 8;
        let (mut min, mut max, mut nan) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES], [0u32; LANES]);
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let value = chunk[lane];
                min[lane] = if value < min[lane] { value } else { min[lane] };
                max[lane] = if value > max[lane] { value } else { max[lane] };
                nan[lane] |= u32::from(value.is_nan());
            }
        }
        for (lane, &value) in rest.iter().enumerate() {
            min[lane] = if value < min[lane] { value } else { min[lane] };
            max[lane] = if value > max[lane] { value } else { max[lane] };
            nan[lane] |= u32::from(value.is_nan());
        }
        if nan.iter().any(|&flag| flag != 0) {
            return None;
        }
        let min = min.iter().fold(f32::INFINITY, |low, &value| low.min(value));
        let max = max.iter().fold(f32::NEG_INFINITY, |high, &value| high.max(value));
        Some(ActivationQuant::dynamic(min, max))
    }
}

/// A 2-D convolution's patches as the right operand `[C * kh * kw, N * OH * OW]` of
/// `W @ patches`, in the kernel's i8: row `(channel, ky, kx)` as the weights store it, column
/// `(image, oy, ox)`. `x` is the image `[N, C, H, W]` in the kernel's u8 (left-operand form, see
/// [`lhs_bytes`]); both forms differ by `^ 0x80`, applied once while the input is copied into a
/// zero-padded image. Taps in the padding read `pad` (the zero point, also in left-operand form), so
/// that they contribute `pad - pad = 0`.
///
/// With unit strides along x each output line of a row is `OW` consecutive bytes of the padded
/// image, copied as 8-byte words: a word may run past the line's end into the next line's place,
/// which is written after it (both buffers have a word of slack at the end). On digits_cnn's second
/// layer (4-wide lines) the per-line loop with its padding bounds took 40% of the int8-static run at
/// batch 8 (perf).
///
/// rten's virtual im2col operand (`GemmInputB::Im2Col`), which gathers the patches straight into
/// its packed layout, was slower still: its gather moves one byte at a time and pads each image's
/// columns to 32, so with one product per image the int8-static digits_cnn run took 22 us at batch
/// 1 and 79 us at batch 8 against 10.5 us and 32 us with this function (its packing was 54% of the
/// run; perf).
pub(crate) fn im2col_columns(
    x: &[u8],
    [n, c, h, w]: [usize; 4],
    [kh, kw]: [usize; 2],
    window: &Window2d,
    [oh, ow]: [usize; 2],
    pad: u8,
) -> Vec<i8> {
    const WORD: usize = 8;
    let Window2d { strides, dilations, padding, .. } = *window;
    let pad = (pad ^ 0x80) as i8;
    let (hp, wp) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1);
    let padded = crate::kernels::padded_planes(x, [h, w], padding, pad, WORD, |value| (value ^ 0x80) as i8);
    let (plane, columns, taps) = (oh * ow, n * oh * ow, kh * kw);
    let mut patches = vec![0i8; c * taps * columns + WORD];
    let words = ow.div_ceil(WORD);
    let mut at = 0;
    for channel in 0..c {
        for ky in 0..kh {
            for kx in 0..kw {
                for image in 0..n {
                    let source = &padded[(image * c + channel) * hp * wp..];
                    for oy in 0..oh {
                        let line = (oy * strides[0] + ky * dilations[0]) * wp + kx * dilations[1];
                        if strides[1] == 1 {
                            for word in 0..words {
                                let from = line + word * WORD;
                                let bytes: [i8; WORD] = source[from..from + WORD].try_into().unwrap_or([pad; WORD]);
                                patches[at + word * WORD..at + (word + 1) * WORD].copy_from_slice(&bytes);
                            }
                        } else {
                            for (ox, target) in patches[at..at + ow].iter_mut().enumerate() {
                                *target = source[line + ox * strides[1]];
                            }
                        }
                        at += ow;
                    }
                }
            }
        }
    }
    debug_assert_eq!(at, c * taps * plane * n);
    patches.truncate(c * taps * columns);
    patches
}

/// The layout of an integer product's accumulators, for [`dequantize`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProductLayout {
    /// `[rows, n]` with one multiplier and bias per column: `x @ W`.
    Columns { n: usize },
    /// `[filters, images * positions]` with one per row: `W @ patches`; the output is NCHW
    /// `[images, filters, positions]`.
    Filters { filters: usize, images: usize, positions: usize },
    /// `[images * positions, stride]` with one per column of the first `filters`: a direct
    /// convolution's sums per pixel; the output is NCHW `[images, filters, positions]`.
    Pixels { filters: usize, stride: usize, positions: usize },
}

/// The f32 epilogue of an integer product: `accumulator * multiplier[channel] + bias[channel]`,
/// then the activation, in the output's layout.
pub(crate) fn dequantize(
    accumulators: &[i32],
    layout: ProductLayout,
    multipliers: &[f32],
    bias: Option<&[f32]>,
    activation: Option<Activation>,
) -> Vec<f32> {
    struct Epilogue<'a> {
        accumulators: &'a [i32],
        layout: ProductLayout,
        multipliers: &'a [f32],
        bias: Option<&'a [f32]>,
        activation: Option<Activation>,
    }
    impl pulp::WithSimd for Epilogue<'_> {
        type Output = Vec<f32>;
        // Compiled for each instruction set pulp dispatches to (the baseline SSE2 loop converted
        // and scaled 4 lanes at a time); the same IEEE operations on every path.
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<f32> {
            let Epilogue { accumulators, layout, multipliers, bias, activation } = self;
            dequantize_loops(accumulators, layout, multipliers, bias, activation)
        }
    }
    pulp::Arch::new().dispatch(Epilogue { accumulators, layout, multipliers, bias, activation })
}

/// [`dequantize`]'s loops, inlined into its per-instruction-set entry points.
#[inline(always)]
fn dequantize_loops(
    accumulators: &[i32],
    layout: ProductLayout,
    multipliers: &[f32],
    bias: Option<&[f32]>,
    activation: Option<Activation>,
) -> Vec<f32> {
    let count = match layout {
        ProductLayout::Pixels { filters, stride, .. } => accumulators.len() / stride.max(1) * filters,
        _ => accumulators.len(),
    };
    let mut out = vec![0.0f32; count];
    match layout {
        ProductLayout::Columns { n } => {
            for (out_row, row) in out.chunks_exact_mut(n).zip(accumulators.chunks_exact(n)) {
                for ((value, &accumulator), &multiplier) in out_row.iter_mut().zip(row).zip(multipliers) {
                    *value = accumulator as f32 * multiplier;
                }
                if let Some(bias) = bias {
                    for (value, &b) in out_row.iter_mut().zip(bias) {
                        *value += b;
                    }
                }
            }
        }
        ProductLayout::Filters { filters, images, positions } => {
            for (filter, row) in accumulators.chunks_exact(images * positions).enumerate() {
                let (multiplier, b) = (multipliers[filter], bias.map_or(0.0, |bias| bias[filter]));
                for (image, accumulators) in row.chunks_exact(positions).enumerate() {
                    let start = (image * filters + filter) * positions;
                    for (value, &accumulator) in out[start..start + positions].iter_mut().zip(accumulators) {
                        *value = accumulator as f32 * multiplier + b;
                    }
                }
            }
        }
        ProductLayout::Pixels { filters, stride, positions } => {
            // Written plane by plane, read with a stride: the writes stay sequential.
            let planes = out.chunks_exact_mut(positions);
            let pixels = accumulators.chunks_exact(stride * positions).flat_map(|image| (0..filters).map(move |f| (image, f)));
            for (plane, (image, filter)) in planes.zip(pixels) {
                let (multiplier, b) = (multipliers[filter], bias.map_or(0.0, |bias| bias[filter]));
                for (value, pixel) in plane.iter_mut().zip(image[filter..].iter().step_by(stride)) {
                    *value = *pixel as f32 * multiplier + b;
                }
            }
        }
    }
    match activation {
        // `Activation::apply`'s conditional store ran scalar here; a select vectorizes and keeps its
        // semantics (NaN stays NaN, `-0.0` becomes `0.0`).
        Some(Activation::Relu) => out.iter_mut().for_each(|value| *value = if *value <= 0.0 { 0.0 } else { *value }),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_columns_match_a_direct_gather() {
        // (x shape, kernel, strides, dilations, padding): digits_cnn's 3x3 pad 1 on 4x4 and 8x8,
        // lines wider than one word, strides, dilations and asymmetric padding.
        let cases = [
            ([2, 3, 4, 4], [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 2, 8, 8], [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([2, 1, 5, 19], [2, 3], [1, 1], [2, 1], [(0, 2), (3, 0)]),
            ([1, 2, 9, 7], [3, 2], [2, 3], [1, 2], [(1, 0), (2, 1)]),
        ];
        for (x_shape, kernel, strides, dilations, padding) in cases {
            let [n, c, h, w] = x_shape;
            let x: Vec<u8> = (0..n * c * h * w).map(|i| (i * 37 % 251) as u8).collect();
            let window = Window2d { kernel, strides, dilations, padding };
            let size = |input: usize, axis: usize| {
                (input + padding[axis].0 + padding[axis].1 - (kernel[axis] - 1) * dilations[axis] - 1) / strides[axis] + 1
            };
            let (oh, ow) = (size(h, 0), size(w, 1));
            let pad = 7u8;
            let patches = im2col_columns(&x, x_shape, kernel, &window, [oh, ow], pad);
            let mut expected = Vec::new();
            for channel in 0..c {
                for ky in 0..kernel[0] {
                    for kx in 0..kernel[1] {
                        for image in 0..n {
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let iy = (oy * strides[0] + ky * dilations[0]).checked_sub(padding[0].0);
                                    let ix = (ox * strides[1] + kx * dilations[1]).checked_sub(padding[1].0);
                                    let byte = match (iy, ix) {
                                        (Some(iy), Some(ix)) if iy < h && ix < w => x[((image * c + channel) * h + iy) * w + ix],
                                        _ => pad,
                                    };
                                    expected.push((byte ^ 0x80) as i8);
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(patches, expected, "case {x_shape:?} {kernel:?}");
        }
    }

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
        // K = 300 spans depth blocks, M = 1 and 2 take the gemv paths (rten's and `gemv` for a
        // constant), odd K leaves a half pair, 17 and 33 columns leave tile and group tails.
        for (m, k, n) in [(1, 300, 17), (2, 63, 33), (5, 64, 33), (9, 3, 1), (1, 1, 70)] {
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
                let constant = ConstantIntRhs::pack_bytes(&bytes(&b), b_signed, k, n, false).unwrap();
                assert_eq!(constant.paired.is_some(), gemv_available());
                // Without the gemv layout, as a matrix above `PAIRED_LIMIT` has it: rten's packing.
                let packed_only = ConstantIntRhs { paired: None, ..constant.clone() };
                let cases = [
                    ("unpacked", Rhs::Matrix(&b_matrix)),
                    ("packed b", Rhs::Constant(&packed_only)),
                    ("constant", Rhs::Constant(&constant)),
                ];
                for (case, rhs) in cases {
                    let mut out = vec![i32::MIN; m * n];
                    gemm(executor, &mut out, &a_rows, Some(&a_zero), rhs, Some(&b_zero), [m, k, n]).unwrap();
                    assert_eq!(out, expected, "{case} {m}x{k}x{n}, a signed {a_signed}, b signed {b_signed}");
                }
            }
        }
    }

    #[test]
    fn gemv_is_exact_on_every_path() {
        // The extremes: a - a_zero = 255 and -255 against b = -128 and 127, odd K, a group tail.
        let (k, n) = (37, 45);
        let a: Vec<u8> = (0..k).map(|p| [255, 0, 254, 1][p % 4]).collect();
        let b: Vec<i8> = (0..k * n).map(|i| [-128, 127, -1, 0, 5][i % 5]).collect();
        let paired = PairedColumns::new(&b, k, n);
        for a_zero in [0u8, 255, 128] {
            let expected: Vec<i32> = (0..n)
                .map(|j| (0..k).map(|p| (i64::from(a[p]) - i64::from(a_zero)) * i64::from(b[p * n + j])).sum::<i64>() as i32)
                .collect();
            let mut out = vec![i32::MIN; n];
            gemv(&mut out, &a, a_zero, &paired);
            assert_eq!(out, expected, "dispatched, zero {a_zero}");
            let pairs: Vec<i32> = (0..paired.pairs)
                .map(|q| {
                    let low = i32::from(a[2 * q]) - i32::from(a_zero);
                    let high = a.get(2 * q + 1).map_or(0, |&value| i32::from(value) - i32::from(a_zero));
                    (low & 0xffff) | (high << 16)
                })
                .collect();
            let mut out = vec![i32::MIN; n];
            gemv_portable(&mut out, &pairs, &paired);
            assert_eq!(out, expected, "portable, zero {a_zero}");
        }
    }

    #[test]
    fn quantization_rounds_half_to_even_and_saturates_like_the_formula() {
        // Ties at every .5 step, both saturations, magnitudes past the rounding shift's exact range,
        // infinities; the expected values are QuantizeLinear's formula with the libm rounding.
        let mut values: Vec<f32> = (-600..600).map(|i| i as f32 * 0.25).collect();
        values.extend([3.0e6, -3.0e6, 5.0e6, -5.0e6, 1.0e30, -1.0e30, f32::INFINITY, f32::NEG_INFINITY, 1.0e-30]);
        for (scale, zero_point, signed) in [(0.5f32, 3, false), (1.0, 0, false), (0.25, -7, true), (2.0, 127, true)] {
            let quant = ActivationQuant { scale, zero_point, signed };
            let (low, high, offset) = if signed { (-128.0, 127.0, 128) } else { (0.0, 255.0, 0) };
            let expected: Vec<u8> = values
                .iter()
                .map(|&v| (((v / scale).round_ties_even() + zero_point as f32).clamp(low, high) as i32 + offset) as u8)
                .collect();
            assert_eq!(quant.quantize(&values), expected, "scale {scale} zero point {zero_point} signed {signed}");
            assert_eq!(quant.quantize_by_division(&values), expected, "division, scale {scale}");
        }
        let quant = ActivationQuant { scale: 1.0, zero_point: 9, signed: false };
        assert_eq!(quant.quantize(&[f32::NAN; 17]), vec![0; 17]);
        assert_eq!(quant.quantize_by_division(&[f32::NAN]), vec![0]);
    }

    #[test]
    fn the_reciprocal_gives_the_bytes_of_the_division() {
        // Values a few ulps either side of `(k + 0.5) * scale`, where `v * (1 / s)` and `v / s` can
        // round apart, for scales whose reciprocals are inexact, with the extremes and a short last
        // block; `vnni::quantize` must give the division's bytes (`quantize_by_division`, checked
        // against the formula above) for every value.
        let nudge = |value: f32, ulps: i32| f32::from_bits((value.to_bits() as i32 + ulps) as u32);
        let mut apart = 0;
        for (scale, zero_point, signed) in
            [(0.1f32, 0, false), (1.0 / 3.0, 128, false), (0.007_843_138, -3, true), (0.023_7, 100, false), (3.3e-5, 0, true)]
        {
            let mut values = Vec::new();
            for k in -1100..1100 {
                let tie = (k as f32 + 0.5) * scale;
                values.extend((-4..=4).map(|ulps| nudge(tie, ulps)));
            }
            values.extend([0.0, -0.0, 1.0e30, -1.0e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0e-40, 7.0]);
            let quant = ActivationQuant { scale, zero_point, signed };
            let expected = quant.quantize_by_division(&values);
            let (range, offset) = if signed { ([-128.0, 127.0], 128.0) } else { ([0.0, 255.0], 0.0) };
            let Some(bytes) = vnni::quantize(&values, scale, quant.kernel_zero()) else { return };
            assert_eq!(bytes, expected, "scale {scale} zero point {zero_point}");
            apart += values
                .iter()
                .zip(&expected)
                .filter(|&(&v, &byte)| quantize_one(v * (1.0 / scale), 1.0, zero_point as f32, range, offset) != byte)
                .count();
        }
        // The test reaches the boundary: the multiplication alone rounds some of these the other way.
        assert!(apart > 0, "no value rounded apart");
        // A scale whose reciprocal is not normal is left to the division.
        assert_eq!(vnni::quantize(&[1.0; 16], 1.0e-39, 0), None);
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
        let constant = ConstantIntRhs::pack_bytes(&[0; 6], true, 2, 3, false).unwrap();
        let mut out = vec![0; 6];
        let err = gemm(executor, &mut out, &[0; 6], None, Rhs::Constant(&constant), None, [2, 3, 3]).unwrap_err();
        assert_eq!(err.reason, "int8 gemm kernel: packed operand [2, 3] does not fit 2x3x3");
    }
}
