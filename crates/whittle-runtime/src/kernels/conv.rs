//! 2-D f32 convolution as one GEMM per image and group: `Y[b, g] = W[g] @ im2col(X[b, g]) + B[g]`.
//!
//! The weights are the left operand (`[M / group, C / group * kh * kw]`, packed once at plan time
//! when they are a constant), the image the right one: a 1x1 kernel with unit strides and no padding
//! reads the image `[C / group, H * W]` as it is; every other window goes through rten-gemm's
//! virtual im2col, which gathers patches (zeros in the padding) block by block while packing, so the
//! unrolled matrix (`kh * kw` times the image) is never built. The output `[M / group, OH * OW]` of
//! each product is already the NCHW layout of its slice of Y, so nothing is transposed afterwards;
//! the bias and the activation are applied in the same pass. Small ungrouped layers with few
//! filters skip the GEMM for the direct loop of [`super::direct_conv`]; the other small ungrouped
//! convolutions (an
//! unrolled batch of at most [`MATERIALIZED_IM2COL_LIMIT`] elements) instead build the batch's
//! patches in memory, as a few span copies of each channel plane per tap ([`TapCopies`]) where the
//! x stride is 1 and a gather through a tap table otherwise, and multiply them in column chunks of
//! whole images, on the calling thread below [`SERIAL_PRODUCT_LIMIT`] multiply-adds.
//!
//! digits_cnn at batch 8, one thread (`whittle bench --profile`, a loaded machine, so read the
//! ratios): its second convolution (16 to 32 channels on 4x4) went from 51 to 28 us a call when the
//! per-row `copy_from_slice` im2col became the tap-table gather, and the gather alone then took 11
//! of a call's 26 us in a kernel timing, which the span copies replace.

use rayon::prelude::*;
use rten_gemm::{BiasVector, ColOffsets, GemmInputA, GemmInputB, Im2Col, RowOffsets};
use rten_tensor::{Matrix, NdTensorView};

use crate::kernels::direct_conv::{self, DirectWeights};
use crate::kernels::gemm::{self, executor, PackedA};
use crate::kernels::Activation;
use crate::ops::OpError;
use crate::spatial::Window2d;

/// Conv weights packed once, one matrix `[M / group, C / group * kh * kw]` per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedConv {
    /// The weights' shape `[M, C / group, kh, kw]` (1-D kernels with `kh` 1).
    pub shape: [usize; 4],
    groups: Vec<PackedA>,
    /// The same weights for the direct loop, where it serves them (small ungrouped layers).
    direct: Option<DirectWeights>,
}

/// Packs constant weights of `w_shape` (`[M, C / group, kh, kw]`) for `group` groups, which divide M.
pub(crate) fn pack_weights(weights: &[f32], w_shape: [usize; 4], group: usize) -> PackedConv {
    let [m, cg, kh, kw] = w_shape;
    let (rows, depth) = (m / group, cg * kh * kw);
    PackedConv {
        shape: w_shape,
        groups: weights.chunks_exact(rows * depth).map(|chunk| gemm::pack_a(chunk, rows, depth)).collect(),
        direct: direct_conv::serves(w_shape, group).then(|| direct_conv::pack(weights, w_shape)),
    }
}

/// The weights of one call: packed at plan time, or read in place from the input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Weights<'a> {
    Packed(&'a PackedConv),
    Plain(&'a [f32]),
}

/// One 2-D convolution call: shapes already checked by `resolve_conv`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2d<'a> {
    /// `[N, C, H, W]`, row-major.
    pub x: &'a [f32],
    pub x_shape: [usize; 4],
    pub weights: Weights<'a>,
    /// `[M, C / group, kh, kw]`.
    pub w_shape: [usize; 4],
    /// `[M]`.
    pub bias: Option<&'a [f32]>,
    pub window: Window2d,
    pub group: usize,
    pub activation: Option<Activation>,
}

impl Conv2d<'_> {
    /// The output shape `[N, M, OH, OW]`.
    pub fn output_shape(&self) -> [usize; 4] {
        let ([n, _, h, w], [m, _, kh, kw]) = (self.x_shape, self.w_shape);
        let size = |input: usize, axis: usize, kernel: usize| {
            let (begin, end) = self.window.padding[axis];
            let extent = (kernel - 1) * self.window.dilations[axis] + 1;
            (input + begin + end - extent) / self.window.strides[axis] + 1
        };
        [n, m, size(h, 0, kh), size(w, 1, kw)]
    }

    /// Runs the convolution into a new `[N, M, OH, OW]` buffer.
    pub fn run(&self) -> Result<Vec<f32>, OpError> {
        let [n, c, h, w] = self.x_shape;
        let [m, cg, kh, kw] = self.w_shape;
        let [_, _, oh, ow] = self.output_shape();
        let (mg, depth) = (m / self.group, cg * kh * kw);
        let mut out = vec![0.0f32; n * m * oh * ow];
        if out.is_empty() {
            return Ok(out);
        }
        let Window2d { strides, padding, .. } = self.window;
        let direct = kh == 1 && kw == 1 && strides == [1, 1] && padding == [(0, 0); 2];
        if !direct && self.group == 1 && depth * n * oh * ow <= MATERIALIZED_IM2COL_LIMIT {
            // Small ungrouped layers skip the GEMM (see direct_conv.rs); weights that are not a
            // constant are laid out for it per call, which costs a pass over them.
            let direct_weights = match self.weights {
                Weights::Packed(packed) => packed.direct.clone(),
                Weights::Plain(values) => {
                    direct_conv::serves(self.w_shape, self.group).then(|| direct_conv::pack(values, self.w_shape))
                }
            };
            if let Some(weights) = direct_weights {
                direct_conv::run(self, &weights, &mut out);
                return Ok(out);
            }
            return self.run_batched(out, [oh, ow]);
        }
        // The im2col offsets depend on shapes only, so every image and group shares them.
        let offsets = (!direct).then(|| im2col_offsets(self, oh, ow));
        let product = |index: usize, out: &mut [f32]| -> Result<(), OpError> {
            let (image, g) = (index / self.group, index % self.group);
            let start = (image * c + g * cg) * h * w;
            let channels = &self.x[start..start + cg * h * w];
            let a = match self.weights {
                Weights::Packed(packed) => GemmInputA::Packed(packed.groups[g].get()),
                Weights::Plain(values) => {
                    GemmInputA::Unpacked(gemm::matrix(&values[g * mg * depth..(g + 1) * mg * depth], mg, depth, false))
                }
            };
            let bias = self.bias.map(|bias| BiasVector::Column(&bias[g * mg..(g + 1) * mg]));
            match &offsets {
                None => {
                    let b = GemmInputB::Unpacked(gemm::matrix(channels, cg, h * w, false));
                    gemm::gemm(out, a, b, 1.0, 0.0, bias, self.activation)
                }
                Some((rows, cols, n_rows, n_cols)) => {
                    let im2col = Im2Col {
                        image: NdTensorView::from_data([cg, h, w], channels),
                        row_offsets: RowOffsets { chan: rows.chan.clone(), y: rows.y.clone(), x: rows.x.clone() },
                        col_offsets: ColOffsets { y: cols.y.clone(), x: cols.x.clone() },
                        n_cols: *n_cols,
                        n_rows: *n_rows,
                        max_y_offset: ((h - 1) * w) as i32,
                        max_x_offset: (w - 1) as i32,
                    };
                    gemm::gemm(out, a, GemmInputB::Im2Col(&im2col), 1.0, 0.0, bias, self.activation)
                }
            }
        };
        // One product per (image, group), each writing its own contiguous slice of Y. With several
        // threads the products run in parallel (each small GEMM would use one thread anyway); with
        // one, a plain loop avoids rayon's scheduling.
        let chunk = mg * oh * ow;
        if rayon::current_num_threads() > 1 && n * self.group > 1 {
            out.par_chunks_mut(chunk).enumerate().try_for_each(|(index, out)| product(index, out))?;
        } else {
            for (index, out) in out.chunks_mut(chunk).enumerate() {
                product(index, out)?;
            }
        }
        Ok(out)
    }
}

/// The largest im2col matrix (elements) built in memory for a whole batch: 4 MiB of f32.
///
/// On `digits_cnn` at batch 8 (16 channels of 4x4, 3x3 kernel) rten-gemm's virtual im2col spent more
/// time gathering patches (23% of the run, one call per image) than multiplying (18%); one product
/// over the batch's materialized patches (`[C * kh * kw, N * OH * OW]`) has one call and full-width
/// tiles instead of eight calls with N = 16.
const MATERIALIZED_IM2COL_LIMIT: usize = 1 << 20;

/// The widest column chunk (one rten-gemm column block with 2 threads: it splits wider products
/// in two) of a product below [`SERIAL_PRODUCT_LIMIT`].
const SERIAL_COLUMNS: usize = 128;

/// Multiply-adds below which a batched convolution is not worth splitting over threads.
///
/// digits_cnn's first convolution at batch 8 (16 x 9 x 512, 74k multiply-adds) took 20 us in
/// rten-gemm on a 2-thread pool, which split its 512 columns in two, and 0.75 us per image on one
/// thread: waking the second thread costs more than such a product. 2M multiply-adds take about
/// 20 us on one thread.
const SERIAL_PRODUCT_LIMIT: usize = 1 << 21;

impl Conv2d<'_> {
    /// Ungrouped convolution of the whole batch over one im2col matrix `[C * kh * kw, N * OH * OW]`:
    /// `W @` a chunk of its columns into `[M, columns]`, then each image's columns moved to its
    /// `[M, OH * OW]` slice of `out` (a one-image chunk is written there directly).
    fn run_batched(&self, mut out: Vec<f32>, [oh, ow]: [usize; 2]) -> Result<Vec<f32>, OpError> {
        let [n, c, h, w] = self.x_shape;
        let [m, _, kh, kw] = self.w_shape;
        let (plane, columns, taps) = (oh * ow, n * oh * ow, kh * kw);
        let sources = tap_sources([h, w], [kh, kw], &self.window, [oh, ow]);
        let copies: Vec<TapCopies> = sources.chunks_exact(plane).map(TapCopies::new).collect();
        let span_count: usize = copies.iter().map(|copies| copies.spans.len()).sum();
        // Row (channel, ky, kx), column (image, oy, ox): the input element under that tap, or 0.
        // With unit strides along x a tap's slice of a row is a few long copies of the channel
        // plane; otherwise (spans shorter than 8 on average) one gather per element through the
        // table. Both tables are shared by every channel and image.
        let patches = if span_count * 8 <= taps * plane {
            let mut patches = vec![0.0f32; c * taps * columns];
            for (row, patch_row) in patches.chunks_exact_mut(columns).enumerate() {
                let (channel, copies) = (row / taps, &copies[row % taps]);
                for (image, target) in patch_row.chunks_exact_mut(plane).enumerate() {
                    let source = &self.x[(image * c + channel) * h * w..(image * c + channel + 1) * h * w];
                    copies.fill(target, source);
                }
            }
            patches
        } else {
            let mut patches = Vec::with_capacity(c * taps * columns);
            for row in 0..c * taps {
                let (channel, tap) = (row / taps, row % taps);
                let sources = &sources[tap * plane..(tap + 1) * plane];
                for image in 0..n {
                    let source = &self.x[(image * c + channel) * h * w..(image * c + channel + 1) * h * w];
                    patches.extend(sources.iter().map(|&index| source.get(index as usize).copied().unwrap_or(0.0)));
                }
            }
            patches
        };
        let depth = c * taps;
        let a = || match self.weights {
            Weights::Packed(packed) => GemmInputA::Packed(packed.groups[0].get()),
            Weights::Plain(values) => GemmInputA::Unpacked(gemm::matrix(values, m, depth, false)),
        };
        let bias = self.bias.map(BiasVector::Column);
        // Small products run as column chunks of whole images, at most `SERIAL_COLUMNS` wide where
        // an image allows, which rten-gemm computes as one block on the calling thread; larger ones
        // are one product that rten-gemm may spread over the pool.
        let images_per_chunk = if m * depth * columns < SERIAL_PRODUCT_LIMIT { (SERIAL_COLUMNS / plane).max(1) } else { n };
        let mut product = Vec::new();
        for first in (0..n).step_by(images_per_chunk) {
            let images = images_per_chunk.min(n - first);
            let width = images * plane;
            let b = Matrix::from_data_with_strides([depth, width], &patches[first * plane..], [columns, 1])
                .map_err(|err| OpError::new(format!("conv kernel: {err:?}")))?;
            if images == 1 {
                // One image's product is already its `[M, OH * OW]` slice of Y.
                let out = &mut out[first * m * plane..(first + 1) * m * plane];
                gemm::gemm(out, a(), GemmInputB::Unpacked(b), 1.0, 0.0, bias, self.activation)?;
                continue;
            }
            product.resize(m * width, 0.0);
            gemm::gemm(&mut product, a(), GemmInputB::Unpacked(b), 1.0, 0.0, bias, self.activation)?;
            for (filter, row) in product.chunks_exact(width).enumerate() {
                for (image, values) in (first..).zip(row.chunks_exact(plane)) {
                    out[(image * m + filter) * plane..(image * m + filter + 1) * plane].copy_from_slice(values);
                }
            }
        }
        Ok(out)
    }
}

/// One tap's slice of an im2col row as copies from a channel plane: spans `(target, source, len)`
/// over which the source offset grows with the target's, then zeros written back where a span
/// crossed padding (the ends of padded rows between two spans with the same shift).
///
/// On digits_cnn's second convolution (3x3, pad 1, 4x4 images) each tap is one span and at most two
/// zeros, where the per-element gather read all 16 entries of the tap's table.
struct TapCopies {
    spans: Vec<(usize, usize, usize)>,
    zeros: Vec<usize>,
}

impl TapCopies {
    /// The copies for one tap's entries of [`tap_sources`].
    fn new(sources: &[u32]) -> TapCopies {
        let mut copies = TapCopies { spans: Vec::new(), zeros: Vec::new() };
        for (target, &source) in sources.iter().enumerate().filter(|&(_, &source)| source != u32::MAX) {
            let source = source as usize;
            if let Some((first_target, first_source, len)) = copies.spans.last_mut() {
                // Every entry between the span's end and `target` is padding: a real one would have
                // extended the span or started a new one.
                if source >= *first_source && source - *first_source == target - *first_target {
                    copies.zeros.extend(*first_target + *len..target);
                    *len = target - *first_target + 1;
                    continue;
                }
            }
            copies.spans.push((target, source, 1));
        }
        copies
    }

    /// Fills `target` (one image's columns of a row, zeros where no span reaches) from `source`.
    fn fill(&self, target: &mut [f32], source: &[f32]) {
        for &(to, from, len) in &self.spans {
            target[to..to + len].copy_from_slice(&source[from..from + len]);
        }
        for &zero in &self.zeros {
            target[zero] = 0.0;
        }
    }
}

/// The tap table of an image `[h, w]` and a kernel `[kh, kw]`: entry `tap * oh * ow + oy * ow + ox`
/// is the offset within a channel plane of the input element that tap `(ky, kx)` reads for output
/// `(oy, ox)`, or `u32::MAX` where it reads padding (which [`fits_offsets`] keeps apart from every
/// real offset).
fn tap_sources([h, w]: [usize; 2], [kh, kw]: [usize; 2], window: &Window2d, [oh, ow]: [usize; 2]) -> Vec<u32> {
    let Window2d { strides, dilations, padding, .. } = *window;
    let input = |output: usize, tap: usize, axis: usize, size: usize| {
        (output * strides[axis] + tap * dilations[axis]).checked_sub(padding[axis].0).filter(|&index| index < size)
    };
    let mut sources = Vec::with_capacity(kh * kw * oh * ow);
    for ky in 0..kh {
        for kx in 0..kw {
            for oy in 0..oh {
                let row = input(oy, ky, 0, h);
                sources.extend((0..ow).map(|ox| match (row, input(ox, kx, 1, w)) {
                    (Some(iy), Some(ix)) => (iy * w + ix) as u32,
                    _ => u32::MAX,
                }));
            }
        }
    }
    sources
}

/// The im2col row and column offsets (rten-gemm's [`Im2Col`] layout) of a call, with the matrix's
/// real row and column counts.
///
/// Row `r = (channel, ky, kx)` of the virtual matrix and column `j = (oy, ox)` address image element
/// `(channel, oy * sy - pad_top + ky * dy, ox * sx - pad_left + kx * dx)`; the offsets are those
/// coordinates premultiplied by the image strides (`H * W`, `W`, 1), split so that the kernel adds a
/// row's and a column's. A sum outside `[0, (H - 1) * W]` (y) or `[0, W - 1]` (x) is padding and
/// reads as 0. The arrays are padded to the kernel's step with `i32::MAX`, which rten-gemm reads as
/// padding too.
fn im2col_offsets(conv: &Conv2d<'_>, oh: usize, ow: usize) -> (RowOffsets, ColOffsets, usize, usize) {
    let [_, _, h, w] = conv.x_shape;
    let [_, cg, kh, kw] = conv.w_shape;
    let Window2d { strides, dilations, padding, .. } = conv.window;
    let (n_rows, n_cols) = (cg * kh * kw, oh * ow);
    let gemm = executor();
    let (rows_padded, cols_padded) =
        (n_rows.next_multiple_of(gemm.im2col_row_count_step()), n_cols.next_multiple_of(gemm.im2col_col_count_step()));
    let mut rows = RowOffsets {
        chan: Vec::with_capacity(rows_padded),
        y: Vec::with_capacity(rows_padded),
        x: Vec::with_capacity(rows_padded),
    };
    for channel in 0..cg {
        for ky in 0..kh {
            for kx in 0..kw {
                rows.chan.push((channel * h * w) as i32);
                rows.y.push((ky * dilations[0] * w) as i32);
                rows.x.push((kx * dilations[1]) as i32);
            }
        }
    }
    for offsets in [&mut rows.chan, &mut rows.y, &mut rows.x] {
        offsets.resize(rows_padded, i32::MAX);
    }
    let mut cols = ColOffsets { y: Vec::with_capacity(cols_padded), x: Vec::with_capacity(cols_padded) };
    for oy in 0..oh {
        for ox in 0..ow {
            cols.y.push((oy * strides[0]) as i32 * w as i32 - (padding[0].0 * w) as i32);
            cols.x.push((ox * strides[1]) as i32 - padding[1].0 as i32);
        }
    }
    for offsets in [&mut cols.y, &mut cols.x] {
        offsets.resize(cols_padded, i32::MAX);
    }
    (rows, cols, n_rows, n_cols)
}

/// Whether a call's image fits rten-gemm's `i32` im2col offsets, with room for the padding; larger
/// images run on burn's conv2d.
pub(crate) fn fits_offsets(x_shape: [usize; 4], w_shape: [usize; 4], window: &Window2d) -> bool {
    let ([_, _, h, w], channels) = (x_shape, w_shape[1]);
    let padded = |size: usize, axis: usize| size + window.padding[axis].0 + window.padding[axis].1 + 1;
    (channels + 1).saturating_mul(padded(h, 0)).saturating_mul(padded(w, 1)) < i32::MAX as usize / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::tests::{assert_near, ramp};
    use crate::ops::test_support::reference_conv2d;

    /// Direct convolution in f64 over `x [n, c, h, w]` and `weights [m, c / group, kh, kw]`.
    fn reference(conv: &Conv2d<'_>, weights: &[f32]) -> Vec<f64> {
        let [_, _, oh, ow] = conv.output_shape();
        let Window2d { strides, dilations, padding, .. } = conv.window;
        let out = reference_conv2d(
            conv.x_shape,
            conv.w_shape,
            [oh, ow],
            strides,
            dilations,
            [padding[0].0, padding[1].0],
            |f| conv.bias.map_or(0.0, |bias| f64::from(bias[f])),
            |xi, wi, _| f64::from(conv.x[xi]) * f64::from(weights[wi]),
        );
        match conv.activation {
            Some(Activation::Relu) => out.into_iter().map(|v| v.max(0.0)).collect(),
            None => out,
        }
    }

    /// `(x shape, w shape, group, strides, dilations, pads (top, bottom), (left, right), bias, relu)`.
    type Case = ([usize; 4], [usize; 4], usize, [usize; 2], [usize; 2], [(usize, usize); 2], bool, bool);

    #[test]
    fn every_window_matches_a_reference_convolution() {
        let cases: &[Case] = &[
            // The digits_cnn layers: 3x3, pad 1, 1 and 16 channels, batch 2.
            ([2, 1, 8, 8], [16, 1, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, true),
            ([2, 16, 4, 4], [32, 16, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, false),
            // 1x1 (direct path), batch 3, with groups.
            ([3, 4, 5, 6], [6, 2, 1, 1], 2, [1, 1], [1, 1], [(0, 0), (0, 0)], true, false),
            // 1x1 with a stride goes through im2col.
            ([1, 3, 7, 7], [5, 3, 1, 1], 1, [2, 2], [1, 1], [(0, 0), (0, 0)], false, false),
            // Stride 2, dilation 2, asymmetric padding, groups 2, no bias.
            ([2, 4, 9, 7], [4, 2, 3, 2], 2, [2, 1], [2, 2], [(1, 0), (2, 1)], false, true),
            // The same without groups: the batch's materialized im2col with strides, dilations
            // and padding larger than the dilated reach on one side.
            ([2, 3, 9, 8], [4, 3, 3, 2], 1, [2, 1], [2, 3], [(2, 1), (0, 4)], true, false),
            // Column chunks of two 8x8 images and a last one of one image; 12x12 images, one
            // chunk each, written straight into Y.
            ([5, 2, 8, 8], [3, 2, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, true),
            ([3, 2, 12, 12], [4, 2, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, false),
            // Depthwise 3x3, stride 2, like a MobileNet block.
            ([1, 6, 10, 10], [6, 1, 3, 3], 6, [2, 2], [1, 1], [(1, 1), (1, 1)], true, true),
            // A 7x7 stride-2 stem on a small image, padding larger than one kernel row.
            ([1, 3, 16, 16], [8, 3, 7, 7], 1, [2, 2], [1, 1], [(3, 3), (3, 3)], true, false),
            // 1-D as 2-D: height 1.
            ([2, 3, 1, 11], [4, 3, 1, 3], 1, [1, 2], [1, 1], [(0, 0), (2, 1)], true, false),
            // The direct loop's blocks: 40 filters are a full and a partial block of 32, with a
            // stride and padding; a batch large enough to split over threads.
            ([2, 3, 9, 9], [40, 3, 3, 3], 1, [2, 2], [1, 1], [(1, 2), (0, 1)], true, true),
            ([4, 16, 16, 16], [32, 16, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, true),
            // Above the direct loop's limits (80 filters; 130 * 9 multiply-adds an output), the
            // batch's materialized im2col and one GEMM.
            ([2, 8, 6, 6], [80, 8, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], true, true),
            ([1, 130, 4, 4], [8, 130, 3, 3], 1, [1, 1], [1, 1], [(1, 1), (1, 1)], false, false),
            // An im2col matrix above the in-memory limit (16 * 9 * 2 * 64 * 64 elements) goes through
            // rten-gemm's virtual im2col, one product per image.
            ([2, 16, 64, 64], [4, 16, 3, 3], 1, [1, 1], [2, 1], [(2, 2), (1, 1)], true, true),
        ];
        for &(x_shape, w_shape, group, strides, dilations, padding, with_bias, relu) in cases {
            let x = ramp(x_shape.iter().product(), 0.1);
            let weights = ramp(w_shape.iter().product(), 0.05);
            let bias: Vec<f32> = (0..w_shape[0]).map(|f| f as f32 * 0.1 - 0.3).collect();
            let window = Window2d { kernel: [w_shape[2], w_shape[3]], strides, dilations, padding };
            let packed = pack_weights(&weights, w_shape, group);
            for (threads, weights_input) in [(1, Weights::Packed(&packed)), (2, Weights::Plain(&weights))] {
                let conv = Conv2d {
                    x: &x,
                    x_shape,
                    weights: weights_input,
                    w_shape,
                    bias: with_bias.then_some(&bias[..]),
                    window,
                    group,
                    activation: relu.then_some(Activation::Relu),
                };
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let out = pool.install(|| conv.run()).unwrap();
                assert_near(&out, &reference(&conv, &weights));
            }
        }
    }
}
