//! Exact u8 x i8 -> i32 products on AVX2 without AVX512-VNNI, for the fused layers of int8 models:
//! products with constant weights ([`gemm`]) and 2-D convolutions ([`run`]), each with its epilogue
//! (scales, bias, Relu) in registers. The counterpart of `kernels::vnni` for most AVX2 desktops.
//!
//! Why: rten-gemm's AVX2 int8 kernel uses `vpmaddubsw`, whose pairwise i16 sums saturate, so it is
//! not exact and whittle does not use it (`int8::executor` is `None` there): int8 layers on such
//! CPUs ran the unfused ONNX ops, several times slower than fp32. Here both operands are centered
//! (`x - x_zero`, `w - w_zero`, each in [-255, 255]) and held as i16 pairs of the reduction axis,
//! two per i32 lane; one `vpmaddwd` multiplies 8 lanes' pairs and adds each pair's two products
//! into an i32 exactly (at most 2 * 255 * 255). Centering both sides means any zero points, and
//! padding that holds x's zero point becomes plain 0. Written on `pulp::x86::V3` (AVX2 + FMA),
//! whose register intrinsics are safe, so this module needs no `unsafe`.
//!
//! One register-blocked loop serves both (see [`block`]): a left operand of rows broadcast one
//! i32 pair at a time, against a right operand `[pairs, columns]` read 16 columns (two registers)
//! at a time. For [`gemm`] the rows are x's and the right operand the weights; for [`run`] the rows
//! are the filters and the right operand an im2col of the image in pairs, so its columns are the
//! output pixels and the stores land in NCHW order with whole-register stores, for any stride.
//!
//! Measured on this machine (an AVX512-VNNI Xeon running the AVX2 loop; one thread, medians of 7
//! runs of 2000 calls, epilogue with bias and Relu), ns a call, madd / `vnni` / rten's path
//! (`int8::gemm` on the rten-packed constant, rten's VNNI kernel here, then `int8::dequantize`;
//! for convolutions with `int8::im2col_columns` first, as `fuse_int8` does without VNNI weights):
//! products (digits_mlp's) 1x64x128 327 / 295 / 9015 (rten's 1-row path is `int8::gemv`),
//! 8x64x128 1494 / 656 / 974, 64x64x128 11000 / 4300 / 7050, 64x128x64 10100 / 3700 / 6100,
//! 1x64x10 164 / 245 / 2160, 8x64x10 382 / 311 / 608, 64x784x128 108000 / 39000 / 39000;
//! digits_cnn's convolutions at batch 8: 1 -> 16 on 8x8 5570 / 5550 / 8190, 16 -> 32 on 4x4 20100 /
//! 10700 / 21900 (batch 1: 970 / 930 / 1280 and 2750 / 1460 / 4800). So about 2-2.5x VNNI's time
//! where the products are large (`vpmaddwd` does 2 multiply-adds a lane and needs an add, where
//! `vpdpbusd` does 4 in one), on par for the small layers. 4-row blocks for products measured
//! 10-20% slower than 6; 6-filter blocks for convolutions the same as 4.

use crate::kernels::vnni::{Epilogue, Geometry};
use crate::kernels::Activation;
use crate::spatial::Window2d;

/// Columns per register block: two AVX2 registers of 8 i32 sums.
const GROUP: usize = 16;

/// Rows of a product's register block: 6 rows of two registers are 12 sums, plus the two
/// registers of the right operand and one broadcast, within AVX2's 16.
const GEMM_ROWS: usize = 6;

/// Filters of a convolution's register block: 4 divides the usual filter counts (16, 32, 64).
const CONV_ROWS: usize = 4;

/// Filters above which the GEMM lowering serves (as `vnni` and `direct_conv`).
const MAX_FILTERS: usize = 64;

/// Taps times channels above which the GEMM lowering serves (as `vnni` and `direct_conv`).
const MAX_DEPTH: usize = 1152;

/// i32 values past an image's planes and its im2col matrix that 8-wide copies may read and write.
const SLACK: usize = 8;

/// Whether this CPU has the instructions (AVX2 + FMA, pulp's `V3`).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        pulp::x86::V3::try_new().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `(low, high)` as the two i16 halves of one i32, `low` first in memory (what `vpmaddwd` pairs).
#[inline(always)]
fn pair(low: i32, high: i32) -> i32 {
    (low & 0xffff) | (high << 16)
}

/// A constant right operand `[k, n]` (the kernel's i8) laid out for [`gemm`]: `[pairs, stride]` of
/// i32, each the centered values `b - zb` of rows `2q` and `2q + 1` of one column as i16 halves
/// (zeros past `k` and `n`), the columns padded to whole groups of 16.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaddMatrix {
    values: Vec<i32>,
    k: usize,
    n: usize,
    pairs: usize,
    stride: usize,
}

impl MaddMatrix {
    /// Lays out `values` (`[k, n]` row-major) with one zero point per column (`None`: 0); `None`
    /// when the sizes do not fit, `k * n` is 0, or this CPU has no AVX2.
    pub fn new(values: &[i8], zero: Option<&[i8]>, k: usize, n: usize) -> Option<MaddMatrix> {
        if !available() || k.checked_mul(n) != Some(values.len()) || values.is_empty() || zero.is_some_and(|z| z.len() != n) {
            return None;
        }
        let (pairs, stride) = (k.div_ceil(2), n.next_multiple_of(GROUP));
        let mut halves = vec![0i16; pairs * stride * 2];
        for (row, values) in values.chunks_exact(n).enumerate() {
            for (column, &value) in values.iter().enumerate() {
                let zero = zero.map_or(0, |zero| zero[column]);
                halves[((row / 2) * stride + column) * 2 + row % 2] = i16::from(value) - i16::from(zero);
            }
        }
        let values = halves.chunks_exact(2).map(|h| pair(h[0].into(), h[1].into())).collect();
        Some(MaddMatrix { values, k, n, pairs, stride })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }
}

/// `epilogue((x - x_zero) @ (B - zb))` as f32 `[m, n]` for the rows `x` `[m, k]` (the kernel's
/// u8), the sums exact in wrapping i32 and the epilogue `int8::dequantize`'s f32 operations with
/// `ProductLayout::Columns`; `None` when the sizes do not fit.
pub(crate) fn gemm(x: &[u8], x_zero: u8, m: usize, b: &MaddMatrix, epilogue: &Epilogue<'_>) -> Option<Vec<f32>> {
    if m.checked_mul(b.k) != Some(x.len())
        || epilogue.multipliers.len() != b.n
        || epilogue.bias.is_some_and(|bias| bias.len() != b.n)
    {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use rayon::prelude::*;
        let simd = pulp::x86::V3::try_new()?;
        // Each row's centered pairs, computed once: every column block broadcasts them again.
        let zero = i32::from(x_zero);
        let mut rows = Vec::with_capacity(m * b.pairs);
        for row in x.chunks_exact(b.k) {
            let mut pairs = row.chunks_exact(2);
            rows.extend((&mut pairs).map(|p| pair(i32::from(p[0]) - zero, i32::from(p[1]) - zero)));
            rows.extend(pairs.remainder().iter().map(|&last| pair(i32::from(last) - zero, 0)));
        }
        // Per column, padded to whole groups: the multiplier and the bias.
        let pad = |values: &[f32]| {
            let mut values = values.to_vec();
            values.resize(b.stride, 0.0);
            values
        };
        let multipliers = pad(epilogue.multipliers);
        let bias = epilogue.bias.map(pad);
        let scales = Scales::Columns { multipliers: &multipliers, bias: bias.as_deref() };
        let relu = matches!(epilogue.activation, Some(Activation::Relu));
        let mut out = vec![0.0f32; m * b.n];
        let run = |rows: &[i32], out: &mut [f32]| {
            let product = Product { rows, columns: &b.values, pairs: b.pairs, stride: b.stride, n: b.n };
            simd.vectorize(Products::<GEMM_ROWS> { simd, product: &product, scales, relu, out });
        };
        let threads = rayon::current_num_threads();
        // Below about 2M multiply-adds a second thread costs more to wake than it saves (as in
        // `vnni::gemm`); above, the rows are shared out in whole register blocks.
        if threads > 1 && m > GEMM_ROWS && m * b.k * b.n >= 1 << 21 {
            let task_rows = m.div_ceil(threads).next_multiple_of(GEMM_ROWS);
            out.par_chunks_mut(task_rows * b.n).zip(rows.par_chunks(task_rows * b.pairs)).for_each(|(out, rows)| run(rows, out));
        } else {
            run(&rows, &mut out);
        }
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// One pair of the flattened reduction axis `(channel, tap)` of a convolution: channels `2 *
/// plane` and `2 * plane + 1` at `taps[0]` (or `2 * plane` alone, the last of an odd count, whose
/// plane's high halves are 0), or where `split`, the last channel of an odd count at the two taps:
/// a single-channel layer (digits_cnn's first) then fills 5 pairs for its 9 taps, not 9.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DepthPair {
    plane: usize,
    taps: [usize; 2],
    split: bool,
}

/// A convolution's weights `[filters, channels, kh, kw]` (the kernel's i8) laid out for [`run`]:
/// per filter, its centered weights `w - wz` in the pairs of `depth`, as i32 of two i16 halves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaddWeights {
    pairs: Vec<i32>,
    depth: Vec<DepthPair>,
    filters: usize,
    channels: usize,
    kernel: [usize; 2],
}

impl MaddWeights {
    /// Lays out `weights` (`[filters, channels, kh, kw]` row-major) with one zero point per
    /// filter; `None` when the sizes do not fit, are past the direct loops' limits, or this CPU
    /// has no AVX2.
    pub fn new(weights: &[i8], zero_points: &[i8], [filters, channels, kh, kw]: [usize; 4]) -> Option<MaddWeights> {
        let taps = kh.checked_mul(kw)?;
        let depth = channels.checked_mul(taps)?;
        if !available() || depth.checked_mul(filters) != Some(weights.len()) || weights.is_empty() || zero_points.len() != filters
        {
            return None;
        }
        // The fp32 direct loop's limits, for the same reason: past them a GEMM's packing pays off.
        if filters > MAX_FILTERS || depth > MAX_DEPTH {
            return None;
        }
        let mut pairs_of_depth = Vec::with_capacity(depth.div_ceil(2));
        for plane in 0..channels / 2 {
            pairs_of_depth.extend((0..taps).map(|tap| DepthPair { plane, taps: [tap, tap], split: false }));
        }
        if channels % 2 == 1 {
            let plane = channels / 2;
            for tap in (0..taps).step_by(2) {
                pairs_of_depth.push(match tap + 1 < taps {
                    true => DepthPair { plane, taps: [tap, tap + 1], split: true },
                    false => DepthPair { plane, taps: [tap, tap], split: false },
                });
            }
        }
        let mut pairs = Vec::with_capacity(filters * pairs_of_depth.len());
        for (filter_weights, &zero) in weights.chunks_exact(depth).zip(zero_points) {
            let weight = |channel: usize, tap: usize| match channel < channels {
                true => i32::from(filter_weights[channel * taps + tap]) - i32::from(zero),
                false => 0,
            };
            pairs.extend(pairs_of_depth.iter().map(|&DepthPair { plane, taps: [first, second], split }| match split {
                true => pair(weight(2 * plane, first), weight(2 * plane, second)),
                false => pair(weight(2 * plane, first), weight(2 * plane + 1, first)),
            }));
        }
        Some(MaddWeights { pairs, depth: pairs_of_depth, filters, channels, kernel: [kh, kw] })
    }

    pub fn filters(&self) -> usize {
        self.filters
    }
}

/// The convolution `epilogue(sum((x - x_zero) * (w - wz)))` of the images `x` (the kernel's u8,
/// NCHW) as NCHW f32 `[n, filters, oh, ow]`, the padding holding x's zero point; the sums exact in
/// wrapping i32 and the epilogue `int8::dequantize`'s f32 operations with `ProductLayout::Filters`
/// (the bias, or 0, always added). `None` when the weights or the output do not fit `geometry`.
pub(crate) fn run(x: &[u8], x_zero: u8, geometry: &Geometry, weights: &MaddWeights, epilogue: &Epilogue<'_>) -> Option<Vec<f32>> {
    let [n, c, h, w] = geometry.x;
    let Window2d { kernel, strides, dilations, padding } = geometry.window;
    let [oh, ow] = geometry.output;
    let filters = weights.filters;
    let size = n.checked_mul(c)?.checked_mul(h)?.checked_mul(w)?;
    if size != x.len() || c != weights.channels || kernel != weights.kernel || h.checked_mul(w)? == 0 {
        return None;
    }
    if epilogue.multipliers.len() != filters || epilogue.bias.is_some_and(|bias| bias.len() != filters) {
        return None;
    }
    let hp = h.checked_add(padding[0].0)?.checked_add(padding[0].1)?;
    let wp = w.checked_add(padding[1].0)?.checked_add(padding[1].1)?;
    // Every window of the output inside the padded image: the loops then read without checks.
    let fits = |outputs: usize, axis: usize, size: usize| {
        let last = (outputs.checked_sub(1)?)
            .checked_mul(strides[axis])?
            .checked_add((kernel[axis] - 1).checked_mul(dilations[axis])?)?;
        (last < size).then_some(())
    };
    let outputs = oh.checked_mul(ow)?;
    let mut out = vec![0.0f32; n.checked_mul(filters)?.checked_mul(outputs)?];
    if out.is_empty() {
        return Some(out);
    }
    fits(oh, 0, hp)?;
    fits(ow, 1, wp)?;
    #[cfg(target_arch = "x86_64")]
    {
        use rayon::prelude::*;
        let simd = pulp::x86::V3::try_new()?;
        let (plane, stride, pairs) = (hp * wp + SLACK, outputs.next_multiple_of(GROUP), weights.depth.len());
        let [_, kw] = kernel;
        let tap_offsets: Vec<usize> =
            (0..kernel[0] * kw).map(|tap| (tap / kw) * dilations[0] * wp + (tap % kw) * dilations[1]).collect();
        let bias = epilogue.bias.map_or_else(|| vec![0.0; filters], <[f32]>::to_vec);
        let scales = Scales::Rows { multipliers: epilogue.multipliers, bias: &bias };
        let relu = matches!(epilogue.activation, Some(Activation::Relu));
        let zero = i16::from(x_zero);
        // One image: its centered planes, its im2col in pairs `[pairs, stride]`, then the product of
        // the filters' pairs with it, straight into the image's NCHW output.
        let image = |index: usize, out: &mut [f32], buffers: &mut (Vec<i32>, Vec<i32>)| {
            let (planes, patches) = buffers;
            planes.fill(0);
            let halves: &mut [i16] = pulp::bytemuck::cast_slice_mut(planes);
            for (channel, source) in x[index * c * h * w..][..c * h * w].chunks_exact(h * w).enumerate() {
                let target = &mut halves[(channel / 2) * plane * 2..][..plane * 2];
                for (y, line) in source.chunks_exact(w).enumerate() {
                    let start = (y + padding[0].0) * wp + padding[1].0;
                    for (target, &value) in target[start * 2..(start + w) * 2].chunks_exact_mut(2).zip(line) {
                        target[channel % 2] = i16::from(value) - zero;
                    }
                }
            }
            for (row, depth_pair) in weights.depth.iter().enumerate() {
                let source = &planes[depth_pair.plane * plane..][..plane];
                let [first, second] = depth_pair.taps.map(|tap| tap_offsets[tap]);
                for oy in 0..oh {
                    let line = oy * strides[0] * wp;
                    if strides[1] == 1 {
                        // 8 at a time, past `ow` too: the next row's (or pair's) values are written
                        // after, and the slack takes what passes the last one.
                        for ox in (0..ow).step_by(8) {
                            let read = |offset: usize| -> [i32; 8] {
                                source
                                    .get(line + offset + ox..line + offset + ox + 8)
                                    .and_then(|s| s.try_into().ok())
                                    .unwrap_or_default()
                            };
                            let values = match depth_pair.split {
                                true => {
                                    let (low, high) = (read(first), read(second));
                                    std::array::from_fn(|lane| pair(low[lane], high[lane]))
                                }
                                false => read(first),
                            };
                            let at = row * stride + oy * ow + ox;
                            if let Some(target) = patches.get_mut(at..at + 8) {
                                target.copy_from_slice(&values);
                            }
                        }
                    } else {
                        for (ox, target) in patches[row * stride + oy * ow..][..ow].iter_mut().enumerate() {
                            let at = line + ox * strides[1];
                            *target = match depth_pair.split {
                                true => pair(source[at + first], source[at + second]),
                                false => source[at + first],
                            };
                        }
                    }
                }
            }
            let product = Product { rows: &weights.pairs, columns: patches, pairs, stride, n: outputs };
            simd.vectorize(Products::<CONV_ROWS> { simd, product: &product, scales, relu, out });
        };
        let buffers = || (vec![0i32; c.div_ceil(2) * plane], vec![0i32; pairs * stride + SLACK]);
        let chunk = filters * outputs;
        // Below about 2M multiply-adds a second thread costs more to wake than it saves (as in
        // `direct_conv`); above, the images are shared out.
        if rayon::current_num_threads() > 1 && n > 1 && n * chunk * c * kernel[0] * kw >= 1 << 21 {
            out.par_chunks_mut(chunk).enumerate().for_each_init(buffers, |buffers, (index, out)| image(index, out, buffers));
        } else {
            let mut buffers = buffers();
            for (index, out) in out.chunks_mut(chunk).enumerate() {
                image(index, out, &mut buffers);
            }
        }
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// How the epilogue scales each sum, as `int8::dequantize` does in each layout.
#[derive(Debug, Clone, Copy)]
enum Scales<'a> {
    /// One multiplier and bias per column, padded to whole groups; the bias added only where there
    /// is one (`ProductLayout::Columns`).
    Columns { multipliers: &'a [f32], bias: Option<&'a [f32]> },
    /// One per row, the bias always added, 0 where there is none (`ProductLayout::Filters`, which
    /// turns a product of -0.0 into 0.0).
    Rows { multipliers: &'a [f32], bias: &'a [f32] },
}

/// A product `rows @ columns` of centered i16 pairs: `rows` `[m, pairs]`, `columns` `[pairs,
/// stride]` (`stride` a whole number of groups, of which the first `n` are stored).
struct Product<'a> {
    rows: &'a [i32],
    columns: &'a [i32],
    pairs: usize,
    stride: usize,
    n: usize,
}

/// A call of [`products`] for `V3::vectorize`, whose `call` is inlined into the AVX2 context. With
/// a closure there, LLVM sometimes kept the closure out of line, compiled without AVX2, and every
/// intrinsic in it became a function call: 20 to 100 times slower (perf).
#[cfg(target_arch = "x86_64")]
struct Products<'a, const ROWS: usize> {
    simd: pulp::x86::V3,
    product: &'a Product<'a>,
    scales: Scales<'a>,
    relu: bool,
    out: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl<const ROWS: usize> pulp::NullaryFnOnce for Products<'_, ROWS> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        products::<ROWS>(self.simd, self.product, self.scales, self.relu, self.out);
    }
}

/// `out` `[m, n]` = the epilogue of `product`, `ROWS` rows at a time, the last few in a block of
/// their own size (a block computing repeated rows made one row cost as much as six).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn products<const ROWS: usize>(simd: pulp::x86::V3, product: &Product<'_>, scales: Scales<'_>, relu: bool, out: &mut [f32]) {
    let m = product.rows.len() / product.pairs.max(1);
    let mut first = 0;
    while first + ROWS <= m {
        block::<ROWS>(simd, product, scales, relu, first, out);
        first += ROWS;
    }
    match m - first {
        1 => block::<1>(simd, product, scales, relu, first, out),
        2 => block::<2>(simd, product, scales, relu, first, out),
        3 => block::<3>(simd, product, scales, relu, first, out),
        4 => block::<4>(simd, product, scales, relu, first, out),
        5 => block::<5>(simd, product, scales, relu, first, out),
        _ => {}
    }
}

/// Rows `first .. first + R` of [`products`]: per group of 16 columns, `R x 2` registers of sums,
/// and per pair two loads of the right operand, one broadcast per row and two `vpmaddwd` and two
/// adds per row; then the epilogue in registers, `int8::dequantize`'s operations: `sum as f32 *
/// multiplier`, `+ bias`, and the Relu, where `value <= 0` (false for NaN) becomes 0.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block<const R: usize>(
    simd: pulp::x86::V3,
    product: &Product<'_>,
    scales: Scales<'_>,
    relu: bool,
    first: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::{__m256, __m256i, _CMP_LE_OQ};
    let Product { pairs, stride, n, .. } = *product;
    let rows: [&[i32]; R] = std::array::from_fn(|r| &product.rows[(first + r) * pairs..][..pairs]);
    let columns = &product.columns[..pairs * stride];
    let zero = simd.avx._mm256_setzero_ps();
    for start in (0..stride).step_by(GROUP) {
        let mut sums = [[simd.avx._mm256_setzero_si256(); 2]; R];
        for (q, line) in columns.chunks_exact(stride).enumerate() {
            let b: [i32; GROUP] = line[start..start + GROUP].try_into().unwrap_or_default();
            let b: [__m256i; 2] = pulp::cast(b);
            for (sums, row) in sums.iter_mut().zip(&rows) {
                let x = simd.avx._mm256_set1_epi32(row[q]);
                for (sum, &b) in sums.iter_mut().zip(&b) {
                    *sum = simd.avx2._mm256_add_epi32(*sum, simd.avx2._mm256_madd_epi16(x, b));
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            let row = first + r;
            // A loop, not `std::array::from_fn`: its closure was not inlined into this function's
            // AVX2 context, so every intrinsic in it became a call (perf: most of a convolution).
            let mut values = [zero; 2];
            for (half, value) in values.iter_mut().enumerate() {
                let sum = simd.avx._mm256_cvtepi32_ps(sums[half]);
                let scaled = match scales {
                    Scales::Columns { multipliers, bias } => {
                        let at = start + half * 8;
                        let multiplier: __m256 = pulp::cast(<[f32; 8]>::try_from(&multipliers[at..at + 8]).unwrap_or_default());
                        let scaled = simd.avx._mm256_mul_ps(sum, multiplier);
                        match bias {
                            Some(bias) => {
                                let bias: __m256 = pulp::cast(<[f32; 8]>::try_from(&bias[at..at + 8]).unwrap_or_default());
                                simd.avx._mm256_add_ps(scaled, bias)
                            }
                            None => scaled,
                        }
                    }
                    Scales::Rows { multipliers, bias } => {
                        let scaled = simd.avx._mm256_mul_ps(sum, simd.avx._mm256_set1_ps(multipliers[row]));
                        simd.avx._mm256_add_ps(scaled, simd.avx._mm256_set1_ps(bias[row]))
                    }
                };
                *value = if relu {
                    let not_positive = simd.avx._mm256_cmp_ps::<_CMP_LE_OQ>(scaled, zero);
                    simd.avx._mm256_blendv_ps(scaled, zero, not_positive)
                } else {
                    scaled
                };
            }
            let lanes: [f32; GROUP] = pulp::cast(values);
            let line = &mut out[row * n..][..n];
            match line.get_mut(start..start + GROUP).and_then(|target| <&mut [f32; GROUP]>::try_from(target).ok()) {
                Some(target) => *target = lanes,
                None => line[start..].iter_mut().zip(lanes).for_each(|(value, lane)| *value = lane),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::int8::{self, ProductLayout};

    /// Multipliers, bias and activation of one epilogue.
    type Scaled = (Vec<f32>, Option<Vec<f32>>, Option<Activation>);

    /// The epilogues every case runs: the sums alone, then scales with and without bias and Relu,
    /// negative ones included (a zero sum times a negative scale is -0.0, which only the bias
    /// turns into 0.0).
    fn epilogues(count: usize) -> Vec<Scaled> {
        let scales: Vec<f32> = (0..count).map(|j| if j % 3 == 2 { -0.003 } else { 0.001 * (j + 1) as f32 }).collect();
        let bias: Vec<f32> = (0..count).map(|j| j as f32 * 0.5 - 3.0).collect();
        vec![
            (vec![1.0; count], None, None),
            (scales.clone(), Some(bias.clone()), Some(Activation::Relu)),
            (scales.clone(), Some(bias), None),
            (scales, None, Some(Activation::Relu)),
        ]
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|value| value.to_bits()).collect()
    }

    /// `(x - zx) @ (b - zb)` in i64, `[m, n]`.
    fn product_reference(x: &[u8], zx: u8, b: &[i8], zb: Option<&[i8]>, [m, k, n]: [usize; 3]) -> Vec<i32> {
        let mut out = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                let zero = zb.map_or(0, |zb| i64::from(zb[j]));
                let mut sum = 0i64;
                for p in 0..k {
                    sum += (i64::from(x[i * k + p]) - i64::from(zx)) * (i64::from(b[p * n + j]) - zero);
                }
                out[i * n + j] = sum as i32;
            }
        }
        out
    }

    #[test]
    fn products_are_exact_with_the_epilogue_of_dequantize() {
        // Only CPUs with AVX2 have the kernel: elsewhere the constructors decline.
        if !available() {
            return;
        }
        let ks = [1, 2, 7, 64, 784, 33, 128];
        for (i, m) in [1, 2, 3, 5, 8, 17, 64].into_iter().enumerate() {
            for (j, n) in [1, 7, 10, 16, 17, 33, 128].into_iter().enumerate() {
                let k = ks[(i + j) % ks.len()];
                // The extremes: x - zx = 255 and -255 against b - zb = 255 and -255.
                let x: Vec<u8> = (0..m * k).map(|i| [255, 0, 254, 1, 131][(i / 7 + i) % 5]).collect();
                let b: Vec<i8> = (0..k * n).map(|i| [-128, 127, -1, 3, 0][(i / 3 + i) % 5]).collect();
                let zb: Vec<i8> = (0..n).map(|j| [127, -128, 0, 5][j % 4]).collect();
                for zero in [None, Some(&zb[..])] {
                    let matrix = MaddMatrix::new(&b, zero, k, n).unwrap();
                    assert_eq!((matrix.k(), matrix.n()), (k, n));
                    for zx in [0u8, 131, 255] {
                        let sums = product_reference(&x, zx, &b, zero, [m, k, n]);
                        for (multipliers, bias, activation) in epilogues(n) {
                            let epilogue = Epilogue { multipliers: &multipliers, bias: bias.as_deref(), activation };
                            let got = gemm(&x, zx, m, &matrix, &epilogue).unwrap();
                            let expected =
                                int8::dequantize(&sums, ProductLayout::Columns { n }, &multipliers, bias.as_deref(), activation);
                            assert_eq!(
                                bits(&got),
                                bits(&expected),
                                "{m}x{k}x{n}, zero points {zx} and {:?}, bias {}, {activation:?}",
                                zero.is_some(),
                                bias.is_some()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_products_share_rows_over_threads_with_the_same_values() {
        if !available() {
            return;
        }
        let (m, k, n) = (200, 128, 96);
        let x: Vec<u8> = (0..m * k).map(|i| (i * 7 % 256) as u8).collect();
        let b: Vec<i8> = (0..k * n).map(|i| (i * 13 % 256) as u8 as i8).collect();
        let zb: Vec<i8> = (0..n).map(|j| (j * 5) as u8 as i8).collect();
        let matrix = MaddMatrix::new(&b, Some(&zb), k, n).unwrap();
        let plain = Epilogue { multipliers: &vec![1.0; n], bias: None, activation: None };
        let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let one = pool(1).install(|| gemm(&x, 3, m, &matrix, &plain).unwrap());
        let three = pool(3).install(|| gemm(&x, 3, m, &matrix, &plain).unwrap());
        assert_eq!(bits(&one), bits(&three));
        let expected: Vec<f32> = product_reference(&x, 3, &b, Some(&zb), [m, k, n]).iter().map(|&sum| sum as f32).collect();
        assert_eq!(bits(&one), bits(&expected));
    }

    #[test]
    fn products_that_do_not_fit_are_declined() {
        if !available() {
            return;
        }
        assert!(MaddMatrix::new(&[1, 2, 3], None, 1, 2).is_none(), "3 values for 1x2");
        assert!(MaddMatrix::new(&[], None, 0, 2).is_none(), "no values");
        assert!(MaddMatrix::new(&[1, 2], Some(&[0]), 1, 2).is_none(), "one zero point for two columns");
        assert!(MaddMatrix::new(&[1, 2], None, usize::MAX, 2).is_none(), "an overflowing size");
        let matrix = MaddMatrix::new(&[1, 2], Some(&[0, 1]), 1, 2).unwrap();
        let plain = Epilogue { multipliers: &[1.0, 1.0], bias: None, activation: None };
        assert!(gemm(&[1, 2, 3], 0, 2, &matrix, &plain).is_none(), "3 bytes for 2 rows of 1");
        assert!(gemm(&[1, 2], 0, usize::MAX, &matrix, &plain).is_none(), "an overflowing row count");
        let short = Epilogue { multipliers: &[1.0], ..plain };
        assert!(gemm(&[1, 2], 0, 2, &matrix, &short).is_none(), "one multiplier for two columns");
        let bias = Epilogue { bias: Some(&[1.0]), ..plain };
        assert!(gemm(&[1, 2], 0, 2, &matrix, &bias).is_none(), "one bias for two columns");
        assert_eq!(gemm(&[], 0, 0, &matrix, &plain), Some(vec![]));
        assert_eq!(gemm(&[1, 2], 0, 2, &matrix, &plain), Some(vec![1.0, 1.0, 2.0, 2.0]));
    }

    /// `sum((x - zx) * (w - wz[filter]))` in i64 with padding reading `zx`, `[filters, n * positions]`
    /// (the layout of `ProductLayout::Filters`).
    pub(crate) fn conv_reference(x: &[u8], zx: u8, w: &[i8], wz: &[i8], shape: [usize; 4], geometry: &Geometry) -> Vec<i32> {
        let [n, c, h, wd] = geometry.x;
        let [filters, _, kh, kw] = shape;
        let [oh, ow] = geometry.output;
        let Window2d { strides, dilations, padding, .. } = geometry.window;
        let mut out = vec![0i32; filters * n * oh * ow];
        for f in 0..filters {
            for image in 0..n {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = 0i64;
                        for ch in 0..c {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * strides[0] + ky * dilations[0]).checked_sub(padding[0].0).filter(|&y| y < h);
                                    let ix = (ox * strides[1] + kx * dilations[1]).checked_sub(padding[1].0).filter(|&v| v < wd);
                                    let value = match (iy, ix) {
                                        (Some(iy), Some(ix)) => x[((image * c + ch) * h + iy) * wd + ix],
                                        _ => zx,
                                    };
                                    let weight = i64::from(w[((f * c + ch) * kh + ky) * kw + kx]) - i64::from(wz[f]);
                                    sum += (i64::from(value) - i64::from(zx)) * weight;
                                }
                            }
                        }
                        out[f * n * oh * ow + (image * oh + oy) * ow + ox] = sum as i32;
                    }
                }
            }
        }
        out
    }

    type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], [(usize, usize); 2]);

    fn geometry(
        x_shape: [usize; 4],
        w_shape: [usize; 4],
        strides: [usize; 2],
        dilations: [usize; 2],
        padding: [(usize, usize); 2],
    ) -> Geometry {
        let [_, _, h, wd] = x_shape;
        let [_, _, kh, kw] = w_shape;
        let size = |input: usize, axis: usize, k: usize| {
            (input + padding[axis].0 + padding[axis].1 - (k - 1) * dilations[axis] - 1) / strides[axis] + 1
        };
        Geometry {
            x: x_shape,
            window: Window2d { kernel: [kh, kw], strides, dilations, padding },
            output: [size(h, 0, kh), size(wd, 1, kw)],
        }
    }

    #[test]
    fn convolutions_are_exact_with_the_epilogue_of_dequantize() {
        if !available() {
            return;
        }
        // digits_cnn's two layers at batch 1 and 3, then odd channel counts (one, three), filters
        // past one register block and not a multiple of 4, 1x1 and 5x5 kernels, strides, dilations,
        // asymmetric padding and rows wider than one 8-wide copy.
        let cases: [Case; 10] = [
            ([1, 1, 8, 8], [16, 1, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([3, 1, 8, 8], [16, 1, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([3, 16, 4, 4], [32, 16, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 16, 4, 4], [32, 16, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 3, 7, 9], [17, 3, 5, 5], [2, 2], [1, 1], [(2, 2), (2, 2)]),
            ([3, 3, 6, 5], [1, 3, 1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
            ([1, 16, 9, 7], [17, 16, 3, 3], [1, 1], [2, 2], [(0, 2), (1, 0)]),
            ([3, 1, 10, 11], [32, 1, 5, 5], [2, 1], [1, 1], [(2, 1), (0, 2)]),
            ([1, 3, 5, 6], [16, 3, 3, 3], [1, 2], [2, 1], [(1, 2), (2, 1)]),
            ([1, 2, 20, 19], [64, 2, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
        ];
        for (x_shape, w_shape, strides, dilations, padding) in cases {
            let geometry = geometry(x_shape, w_shape, strides, dilations, padding);
            let [n, c, h, wd] = x_shape;
            let [filters, _, kh, kw] = w_shape;
            let [oh, ow] = geometry.output;
            let x: Vec<u8> = (0..n * c * h * wd).map(|i| [255, 0, 254, 1, 131][(i / 7 + i) % 5]).collect();
            let w: Vec<i8> = (0..filters * c * kh * kw).map(|i| [-128, 127, -1, 3, 0][(i / 3 + i) % 5]).collect();
            let wz: Vec<i8> = (0..filters).map(|f| [127, -128, 0, 5][f % 4]).collect();
            for zero in [vec![0; filters], wz] {
                let weights = MaddWeights::new(&w, &zero, w_shape).unwrap();
                assert_eq!(weights.filters(), filters);
                for zx in [0u8, 131, 255] {
                    let sums = conv_reference(&x, zx, &w, &zero, w_shape, &geometry);
                    let layout = ProductLayout::Filters { filters, images: n, positions: oh * ow };
                    for (multipliers, bias, activation) in epilogues(filters) {
                        let epilogue = Epilogue { multipliers: &multipliers, bias: bias.as_deref(), activation };
                        let got = run(&x, zx, &geometry, &weights, &epilogue).unwrap();
                        let expected = int8::dequantize(&sums, layout, &multipliers, bias.as_deref(), activation);
                        assert_eq!(
                            bits(&got),
                            bits(&expected),
                            "{x_shape:?} {w_shape:?} zero points {zx} and {}, bias {}, {activation:?}",
                            zero[0],
                            bias.is_some()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn large_convolutions_share_images_over_threads_with_the_same_values() {
        if !available() {
            return;
        }
        let (x_shape, w_shape) = ([4, 16, 16, 16], [32, 16, 3, 3]);
        let geometry = geometry(x_shape, w_shape, [1, 1], [1, 1], [(1, 1), (1, 1)]);
        let x: Vec<u8> = (0..4 * 16 * 16 * 16).map(|i| (i * 7 % 256) as u8).collect();
        let w: Vec<i8> = (0..32 * 16 * 9).map(|i| (i * 13 % 256) as u8 as i8).collect();
        let wz: Vec<i8> = (0..32).map(|f| (f * 5) as u8 as i8).collect();
        let weights = MaddWeights::new(&w, &wz, w_shape).unwrap();
        let plain = Epilogue { multipliers: &[1.0; 32], bias: None, activation: None };
        let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let one = pool(1).install(|| run(&x, 9, &geometry, &weights, &plain).unwrap());
        let three = pool(3).install(|| run(&x, 9, &geometry, &weights, &plain).unwrap());
        assert_eq!(bits(&one), bits(&three));
        let sums = conv_reference(&x, 9, &w, &wz, w_shape, &geometry);
        let layout = ProductLayout::Filters { filters: 32, images: 4, positions: 256 };
        assert_eq!(bits(&one), bits(&int8::dequantize(&sums, layout, &[1.0; 32], None, None)));
    }

    #[test]
    fn convolutions_that_do_not_fit_are_declined() {
        if !available() {
            return;
        }
        assert!(MaddWeights::new(&[1; 17], &[0, 0], [2, 1, 3, 3]).is_none(), "17 weights for 18");
        assert!(MaddWeights::new(&[1; 18], &[0], [2, 1, 3, 3]).is_none(), "one zero point for two filters");
        assert!(MaddWeights::new(&[], &[], [0, 1, 3, 3]).is_none(), "no filters");
        assert!(MaddWeights::new(&[1; 65 * 9], &[0; 65], [65, 1, 3, 3]).is_none(), "past 64 filters");
        assert!(MaddWeights::new(&[1; 1161], &[0], [1, 129, 3, 3]).is_none(), "past a depth of 1152");
        assert!(MaddWeights::new(&[1; 64 * 1152], &[0; 64], [64, 128, 3, 3]).is_some(), "at both limits");
        let weights = MaddWeights::new(&[1; 18], &[0, 1], [2, 1, 3, 3]).unwrap();
        let geometry = Geometry {
            x: [1, 2, 4, 4],
            window: Window2d { kernel: [3, 3], strides: [1, 1], dilations: [1, 1], padding: [(1, 1); 2] },
            output: [4, 4],
        };
        let epilogue = Epilogue { multipliers: &[1.0, 1.0], bias: None, activation: None };
        assert!(run(&[0; 32], 0, &geometry, &weights, &epilogue).is_none(), "two channels against weights of one");
        let geometry = Geometry { x: [1, 1, 4, 4], ..geometry };
        assert!(run(&[0; 15], 0, &geometry, &weights, &epilogue).is_none(), "15 bytes for 16");
        let short = Epilogue { multipliers: &[1.0], ..epilogue };
        assert!(run(&[0; 16], 0, &geometry, &weights, &short).is_none(), "one multiplier for two filters");
        let bias = Epilogue { bias: Some(&[1.0]), ..epilogue };
        assert!(run(&[0; 16], 0, &geometry, &weights, &bias).is_none(), "one bias for two filters");
        let wide = Geometry { output: [4, 5], ..geometry };
        assert!(run(&[0; 16], 0, &wide, &weights, &epilogue).is_none(), "an output wider than the windows");
        let other = Geometry { window: Window2d { kernel: [1, 3], ..geometry.window }, ..geometry };
        assert!(run(&[0; 16], 0, &other, &weights, &epilogue).is_none(), "another kernel");
        let huge = Geometry { x: [usize::MAX, 1, 4, 4], ..geometry };
        assert!(run(&[0; 16], 0, &huge, &weights, &epilogue).is_none(), "an overflowing size");
        assert_eq!(run(&[0; 16], 0, &geometry, &weights, &epilogue), Some(vec![0.0; 32]));
    }
}
