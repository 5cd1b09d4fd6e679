//! Exact u8 x i8 -> i32 direct 2-D convolution on AVX512-VNNI (`vpdpbusd`), for the small layers
//! of int8 models: the one module of the workspace with `unsafe` code, a single call into a
//! `#[target_feature]` function after the CPU was seen to have those features.
//!
//! Why: through rten-gemm an int8 convolution is an im2col matrix that rten packs again on every
//! call (its packed layout is opaque), so on digits_cnn the data movement around the product cost
//! more than the fp32 direct loop (`direct_conv`) whole: int8-static ran 1.15-1.3x fp32 (perf at
//! batch 8: im2col 26%, rten's packing 14%, the product 9%). rten's virtual im2col and prepacked
//! weights were measured slower still (see `int8::im2col_columns` and `fuse_int8::Weights`). Here,
//! as in the fp32 direct loop, the weights are laid out once and each output pixel sums in
//! registers straight from the input: one `vpdpbusd` multiplies 4 input channels of one tap,
//! broadcast, by 16 filters' 4 weights and adds the 4 products of each filter exactly into its i32
//! lane (no saturation, unlike `vpmaddubsw`). pulp 0.22 wraps no VNNI instruction, so the loop
//! uses `std::arch`, whose register intrinsics are safe inside a function compiled with their
//! features; only calling that function needs `unsafe`.
//!
//! Zero points: the input is padded with its own zero point and the weights' zero points must be
//! 0 (symmetric weights, what whittle's and ONNX Runtime's quantizers write; [`VnniWeights::new`]
//! declines others), so `sum((x - zx) * w) = sum(x * w) - zx * sum(w)` over every tap, with
//! `sum(w)` per filter computed once.

use crate::spatial::Window2d;

/// Filters per block: the 16 i32 lanes of a zmm register.
const LANES: usize = 16;

/// Output pixels past the last column that a register block may read (see [`run_blocks`]).
const MAX_PIXELS: usize = 8;

/// A convolution's weights `[filters, channels, kh, kw]` in the kernel's i8, laid out for
/// [`run`]: for every channel quad, tap and block of 16 filters, 64 bytes holding each filter's 4
/// weights of that quad and tap (zeros past the channels and filters), with each filter's weight
/// sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VnniWeights {
    blocks: Vec<[i8; 64]>,
    sums: Vec<i32>,
    filters: usize,
    filter_blocks: usize,
    channels: usize,
    kernel: [usize; 2],
}

impl VnniWeights {
    /// Lays out `weights` (`[filters, channels, kh, kw]` row-major, the kernel's i8); `None` when
    /// a zero point is not 0, the sizes do not fit, or this CPU has no AVX512-VNNI.
    pub fn new(weights: &[i8], zero_points: &[i8], [filters, channels, kh, kw]: [usize; 4]) -> Option<VnniWeights> {
        if !available() || zero_points.iter().any(|&zero| zero != 0) || weights.len() != filters * channels * kh * kw {
            return None;
        }
        // Blocks of 16 filters, an even number of them where two are computed together.
        let filter_blocks = if filters > LANES { filters.div_ceil(2 * LANES) * 2 } else { 1 };
        let (quads, taps) = (channels.div_ceil(4), kh * kw);
        let mut blocks = vec![[0i8; 64]; quads * taps * filter_blocks];
        for (filter, filter_weights) in weights.chunks_exact(channels * taps).enumerate() {
            for (channel, channel_weights) in filter_weights.chunks_exact(taps).enumerate() {
                for (tap, &weight) in channel_weights.iter().enumerate() {
                    let block = ((channel / 4) * taps + tap) * filter_blocks + filter / LANES;
                    blocks[block][(filter % LANES) * 4 + channel % 4] = weight;
                }
            }
        }
        let sums = weights.chunks_exact(channels * taps).map(|row| row.iter().map(|&w| i32::from(w)).sum()).collect();
        Some(VnniWeights { blocks, sums, filters, filter_blocks, channels, kernel: [kh, kw] })
    }

    pub fn filters(&self) -> usize {
        self.filters
    }

    /// The accumulators per output pixel in [`run`]'s output.
    pub fn stride(&self) -> usize {
        self.filter_blocks * LANES
    }
}

/// Whether this CPU has the instructions [`run`] uses.
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The geometry of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// `[n, c, h, w]`.
    pub x: [usize; 4],
    pub window: Window2d,
    /// `[oh, ow]`.
    pub output: [usize; 2],
}

/// `out[(image * oh * ow + position) * stride + filter] = sum((x - x_zero) * w)` for the images `x`
/// (the kernel's u8, NCHW), exact in wrapping i32, with the row `stride` ([`VnniWeights::stride`])
/// the filters rounded up to whole register blocks (vector stores; `int8::ProductLayout::Pixels`
/// reads it). `None` when the weights do not fit `geometry`.
pub(crate) fn run(x: &[u8], x_zero: u8, geometry: &Geometry, weights: &VnniWeights) -> Option<Vec<i32>> {
    let [n, c, h, w] = geometry.x;
    let [kh, kw] = weights.kernel;
    if x.len() != n * c * h * w || c != weights.channels || geometry.window.kernel != [kh, kw] {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if available() {
        let input = Quads::new(x, x_zero, geometry);
        let mut out = vec![0i32; weights.filter_blocks * LANES * n * geometry.output[0] * geometry.output[1]];
        // SAFETY: `run_avx512` needs AVX-512F and AVX512-VNNI, which `available` found on this CPU;
        // everything it does besides those instructions is safe Rust.
        #[allow(unsafe_code)]
        unsafe {
            run_avx512(&input, geometry, weights, &mut out)
        };
        subtract_zero_terms(&mut out, x_zero, weights);
        return Some(out);
    }
    None
}

/// The input in channel quads: `[n, quad, hp, wp + slack]` of i32, each the 4 bytes of channels
/// `4 * quad ..` at one padded position (padding and the columns past it hold the zero point in
/// the real channels, 0 in the missing ones, whose weights are 0).
struct Quads {
    values: Vec<i32>,
    quads: usize,
    rows: usize,
    /// Padded width plus room for a block of pixels past the last output column.
    stride: usize,
}

impl Quads {
    fn new(x: &[u8], zero: u8, geometry: &Geometry) -> Quads {
        let [n, c, h, w] = geometry.x;
        let Window2d { strides, padding, .. } = geometry.window;
        let quads = c.div_ceil(4);
        let (rows, stride) = (h + padding[0].0 + padding[0].1, w + padding[1].0 + padding[1].1 + MAX_PIXELS * strides[1]);
        let mut bytes = vec![[0u8; 4]; n * quads * rows * stride];
        for image in 0..n {
            for channel in 0..c {
                let plane = &mut bytes[(image * quads + channel / 4) * rows * stride..][..rows * stride];
                plane.iter_mut().for_each(|quad| quad[channel % 4] = zero);
                let source = &x[(image * c + channel) * h * w..][..h * w];
                for (y, line) in source.chunks_exact(w).enumerate() {
                    let start = (y + padding[0].0) * stride + padding[1].0;
                    for (quad, &value) in plane[start..start + w].iter_mut().zip(line) {
                        quad[channel % 4] = value;
                    }
                }
            }
        }
        Quads { values: bytes.into_iter().map(i32::from_le_bytes).collect(), quads, rows, stride }
    }
}

/// `- zx * sum(w)` for every filter's accumulators (`[pixels, padded filters]`).
fn subtract_zero_terms(out: &mut [i32], x_zero: u8, weights: &VnniWeights) {
    let terms: Vec<i32> = weights.sums.iter().map(|&sum| i32::from(x_zero).wrapping_mul(sum)).collect();
    for pixel in out.chunks_exact_mut(weights.filter_blocks * LANES) {
        for (value, &term) in pixel.iter_mut().zip(&terms) {
            *value = value.wrapping_sub(term);
        }
    }
}

/// The sums `sum(x * w)` over every tap, including the padding, into `out` `[n, oh * ow,
/// filters]`: two register blocks of 16 filters and 4 pixels where there are more than 16 filters,
/// else one block of 8 pixels, so that neither the sums nor the weights leave registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_avx512(input: &Quads, geometry: &Geometry, weights: &VnniWeights, out: &mut [i32]) {
    if weights.filters > LANES {
        run_blocks::<2, 4>(input, geometry, weights, out);
    } else {
        run_blocks::<1, 8>(input, geometry, weights, out);
    }
}

/// [`run_avx512`] with `BLOCKS` blocks of 16 filters and `PIXELS` output pixels in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_blocks<const BLOCKS: usize, const PIXELS: usize>(
    input: &Quads,
    geometry: &Geometry,
    weights: &VnniWeights,
    out: &mut [i32],
) {
    use std::arch::x86_64::{__m512i, _mm512_dpbusd_epi32, _mm512_set1_epi32, _mm512_setzero_si512};
    let [n, ..] = geometry.x;
    let [oh, ow] = geometry.output;
    let Window2d { strides, dilations, .. } = geometry.window;
    let [kh, kw] = weights.kernel;
    let filter_blocks = weights.filter_blocks;
    let taps = kh * kw;
    let padded_filters = filter_blocks * LANES;
    for image in 0..n {
        let planes = &input.values[image * input.quads * input.rows * input.stride..][..input.quads * input.rows * input.stride];
        for first_block in (0..filter_blocks).step_by(BLOCKS) {
            for oy in 0..oh {
                for ox in (0..ow).step_by(PIXELS) {
                    let mut sums = [[_mm512_setzero_si512(); BLOCKS]; PIXELS];
                    for (quad, plane) in planes.chunks_exact(input.rows * input.stride).enumerate() {
                        for ky in 0..kh {
                            let line = &plane[(oy * strides[0] + ky * dilations[0]) * input.stride..][..input.stride];
                            for kx in 0..kw {
                                let block = (quad * taps + ky * kw + kx) * filter_blocks + first_block;
                                let w: [__m512i; BLOCKS] = std::array::from_fn(|b| pulp::cast(weights.blocks[block + b]));
                                let first = ox * strides[1] + kx * dilations[1];
                                let line = &line[first..][..(PIXELS - 1) * strides[1] + 1];
                                for (pixel, sums) in sums.iter_mut().enumerate() {
                                    let x = _mm512_set1_epi32(line[pixel * strides[1]]);
                                    for (sum, &w) in sums.iter_mut().zip(&w) {
                                        *sum = _mm512_dpbusd_epi32(*sum, x, w);
                                    }
                                }
                            }
                        }
                    }
                    let row = (image * oh + oy) * ow;
                    for (pixel, sums) in sums.iter().enumerate().take(ow - ox) {
                        let at = (row + ox + pixel) * padded_filters + first_block * LANES;
                        let lanes: [[i32; LANES]; BLOCKS] = pulp::cast(*sums);
                        out[at..at + BLOCKS * LANES].copy_from_slice(lanes.as_flattened());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum((x - zx) * w)` in i64 with padding reading `zx`, `[filters, n * positions]`.
    fn reference(x: &[u8], zx: u8, w: &[i8], shape: [usize; 4], geometry: &Geometry) -> Vec<i32> {
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
                                    sum += (i64::from(value) - i64::from(zx)) * i64::from(w[((f * c + ch) * kh + ky) * kw + kx]);
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

    #[test]
    fn convolutions_are_exact_against_i64() {
        if !available() {
            return;
        }
        // (x, w, strides, dilations, padding): digits_cnn's two layers, a channel count that is not
        // a multiple of 4, filters past one and two blocks, strides, dilations, asymmetric padding
        // and widths that leave a pixel-block tail.
        type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], [(usize, usize); 2]);
        let cases: [Case; 5] = [
            ([2, 1, 8, 8], [16, 1, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([2, 16, 4, 4], [32, 16, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 5, 7, 9], [37, 5, 3, 2], [2, 1], [1, 2], [(0, 2), (1, 0)]),
            ([3, 3, 5, 6], [7, 3, 1, 1], [1, 2], [1, 1], [(0, 0), (0, 0)]),
            ([1, 9, 6, 5], [70, 9, 3, 3], [1, 1], [2, 1], [(2, 2), (1, 1)]),
        ];
        for (x_shape, w_shape, strides, dilations, padding) in cases {
            let [n, c, h, wd] = x_shape;
            let [filters, _, kh, kw] = w_shape;
            let size = |input: usize, axis: usize, k: usize| {
                (input + padding[axis].0 + padding[axis].1 - (k - 1) * dilations[axis] - 1) / strides[axis] + 1
            };
            let geometry = Geometry {
                x: x_shape,
                window: Window2d { kernel: [kh, kw], strides, dilations, padding },
                output: [size(h, 0, kh), size(wd, 1, kw)],
            };
            // The extremes: 255 and 0 against -128 and 127.
            let x: Vec<u8> = (0..n * c * h * wd).map(|i| [255, 0, 254, 1, 131][i % 5]).collect();
            let w: Vec<i8> = (0..filters * c * kh * kw).map(|i| [-128, 127, -1, 3][(i / 3 + i) % 4]).collect();
            let weights = VnniWeights::new(&w, &vec![0; filters], w_shape).unwrap();
            for zx in [0u8, 131, 255] {
                let got = run(&x, zx, &geometry, &weights).unwrap();
                let pixels = got.len() / weights.stride();
                let filter_major: Vec<i32> =
                    (0..filters * pixels).map(|i| got[(i % pixels) * weights.stride() + i / pixels]).collect();
                assert_eq!(filter_major, reference(&x, zx, &w, w_shape, &geometry), "{x_shape:?} {w_shape:?} zero {zx}");
            }
        }
    }

    #[test]
    fn weights_with_zero_points_or_the_wrong_size_are_declined() {
        if !available() {
            return;
        }
        assert!(VnniWeights::new(&[1; 18], &[0, 1], [2, 1, 3, 3]).is_none());
        assert!(VnniWeights::new(&[1; 17], &[0, 0], [2, 1, 3, 3]).is_none());
        let weights = VnniWeights::new(&[1; 18], &[0, 0], [2, 1, 3, 3]).unwrap();
        let geometry = Geometry {
            x: [1, 2, 4, 4],
            window: Window2d { kernel: [3, 3], strides: [1, 1], dilations: [1, 1], padding: [(1, 1); 2] },
            output: [4, 4],
        };
        assert!(run(&[0; 32], 0, &geometry, &weights).is_none(), "two channels against weights of one");
    }
}
