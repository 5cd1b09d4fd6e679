//! Fused f32 attention: `softmax(Q K^T * scale + bias) V` per query row, with the scores of a row
//! in one small buffer, for the cases the fusion pass emits (no cache, no softcap, no extra
//! outputs, no windows): no mask, causal, and an additive or bool mask that broadcasts to the
//! scores' shape.
//!
//! Unfused, `transformer_tiny`'s attention is MatMul, Div, Softmax and MatMul with the transposes
//! around them: each head's 16x16 products through the GEMM's packing, the transposed K copied, and
//! four intermediate tensors (about 125 us a layer at batch 8). Here Q, K and V are read in place
//! through their strides (the 3-D `[batch, seq, heads * size]` layout is a strided view of heads),
//! K is laid out as K^T once per head so that a row's scores are a broadcast multiply-add along the
//! keys, summed in registers 8 keys at a time, and one output buffer is written. The work of the
//! fixtures' sizes is small, so it runs on the calling thread. Measured on the loaded shared machine
//! at batch 8: 70 us a layer, against 67 us for the unfused MatMul, Div, Softmax and MatMul on this
//! crate's kernels in the same run; it saves their steps' fixed cost at batch 1. Blocking over
//! several query rows, so that each K^T load serves them all, is the next gain.

use crate::kernels::activation::{exp, map_interleaved};
use crate::kernels::rows::{lanes, sum};

/// An operand `[batch, heads, seq, size]` as a slice with the strides of its first three axes; the
/// last axis is contiguous.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads<'a> {
    pub values: &'a [f32],
    pub strides: [usize; 3],
    pub dims: [usize; 4],
}

impl Heads<'_> {
    fn row(&self, b: usize, h: usize, s: usize) -> &[f32] {
        let start = b * self.strides[0] + h * self.strides[1] + s * self.strides[2];
        &self.values[start..start + self.dims[3]]
    }
}

/// The additive bias of the scores `[batch, heads, q_seq, total]`: a mask broadcast through strides
/// (0 on its size-1 axes), its last axis contiguous.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bias<'a> {
    /// Added as it is.
    Additive { values: &'a [f32], strides: [usize; 3] },
    /// 0 where the byte is non-zero (attend), -inf where it is zero.
    Bool { values: &'a [u8], strides: [usize; 3] },
}

/// What restricts attention besides the mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Options {
    pub scale: f32,
    /// Key `j` is attended by query `i` only when `j <= i`.
    pub causal: bool,
}

/// `Y` as `[batch, q_heads, q_seq, v_size]` laid out by `out_strides` (of batch, head and row) in
/// `out`. Key and value heads are shared by `q_heads / kv_heads` consecutive query heads. A query
/// row whose every score is -inf (masked or causal) attends no key and is a zero row, as the spec's
/// errata says; NaN in the inputs propagates.
pub(crate) fn attention(
    q: Heads,
    k: Heads,
    v: Heads,
    bias: Option<Bias>,
    options: Options,
    out: &mut [f32],
    out_strides: [usize; 3],
) {
    let [batch, q_heads, q_seq, head_size] = q.dims;
    let [_, kv_heads, total, _] = k.dims;
    let value_size = v.dims[3];
    let group = q_heads / kv_heads.max(1);
    let mut key_columns = vec![0.0f32; head_size * total];
    let mut scores = vec![0.0f32; total];
    for b in 0..batch {
        for kv_head in 0..kv_heads {
            // K^T of this head, [head_size, total], so that a query's scores accumulate along keys.
            for j in 0..total {
                for (d, &value) in k.row(b, kv_head, j).iter().enumerate() {
                    key_columns[d * total + j] = value;
                }
            }
            for h in kv_head * group..(kv_head + 1) * group {
                for i in 0..q_seq {
                    row_times_matrix(q.row(b, h, i), |d| &key_columns[d * total..(d + 1) * total], &mut scores);
                    scores.iter_mut().for_each(|score| *score *= options.scale);
                    match bias {
                        Some(Bias::Additive { values, strides }) => {
                            let start = b * strides[0] + h * strides[1] + i * strides[2];
                            scores.iter_mut().zip(&values[start..start + total]).for_each(|(score, &bias)| *score += bias);
                        }
                        Some(Bias::Bool { values, strides }) => {
                            let start = b * strides[0] + h * strides[1] + i * strides[2];
                            for (score, &attend) in scores.iter_mut().zip(&values[start..start + total]) {
                                if attend == 0 {
                                    *score = f32::NEG_INFINITY;
                                }
                            }
                        }
                        None => {}
                    }
                    if options.causal {
                        scores.iter_mut().skip(i + 1).for_each(|score| *score = f32::NEG_INFINITY);
                    }
                    let start = b * out_strides[0] + h * out_strides[1] + i * out_strides[2];
                    let y = &mut out[start..start + value_size];
                    let max = lanes(&scores, f32::NEG_INFINITY, f32::max);
                    if max == f32::NEG_INFINITY {
                        y.iter_mut().for_each(|value| *value = 0.0);
                        continue;
                    }
                    map_interleaved(&mut scores, |score| exp(score - max));
                    let inverse = 1.0 / sum(&scores);
                    scores.iter_mut().for_each(|score| *score *= inverse);
                    row_times_matrix(&scores, |j| v.row(b, kv_head, j), y);
                }
            }
        }
    }
}

/// `out[c] = sum over r of x[r] * row(r)[c]`, `row(r)` a slice of `out.len()` elements: the
/// columns in blocks of 8 whose sums stay in registers across the rows (accumulating in memory made
/// the kernel load- and store-bound).
fn row_times_matrix<'m>(x: &[f32], row: impl Fn(usize) -> &'m [f32], out: &mut [f32]) {
    let columns = out.len();
    let mut blocks = out.chunks_exact_mut(8);
    let mut start = 0;
    for block in &mut blocks {
        let mut sums = [0.0f32; 8];
        for (r, &weight) in x.iter().enumerate() {
            let values: &[f32; 8] = row(r)[start..start + 8].try_into().unwrap_or(&[0.0; 8]);
            for (sum, &value) in sums.iter_mut().zip(values) {
                *sum += weight * value;
            }
        }
        block.copy_from_slice(&sums);
        start += 8;
    }
    let tail = blocks.into_remainder();
    tail.iter_mut().for_each(|value| *value = 0.0);
    for (r, &weight) in x.iter().enumerate() {
        for (sum, &value) in tail.iter_mut().zip(&row(r)[start..columns]) {
            *sum += weight * value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(count: usize, seed: usize) -> Vec<f32> {
        (0..count).map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) * 0.15).collect()
    }

    /// Contiguous `[batch, heads, seq, size]` strides.
    fn strides([_, heads, seq, size]: [usize; 4]) -> [usize; 3] {
        [heads * seq * size, seq * size, size]
    }

    /// The attention of one query row in f64, the spec's formula written out.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        dims: [usize; 4],
        kv_heads: usize,
        total: usize,
        value_size: usize,
        bias: &dyn Fn(usize, usize, usize, usize) -> f64,
        scale: f64,
    ) -> Vec<f64> {
        let [batch, heads, seq, size] = dims;
        let group = heads / kv_heads;
        let mut out = vec![0.0; batch * heads * seq * value_size];
        for b in 0..batch {
            for h in 0..heads {
                let kh = h / group;
                for i in 0..seq {
                    let scores: Vec<f64> = (0..total)
                        .map(|j| {
                            let dot: f64 = (0..size)
                                .map(|d| {
                                    f64::from(q[((b * heads + h) * seq + i) * size + d])
                                        * f64::from(k[((b * kv_heads + kh) * total + j) * size + d])
                                })
                                .sum();
                            dot * scale + bias(b, h, i, j)
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if max == f64::NEG_INFINITY {
                        continue;
                    }
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total_weight: f64 = weights.iter().sum();
                    for (j, w) in weights.iter().enumerate() {
                        for d in 0..value_size {
                            out[((b * heads + h) * seq + i) * value_size + d] +=
                                w / total_weight * f64::from(v[((b * kv_heads + kh) * total + j) * value_size + d]);
                        }
                    }
                }
            }
        }
        out
    }

    fn assert_near(got: &[f32], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn grouped_causal_and_masked_attention_match_f64() {
        let (batch, heads, kv_heads, seq, total, size, value_size) = (2, 4, 2, 3, 5, 4, 3);
        let q_dims = [batch, heads, seq, size];
        let (q, k, v) = (
            data(batch * heads * seq * size, 1),
            data(batch * kv_heads * total * size, 2),
            data(batch * kv_heads * total * value_size, 3),
        );
        let mask: Vec<f32> = data(seq * total, 4);
        let flags: Vec<u8> = (0..batch * seq * total).map(|i| u8::from(i % 3 != 1)).collect();
        let scale = 0.5;
        fn heads_of(values: &[f32], dims: [usize; 4]) -> Heads<'_> {
            Heads { values, strides: strides(dims), dims }
        }
        let (qh, kh, vh) = (
            heads_of(&q, q_dims),
            heads_of(&k, [batch, kv_heads, total, size]),
            heads_of(&v, [batch, kv_heads, total, value_size]),
        );
        let run = |bias: Option<Bias>, causal: bool| {
            let mut out = vec![f32::NAN; batch * heads * seq * value_size];
            attention(qh, kh, vh, bias, Options { scale, causal }, &mut out, strides([batch, heads, seq, value_size]));
            out
        };
        let none = |_: usize, _: usize, _: usize, _: usize| 0.0;
        let expected = reference(&q, &k, &v, q_dims, kv_heads, total, value_size, &none, f64::from(scale));
        assert_near(&run(None, false), &expected);
        // Causal, with more keys than queries: query i attends keys 0..=i.
        let causal = |_: usize, _: usize, i: usize, j: usize| if j <= i { 0.0 } else { f64::NEG_INFINITY };
        assert_near(&run(None, true), &reference(&q, &k, &v, q_dims, kv_heads, total, value_size, &causal, f64::from(scale)));
        // An additive [seq, total] mask broadcast over batch and heads.
        let additive = |_: usize, _: usize, i: usize, j: usize| f64::from(mask[i * total + j]);
        let bias = Bias::Additive { values: &mask, strides: [0, 0, total] };
        assert_near(
            &run(Some(bias), false),
            &reference(&q, &k, &v, q_dims, kv_heads, total, value_size, &additive, f64::from(scale)),
        );
        // A bool [batch, 1, seq, total] mask.
        let boolean =
            |b: usize, _: usize, i: usize, j: usize| if flags[(b * seq + i) * total + j] != 0 { 0.0 } else { f64::NEG_INFINITY };
        let bias = Bias::Bool { values: &flags, strides: [seq * total, 0, total] };
        assert_near(
            &run(Some(bias), false),
            &reference(&q, &k, &v, q_dims, kv_heads, total, value_size, &boolean, f64::from(scale)),
        );
    }

    #[test]
    fn rows_longer_than_a_block_of_eight_match_f64() {
        // 19 keys and value size 11: whole blocks of 8 columns and a tail, in both products.
        let (heads, seq, total, size, value_size) = (2, 3, 19, 9, 11);
        let (q, k, v) = (data(heads * seq * size, 5), data(heads * total * size, 6), data(heads * total * value_size, 7));
        let heads_of = |values: &[f32], dims: [usize; 4]| -> Vec<f32> { values[..dims.iter().product::<usize>()].to_vec() };
        let (q, k, v) = (
            heads_of(&q, [1, heads, seq, size]),
            heads_of(&k, [1, heads, total, size]),
            heads_of(&v, [1, heads, total, value_size]),
        );
        let mut out = vec![f32::NAN; heads * seq * value_size];
        attention(
            Heads { values: &q, strides: strides([1, heads, seq, size]), dims: [1, heads, seq, size] },
            Heads { values: &k, strides: strides([1, heads, total, size]), dims: [1, heads, total, size] },
            Heads { values: &v, strides: strides([1, heads, total, value_size]), dims: [1, heads, total, value_size] },
            None,
            Options { scale: 0.3, causal: false },
            &mut out,
            strides([1, heads, seq, value_size]),
        );
        let none = |_: usize, _: usize, _: usize, _: usize| 0.0;
        assert_near(&out, &reference(&q, &k, &v, [1, heads, seq, size], heads, total, value_size, &none, 0.3));
    }

    #[test]
    fn fully_masked_rows_are_zero() {
        let dims = [1, 1, 2, 2];
        let values = [1.0, 2.0, 3.0, 4.0];
        let heads = Heads { values: &values, strides: strides(dims), dims };
        let inf = f32::NEG_INFINITY;
        let mask = [inf, inf, 0.0, inf];
        let mut out = vec![f32::NAN; 4];
        attention(
            heads,
            heads,
            heads,
            Some(Bias::Additive { values: &mask, strides: [0, 0, 2] }),
            Options { scale: 1.0, causal: false },
            &mut out,
            strides(dims),
        );
        assert_eq!(out, vec![0.0, 0.0, 1.0, 2.0]);
    }
}
