//! Exact u8 x i8 -> i32 products on AVX512-VNNI (`vpdpbusd`) for the fused layers of int8 models:
//! direct 2-D convolution ([`run`]) and products with constant weights ([`gemm`]), each with its
//! epilogue (scales, bias, Relu, and for convolutions a following pooling: [`run_then`]) in
//! registers. The one module of the workspace with `unsafe` code: calls into `#[target_feature]`
//! functions after the CPU was seen to have those features, and the `set_len` of an output its
//! kernel wrote whole ([`gemm`]'s, the two 16-lane convolutions' in [`run_then`], [`quantize`]'s),
//! which spares zero-filling it first (the fill was 8-10% of the int8-static digits_cnn run at
//! batch 64).
//!
//! Why: through rten-gemm an int8 convolution is an im2col matrix that rten packs again on every
//! call (its packed layout is opaque), so on digits_cnn the data movement around the product cost
//! more than the fp32 direct loop (`direct_conv`) whole: int8-static ran 1.15-1.3x fp32 (perf at
//! batch 8: im2col 26%, rten's packing 14%, the product 9%). rten's virtual im2col and prepacked
//! weights were measured slower still (see `int8::im2col_columns` and `fuse_int8::Weights`). Here
//! the weights are laid out once and the sums stay in registers, read straight from the input
//! regrouped as 4 channels per i32: one `vpdpbusd` multiplies 4 channels' u8 values by 4 i8
//! weights and adds the 4 products exactly into each i32 lane (no saturation, unlike
//! `vpmaddubsw`). Small images put 16 output pixels in the lanes, gathered by one `vpermt2d` per
//! tap, and apply the epilogue in registers (`run_gathered`: int8-static digits_cnn at batch 8,
//! one thread, 25.0 -> 17.8 us a run, fp32 24.3); other stride-1 layers put 16 positions of the
//! padded rows in the lanes (`run_planes`); the rest put 16 filters in the lanes (`run_blocks`). pulp 0.22 wraps no
//! VNNI instruction, so the loops use `std::arch`, whose register intrinsics are safe inside a
//! function compiled with their features; only calling such a function needs `unsafe`.
//!
//! Zero points: the input is padded with its own zero point and the weights' zero points must be
//! 0 (symmetric weights, what whittle's and ONNX Runtime's quantizers write; [`VnniWeights::new`]
//! declines others), so `sum((x - zx) * w) = sum(x * w) - zx * sum(w)` over every tap, with
//! `sum(w)` per filter computed once.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use crate::kernels::int8::{self, ProductLayout};
use crate::kernels::Activation;
use crate::spatial::Window2d;

/// Filters per block: the 16 i32 lanes of a zmm register.
const LANES: usize = 16;

/// Filters above which the GEMM lowering serves (as `direct_conv::MAX_CHANNELS`).
const MAX_FILTERS: usize = 64;

/// Taps times channels above which the GEMM lowering serves (as `direct_conv::MAX_DEPTH`).
const MAX_DEPTH: usize = 1152;

/// Output pixels past the last column that a register block may read (see [`run_blocks`]).
const MAX_PIXELS: usize = 8;

/// A convolution's weights `[filters, channels, kh, kw]` in the kernel's i8, laid out for
/// [`run`]: for every channel quad, tap and block of 16 filters, 64 bytes holding each filter's 4
/// weights of that quad and tap (zeros past the channels and filters), with each filter's weight
/// sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VnniWeights {
    blocks: Vec<[i8; 64]>,
    quads_by_filter: Vec<i32>,
    sums: Vec<i32>,
    filters: usize,
    filter_blocks: usize,
    channels: usize,
    /// The layer's kernel `[kh, kw]`.
    source_kernel: [usize; 2],
    /// Horizontal taps folded into the channel slots of a quad: `kw` where that takes fewer quads
    /// and taps (see [`fold_for`]), else 1.
    fold: usize,
    /// The kernel the loops run: `[kh, kw / fold]`.
    kernel: [usize; 2],
}

/// How many horizontal taps [`VnniWeights`] folds into the channel slots of a quad, for `channels`
/// and a kernel width `kw`: all of them where the products per pixel, `quads * taps`, fall (a
/// convolution of `c` channels with taps `kx` is one of `c * kw` channels with one tap across, each
/// slot reading the padded image `kx * dilation` positions further on), else 1. A one-channel
/// first layer fills one byte of each quad unfolded: digits_cnn's 3x3 first layer goes from 9
/// `vpdpbusd` a filter to 3.
fn fold_for(channels: usize, kw: usize) -> usize {
    if (channels * kw).div_ceil(4) < channels.div_ceil(4) * kw {
        kw
    } else {
        1
    }
}

impl VnniWeights {
    /// Lays out `weights` (`[filters, channels, kh, kw]` row-major, the kernel's i8); `None` when
    /// a zero point is not 0, the sizes do not fit, or this CPU has no AVX512-VNNI.
    pub fn new(weights: &[i8], zero_points: &[i8], [filters, channels, kh, kw]: [usize; 4]) -> Option<VnniWeights> {
        if !available() || zero_points.iter().any(|&zero| zero != 0) || weights.len() != filters * channels * kh * kw {
            return None;
        }
        // The fp32 direct loop's limits, for the same reason: past them each block of filters
        // reads the whole input again and the weights no longer stay in cache, where a GEMM's
        // packing pays off.
        if filters > MAX_FILTERS || channels * kh * kw > MAX_DEPTH {
            return None;
        }
        let source_kernel = [kh, kw];
        // `[filters, channels * fold, kh, kw / fold]`, slot `channel * fold + kx`.
        let fold = fold_for(channels, kw);
        let folded: Cow<'_, [i8]> = if fold == 1 {
            Cow::Borrowed(weights)
        } else {
            let mut folded = vec![0i8; weights.len()];
            for (index, &weight) in weights.iter().enumerate() {
                let (filter, channel, ky, kx) =
                    (index / (channels * kh * kw), index / (kh * kw) % channels, index / kw % kh, index % kw);
                folded[((filter * channels + channel) * fold + kx) * kh + ky] = weight;
            }
            Cow::Owned(folded)
        };
        let (weights, unfolded_channels, channels, kw) = (&folded[..], channels, channels * fold, kw / fold);
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
        // `[quad, tap, filter]` of each filter's 4 weights as one i32, for `run_planes`.
        let padded = filters.next_multiple_of(LANES);
        let mut quads_by_filter = vec![0i32; quads * taps * padded];
        for (block_index, block) in blocks.iter().enumerate() {
            let (position, filter_block) = (block_index / filter_blocks, block_index % filter_blocks);
            for (lane, bytes) in block.chunks_exact(4).enumerate() {
                let filter = filter_block * LANES + lane;
                if filter < padded {
                    quads_by_filter[position * padded + filter] =
                        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]].map(|b| b as u8));
                }
            }
        }
        let sums = weights.chunks_exact(channels * taps).map(|row| row.iter().map(|&w| i32::from(w)).sum()).collect();
        Some(VnniWeights {
            blocks,
            quads_by_filter,
            sums,
            filters,
            filter_blocks,
            channels: unfolded_channels,
            source_kernel,
            fold,
            kernel: [kh, kw],
        })
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

/// The convolution of the images `x` (the kernel's u8, NCHW) with `weights` (the sums exact in
/// wrapping i32), its epilogue applied: `[n, filters, oh, ow]` f32. `None` when the weights do not
/// fit `geometry`.
pub(crate) fn run(x: &[u8], x_zero: u8, geometry: &Geometry, weights: &VnniWeights, epilogue: &Epilogue<'_>) -> Option<Vec<f32>> {
    run_then(x, x_zero, geometry, weights, epilogue, None)
}

/// What a fused convolution does with each image's output planes `[filters, oh, ow]` (its
/// pooling): appends its result to the second argument.
pub(crate) type EachImage<'a> = &'a mut dyn FnMut(&[f32], &mut Vec<f32>);

/// A fused convolution's pooling: `each` for any output, and the same pooling in registers where
/// [`run_gathered`] can apply it.
pub(crate) struct Pooling<'a> {
    pub each: EachImage<'a>,
    pub in_registers: Option<RegisterPool>,
}

/// A pooling [`run_gathered`] applies to its registers of 16 output pixels, bit for bit the
/// pooling kernel's result, where the plane's shape fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterPool {
    /// 2x2 windows with stride 2 (`elementwise::max_pool_2x2`) on planes 8 wide and of an even
    /// height: each register is two rows.
    Max2x2,
    /// The mean of each plane of 16 pixels (`elementwise::mean_rows`): each register is a plane.
    Mean,
}

impl RegisterPool {
    /// Whether the pooling fits planes `[oh, ow]`.
    fn fits(self, [oh, ow]: [usize; 2]) -> bool {
        match self {
            RegisterPool::Max2x2 => ow == 8 && oh % 2 == 0,
            RegisterPool::Mean => oh * ow == LANES,
        }
    }

    /// The values kept of a plane of `outputs` pixels.
    fn kept(pool: Option<RegisterPool>, outputs: usize) -> usize {
        match pool {
            None => outputs,
            Some(RegisterPool::Max2x2) => outputs / 4,
            Some(RegisterPool::Mean) => 1,
        }
    }
}

/// [`run`] followed by `pooling`, where given: in registers where [`run_gathered`] serves and the
/// planes fit, else by `each` on every image's planes as they are written (on the two 16-lane
/// loops, one image at a time into a buffer that stays in cache).
///
/// Why: digits_cnn's MaxPool and ReduceMean steps, a quarter of its int8-static run at batch 64
/// (10.8 and 8.0 us of 76, one thread), read back the convolutions' full-size outputs in loops
/// over rows of 8 and runs of 16; the same pooling in the registers of the epilogue stores a
/// quarter of the first layer's output and a sixteenth of the second's, and the run went from
/// 78.6 to 64.8 us (fp32 131.0). Pooled by `each` from the one-image buffer it took 89.7 us.
pub(crate) fn run_then(
    x: &[u8],
    x_zero: u8,
    geometry: &Geometry,
    weights: &VnniWeights,
    epilogue: &Epilogue<'_>,
    pooling: Option<Pooling<'_>>,
) -> Option<Vec<f32>> {
    let [n, c, h, w] = geometry.x;
    let [kh, kw] = weights.kernel;
    if x.len() != n * c * h * w || c != weights.channels || geometry.window.kernel != weights.source_kernel || h * w == 0 {
        return None;
    }
    if epilogue.multipliers.len() != weights.filters || epilogue.bias.is_some_and(|bias| bias.len() != weights.filters) {
        return None;
    }
    let Window2d { strides, dilations, padding, .. } = geometry.window;
    let [oh, ow] = geometry.output;
    let per_image = weights.filters * oh * ow;
    let width = w + padding[1].0 + padding[1].1;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // `zx * sum(w)` per filter, taken off every sum.
        let terms: Vec<i32> = weights.sums.iter().map(|&sum| i32::from(x_zero).wrapping_mul(sum)).collect();
        let (lanes, slack) = match crate::kernels::Gather::new([oh, ow], strides, width) {
            Some(gather) => {
                let reach = (kh - 1) * dilations[0] * width + (kw - 1) * dilations[1];
                (Lanes::Gathered(gather), crate::kernels::GATHER_SPAN + reach)
            }
            None if strides == [1, 1] => (Lanes::Planes, LANES + (kw - 1) * dilations[1]),
            None => {
                let input = Quads::new(x, x_zero, geometry, weights.fold, width + MAX_PIXELS * strides[1], 0);
                let mut sums = vec![0i32; weights.stride() * n * oh * ow];
                // SAFETY: `run_avx512` needs AVX-512F and AVX512-VNNI, which `available` found on
                // this CPU; everything it does besides those instructions is safe Rust.
                #[allow(unsafe_code)]
                unsafe {
                    run_avx512(&input, geometry, weights, &mut sums)
                };
                subtract_zero_terms(&mut sums, &terms, weights.stride());
                let layout = ProductLayout::Pixels { filters: weights.filters, stride: weights.stride(), positions: oh * ow };
                let out = int8::dequantize(&sums, layout, epilogue.multipliers, epilogue.bias, epilogue.activation);
                return Some(match pooling {
                    None => out,
                    Some(Pooling { each, .. }) => {
                        let mut pooled = Vec::new();
                        out.chunks_exact(per_image).for_each(|planes| each(planes, &mut pooled));
                        pooled
                    }
                });
            }
        };
        let input = Quads::new(x, x_zero, geometry, weights.fold, width, slack);
        let call = Call { input: &input, geometry, weights, terms: &terms, epilogue };
        let written = |images: std::ops::Range<usize>, pool: Option<RegisterPool>, out: &mut Vec<f32>| {
            let count = images.len() * weights.filters * RegisterPool::kept(pool, oh * ow);
            out.clear();
            out.reserve(count);
            lanes.write(&call, images.clone(), pool, out.spare_capacity_mut());
            // SAFETY: `Lanes::write` wrote every value of `out[..count]`, the planes of those
            // images or what `pool` keeps of them (see its documentation).
            #[allow(unsafe_code)]
            unsafe {
                out.set_len(count)
            };
        };
        let mut out = Vec::new();
        match pooling {
            None => written(0..n, None, &mut out),
            Some(Pooling { in_registers: Some(pool), .. }) if matches!(lanes, Lanes::Gathered(_)) && pool.fits([oh, ow]) => {
                written(0..n, Some(pool), &mut out)
            }
            Some(Pooling { each, .. }) => {
                let mut planes = Vec::new();
                for image in 0..n {
                    written(image..image + 1, None, &mut planes);
                    each(&planes, &mut out);
                }
            }
        }
        return Some(out);
    }
    None
}

/// One call's operands for the 16-lane loops.
#[cfg(target_arch = "x86_64")]
struct Call<'a> {
    input: &'a Quads,
    geometry: &'a Geometry,
    weights: &'a VnniWeights,
    terms: &'a [i32],
    epilogue: &'a Epilogue<'a>,
}

/// What the 16 lanes of a register hold in the convolutions that write NCHW directly. Made only
/// where `available` found AVX-512F and AVX512-VNNI.
#[cfg(target_arch = "x86_64")]
enum Lanes {
    /// 16 output pixels, gathered ([`run_gathered`]).
    Gathered(crate::kernels::Gather),
    /// 16 positions of the padded rows ([`run_planes`]).
    Planes,
}

#[cfg(target_arch = "x86_64")]
impl Lanes {
    /// Writes every value of `out[..images.len() * filters * kept]`: the planes of `images`,
    /// NCHW, the epilogue applied, or with `pool` (which must fit the planes, on `Gathered`) the
    /// `kept` values of each plane that it keeps ([`RegisterPool::kept`]).
    fn write(&self, call: &Call<'_>, images: std::ops::Range<usize>, pool: Option<RegisterPool>, out: &mut [MaybeUninit<f32>]) {
        let Call { geometry, weights, .. } = *call;
        let per_image = weights.filters * RegisterPool::kept(pool, geometry.output[0] * geometry.output[1]);
        assert!(images.end <= geometry.x[0] && out.len() >= images.len() * per_image, "the output does not hold the images");
        let fits = match (self, pool) {
            (_, None) => true,
            (Lanes::Gathered(_), Some(pool)) => pool.fits(geometry.output),
            (Lanes::Planes, Some(_)) => false,
        };
        assert!(fits, "the pooling does not fit the planes");
        match self {
            // SAFETY: both loops need AVX-512F and AVX512-VNNI, which `available` found on this
            // CPU before any `Lanes` was made; everything they do besides those instructions is
            // safe Rust. Each writes every value of its images' planes: `run_gathered` every block
            // of 16 output pixels (`gather` has one per 16, the last one short) of each filter,
            // `run_planes` the real lanes of every register of each plane, `ow` in each of the
            // `oh` rows.
            #[allow(unsafe_code)]
            Lanes::Gathered(gather) => unsafe { run_gathered(call, gather, images, pool, out) },
            #[allow(unsafe_code)]
            Lanes::Planes => unsafe { run_planes(call, images, out) },
        }
    }
}

/// What follows the integer sums: `sum * multiplier[filter] + bias[filter]`, then the activation,
/// as `int8::dequantize` computes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub multipliers: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub activation: Option<Activation>,
}

/// The input in channel quads: `[n, quad, plane]` of i32, each the 4 bytes of channels `4 * quad
/// ..` at one position of the padded image, whose rows are `stride` apart, with `slack` more
/// positions after each image (padding, the columns past it and the slack hold the zero point in
/// the real channels, 0 in the missing ones, whose weights are 0).
struct Quads {
    values: Vec<i32>,
    quads: usize,
    stride: usize,
    /// Positions per quad plane: the padded rows, then the slack.
    plane: usize,
}

impl Quads {
    /// `fold` horizontal taps per channel (see [`fold_for`]): slot `channel * fold + kx` of a
    /// position holds the padded image's byte `kx * dilation` positions further on.
    ///
    /// Quads are built 4 slots at a time by contiguous reads, which the compiler vectorizes.
    /// Unfolded, those reads are the 4 channels' planes and the pixels' quads are stored through a
    /// table of where each pixel goes, over a fill of the padding quad (the zero point in the real
    /// slots); folded, each channel's padded plane is made first and read at the taps' offsets.
    /// Writing each byte into its slot, row by row, took 13% of the int8-static digits_cnn run at
    /// batch 64 (perf): its rows are 4 and 8 pixels, so the per-row work and the byte stores
    /// dominated.
    fn new(x: &[u8], zero: u8, geometry: &Geometry, fold: usize, stride: usize, slack: usize) -> Quads {
        struct Build<'a>(&'a [u8], u8, &'a Geometry, usize, usize, usize);
        impl pulp::WithSimd for Build<'_> {
            type Output = Quads;
            // Inlined into pulp's per-instruction-set entry points, so that the loops are compiled
            // with their target features (the release binary's baseline is SSE2).
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _simd: S) -> Quads {
                let Build(x, zero, geometry, fold, stride, slack) = self;
                Quads::build(x, zero, geometry, fold, stride, slack)
            }
        }
        pulp::Arch::new().dispatch(Build(x, zero, geometry, fold, stride, slack))
    }

    #[inline(always)]
    fn build(x: &[u8], zero: u8, geometry: &Geometry, fold: usize, stride: usize, slack: usize) -> Quads {
        let [n, c, h, w] = geometry.x;
        let padding = geometry.window.padding;
        let dilation = geometry.window.dilations[1];
        let slots = c * fold;
        let quads = slots.div_ceil(4);
        let plane = (h + padding[0].0 + padding[0].1) * stride + slack;
        let pixels = h * w;
        let targets: Vec<usize> =
            (0..pixels).map(|pixel| (pixel / w + padding[0].0) * stride + padding[1].0 + pixel % w).collect();
        if fold == 1 {
            // Every position starts as the padding quad; the pixels' quads are stored over it.
            let padding_quad =
                |quad: usize| i32::from_le_bytes(std::array::from_fn(|k| if quad * 4 + k < slots { zero } else { 0 }));
            let mut values = Vec::with_capacity(n * quads * plane);
            for _ in 0..n {
                for quad in 0..quads {
                    values.extend(std::iter::repeat_n(padding_quad(quad), plane));
                }
            }
            // Slots past the channels read the padding quad's 0.
            let zeros = vec![0u8; pixels];
            let mut quad_values = vec![0i32; pixels];
            for (image, out) in values.chunks_exact_mut(quads * plane).enumerate() {
                let channels = &x[image * c * pixels..][..c * pixels];
                for (quad, out) in out.chunks_exact_mut(plane).enumerate() {
                    let slot = |k: usize| channels.chunks_exact(pixels).nth(quad * 4 + k).unwrap_or(&zeros);
                    interleave(&mut quad_values, [slot(0), slot(1), slot(2), slot(3)]);
                    for (&value, &target) in quad_values.iter().zip(&targets) {
                        out[target] = value;
                    }
                }
            }
            return Quads { values, quads, stride, plane };
        }
        // Each channel's padded plane, with the positions that folded slots read past its end; every
        // quad position is then interleaved from them, padding included.
        let mut values = vec![0i32; n * quads * plane];
        let padded_len = plane + (fold - 1) * dilation;
        let mut padded = vec![zero; c * padded_len];
        let zeros = vec![0u8; plane];
        for (image, out) in values.chunks_exact_mut(quads * plane).enumerate() {
            for (source, target) in
                x[image * c * pixels..][..c * pixels].chunks_exact(pixels).zip(padded.chunks_exact_mut(padded_len))
            {
                for (&value, &position) in source.iter().zip(&targets) {
                    target[position] = value;
                }
            }
            for (quad, out) in out.chunks_exact_mut(plane).enumerate() {
                let slot = |k: usize| match quad * 4 + k {
                    slot if slot < slots => &padded[(slot / fold) * padded_len + (slot % fold) * dilation..][..plane],
                    _ => &zeros[..],
                };
                interleave(out, [slot(0), slot(1), slot(2), slot(3)]);
            }
        }
        Quads { values, quads, stride, plane }
    }
}

/// `out[i]` = the little-endian i32 of the 4 bytes `bytes[k][i]`.
///
/// In blocks of 16 fixed-size arrays, which the compiler turns into byte unpacks: over slices of
/// a run-time length it kept one byte at a time (4 loads, 3 shifts, 3 ors a value), and
/// [`Quads::new`] took 15% of the int8-static digits_cnn run at batch 64 (perf).
#[inline(always)]
fn interleave(out: &mut [i32], bytes: [&[u8]; 4]) {
    let len = out.len();
    let [b0, b1, b2, b3] = bytes.map(|bytes| &bytes[..len]);
    let (blocks, rest) = out.as_chunks_mut::<LANES>();
    let [c0, c1, c2, c3] = [b0, b1, b2, b3].map(|bytes| bytes.as_chunks::<LANES>().0);
    for (block, (((c0, c1), c2), c3)) in blocks.iter_mut().zip(c0.iter().zip(c1).zip(c2).zip(c3)) {
        *block = std::array::from_fn(|i| i32::from_le_bytes([c0[i], c1[i], c2[i], c3[i]]));
    }
    let done = blocks.len() * LANES;
    for (i, out) in rest.iter_mut().enumerate() {
        let i = done + i;
        *out = i32::from_le_bytes([b0[i], b1[i], b2[i], b3[i]]);
    }
}

/// `- zx * sum(w)` for every filter's accumulators (`[pixels, stride]`).
fn subtract_zero_terms(out: &mut [i32], terms: &[i32], stride: usize) {
    for pixel in out.chunks_exact_mut(stride) {
        for (value, &term) in pixel.iter_mut().zip(terms) {
            *value = value.wrapping_sub(term);
        }
    }
}

/// A stride-1 convolution into `out` (NCHW f32), its epilogue applied in registers: the sums
/// `sum(x * w)` over every tap (including the padding) minus `terms` (`zx * sum(w)` per filter),
/// times the multiplier, plus the bias, then the activation. The 16 lanes of a register are 16
/// consecutive positions of the padded rows: an output pixel `(oy, ox)` is position `oy * pitch +
/// ox`, so each tap reads the input 16 positions at a time, one load for 16 filters' `vpdpbusd`
/// (each with one filter's 4 weights broadcast). Positions past `ow` in a row are computed and
/// dropped: a compress moves the real ones together, which in position order are the output's
/// NCHW order. With the filters in the lanes instead (`run_blocks`), storing each pixel's filters
/// into NCHW went one value at a time: the epilogue took a third of the int8-static digits_cnn run
/// at batch 8 (perf).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_planes(call: &Call<'_>, images: std::ops::Range<usize>, out: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let Call { input, geometry, weights, terms, epilogue } = *call;
    let [oh, ow] = geometry.output;
    let dilations = geometry.window.dilations;
    let [kh, kw] = weights.kernel;
    let (taps, filters, padded) = (kh * kw, weights.filters, weights.filters.next_multiple_of(LANES));
    let (pitch, positions, outputs) = (input.stride, oh * input.stride, oh * ow);
    // Which lanes of the register starting at each position hold output pixels.
    let masks = crate::kernels::plane_masks(positions, pitch, ow);
    let relu = matches!(epilogue.activation, Some(Activation::Relu));
    let first_image = images.start;
    for image in images {
        let planes = &input.values[image * input.quads * input.plane..][..input.quads * input.plane];
        for first in (0..padded).step_by(LANES) {
            let mut written = 0;
            for (&mask, start) in masks.iter().zip((0..positions).step_by(LANES)) {
                let mut sums = [_mm512_setzero_si512(); LANES];
                for (quad, values) in planes.chunks_exact(input.plane).enumerate() {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let at = start + ky * dilations[0] * pitch + kx * dilations[1];
                            // Fixed-size arrays: a slice copy of a runtime length is a memmove call
                            // (14% of the int8-static digits_cnn run at batch 8 with them, perf).
                            let x: [i32; LANES] = values[at..at + LANES].try_into().unwrap_or_default();
                            let x: __m512i = pulp::cast(x);
                            let w = &weights.quads_by_filter[(quad * taps + ky * kw + kx) * padded + first..][..LANES];
                            for (sum, &w) in sums.iter_mut().zip(w) {
                                *sum = _mm512_dpbusd_epi32(*sum, x, _mm512_set1_epi32(w));
                            }
                        }
                    }
                }
                let count = mask.count_ones() as usize;
                for (filter, &sum) in (first..filters).zip(&sums) {
                    let bias = epilogue.bias.map(|bias| _mm512_set1_ps(bias[filter]));
                    let (term, multiplier) = (_mm512_set1_epi32(terms[filter]), _mm512_set1_ps(epilogue.multipliers[filter]));
                    let value = finish(sum, term, multiplier, bias, relu);
                    let lanes: [f32; LANES] = pulp::cast(_mm512_maskz_compress_ps(mask, value));
                    crate::kernels::store_compressed(
                        &mut out[((image - first_image) * filters + filter) * outputs..][..outputs],
                        written,
                        count,
                        lanes.map(MaybeUninit::new),
                    );
                }
                written += count;
            }
        }
    }
}

/// [`run_planes`] for images small enough that 16 consecutive output pixels lie within 32
/// positions of the padded plane (`kernels::Gather`), any stride: each tap loads those 32 quads
/// and one `vpermt2d` picks the 16 pixels' inputs, so no lane is computed and dropped and the
/// stores need no compress. As `direct_conv::run_gathered` for fp32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_gathered(
    call: &Call<'_>,
    gather: &crate::kernels::Gather,
    images: std::ops::Range<usize>,
    pool: Option<RegisterPool>,
    out: &mut [MaybeUninit<f32>],
) {
    use std::arch::x86_64::*;
    let Call { input, geometry, weights, terms, epilogue } = *call;
    const SPAN: usize = crate::kernels::GATHER_SPAN;
    // The sum of no values as `mean_rows` computes it (Rust's f32 sum starts at -0.0).
    let empty_sum: f32 = [0.0f32; 0].iter().sum();
    let [oh, ow] = geometry.output;
    let dilations = geometry.window.dilations;
    let [kh, kw] = weights.kernel;
    let (taps, filters, padded) = (kh * kw, weights.filters, weights.filters.next_multiple_of(LANES));
    let pitch = input.stride;
    let outputs = oh * ow;
    // The values kept of each plane.
    let kept = RegisterPool::kept(pool, outputs);
    let tap_offsets: Vec<usize> =
        (0..kh).flat_map(|ky| (0..kw).map(move |kx| ky * dilations[0] * pitch + kx * dilations[1])).collect();
    let relu = matches!(epilogue.activation, Some(Activation::Relu));
    let first_image = images.start;
    for image in images {
        let planes = &input.values[image * input.quads * input.plane..][..input.quads * input.plane];
        for first in (0..padded).step_by(LANES) {
            for (block, (&start, lanes)) in gather.starts.iter().zip(&gather.lanes).enumerate() {
                let lanes: __m512i = pulp::cast(*lanes);
                let mut sums = [_mm512_setzero_si512(); LANES];
                for (quad, values) in planes.chunks_exact(input.plane).enumerate() {
                    let values = &values[start..];
                    for (tap, &offset) in tap_offsets.iter().enumerate() {
                        let window: [i32; SPAN] = values[offset..offset + SPAN].try_into().unwrap_or_default();
                        let [low, high]: [__m512i; 2] = pulp::cast(window);
                        let x = _mm512_permutex2var_epi32(low, lanes, high);
                        let w: [i32; LANES] = weights.quads_by_filter[(quad * taps + tap) * padded + first..][..LANES]
                            .try_into()
                            .unwrap_or_default();
                        for (sum, &w) in sums.iter_mut().zip(&w) {
                            *sum = _mm512_dpbusd_epi32(*sum, x, _mm512_set1_epi32(w));
                        }
                    }
                }
                let written = block * LANES;
                let count = LANES.min(outputs - written);
                for (filter, &sum) in (first..filters).zip(&sums) {
                    let bias = epilogue.bias.map(|bias| _mm512_set1_ps(bias[filter]));
                    let (term, multiplier) = (_mm512_set1_epi32(terms[filter]), _mm512_set1_ps(epilogue.multipliers[filter]));
                    let value = finish(sum, term, multiplier, bias, relu);
                    let plane = &mut out[((image - first_image) * filters + filter) * kept..][..kept];
                    match pool {
                        None => crate::kernels::store_compressed(
                            plane,
                            written,
                            count,
                            pulp::cast::<_, [f32; LANES]>(value).map(MaybeUninit::new),
                        ),
                        Some(RegisterPool::Max2x2) => {
                            // `elementwise::max_pool_2x2`'s operations: each column's
                            // `larger(larger(-inf, top), bottom)`, then each pair's `larger(left,
                            // right)`, where `larger(best, value)` is `maxps(value, best)` (the
                            // second operand when the first is not greater, NaN included).
                            let top = _mm512_max_ps(value, _mm512_set1_ps(f32::NEG_INFINITY));
                            let bottom = _mm512_shuffle_f32x4::<0b01_00_11_10>(value, value);
                            let vertical = _mm512_max_ps(bottom, top);
                            let right = _mm512_permute_ps::<0b10_11_00_01>(vertical);
                            let pooled = _mm512_maskz_compress_ps(0x55, _mm512_max_ps(right, vertical));
                            let lanes = pulp::cast::<_, [f32; LANES]>(pooled).map(MaybeUninit::new);
                            crate::kernels::store_compressed(plane, block * 4, 4, lanes);
                        }
                        Some(RegisterPool::Mean) => {
                            // `elementwise::mean_rows`'s operations on a run of 16: eight sums
                            // `(0 + x[j]) + x[8 + j]`, added pairwise, plus the empty tail's sum.
                            let high = _mm512_shuffle_f32x4::<0b01_00_11_10>(value, value);
                            let sums = _mm512_add_ps(_mm512_add_ps(_mm512_setzero_ps(), value), high);
                            let pairs = _mm512_add_ps(sums, _mm512_permute_ps::<0b10_11_00_01>(sums));
                            let quads = _mm512_add_ps(pairs, _mm512_permute_ps::<0b01_00_11_10>(pairs));
                            let lanes: [f32; LANES] = pulp::cast(quads);
                            plane[0] = MaybeUninit::new(((lanes[0] + lanes[4]) + empty_sum) / LANES as f32);
                        }
                    }
                }
            }
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
        let planes = &input.values[image * input.quads * input.plane..][..input.quads * input.plane];
        for first_block in (0..filter_blocks).step_by(BLOCKS) {
            for oy in 0..oh {
                for ox in (0..ow).step_by(PIXELS) {
                    let mut sums = [[_mm512_setzero_si512(); BLOCKS]; PIXELS];
                    for (quad, plane) in planes.chunks_exact(input.plane).enumerate() {
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

/// A constant right operand `[k, n]` of a product (the kernel's i8, zero points 0) laid out for
/// [`gemm`]: its blocks of 16 columns in groups of `group` (see [`group_for`]), and for every group
/// and quad of rows `4q ..`, each block's 64 bytes holding each column's 4 values of that quad
/// (zeros past `k` and `n`), so that one group's loop reads its weights in one forward pass; with
/// each column's sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VnniMatrix {
    panels: Vec<[i8; 64]>,
    sums: Vec<i32>,
    k: usize,
    n: usize,
    /// Blocks of 16 columns computed together: 1 to 4.
    group: usize,
    groups: usize,
}

/// The blocks of 16 columns that [`gemm`] keeps in registers together, out of `blocks`: all of
/// them up to 4, else the group of 4, 3 or 2 that pads the fewest blocks (the larger on a tie).
fn group_for(blocks: usize) -> usize {
    if blocks <= 4 {
        return blocks;
    }
    [4, 3, 2].into_iter().min_by_key(|&group| blocks.next_multiple_of(group)).unwrap_or(4)
}

impl VnniMatrix {
    /// Lays out `values` (`[k, n]` row-major); `None` when a zero point is not 0, the sizes do not
    /// fit, or this CPU has no AVX512-VNNI.
    pub fn new(values: &[i8], zero: Option<&[i8]>, k: usize, n: usize) -> Option<VnniMatrix> {
        if !available() || zero.is_some_and(|zero| zero.iter().any(|&value| value != 0)) || values.len() != k * n || k * n == 0 {
            return None;
        }
        let group = group_for(n.div_ceil(LANES));
        let groups = n.div_ceil(LANES).div_ceil(group);
        let quads = k.div_ceil(4);
        let mut panels = vec![[0i8; 64]; groups * quads * group];
        let mut sums = vec![0i32; groups * group * LANES];
        for (row, values) in values.chunks_exact(n).enumerate() {
            for (column, &value) in values.iter().enumerate() {
                let block = column / LANES;
                let at = ((block / group) * quads + row / 4) * group + block % group;
                panels[at][(column % LANES) * 4 + row % 4] = value;
                sums[column] += i32::from(value);
            }
        }
        Some(VnniMatrix { panels, sums, k, n, group, groups })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// The rows [`gemm`] computes together: 24 accumulators where the group allows (of the 32
    /// registers, with the group's weights and one broadcast), 8 rows for a single block.
    fn rows(&self) -> usize {
        match self.group {
            2 => 12,
            3 => 8,
            4 => 6,
            _ => 8,
        }
    }
}

/// `epilogue((x - x_zero) @ B)` as f32 `[m, n]` for the rows `x` `[m, k]` (the kernel's u8), the
/// products exact in wrapping i32 and the epilogue `int8::dequantize`'s f32 operations; `None`
/// when the sizes do not fit.
///
/// Why: rten-gemm packs the activations on every call with a scalar byte loop and computes 8 rows
/// at a time however few there are, then whittle dequantized in another pass; on int8-static
/// digits_mlp at batch 64 that packing, the passes around the product and their buffers took
/// three times the product's time (perf). Here a block of rows is interleaved once into a small
/// panel (4 bytes of each row per quad, side by side), each quad's 4 bytes are broadcast per
/// `vpdpbusd` against the group's blocks of 16 columns, and the epilogue runs in registers.
pub(crate) fn gemm(x: &[u8], x_zero: u8, m: usize, b: &VnniMatrix, epilogue: &Epilogue<'_>) -> Option<Vec<f32>> {
    if x.len() != m * b.k || epilogue.multipliers.len() != b.n || epilogue.bias.is_some_and(|bias| bias.len() != b.n) {
        return None;
    }
    // Per column, padded to whole groups: the zero-point term, the multiplier and the bias.
    let columns = b.sums.len();
    let pad = |values: &mut Vec<f32>| values.resize(columns, 0.0);
    let mut multipliers = epilogue.multipliers.to_vec();
    pad(&mut multipliers);
    let mut bias = epilogue.bias.map_or_else(Vec::new, <[f32]>::to_vec);
    if epilogue.bias.is_some() {
        pad(&mut bias);
    }
    let terms: Vec<i32> = b.sums.iter().map(|&sum| i32::from(x_zero).wrapping_mul(sum)).collect();
    let columns = Columns { terms: &terms, multipliers: &multipliers, bias: (!bias.is_empty()).then_some(&bias[..]) };
    #[cfg(target_arch = "x86_64")]
    if available() {
        use rayon::prelude::*;
        let relu = matches!(epilogue.activation, Some(Activation::Relu));
        let threads = rayon::current_num_threads();
        // The output is written once, by the kernel: zero-filling it first (`vec![0.0; _]`) took
        // 5% of int8-static transformer_tiny's run at batch 64 (perf, memset).
        let mut out: Vec<f32> = Vec::with_capacity(m * b.n);
        let slots = &mut out.spare_capacity_mut()[..m * b.n];
        // Below about 16M multiply-adds a second thread costs more than it saves; above, the rows
        // are shared out in whole blocks. From 2M, int8-static transformer_tiny at batch 64 (its
        // 1024x64x64 products split) ran 3.55 ms a run at 2 threads against 3.05 unsplit, above
        // its fp32 (3.46) and its own 1-thread run (2.99), on this 2-vCPU machine.
        if threads > 1 && m > b.rows() && m * b.k * b.n >= PARALLEL_PRODUCT {
            let task_rows = m.div_ceil(threads).next_multiple_of(b.rows());
            slots.par_chunks_mut(task_rows * b.n).zip(x.par_chunks(task_rows * b.k)).for_each(|(out, rows)| {
                // SAFETY: `run_gemm` needs AVX-512F and AVX512-VNNI, which `available` found on
                // this CPU; everything it does besides those instructions is safe Rust.
                #[allow(unsafe_code)]
                unsafe {
                    run_gemm(rows, out.len() / b.n, b, &columns, relu, out)
                };
            });
        } else {
            // SAFETY: as above.
            #[allow(unsafe_code)]
            unsafe {
                run_gemm(x, m, b, &columns, relu, slots)
            };
        }
        // SAFETY: `run_gemm` wrote all `m * n` slots: `run_gemm_rows` runs `run_gemm_block` on
        // row blocks that cover `0..m`, and each stores every one of its `count` rows through
        // every group, each block of 16 columns below `n` stored whole or, the last, up to `n`
        // (the test `products_are_exact_with_the_epilogue_of_dequantize` compares every value).
        #[allow(unsafe_code)]
        unsafe {
            out.set_len(m * b.n)
        };
        return Some(out);
    }
    None
}

/// Multiply-adds of a [`gemm`] from which its rows are shared out over rayon's threads.
const PARALLEL_PRODUCT: usize = 1 << 24;

/// The epilogue of 16 sums, `int8::dequantize`'s f32 operations: `(sum - term) * multiplier [+
/// bias]`, then the Relu, where `value <= 0` (false for NaN) becomes 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn finish(
    sum: std::arch::x86_64::__m512i,
    term: std::arch::x86_64::__m512i,
    multiplier: std::arch::x86_64::__m512,
    bias: Option<std::arch::x86_64::__m512>,
    relu: bool,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, term)), multiplier);
    let value = match bias {
        Some(bias) => _mm512_add_ps(scaled, bias),
        None => scaled,
    };
    if relu {
        let not_positive = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(value, _mm512_setzero_ps());
        _mm512_mask_blend_ps(not_positive, value, _mm512_setzero_ps())
    } else {
        value
    }
}

/// [`gemm`]'s per-column constants, padded to whole groups.
struct Columns<'a> {
    terms: &'a [i32],
    multipliers: &'a [f32],
    bias: Option<&'a [f32]>,
}

/// [`gemm`]'s loop over its blocks of rows, on the group size of `b` with its rows per block
/// ([`VnniMatrix::rows`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_gemm(x: &[u8], m: usize, b: &VnniMatrix, columns: &Columns<'_>, relu: bool, out: &mut [MaybeUninit<f32>]) {
    match b.group {
        1 => run_gemm_rows::<1, 8>(x, m, b, columns, relu, out),
        2 => run_gemm_rows::<2, 12>(x, m, b, columns, relu, out),
        3 => run_gemm_rows::<3, 8>(x, m, b, columns, relu, out),
        _ => run_gemm_rows::<4, 6>(x, m, b, columns, relu, out),
    }
}

/// [`run_gemm`] with `GROUP` blocks of columns and `ROWS` rows in registers; a last block of
/// fewer rows runs on 4, 2 or 1 where that covers it, so that a product of one row does not
/// compute `ROWS`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn run_gemm_rows<const GROUP: usize, const ROWS: usize>(
    x: &[u8],
    m: usize,
    b: &VnniMatrix,
    columns: &Columns<'_>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    let whole = m - m % ROWS;
    let mut panel = Vec::new();
    for first in (0..whole).step_by(ROWS) {
        run_gemm_block::<GROUP, ROWS>(x, first, ROWS, b, columns, relu, out, &mut panel);
    }
    let count = m - whole;
    match count {
        0 => {}
        1 => run_gemm_block::<GROUP, 1>(x, whole, count, b, columns, relu, out, &mut Vec::new()),
        2 => run_gemm_block::<GROUP, 2>(x, whole, count, b, columns, relu, out, &mut Vec::new()),
        3 | 4 if ROWS > 4 => run_gemm_block::<GROUP, 4>(x, whole, count, b, columns, relu, out, &mut Vec::new()),
        _ => run_gemm_block::<GROUP, ROWS>(x, whole, count, b, columns, relu, out, &mut panel),
    }
}

/// Rows `first .. first + count` (`count <= ROWS`) of the product through every group of
/// columns: the rows interleaved into `panel` (`[quad][row]`, 4 bytes each; a short block repeats
/// its last row, whose sums are not stored; zeros past `k`, whose weights are 0), then per group
/// `ROWS x GROUP` accumulators over all quads, finished and stored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
fn run_gemm_block<const GROUP: usize, const ROWS: usize>(
    x: &[u8],
    first: usize,
    count: usize,
    b: &VnniMatrix,
    columns: &Columns<'_>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
    panel: &mut Vec<[[u8; 4]; ROWS]>,
) {
    use std::arch::x86_64::*;
    let (k, n) = (b.k, b.n);
    let quads = k.div_ceil(4);
    // Every byte of the panel is written below, so a panel reused from the last block is not
    // cleared.
    panel.resize(quads, [[0; 4]; ROWS]);
    for r in 0..ROWS {
        let row = first + r.min(count - 1);
        let (chunks, rest) = x[row * k..(row + 1) * k].as_chunks::<4>();
        for (quad, &bytes) in panel.iter_mut().zip(chunks) {
            quad[r] = bytes;
        }
        if let Some(last) = panel.last_mut().filter(|_| !rest.is_empty()) {
            last[r] = [0; 4];
            last[r][..rest.len()].copy_from_slice(rest);
        }
    }
    for group in 0..b.groups {
        let weights = b.panels[group * quads * GROUP..(group + 1) * quads * GROUP].as_chunks::<GROUP>().0;
        let mut sums = [[_mm512_setzero_si512(); GROUP]; ROWS];
        for (quad, w) in panel.iter().zip(weights) {
            let mut w_blocks = [_mm512_setzero_si512(); GROUP];
            for i in 0..GROUP {
                w_blocks[i] = pulp::cast(w[i]);
            }
            for r in 0..ROWS {
                let x = _mm512_set1_epi32(i32::from_le_bytes(quad[r]));
                for i in 0..GROUP {
                    sums[r][i] = _mm512_dpbusd_epi32(sums[r][i], x, w_blocks[i]);
                }
            }
        }
        for i in 0..GROUP {
            let first_column = (group * GROUP + i) * LANES;
            if first_column >= n {
                break;
            }
            let width = LANES.min(n - first_column);
            let load_i32 = |values: &[i32]| -> __m512i {
                pulp::cast(<[i32; LANES]>::try_from(&values[first_column..first_column + LANES]).unwrap_or_default())
            };
            let load_f32 = |values: &[f32]| -> __m512 {
                pulp::cast(<[f32; LANES]>::try_from(&values[first_column..first_column + LANES]).unwrap_or_default())
            };
            let (term, multiplier, bias) = (load_i32(columns.terms), load_f32(columns.multipliers), columns.bias.map(load_f32));
            for (r, sums) in sums.iter().enumerate().take(count) {
                let lanes: [f32; LANES] = pulp::cast(finish(sums[i], term, multiplier, bias, relu));
                let at = (first + r) * n + first_column;
                // Slot by slot: `write_copy_of_slice` compiled to a `memcpy` call per store.
                match <&mut [MaybeUninit<f32>; LANES]>::try_from(&mut out[at..at + width]) {
                    Ok(target) => target.iter_mut().zip(lanes).for_each(|(slot, lane)| _ = slot.write(lane)),
                    Err(_) => out[at..at + width].iter_mut().zip(lanes).for_each(|(slot, lane)| _ = slot.write(lane)),
                }
            }
        }
    }
}

/// Whether this CPU has AVX-512F and AVX-512DQ, all that [`quantize`] needs.
fn has_avx512dq() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `2^22`: quotients are clamped to `[-2^22, 2^22]`, as in `int8::ActivationQuant::quantize`, so
/// that the conversion to i32 cannot overflow.
const QUOTIENT_LIMIT: f32 = 4_194_304.0;

/// `0.5 - 2^-11`: a product whose distance to the nearest integer reaches this lies near a
/// half-integer, and its block of 16 is quantized by division (see [`quantize`]).
const NEAR_HALF: f32 = 0.5 - 1.0 / 2048.0;

/// `saturate(round(value / scale) + zero)` onto `[0, 255]` for `values`, `zero` the zero point in
/// the kernel's u8 (for i8 the type's clamp and the shift by 128 are this one clamp), with the
/// bytes of `int8::ActivationQuant::quantize`'s division, on AVX-512; `None` without AVX-512F and
/// DQ, or where the scale or its reciprocal is not a normal number (the bound below needs both).
///
/// Why: `vdivps` on 16 lanes issues about once per 10-16 cycles on Intel's cores, and the
/// division's loop took 10 cycles per 16 values on a Sapphire Rapids (26% of int8-static
/// digits_mlp's run at batch 64, perf). A first version by the reciprocal with the division's
/// float clamps and a near test on `|q|` took 8.5: 17 vector operations on the 2 ports that run
/// 512-bit ones. Here the conversion rounds (`vcvtps2dq`, half to even), the clamp to `[0, 255]` is
/// in integers, and `vreduceps` gives `q - round(q)` in one operation: 12 operations, about 6
/// cycles.
///
/// The same bytes: with a normal reciprocal, `q' = v * (1 / s)` and `v / s` lie within `|q| * 3 *
/// 2^-24` of the true quotient `q`, so within `|q| * 2^-22` of each other, and round apart only
/// where a half-integer lies between them. Below 1024 in magnitude that is closer than 2^-12 to
/// `q'`, which the near test catches with twice that margin; from 1023 on both quotients saturate
/// to the same end of `[0, 255]` for every zero point. The near test fires on about one value in
/// a thousand (one block in sixty). Infinities and quotients past `2^22` clamp and saturate; NaN
/// clamps to `-2^22` (`vmaxps` returns its second operand for NaN) and so to 0, as the division's
/// loop gives it.
pub(crate) fn quantize(values: &[f32], scale: f32, zero: u8) -> Option<Vec<u8>> {
    let inverse = 1.0 / scale;
    if !has_avx512dq() || !scale.is_normal() || !inverse.is_normal() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut out: Vec<u8> = Vec::with_capacity(values.len());
        // SAFETY: `quantize_avx512` needs AVX-512F and DQ, which `has_avx512dq` found on this
        // CPU; everything it does besides those instructions is safe Rust.
        #[allow(unsafe_code)]
        unsafe {
            quantize_avx512(values, scale, inverse, zero, &mut out.spare_capacity_mut()[..values.len()])
        };
        // SAFETY: `quantize_avx512` wrote every slot of `out[..values.len()]`: 16 per whole block
        // of 16 values and the rest for the last, short block (the tests compare every byte).
        #[allow(unsafe_code)]
        unsafe {
            out.set_len(values.len())
        };
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// [`quantize`]'s loop: every whole block of 16 by the reciprocal, again by division where one of
/// its products is near a half-integer, and the last, short block by division.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn quantize_avx512(values: &[f32], scale: f32, inverse: f32, zero: u8, out: &mut [MaybeUninit<u8>]) {
    use std::arch::x86_64::*;
    let (scale, inverse, zero) = (_mm512_set1_ps(scale), _mm512_set1_ps(inverse), _mm512_set1_epi32(i32::from(zero)));
    let (below, above) = (_mm512_set1_ps(-QUOTIENT_LIMIT), _mm512_set1_ps(QUOTIENT_LIMIT));
    let (near_half, magnitude) = (_mm512_set1_ps(NEAR_HALF), _mm512_set1_epi32(i32::MAX));
    // The quotients' bytes, and whether one of them lies near a half-integer.
    let bytes = |quotient: __m512| -> ([u8; LANES], bool) {
        // `max(q, -2^22)` with the bound second: NaN becomes the bound.
        let clamped = _mm512_min_ps(_mm512_max_ps(quotient, below), above);
        let level = _mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(clamped), zero), _mm512_setzero_si512());
        // Unsigned saturation to 255 (`level` is not negative).
        let bytes: [u8; LANES] = pulp::cast(_mm512_cvtusepi32_epi8(level));
        // `q - round(q)`, exact.
        let fraction = _mm512_reduce_ps::<{ _MM_FROUND_TO_NEAREST_INT }>(clamped);
        let distance = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(fraction), magnitude));
        (bytes, _mm512_cmp_ps_mask::<_CMP_GE_OQ>(distance, near_half) != 0)
    };
    let (blocks, rest) = values.as_chunks::<LANES>();
    let (slots, rest_slots) = out.as_chunks_mut::<LANES>();
    for (block, slots) in blocks.iter().zip(slots) {
        let block: __m512 = pulp::cast(*block);
        let (mut quantized, near) = bytes(_mm512_mul_ps(block, inverse));
        if near {
            quantized = bytes(_mm512_div_ps(block, scale)).0;
        }
        slots.iter_mut().zip(quantized).for_each(|(slot, byte)| _ = slot.write(byte));
    }
    if !rest.is_empty() {
        let mut block = [0.0f32; LANES];
        block[..rest.len()].copy_from_slice(rest);
        let quantized = bytes(_mm512_div_ps(pulp::cast(block), scale)).0;
        rest_slots.iter_mut().zip(quantized).for_each(|(slot, byte)| _ = slot.write(byte));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::madd::tests::conv_reference;

    #[test]
    fn convolutions_are_exact_against_i64() {
        if !available() {
            return;
        }
        // (x, w, strides, dilations, padding): digits_cnn's two layers, a channel count that is not
        // a multiple of 4, filters past one and two blocks, strides, dilations, asymmetric padding
        // and widths that leave a pixel-block tail.
        type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], [(usize, usize); 2]);
        let (mut clipped, mut kept) = (false, false);
        // The first five gather their pixels (`run_gathered`); the next two, on images wide enough
        // that 16 pixels span more than 32 positions, run the planes, and the last two (stride 2
        // on a wide image) the blocks; `Gather::new` is asserted to decide so. Each path sees
        // weights with their horizontal taps folded into the quads (`fold_for`) and without.
        let cases: [Case; 9] = [
            ([2, 1, 8, 8], [16, 1, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([2, 16, 4, 4], [32, 16, 3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)]),
            ([1, 5, 7, 9], [37, 5, 3, 2], [2, 1], [1, 2], [(0, 2), (1, 0)]),
            ([3, 3, 5, 6], [7, 3, 1, 1], [1, 2], [1, 1], [(0, 0), (0, 0)]),
            ([1, 9, 6, 5], [60, 9, 3, 3], [1, 1], [2, 1], [(2, 2), (1, 1)]),
            ([1, 3, 6, 30], [20, 3, 3, 3], [1, 1], [1, 9], [(1, 1), (1, 1)]),
            ([1, 2, 6, 30], [20, 2, 3, 3], [1, 1], [1, 9], [(1, 0), (0, 1)]),
            ([2, 4, 9, 40], [17, 4, 3, 3], [2, 2], [1, 1], [(1, 1), (1, 1)]),
            ([2, 1, 9, 40], [17, 1, 3, 5], [2, 3], [1, 2], [(0, 1), (3, 0)]),
        ];
        let folded = cases.map(|(_, [_, c, _, kw], ..)| fold_for(c, kw) > 1);
        assert_eq!(folded, [true, false, true, false, true, false, true, false, true]);
        let gathered = |(x_shape, w_shape, strides, dilations, padding): Case| {
            let size = |input: usize, axis: usize, k: usize| {
                (input + padding[axis].0 + padding[axis].1 - (k - 1) * dilations[axis] - 1) / strides[axis] + 1
            };
            let output = [size(x_shape[2], 0, w_shape[2]), size(x_shape[3], 1, w_shape[3])];
            crate::kernels::Gather::new(output, strides, x_shape[3] + padding[1].0 + padding[1].1).is_some()
        };
        assert_eq!(cases.map(gathered), [true, true, true, true, true, false, false, false, false]);
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
            let [oh, ow] = geometry.output;
            let positions = oh * ow;
            let multipliers: Vec<f32> = (0..filters).map(|f| 0.01 * (f + 1) as f32).collect();
            let bias: Vec<f32> = (0..filters).map(|f| f as f32 * 0.1 - 1.0).collect();
            for zx in [0u8, 131, 255] {
                let sums = conv_reference(&x, zx, &w, &vec![0; filters], w_shape, &geometry);
                // NCHW, from the filter-major reference sums.
                let nchw = |f: &dyn Fn(usize, i32) -> f32| -> Vec<f32> {
                    (0..n * filters * positions)
                        .map(|i| {
                            let (image, filter, position) = (i / (filters * positions), i / positions % filters, i % positions);
                            f(filter, sums[filter * n * positions + image * positions + position])
                        })
                        .collect()
                };
                // The sums alone (below 2^24, so exact in f32), then with the whole epilogue, whose
                // f32 operations must be `int8::dequantize`'s.
                let plain = Epilogue { multipliers: &vec![1.0; filters], bias: None, activation: None };
                let got = run(&x, zx, &geometry, &weights, &plain).unwrap();
                assert_eq!(got, nchw(&|_, sum| sum as f32), "{x_shape:?} {w_shape:?} zero {zx}");
                let full = Epilogue { multipliers: &multipliers, bias: Some(&bias), activation: Some(Activation::Relu) };
                let got = run(&x, zx, &geometry, &weights, &full).unwrap();
                let expected = nchw(&|filter, sum| {
                    let value = sum as f32 * multipliers[filter] + bias[filter];
                    if value <= 0.0 {
                        0.0
                    } else {
                        value
                    }
                });
                assert_eq!(got, expected, "{x_shape:?} {w_shape:?} zero {zx}, with the epilogue");
                clipped |= got.contains(&0.0);
                kept |= got.iter().any(|&v| v > 0.0);
            }
        }
        assert!(clipped && kept, "the Relu both clipped and kept values somewhere");
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
        let epilogue = Epilogue { multipliers: &[1.0, 1.0], bias: None, activation: None };
        assert!(run(&[0; 32], 0, &geometry, &weights, &epilogue).is_none(), "two channels against weights of one");
        let geometry = Geometry { x: [1, 1, 4, 4], ..geometry };
        let short = Epilogue { multipliers: &[1.0], ..epilogue };
        assert!(run(&[0; 16], 0, &geometry, &weights, &short).is_none(), "one multiplier for two filters");
        assert!(run(&[0; 16], 0, &geometry, &weights, &epilogue).is_some());
    }

    #[test]
    fn products_are_exact_with_the_epilogue_of_dequantize() {
        if !available() {
            return;
        }
        // Groups of one block of 16 columns (10, 1), two (17), three and a tail (45), four (64, 96
        // in two groups), five blocks in groups of three (80), seven in groups of four (112) and
        // thirteen in groups of two (200); K with a partial quad; M with whole blocks of rows and
        // last blocks of 1 to 11 rows.
        assert_eq!([1, 2, 3, 4, 5, 6, 7, 13].map(group_for), [1, 2, 3, 4, 3, 3, 4, 2]);
        let cases = [
            (1, 64, 10),
            (3, 37, 45),
            (9, 128, 64),
            (64, 5, 17),
            (8, 1, 1),
            (13, 20, 80),
            (7, 8, 112),
            (2, 9, 200),
            (23, 16, 96),
            (35, 12, 30),
        ];
        for (m, k, n) in cases {
            let x: Vec<u8> = (0..m * k).map(|i| [255, 0, 254, 1, 131][i % 5]).collect();
            let b: Vec<i8> = (0..k * n).map(|i| [-128, 127, -1, 3][(i / 3 + i) % 4]).collect();
            let matrix = VnniMatrix::new(&b, None, k, n).unwrap();
            let multipliers: Vec<f32> = (0..n).map(|j| 0.001 * (j + 1) as f32).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 3.0).collect();
            for zx in [0u8, 131, 255] {
                let sums: Vec<i64> = (0..m * n)
                    .map(|i| (0..k).map(|p| (i64::from(x[i / n * k + p]) - i64::from(zx)) * i64::from(b[p * n + i % n])).sum())
                    .collect();
                let plain = Epilogue { multipliers: &vec![1.0; n], bias: None, activation: None };
                let got = gemm(&x, zx, m, &matrix, &plain).unwrap();
                assert_eq!(got, sums.iter().map(|&sum| sum as f32).collect::<Vec<_>>(), "{m}x{k}x{n} zero {zx}");
                let full = Epilogue { multipliers: &multipliers, bias: Some(&bias), activation: Some(Activation::Relu) };
                let got = gemm(&x, zx, m, &matrix, &full).unwrap();
                let expected: Vec<f32> = sums
                    .iter()
                    .enumerate()
                    .map(|(i, &sum)| {
                        let value = sum as i32 as f32 * multipliers[i % n] + bias[i % n];
                        if value <= 0.0 {
                            0.0
                        } else {
                            value
                        }
                    })
                    .collect();
                assert_eq!(got, expected, "{m}x{k}x{n} zero {zx}, with the epilogue");
            }
        }
        // Large enough to share its rows out over threads: the same values as on one.
        let (k, n) = (128, 96);
        let m = PARALLEL_PRODUCT / (k * n) + 9;
        let x: Vec<u8> = (0..m * k).map(|i| (i * 7 % 256) as u8).collect();
        let b: Vec<i8> = (0..k * n).map(|i| (i * 13 % 256) as u8 as i8).collect();
        let matrix = VnniMatrix::new(&b, None, k, n).unwrap();
        let plain = Epilogue { multipliers: &vec![1.0; n], bias: None, activation: None };
        let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let one = pool(1).install(|| gemm(&x, 3, m, &matrix, &plain).unwrap());
        let three = pool(3).install(|| gemm(&x, 3, m, &matrix, &plain).unwrap());
        assert_eq!(one, three);
        let expected: Vec<f32> = (0..m * n)
            .map(|i| (0..k).map(|p| (i64::from(x[i / n * k + p]) - 3) * i64::from(b[p * n + i % n])).sum::<i64>() as f32)
            .collect();
        assert_eq!(one, expected);
        assert!(VnniMatrix::new(&[1, 2], Some(&[0, 1]), 1, 2).is_none());
        let matrix = VnniMatrix::new(&[1, 2], None, 1, 2).unwrap();
        let plain = Epilogue { multipliers: &[1.0, 1.0], bias: None, activation: None };
        assert!(gemm(&[1, 2, 3], 0, 2, &matrix, &plain).is_none(), "3 bytes for 2 rows of 1");
    }
}
