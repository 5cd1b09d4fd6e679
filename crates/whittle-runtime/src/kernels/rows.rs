//! Row kernels in f32: softmax over the last axis and layer normalization over trailing axes, one
//! pass to reduce and one to write per row, single-threaded.
//!
//! burn-flex's softmax is five tensor ops (max, sub, exp, sum, div) with libm's exp: on
//! `transformer_tiny` at batch 8 its two Softmax steps (8192 elements each) took 58 us and its five
//! LayerNormalization steps 28 us. Rows here are at most a few hundred elements and the tensors a
//! few thousand, so the work stays on the calling thread: on 2 threads rayon's fork and join cost
//! more than the rows (the tiny models ran slower on 2 threads than on 1).

use crate::kernels::activation::exp;

/// Softmax of each row of `values` (rows of `columns` elements) in place: `exp(x - max) / sum`.
/// A row whose maximum is -inf (every element masked) is taken as having maximum 0, as the ONNX
/// reference's stable form does, so it gives 0 / 0 = NaN only where ONNX does; NaN propagates.
pub(crate) fn softmax(values: &mut [f32], columns: usize) {
    struct Rows<'a>(&'a mut [f32], usize);
    impl pulp::WithSimd for Rows<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let Rows(values, columns) = self;
            // Rows of a length known here compile to straight-line vector code; over a run-time
            // length each row paid the loops' set-up and remainders: transformer_tiny's attention
            // softmax (rows of 16) at batch 64 went from 0.112 to 0.087 ms a node, one thread. The
            // operations are the same either way.
            match columns {
                8 => rows_of::<8>(values),
                16 => rows_of::<16>(values),
                32 => rows_of::<32>(values),
                64 => rows_of::<64>(values),
                _ => values.chunks_exact_mut(columns).for_each(softmax_row),
            }
        }
    }
    if columns == 0 {
        return;
    }
    // One dispatch for all the rows, every loop inlined into pulp's per-instruction-set entry
    // points: dispatching the exponential per row and reducing on the baseline (SSE2) target, the
    // int8-static transformer_tiny's two Softmax steps (4096 rows of 16 at batch 64) took 12% of
    // its run (perf).
    pulp::Arch::new().dispatch(Rows(values, columns));
}

/// The softmax of one row.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    let max = if max == f32::NEG_INFINITY { 0.0 } else { max };
    for value in row.iter_mut() {
        *value = exp(*value - max);
    }
    let inverse = 1.0 / sum(row);
    row.iter_mut().for_each(|value| *value *= inverse);
}

/// [`softmax_row`] on each row of `N` values.
#[inline(always)]
fn rows_of<const N: usize>(values: &mut [f32]) {
    for row in values.chunks_exact_mut(N) {
        let row: &mut [f32; N] = row.try_into().unwrap_or_else(|_| unreachable!("chunks of N"));
        softmax_row(row);
    }
}

/// `y = (x - mean) / sqrt(var + epsilon) * scale + bias` over each row of `x` (rows of
/// `scale.len()` elements), the biased variance computed in f32 around the mean (two passes, so
/// large offsets do not cancel), written to `out`.
pub(crate) fn layer_norm(x: &[f32], out: &mut [f32], scale: &[f32], bias: Option<&[f32]>, epsilon: f32) {
    struct Rows<'a>(&'a [f32], &'a mut [f32], &'a [f32], Option<&'a [f32]>, f32);
    impl pulp::WithSimd for Rows<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let Rows(x, out, scale, bias, epsilon) = self;
            layer_norm_rows(x, out, scale, bias, epsilon);
        }
    }
    // Compiled for the CPU's widest vectors like `softmax`: on the baseline (SSE2) target the
    // int8-static transformer_tiny's five LayerNormalization steps took 10% of its run at batch
    // 64 (perf). The operations and their order are the same on every path.
    pulp::Arch::new().dispatch(Rows(x, out, scale, bias, epsilon));
}

#[inline(always)]
fn layer_norm_rows(x: &[f32], out: &mut [f32], scale: &[f32], bias: Option<&[f32]>, epsilon: f32) {
    let columns = scale.len();
    if columns == 0 {
        return;
    }
    let count = columns as f32;
    for (row, out) in x.chunks_exact(columns).zip(out.chunks_exact_mut(columns)) {
        let mean = sum(row) / count;
        let variance = lanes_map(row, |v| (v - mean) * (v - mean)) / count;
        let inv_std_dev = 1.0 / (variance + epsilon).sqrt();
        match bias {
            Some(bias) => {
                for (((out, &v), &s), &b) in out.iter_mut().zip(row).zip(scale).zip(bias) {
                    *out = (v - mean) * inv_std_dev * s + b;
                }
            }
            None => {
                for ((out, &v), &s) in out.iter_mut().zip(row).zip(scale) {
                    *out = (v - mean) * inv_std_dev * s;
                }
            }
        }
    }
}

/// The sum of `values`, in 8 interleaved partial sums: a single running f32 sum is a serial chain
/// the compiler may not reorder, the 8 lanes it turns into one vector register.
#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f32 {
    lanes_map(values, |v| v)
}

/// The sum of `map(v)` over `values`, in 8 interleaved partial sums (see [`sum`]).
#[inline(always)]
fn lanes_map(values: &[f32], map: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| map(v)).sum();
    for chunk in chunks {
        for (lane, &v) in partial.iter_mut().zip(chunk) {
            *lane += map(v);
        }
    }
    partial.iter().sum::<f32>() + tail
}
/// `values` folded by `combine` in 8 interleaved lanes from `start` (the maximum, with f32::max).
#[inline(always)]
pub(crate) fn lanes(values: &[f32], start: f32, combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut partial = [start; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(start, |acc, &v| combine(acc, v));
    for chunk in chunks {
        for (lane, &v) in partial.iter_mut().zip(chunk) {
            *lane = combine(*lane, v);
        }
    }
    partial.iter().fold(tail, |acc, &v| combine(acc, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax64(row: &[f32]) -> Vec<f64> {
        let max = row.iter().map(|&v| f64::from(v)).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        row.iter().map(|&v| (f64::from(v) - max).exp() / sum).collect()
    }

    #[test]
    fn softmax_rows_match_f64() {
        // Rows of a run-time length (17, 3) and of the lengths compiled for (8, 16, 32, 64).
        for columns in [17, 3, 8, 16, 32, 64] {
            let mut values: Vec<f32> = (0..3 * columns).map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0).collect();
            values[2] = 1000.0; // no overflow: the maximum is subtracted first
            let expected: Vec<f64> = values.chunks(columns).flat_map(softmax64).collect();
            softmax(&mut values, columns);
            for (got, want) in values.iter().zip(&expected) {
                assert!((f64::from(*got) - want).abs() <= 1e-6 * want.max(1e-3), "{columns}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn softmax_masked_rows_and_nan() {
        let inf = f32::NEG_INFINITY;
        let mut values = vec![inf, 0.0, inf, inf, inf, inf, 1.0, f32::NAN, 0.0];
        softmax(&mut values, 3);
        assert_eq!(&values[..3], &[0.0, 1.0, 0.0]);
        // All -inf: exp(-inf - 0) = 0 everywhere, 0 / 0, as the stable reference computes.
        assert!(values[3..6].iter().all(|v| v.is_nan()));
        assert!(values[6..].iter().all(|v| v.is_nan()));
        softmax(&mut [], 0);
    }

    #[test]
    fn layer_norm_matches_f64() {
        let columns = 7;
        let x: Vec<f32> = (0..3 * columns).map(|i| ((i * 13) % 11) as f32 * 0.3 + 100.0).collect();
        let scale: Vec<f32> = (0..columns).map(|i| 0.5 + i as f32 * 0.25).collect();
        let bias: Vec<f32> = (0..columns).map(|i| i as f32 * -0.1).collect();
        for with_bias in [true, false] {
            let mut out = vec![0.0; x.len()];
            layer_norm(&x, &mut out, &scale, with_bias.then_some(&bias[..]), 1e-5);
            for (row, got) in x.chunks(columns).zip(out.chunks(columns)) {
                let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                let mean = row.iter().sum::<f64>() / columns as f64;
                let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / columns as f64;
                for (c, (&v, &g)) in row.iter().zip(got).enumerate() {
                    let b = if with_bias { f64::from(bias[c]) } else { 0.0 };
                    let want = (v - mean) / (variance + 1e-5).sqrt() * f64::from(scale[c]) + b;
                    assert!((f64::from(g) - want).abs() < 2e-5, "{g} vs {want}");
                }
            }
        }
    }
}
