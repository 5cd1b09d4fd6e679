//! Direct f32 convolution for small ungrouped layers: each output pixel accumulated in registers
//! from the (zero-padded) input, with no im2col matrix and no GEMM packing.
//!
//! On small images the GEMM lowering in [`super::conv`] spends most of a call around the product:
//! on `digits_cnn` at batch 8 (one thread, perf, whole run 42 us) rten-gemm's kernel took 20% of
//! the run while building the batch's im2col matrix (`Conv2d::run` itself, 20%), the span copies
//! and the output shuffle (memmove, 11%), packing it again for the GEMM (5%) and zeroing and
//! allocating its buffers (10%) took more than twice that. Here the weights are laid out once as
//! blocks of 16 or 32 output channels, `[block][channel, ky, kx][lane]`, and a block of output
//! pixels keeps its sums in registers: one input element broadcast against one row of weights per
//! tap, the bias added first and the activation applied as the sums are stored in NCHW. The loops'
//! trip counts are constants of the instruction set pulp dispatches to, so they unroll with the
//! sums in registers (AVX-512: 8 pixels of one or two registers; AVX2: 8 registers).
//! digits_cnn at batch 8, one thread, same machine: the run went from 42 to 27 us with 16-channel
//! blocks (its 16 to 32 channel layer from 22 to 14 us a call). What is left of its first layer (1
//! to 16 channels on 8x8, 6.8 us a call) is not bound by that per-channel store: a variant that
//! held runs of 16 pixels per filter (the taps gathered per run, one vector store per filter) took
//! 7.6 us, and 9.3 with pulp's masked partial loads and stores (a call per mask), so it was dropped.
//!
//! On AVX-512, images small enough that 16 consecutive output pixels lie within 32 positions of
//! the padded plane run [`run_gathered`] instead: 16 output pixels in a register, gathered by one
//! `vpermt2ps` per tap, so whole registers of one channel's outputs are stored as they are. Other
//! stride-1 layers with few multiply-adds per output run [`run_planes`]; the rest the blocks.
//! digits_cnn fp32 at batch 8, one thread, alternating builds: 30.5 -> 24.2 us a run (first layer
//! 8.5 -> 4.5 us a call, second 15.8 -> 13.1); batch 1 8.6 -> 8.0 us.

use std::sync::Arc;

use rayon::prelude::*;

use crate::kernels::conv::Conv2d;
use crate::kernels::{padded_planes, Activation, Gather, GATHER_SPAN};
use crate::spatial::Window2d;

/// Registers of sums a block may hold: AVX-512 has 32 (16 hold sums), AVX2 16 (8 hold sums); the
/// scalar fallback holds one pixel of a 32-channel block.
const ACCUMULATORS: usize = 32;

/// Output pixels per register block at most.
const PIXELS: usize = 8;

/// Output channels above which the GEMM lowering wins: every block of channels reads the whole
/// input again, where the GEMM reads its packed patches once per block of its own.
const MAX_CHANNELS: usize = 64;

/// Multiply-adds per output element (`C * kh * kw`) above which the GEMM lowering wins: its packed
/// panels stay in cache over long reductions, the direct loop's weight rows do not.
const MAX_DEPTH: usize = 1152;

/// Weights `[M, C, kh, kw]` as blocks of `width` (16 or 32) output channels: block `b` holds, for
/// every `(c, ky, kx)` in order, the weights of outputs `b * width ..` (zeros past `M`). Shared by
/// every clone of the op; two are equal when their bits are.
#[derive(Debug, Clone)]
pub(crate) struct DirectWeights {
    blocks: Arc<[f32]>,
    /// `C * kh * kw`.
    depth: usize,
    /// Output channels per block: 32 where M is above 16, so each input element loaded feeds
    /// twice the multiply-adds (digits_cnn's 32-channel layer: 14 to 11 us a call, the run 27 to
    /// 23 us).
    width: usize,
}

impl PartialEq for DirectWeights {
    fn eq(&self, other: &DirectWeights) -> bool {
        self.depth == other.depth
            && self.width == other.width
            && self.blocks.len() == other.blocks.len()
            && self.blocks.iter().zip(other.blocks.iter()).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for DirectWeights {}

/// Whether the direct loop serves weights of `w_shape` (`[M, C / group, kh, kw]`) in `group`s.
pub(crate) fn serves(w_shape: [usize; 4], group: usize) -> bool {
    let [m, c, kh, kw] = w_shape;
    group == 1 && m <= MAX_CHANNELS && c * kh * kw <= MAX_DEPTH
}

/// Lays out weights `[M, C, kh, kw]` (row-major, `w_shape`) in blocks.
pub(crate) fn pack(weights: &[f32], w_shape: [usize; 4]) -> DirectWeights {
    let [m, c, kh, kw] = w_shape;
    let depth = c * kh * kw;
    let width = if m > 16 { 32 } else { 16 };
    let mut blocks = vec![0.0f32; m.div_ceil(width) * depth * width];
    for (filter, row) in weights.chunks_exact(depth).enumerate() {
        let (block, lane) = (filter / width, filter % width);
        for (k, &weight) in row.iter().enumerate() {
            blocks[(block * depth + k) * width + lane] = weight;
        }
    }
    DirectWeights { blocks: blocks.into(), depth, width }
}

/// Runs `conv` (ungrouped, weights laid out by [`pack`]) into `out` `[N, M, OH, OW]`.
pub(crate) fn run(conv: &Conv2d<'_>, weights: &DirectWeights, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V4::try_new() {
        let [_, _, oh, ow] = conv.output_shape();
        let pitch = conv.x_shape[3] + conv.window.padding[1].0 + conv.window.padding[1].1;
        if let Some(gather) = Gather::new([oh, ow], conv.window.strides, pitch) {
            return run_gathered(simd, conv, weights, &gather, out);
        }
        if conv.window.strides == [1, 1] && weights.depth <= MAX_PLANES_DEPTH {
            return simd.vectorize(|| run_planes(simd, conv, weights, out));
        }
    }
    run_on(&Best, conv, weights, out);
}

/// Relu on 16 lanes: `value <= 0` (false for NaN) becomes 0, as in Activation::apply.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn relu_v4(simd: pulp::x86::V4, value: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    let zero = simd.avx512f._mm512_setzero_ps();
    let not_positive = simd.avx512f._mm512_cmp_ps_mask::<{ std::arch::x86_64::_CMP_LE_OQ }>(value, zero);
    simd.avx512f._mm512_mask_blend_ps(not_positive, value, zero)
}

/// A convolution with 16 output pixels in NCHW order in the lanes of a register and 16 output
/// channels at a time, on AVX-512, for images small enough that 16 consecutive output pixels lie
/// within 32 positions of the padded plane ([`Gather`](super::Gather)): each tap loads those 32 positions and one
/// `vpermt2ps` picks the 16 pixels' inputs, which one broadcast weight per channel multiplies. The
/// sums are whole registers of one channel's consecutive output pixels, stored as they are: no
/// per-channel scalar stores (the blocks' epilogue, a fifth of their time on digits_cnn's second
/// layer, perf) and no lanes computed and dropped past each row (the planes'). The sums start from
/// the bias and add the taps in the blocks' order (channel, then tap), each with one FMA, so the
/// results are the blocks' bit for bit.
#[cfg(target_arch = "x86_64")]
fn run_gathered(simd: pulp::x86::V4, conv: &Conv2d<'_>, weights: &DirectWeights, gather: &Gather, out: &mut [f32]) {
    let [n, c, h, w] = conv.x_shape;
    let [m, _, kh, kw] = conv.w_shape;
    let [_, _, oh, ow] = conv.output_shape();
    let Window2d { dilations, padding, .. } = conv.window;
    let (hp, wp) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1);
    let plane = hp * wp;
    // A block reads up to 32 positions from its corner plus a tap's offset: past the last plane,
    // this slack.
    let reach = (kh - 1) * dilations[0] * wp + (kw - 1) * dilations[1];
    let x = padded_planes(conv.x, [h, w], padding, 0.0, GATHER_SPAN + reach, |value| value);
    let taps: Vec<usize> = (0..kh).flat_map(|ky| (0..kw).map(move |kx| ky * dilations[0] * wp + kx * dilations[1])).collect();
    let task = |index: usize, out: &mut [f32]| {
        let image = GatheredImage { planes: &x[index * c * plane..], plane, taps: &taps, outputs: oh * ow, out };
        // Each image enters the instruction set's code itself: a closure shared by the parallel and
        // the serial loop was compiled without AVX-512, its intrinsics out of line (20x slower).
        simd.vectorize(
            #[inline(always)]
            || image.run(simd, conv, weights, gather),
        );
    };
    let chunk = m * oh * ow;
    // Below about 2M multiply-adds a second thread costs more to wake than it saves (as in `run_on`).
    if rayon::current_num_threads() > 1 && n > 1 && n * chunk * weights.depth >= 1 << 21 {
        out.par_chunks_mut(chunk).enumerate().for_each(|(index, out)| task(index, out));
    } else {
        for (index, out) in out.chunks_mut(chunk).enumerate() {
            task(index, out);
        }
    }
}

/// One image of [`run_gathered`]: its padded planes and its `[M, OH * OW]` slice of Y.
#[cfg(target_arch = "x86_64")]
struct GatheredImage<'a> {
    planes: &'a [f32],
    plane: usize,
    taps: &'a [usize],
    outputs: usize,
    out: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl GatheredImage<'_> {
    #[inline(always)]
    fn run(self, simd: pulp::x86::V4, conv: &Conv2d<'_>, weights: &DirectWeights, gather: &Gather) {
        use std::arch::x86_64::{__m512, __m512i};
        const LANES: usize = 16;
        let GatheredImage { planes, plane, taps, outputs, out } = self;
        let m = conv.w_shape[0];
        let relu = conv.activation == Some(Activation::Relu);
        let (depth, width) = (weights.depth, weights.width);
        for first in (0..m).step_by(LANES) {
            let filters = LANES.min(m - first);
            // This chunk's 16 weights per (channel, tap), inside its block of `width` (zeros past `m`).
            let (block, offset) = (first / width, first % width);
            let rows = &weights.blocks[block * depth * width..(block + 1) * depth * width];
            let bias: [f32; LANES] =
                std::array::from_fn(|j| conv.bias.and_then(|bias| bias.get(first + j)).copied().unwrap_or(0.0));
            for (pixels, (&start, lanes)) in gather.starts.iter().zip(&gather.lanes).enumerate() {
                let lanes: __m512i = pulp::cast(*lanes);
                let mut sums: [__m512; LANES] = std::array::from_fn(|j| simd.avx512f._mm512_set1_ps(bias[j]));
                for (channel, rows) in rows.chunks_exact(taps.len() * width).enumerate() {
                    let input = &planes[channel * plane + start..];
                    for (&tap, row) in taps.iter().zip(rows.chunks_exact(width)) {
                        let window: [f32; GATHER_SPAN] = input[tap..tap + GATHER_SPAN].try_into().unwrap_or_default();
                        let [low, high]: [__m512; 2] = pulp::cast(window);
                        let values = simd.avx512f._mm512_permutex2var_ps(low, lanes, high);
                        let row: [f32; LANES] = row[offset..offset + LANES].try_into().unwrap_or_default();
                        for (sum, &weight) in sums.iter_mut().zip(&row) {
                            *sum = simd.avx512f._mm512_fmadd_ps(values, simd.avx512f._mm512_set1_ps(weight), *sum);
                        }
                    }
                }
                let written = pixels * LANES;
                let count = LANES.min(outputs - written);
                for (filter, &sum) in (first..first + filters).zip(&sums) {
                    let value = if relu { relu_v4(simd, sum) } else { sum };
                    super::store_compressed(&mut out[filter * outputs..][..outputs], written, count, pulp::cast(value));
                }
            }
        }
    }
}

/// Multiply-adds per output element up to which a stride-1 layer runs [`run_planes`]: with so few
/// per pixel, the per-channel stores of the pixel blocks bound the loop (digits_cnn's first layer,
/// 9 per pixel and 16 channels: 10.1 us a call at batch 8 as blocks, 7.1 us as planes, one
/// thread; the whole fp32 run 28.7 -> 24.8 us); with many, the positions that planes compute and
/// drop cost more than the stores (its second layer, 144 per pixel, stays in blocks).
const MAX_PLANES_DEPTH: usize = 32;

/// A stride-1 convolution with 16 consecutive positions of the padded rows in the lanes of a
/// register and 16 output channels at a time, on AVX-512: an output pixel `(oy, ox)` is position
/// `oy * wp + ox`, so each tap is one load of 16 inputs times one broadcast weight per channel. The
/// positions past `ow` in a row are computed and dropped by a compress, which leaves the real ones
/// in NCHW order for whole-register stores. The sums start from the bias and add the taps in the
/// blocks' order (channel, then tap), each with one FMA, so the results are the blocks' bit for bit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn run_planes(simd: pulp::x86::V4, conv: &Conv2d<'_>, weights: &DirectWeights, out: &mut [f32]) {
    use std::arch::x86_64::__m512;
    const LANES: usize = 16;
    let [n, c, h, w] = conv.x_shape;
    let [m, _, kh, kw] = conv.w_shape;
    let [_, _, oh, ow] = conv.output_shape();
    let Window2d { dilations, padding, .. } = conv.window;
    let (hp, wp) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1);
    // Each channel plane is read up to 16 + (kw - 1) * dilation positions past its rows: the next
    // plane's, or this slack after the last one.
    let x = padded_planes(conv.x, [h, w], padding, 0.0, LANES + (kw - 1) * dilations[1], |value| value);
    let (positions, outputs) = (oh * wp, oh * ow);
    let masks = super::plane_masks(positions, wp, ow);
    let relu = conv.activation == Some(Activation::Relu);
    for image in 0..n {
        let planes = &x[image * c * hp * wp..];
        for first in (0..m).step_by(LANES) {
            let filters = LANES.min(m - first);
            let bias: [f32; LANES] =
                std::array::from_fn(|j| conv.bias.and_then(|bias| bias.get(first + j)).copied().unwrap_or(0.0));
            // This chunk's 16 weights per tap, inside its block of `width` (zeros past `m`). Built
            // per image as a new vector with a division per weight, they took 7% of digits_cnn's
            // fp32 run at batch 8 (perf).
            let (block, offset) = (first / weights.width, first % weights.width);
            let (depth, width) = (weights.depth, weights.width);
            let block_rows = &weights.blocks[block * depth * width..(block + 1) * depth * width];
            let mut written = 0;
            for (&mask, start) in masks.iter().zip((0..positions).step_by(LANES)) {
                // Broadcast per block: a copy of 16 registers made once per chunk was a memcpy call.
                let mut sums: [__m512; LANES] = std::array::from_fn(|j| simd.avx512f._mm512_set1_ps(bias[j]));
                for channel in 0..c {
                    let plane = &planes[channel * hp * wp..];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let at = start + ky * dilations[0] * wp + kx * dilations[1];
                            let values: [f32; LANES] = plane[at..at + LANES].try_into().unwrap_or_default();
                            let values: __m512 = pulp::cast(values);
                            let k = (channel * kh + ky) * kw + kx;
                            let row: [f32; LANES] = block_rows[k * width + offset..][..LANES].try_into().unwrap_or_default();
                            for (sum, &weight) in sums.iter_mut().zip(&row) {
                                *sum = simd.avx512f._mm512_fmadd_ps(values, simd.avx512f._mm512_set1_ps(weight), *sum);
                            }
                        }
                    }
                }
                let count = mask.count_ones() as usize;
                for (filter, &sum) in (first..first + filters).zip(&sums) {
                    let value = if relu { relu_v4(simd, sum) } else { sum };
                    let lanes: [f32; LANES] = pulp::cast(simd.avx512f._mm512_maskz_compress_ps(mask, value));
                    super::store_compressed(&mut out[(image * m + filter) * outputs..][..outputs], written, count, lanes);
                }
                written += count;
            }
        }
    }
}

/// Runs a block on an instruction set.
trait Dispatch: Sync {
    fn run<const WIDTH: usize>(&self, block: Block<'_, WIDTH>);
}

/// The best instruction set the CPU has.
struct Best;

impl Dispatch for Best {
    fn run<const WIDTH: usize>(&self, block: Block<'_, WIDTH>) {
        pulp::Arch::new().dispatch(block);
    }
}

/// [`run`] with blocks computed by `isa`.
fn run_on(isa: &impl Dispatch, conv: &Conv2d<'_>, weights: &DirectWeights, out: &mut [f32]) {
    let [n, c, h, w] = conv.x_shape;
    let [m, _, kh, kw] = conv.w_shape;
    let [_, _, oh, ow] = conv.output_shape();
    let Window2d { strides, dilations, padding, .. } = conv.window;
    // Padding made real once, so the inner loop reads without bounds logic of its own.
    let (hp, wp) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1);
    let padded_input;
    let x = if padding == [(0, 0); 2] {
        conv.x
    } else {
        padded_input = padded_planes(conv.x, [h, w], padding, 0.0, 0, |value| value);
        &padded_input
    };
    // Offsets in a padded plane: of each output pixel's window corner, and of each tap from it.
    let pixel_offsets: Vec<usize> =
        (0..oh).flat_map(|oy| (0..ow).map(move |ox| oy * strides[0] * wp + ox * strides[1])).collect();
    let tap_offsets: Vec<usize> =
        (0..kh).flat_map(|ky| (0..kw).map(move |kx| ky * dilations[0] * wp + kx * dilations[1])).collect();
    let image = |index: usize, out: &mut [f32]| {
        let task = Image {
            x: &x[index * c * hp * wp..(index + 1) * c * hp * wp],
            plane: hp * wp,
            weights,
            bias: conv.bias,
            activation: conv.activation,
            pixel_offsets: &pixel_offsets,
            tap_offsets: &tap_offsets,
            channels: c,
            filters: m,
            out,
        };
        match weights.width {
            16 => isa.run(Block::<16>(task)),
            _ => isa.run(Block::<32>(task)),
        }
    };
    let chunk = m * oh * ow;
    // Below about 2M multiply-adds a second thread costs more to wake than it saves (see the
    // batched GEMM path in conv.rs).
    if rayon::current_num_threads() > 1 && n > 1 && n * chunk * weights.depth >= 1 << 21 {
        out.par_chunks_mut(chunk).enumerate().for_each(|(index, out)| image(index, out));
    } else {
        for (index, out) in out.chunks_mut(chunk).enumerate() {
            image(index, out);
        }
    }
}

/// One image's convolution: `x` its padded planes, `out` its `[M, OH * OW]` slice of Y.
struct Image<'a> {
    x: &'a [f32],
    plane: usize,
    weights: &'a DirectWeights,
    bias: Option<&'a [f32]>,
    activation: Option<Activation>,
    pixel_offsets: &'a [usize],
    tap_offsets: &'a [usize],
    channels: usize,
    filters: usize,
    out: &'a mut [f32],
}

/// An [`Image`] computed in blocks of `WIDTH` output channels (the weights' `width`).
struct Block<'a, const WIDTH: usize>(Image<'a>);

impl<const WIDTH: usize> pulp::WithSimd for Block<'_, WIDTH> {
    type Output = ();

    // Inlined into pulp's per-instruction-set entry points, so that the loops, whose trip counts
    // are constants of `S` and WIDTH, are unrolled with the sums in registers.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Image { x, plane, weights, bias, activation, pixel_offsets, tap_offsets, channels, filters, out } = self.0;
        let (depth, taps, pixels) = (weights.depth, tap_offsets.len(), pixel_offsets.len());
        // Registers per pixel for a block of WIDTH channels, and pixels per register block.
        let vectors = (WIDTH / S::F32_LANES).max(1);
        let budget = if S::F32_LANES >= 16 { 16 } else { 8 };
        let block_pixels = (budget / vectors).clamp(1, PIXELS);
        let zero = simd.splat_f32s(0.0);
        let mut stored = [0.0f32; PIXELS * 32];
        for (block, block_weights) in weights.blocks.chunks_exact(depth * WIDTH).enumerate() {
            let first = block * WIDTH;
            let lanes = WIDTH.min(filters - first);
            let mut initial = [0.0f32; 32];
            if let Some(bias) = bias {
                initial[..lanes].copy_from_slice(&bias[first..first + lanes]);
            }
            let initial = S::as_simd_f32s(&initial[..WIDTH]).0;
            for start in (0..pixels).step_by(block_pixels) {
                let count = block_pixels.min(pixels - start);
                // A short last block repeats its last pixel; only `count` pixels are stored.
                let mut corners = [0usize; PIXELS];
                for (p, corner) in corners.iter_mut().enumerate().take(block_pixels) {
                    *corner = pixel_offsets[start + p.min(count - 1)];
                }
                let mut sums = [zero; ACCUMULATORS];
                for p in 0..block_pixels {
                    sums[p * vectors..(p + 1) * vectors].copy_from_slice(&initial[..vectors]);
                }
                for channel in 0..channels {
                    let input = &x[channel * plane..(channel + 1) * plane];
                    let rows = &block_weights[channel * taps * WIDTH..(channel + 1) * taps * WIDTH];
                    for (row, &tap) in rows.chunks_exact(WIDTH).zip(tap_offsets) {
                        let mut row_vectors = [zero; ACCUMULATORS];
                        row_vectors[..vectors].copy_from_slice(&S::as_simd_f32s(row).0[..vectors]);
                        for p in 0..block_pixels {
                            let value = simd.splat_f32s(input[corners[p] + tap]);
                            for v in 0..vectors {
                                sums[p * vectors + v] = simd.mul_add_e_f32s(value, row_vectors[v], sums[p * vectors + v]);
                            }
                        }
                    }
                }
                // Pixel p's channel `first + lane` lands at `p * WIDTH + lane`.
                let (stored_vectors, _) = S::as_mut_simd_f32s(&mut stored);
                stored_vectors[..block_pixels * vectors].copy_from_slice(&sums[..block_pixels * vectors]);
                // One output row (channel) at a time: its `count` pixels are contiguous in Y.
                let relu = activation == Some(Activation::Relu);
                for lane in 0..lanes {
                    let row = &mut out[(first + lane) * pixels + start..][..count];
                    for (p, target) in row.iter_mut().enumerate() {
                        let value = stored[p * WIDTH + lane];
                        // NaN fails `<= 0` and stays, as in Activation::apply.
                        *target = if relu && value <= 0.0 { 0.0 } else { value };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Weights;
    use crate::kernels::gemm::tests::{assert_near, ramp};
    use crate::ops::test_support::reference_conv2d;

    /// The scalar fallback, for CPUs without AVX2.
    struct Scalar;

    impl Dispatch for Scalar {
        fn run<const WIDTH: usize>(&self, block: Block<'_, WIDTH>) {
            pulp::Simd::vectorize(pulp::Scalar::new(), block);
        }
    }

    /// AVX2 + FMA (8 lanes), where the CPU has it.
    #[cfg(target_arch = "x86_64")]
    struct Avx2(pulp::x86::V3);

    #[cfg(target_arch = "x86_64")]
    impl Dispatch for Avx2 {
        fn run<const WIDTH: usize>(&self, block: Block<'_, WIDTH>) {
            pulp::Simd::vectorize(self.0, block);
        }
    }

    /// `(x shape, w shape, strides, dilations, padding)`.
    type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], [(usize, usize); 2]);

    #[test]
    fn every_instruction_set_matches_a_reference_convolution() {
        // 16- and 32-channel blocks, partial blocks, a short last pixel block, strides and
        // dilations with asymmetric padding.
        // Stride 1 with at most 32 multiply-adds per output (the first, third and fourth) also run
        // the planes, with 16, 21 (a partial chunk) and 7 channels, dilations and no padding.
        let cases: &[Case] = &[
            ([2, 1, 8, 8], [16, 1, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([2, 16, 4, 4], [32, 16, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 3, 7, 9], [21, 3, 3, 2], [1, 1], [2, 1], [(0, 2), (1, 0)]),
            ([3, 2, 5, 6], [7, 2, 1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
            ([1, 3, 7, 5], [5, 3, 2, 3], [2, 1], [1, 2], [(0, 1), (2, 0)]),
            ([2, 2, 6, 6], [45, 2, 3, 3], [1, 2], [2, 1], [(2, 2), (1, 1)]),
            // Wider than the gathered pixels serve (16 output pixels over more than 32 positions):
            // the planes, and the blocks for stride 2; 17 output pixels (a partial register).
            ([1, 2, 5, 40], [18, 2, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([2, 3, 9, 37], [16, 3, 3, 3], [2, 2], [1, 1], [(1, 1), (1, 1)]),
            ([1, 4, 3, 17], [5, 4, 1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)]),
        ];
        let (mut gathered, mut planes) = (0, 0);
        for &(x_shape, w_shape, strides, dilations, padding) in cases {
            let x = ramp(x_shape.iter().product(), 0.1);
            let weights = ramp(w_shape.iter().product(), 0.05);
            let bias: Vec<f32> = (0..w_shape[0]).map(|f| f as f32 * 0.1 - 0.3).collect();
            let conv = Conv2d {
                x: &x,
                x_shape,
                weights: Weights::Plain(&weights),
                w_shape,
                bias: Some(&bias),
                window: Window2d { kernel: [w_shape[2], w_shape[3]], strides, dilations, padding },
                group: 1,
                activation: Some(Activation::Relu),
            };
            let [_, _, oh, ow] = conv.output_shape();
            let expected: Vec<f64> = reference_conv2d(
                x_shape,
                w_shape,
                [oh, ow],
                strides,
                dilations,
                [padding[0].0, padding[1].0],
                |f| f64::from(bias[f]),
                |xi, wi, _| f64::from(x[xi]) * f64::from(weights[wi]),
            )
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
            let packed = pack(&weights, w_shape);
            let mut out = vec![f32::NAN; expected.len()];
            run_on(&Best, &conv, &packed, &mut out);
            assert_near(&out, &expected);
            // `run`, and the gathered pixels and the planes wherever they serve: the blocks' results
            // bit for bit.
            let blocks: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            let bits = |out: &[f32]| out.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            out.fill(f32::NAN);
            run(&conv, &packed, &mut out);
            assert_eq!(bits(&out), blocks);
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V4::try_new() {
                let pitch = x_shape[3] + padding[1].0 + padding[1].1;
                if let Some(gather) = Gather::new([oh, ow], strides, pitch) {
                    gathered += 1;
                    out.fill(f32::NAN);
                    run_gathered(simd, &conv, &packed, &gather, &mut out);
                    assert_eq!(bits(&out), blocks, "gathered {x_shape:?} {w_shape:?}");
                }
                if strides == [1, 1] && packed.depth <= MAX_PLANES_DEPTH {
                    planes += 1;
                    out.fill(f32::NAN);
                    simd.vectorize(|| run_planes(simd, &conv, &packed, &mut out));
                    assert_eq!(bits(&out), blocks, "planes {x_shape:?} {w_shape:?}");
                }
            }
            out.fill(f32::NAN);
            run_on(&Scalar, &conv, &packed, &mut out);
            assert_near(&out, &expected);
            #[cfg(target_arch = "x86_64")]
            if let Some(v3) = pulp::x86::V3::try_new() {
                out.fill(f32::NAN);
                run_on(&Avx2(v3), &conv, &packed, &mut out);
                assert_near(&out, &expected);
            }
        }
        // Both AVX-512 loops were reached, where the CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        if pulp::x86::V4::try_new().is_some() {
            assert!(gathered >= 5 && planes >= 4, "gathered {gathered}, planes {planes}");
        }
    }

    #[test]
    fn relu_keeps_nan_and_only_small_ungrouped_layers_are_served() {
        let x = [f32::NAN, -1.0, 2.0, -3.0];
        let conv = Conv2d {
            x: &x,
            x_shape: [1, 1, 2, 2],
            weights: Weights::Plain(&[1.0]),
            w_shape: [1, 1, 1, 1],
            bias: None,
            window: Window2d { kernel: [1, 1], strides: [1, 1], dilations: [1, 1], padding: [(0, 0); 2] },
            group: 1,
            activation: Some(Activation::Relu),
        };
        let mut out = [0.0f32; 4];
        run(&conv, &pack(&[1.0], [1, 1, 1, 1]), &mut out);
        assert!(out[0].is_nan());
        assert_eq!(&out[1..], &[0.0, 2.0, 0.0]);
        assert!(serves([64, 128, 3, 3], 1));
        assert!(!serves([65, 3, 3, 3], 1));
        assert!(!serves([8, 129, 3, 3], 1));
        assert!(!serves([16, 1, 3, 3], 16));
    }
}
