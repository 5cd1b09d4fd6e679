//! Small f32 kernels over NCHW planes where burn-flex's per-call cost dominates at the fixtures'
//! sizes: inference BatchNormalization as one multiply-add per element, MaxPool over 1-D and 2-D
//! windows, and the mean over trailing axes (ReduceMean over H and W, GlobalAveragePool). In
//! `whittle bench --profile` of digits_cnn at batch 8 on one thread (a loaded machine), MaxPool went
//! from 9 to 12 us a call to 4.4 us with the 2x2 path and the ReduceMean from 5.7 to 2-3 us. On `digits_cnn` (batch 8, 16 channels of 8x8) burn's max_pool2d took about 30 us
//! and its batch_norm about 6 us a call, where ONNX Runtime runs the whole model in 21 us.

use crate::kernels::{self, Activation};
use crate::ops::OpError;
use crate::spatial::Resolved;
use crate::value::Value;

/// `y = (x - mean) / sqrt(var + epsilon) * scale + bias` per channel of `x` `[N, C, rest]`, as
/// `x * a + b` with `a` and `b` computed per channel in f64 and rounded once, then `activation`.
pub(crate) fn batch_norm(
    x: &[f32],
    [n, c, rest]: [usize; 3],
    [scale, bias, mean, variance]: [&[f32]; 4],
    epsilon: f32,
    activation: Option<Activation>,
) -> Vec<f32> {
    let factors: Vec<(f32, f32)> = (0..c)
        .map(|channel| {
            let a = f64::from(scale[channel]) / (f64::from(variance[channel]) + f64::from(epsilon)).sqrt();
            (a as f32, (f64::from(bias[channel]) - f64::from(mean[channel]) * a) as f32)
        })
        .collect();
    let mut out = vec![0.0f32; n * c * rest];
    for (plane, (out, x)) in out.chunks_mut(rest.max(1)).zip(x.chunks(rest.max(1))).enumerate() {
        let (a, b) = factors[plane % c];
        // `x * a + b`, not `mul_add`: without a compile-time FMA target feature `mul_add` is a libm
        // call per element, which made this loop a fifth of digits_cnn's run time. The activation is
        // a select in the same loop, so both vectorize.
        match activation {
            None => out.iter_mut().zip(x).for_each(|(out, &x)| *out = x * a + b),
            Some(Activation::Relu) => out.iter_mut().zip(x).for_each(|(out, &x)| {
                let y = x * a + b;
                *out = if y <= 0.0 { 0.0 } else { y };
            }),
        }
    }
    out
}

/// The maximum over each window of `x` `[N, C, H, W]` (1-D pooling has H 1 and a window of
/// height 1), with `output` `[OH, OW]` from [`Resolved::output_sizes`]. Taps on the padding or past
/// the input (ceil mode) are skipped, so padding never wins; a window with no tap on the input
/// gives -inf, as burn's -inf padding does.
pub(crate) fn max_pool(x: &[f32], dims @ [n, c, ..]: [usize; 4], window: &Resolved, output @ [oh, ow]: [usize; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * c * oh * ow);
    max_pool_into(x, dims, window, output, &mut out);
    out
}

/// [`max_pool`] appending to `out`: a fused int8 convolution pools each image's planes into its
/// output this way (`fuse_int8`'s `Pool`).
pub(crate) fn max_pool_into(x: &[f32], [_, _, h, w]: [usize; 4], window: &Resolved, [oh, ow]: [usize; 2], out: &mut Vec<f32>) {
    let two = |values: &[usize]| if values.len() == 1 { [1, values[0]] } else { [values[0], values[1]] };
    let (kernel, strides, dilations) = (two(&window.kernel), two(&window.strides), two(&window.dilations));
    let begin = if window.padding.len() == 1 { [0, window.padding[0].0] } else { [window.padding[0].0, window.padding[1].0] };
    // The taps of each output row (or column) on the input, once per call: `(first input index,
    // count)`, the taps being `first + t * dilation`; taps on the padding or past the input (ceil
    // mode) are left out.
    let taps = |axis: usize, outputs: usize, size: usize| -> Vec<(usize, usize)> {
        (0..outputs)
            .map(|position| {
                let on_input: Vec<usize> = (0..kernel[axis])
                    .filter_map(|tap| (position * strides[axis] + tap * dilations[axis]).checked_sub(begin[axis]))
                    .filter(|&index| index < size)
                    .collect();
                (on_input.first().copied().unwrap_or(0), on_input.len())
            })
            .collect()
    };
    let padded = window.padding.iter().any(|&(begin, end)| begin + end > 0);
    if kernel == [2, 2] && strides == [2, 2] && !padded && 2 * oh <= h && 2 * ow <= w {
        return max_pool_2x2(x, [h, w], [oh, ow], out);
    }
    let (rows, cols) = (taps(0, oh, h), taps(1, ow, w));
    let (row_step, col_step) = (dilations[0], dilations[1]);
    // Each output row is the maximum over its input rows first, element by element (a loop that
    // vectorizes), then over each output's columns of that row maximum. With the columns inside
    // the row loop, digits_cnn's 2x2 pooling at batch 8 (2048 outputs) took 9 to 12 us a call.
    let mut row_max = vec![f32::NEG_INFINITY; w];
    for plane in x.chunks_exact(h * w) {
        for &(first_row, row_count) in &rows {
            row_max.fill(f32::NEG_INFINITY);
            for row in (0..row_count).map(|t| first_row + t * row_step) {
                for (best, &value) in row_max.iter_mut().zip(&plane[row * w..(row + 1) * w]) {
                    *best = larger(*best, value);
                }
            }
            if col_step == 1 {
                out.extend(
                    cols.iter()
                        .map(|&(first, count)| row_max[first..first + count].iter().copied().fold(f32::NEG_INFINITY, larger)),
                );
            } else {
                out.extend(
                    cols.iter()
                        .map(|&(first, count)| (0..count).map(|t| row_max[first + t * col_step]).fold(f32::NEG_INFINITY, larger)),
                );
            }
        }
    }
}

/// 2x2 pooling with stride 2 and no padding (the usual downsampling, digits_cnn's), every window
/// inside the planes `[h, w]` of `x`: one pass over each pair of rows, without the general path's
/// per-row tables and row buffer.
// Its own function, with index loops: inlined into its caller, whether rustc inlined this loop's
// iterator adapters (`Vec::extend` once, `Zip::new` later) depended on unrelated code in the crate,
// and where it did not, the pooling took 2 to 7 times as long (digits_cnn at batch 8: 1.7 us a
// call, 4.0 with `extend_trusted` out of line, 11.6 with `Zip::new`, perf).
#[inline(never)]
fn max_pool_2x2(x: &[f32], [h, w]: [usize; 2], [oh, ow]: [usize; 2], out: &mut Vec<f32>) {
    let first = out.len();
    out.resize(first + x.len() / (h * w) * oh * ow, 0.0);
    // Each pair of rows' maximum, element by element, then, where the width is even (the pairs
    // never straddle a row), the maximum of each pair of it over the whole plane in one loop: on
    // images as small as digits_cnn's (4x4 outputs), a window or a row at a time spent its time
    // in per-row loop overhead (2.8-3.9 us a call at batch 8, 2.3 this way; the window loop inlined
    // into `max_pool` vectorized at 1.7 us in one build and ran at 11.6 in another).
    let mut vertical = vec![0.0f32; oh * w];
    for (plane, target) in x.chunks_exact(h * w).zip(out[first..].chunks_exact_mut(oh * ow)) {
        for (pair, row) in plane.chunks_exact(2 * w).zip(vertical.chunks_exact_mut(w)) {
            let (top, bottom) = pair.split_at(w);
            for ((best, &top), &bottom) in row.iter_mut().zip(top).zip(bottom) {
                *best = larger(larger(f32::NEG_INFINITY, top), bottom);
            }
        }
        if w == 2 * ow {
            for (value, pair) in target.iter_mut().zip(vertical.chunks_exact(2)) {
                *value = larger(pair[0], pair[1]);
            }
        } else {
            for (row, vertical) in target.chunks_exact_mut(ow).zip(vertical.chunks_exact(w)) {
                for (value, pair) in row.iter_mut().zip(vertical.chunks_exact(2)) {
                    *value = larger(pair[0], pair[1]);
                }
            }
        }
    }
}

/// The larger of a running maximum `best` (never NaN: it starts at -inf) and `value`; a NaN
/// value never wins, as with `f32::max`. A compare and select can be one `maxss`/`maxps`, where
/// `f32::max` must also test both operands for NaN.
fn larger(best: f32, value: f32) -> f32 {
    if value > best {
        value
    } else {
        best
    }
}

/// The mean of each run of `inner` consecutive elements of `x` (`inner` > 0): a reduction over the
/// trailing axes of a row-major tensor.
///
/// Eight partial sums per run, added pairwise at the end, let the loop vectorize and keep the f32
/// rounding error near `log2(inner)` ulps rather than `inner`. burn-flex's mean_dims over H and W
/// took 5.7 us of digits_cnn's run at batch 8 (256 means of 16 values).
pub(crate) fn mean_rows(x: &[f32], inner: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / inner);
    mean_rows_into(x, inner, &mut out);
    out
}

/// [`mean_rows`] appending to `out` (see [`max_pool_into`]).
pub(crate) fn mean_rows_into(x: &[f32], inner: usize, out: &mut Vec<f32>) {
    const LANES: usize = 8;
    out.extend(x.chunks_exact(inner).map(|run| {
        let mut sums = [0.0f32; LANES];
        let chunks = run.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().sum();
        for chunk in chunks {
            for (sum, &value) in sums.iter_mut().zip(chunk) {
                *sum += value;
            }
        }
        let [a, b, c, d, e, f, g, h] = sums;
        let total = ((a + b) + (c + d)) + ((e + f) + (g + h)) + tail;
        total / inner as f32
    }));
}

/// The mean over the trailing axes of `value` that `reduced` marks (one flag per axis), shaped
/// `shape`, on [`mean_rows`]; `None` when the value is not f32 on flex, is empty, the reduced axes
/// are not a non-empty suffix, or the result is a scalar, and the caller runs burn's reduction.
pub(crate) fn trailing_mean(value: &Value, reduced: &[bool], shape: &[usize]) -> Result<Option<Value>, OpError> {
    let Some(first) = reduced.iter().position(|&axis| axis) else { return Ok(None) };
    if !reduced[first..].iter().all(|&axis| axis) || value.element_count() == 0 || shape.is_empty() {
        return Ok(None);
    }
    let Some(tensor) = kernels::flex_f32(value) else { return Ok(None) };
    let inner = value.shape()[first..].iter().product();
    Ok(Some(kernels::output(mean_rows(&kernels::contiguous(&tensor), inner), shape)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::tests::{assert_near, ramp};

    #[test]
    fn two_by_two_pooling_takes_each_window_maximum_and_skips_nan() {
        // Even widths (one pass over the plane) and odd ones (the last column and row unread), a
        // NaN that must not win and a plane of -inf.
        for [planes, h, w] in [[3, 4, 8], [2, 5, 7], [2, 2, 2], [2, 6, 3]] {
            let (oh, ow) = (h / 2, w / 2);
            let mut x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            x[1] = f32::NAN;
            x[h * w..2 * h * w].fill(f32::NEG_INFINITY);
            let mut out = Vec::new();
            max_pool_2x2(&x, [h, w], [oh, ow], &mut out);
            let mut expected = Vec::new();
            for plane in x.chunks_exact(h * w) {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| plane[(2 * oy + dy) * w + 2 * ox + dx]);
                        expected.push(window.into_iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max));
                    }
                }
            }
            assert_eq!(out, expected, "{planes}x{h}x{w}");
        }
    }

    #[test]
    fn batch_norm_matches_the_formula_in_f64() {
        let (n, c, rest) = (2, 3, 5);
        let x = ramp(n * c * rest, 0.3);
        let (scale, bias, mean, variance) = ([1.5, -0.5, 2.0], [0.1, 0.2, -0.3], [0.2, -0.1, 0.0], [0.5, 2.0, 1e-3]);
        for activation in [None, Some(Activation::Relu)] {
            let out = batch_norm(&x, [n, c, rest], [&scale, &bias, &mean, &variance], 1e-5, activation);
            let expected: Vec<f64> = (0..x.len())
                .map(|i| {
                    let ch = (i / rest) % c;
                    let y = (f64::from(x[i]) - f64::from(mean[ch])) / (f64::from(variance[ch]) + 1e-5).sqrt()
                        * f64::from(scale[ch])
                        + f64::from(bias[ch]);
                    if activation.is_some() {
                        y.max(0.0)
                    } else {
                        y
                    }
                })
                .collect();
            assert_near(&out, &expected);
        }
    }

    #[test]
    fn max_pool_ignores_nan_like_f32_max() {
        // The first 2x2 window holds NaN, -3 and -5: its maximum is -3, as `f32::max` gives; the
        // second holds NaN only, which has no number to take and gives -inf.
        let window = Resolved { kernel: vec![2, 2], strides: vec![2, 2], dilations: vec![1, 1], padding: vec![(0, 0), (0, 0)] };
        let x = [f32::NAN, -3.0, f32::NAN, f32::NAN, f32::NAN, -5.0, f32::NAN, f32::NAN];
        assert_eq!(max_pool(&x, [1, 1, 2, 4], &window, [1, 2]), vec![-3.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn the_2x2_path_matches_the_general_one() {
        // Odd sizes leave the last row and column out of every window (the 2x2 path), checked
        // against a direct maximum; in ceil mode the last windows run past the input, which the
        // general loop takes, and its windows inside the input match the 2x2 path's.
        let (h, w) = (5, 7);
        let x: Vec<f32> = ramp(3 * h * w, 0.7);
        let window = Resolved { kernel: vec![2, 2], strides: vec![2, 2], dilations: vec![1, 1], padding: vec![(0, 0), (0, 0)] };
        let fast = max_pool(&x, [1, 3, h, w], &window, [2, 3]);
        let mut expected = Vec::new();
        for plane in 0..3 {
            for i in 0..2 {
                for j in 0..3 {
                    let taps = [(2 * i, 2 * j), (2 * i, 2 * j + 1), (2 * i + 1, 2 * j), (2 * i + 1, 2 * j + 1)];
                    expected.push(
                        taps.iter().map(|&(y, z)| f64::from(x[plane * h * w + y * w + z])).fold(f64::NEG_INFINITY, f64::max),
                    );
                }
            }
        }
        assert_near(&fast, &expected);
        let ceil = max_pool(&x, [1, 3, h, w], &window, [3, 4]);
        assert_eq!(ceil.len(), 3 * 12);
        assert_eq!(ceil[..3], fast[..3]);
    }

    #[test]
    fn trailing_means_match_an_f64_mean() {
        // Runs shorter than, equal to and longer than the eight partial sums, with a tail.
        for inner in [1, 5, 8, 16, 49, 3136] {
            let x = ramp(3 * inner, 0.9);
            let expected: Vec<f64> =
                x.chunks(inner).map(|run| run.iter().map(|&v| f64::from(v)).sum::<f64>() / inner as f64).collect();
            assert_near(&mean_rows(&x, inner), &expected);
        }
    }

    #[test]
    fn only_trailing_axes_take_the_mean_kernel() {
        let value = crate::ops::test_support::f32_value(&[2, 3, 2], &ramp(12, 0.5));
        let mean = trailing_mean(&value, &[false, true, true], &[2, 1, 1]).unwrap().unwrap();
        assert_eq!(mean.shape(), &[2, 1, 1]);
        let x = ramp(12, 0.5);
        let expected: Vec<f64> = x.chunks(6).map(|run| run.iter().map(|&v| f64::from(v)).sum::<f64>() / 6.0).collect();
        assert_near(&mean.to_f32_vec().unwrap(), &expected);
        // A leading or middle axis, no axis, or everything down to a scalar: burn's reduction.
        assert!(trailing_mean(&value, &[true, false, false], &[1, 3, 2]).unwrap().is_none());
        assert!(trailing_mean(&value, &[false, true, false], &[2, 2]).unwrap().is_none());
        assert!(trailing_mean(&value, &[false, false, false], &[2, 3, 2]).unwrap().is_none());
        assert!(trailing_mean(&value, &[true, true, true], &[]).unwrap().is_none());
    }

    #[test]
    fn max_pool_skips_padding_and_ceil_mode_taps() {
        // 2 planes of 5x4, kernel 3x2, strides 2, dilation (1, 2), pads (1, 0) top and (0, 1) left,
        // against a direct maximum over the taps that land on the input.
        let (h, w) = (5, 4);
        let x: Vec<f32> = ramp(2 * h * w, 0.7).iter().map(|v| -v.abs()).collect();
        let window = Resolved { kernel: vec![3, 2], strides: vec![2, 2], dilations: vec![1, 2], padding: vec![(1, 0), (0, 1)] };
        for ceil_mode in [false, true] {
            let output = window.output_sizes(&[h, w], ceil_mode);
            let (oh, ow) = (output[0], output[1]);
            let out = max_pool(&x, [1, 2, h, w], &window, [oh, ow]);
            let mut expected = Vec::new();
            for plane in 0..2 {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut best = f64::NEG_INFINITY;
                        for a in 0..3 {
                            for d in 0..2 {
                                let (y, z) = ((i * 2 + a) as isize - 1, (j * 2 + d * 2) as isize);
                                if y >= 0 && z >= 0 && (y as usize) < h && (z as usize) < w {
                                    best = best.max(f64::from(x[plane * h * w + y as usize * w + z as usize]));
                                }
                            }
                        }
                        expected.push(best);
                    }
                }
            }
            assert_near(&out, &expected);
        }
    }
}
