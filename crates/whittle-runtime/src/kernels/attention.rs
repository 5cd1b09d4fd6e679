//! Fused f32 attention: `softmax(Q K^T * scale + bias) V` per head, for the cases the fusion pass
//! emits (no cache, no softcap, no extra outputs, no windows): no mask, causal, and an additive or
//! bool mask that broadcasts to the scores' shape.
//!
//! Unfused, `transformer_tiny`'s attention is MatMul, Div, Softmax and MatMul with the transposes
//! around them and four intermediate tensors. Here each head's two products run on
//! [`small_gemm`], reading Q, K (as K^T) and V in place through their strides (the 3-D
//! `[batch, seq, heads * size]` layout is a strided view of heads), with the scaling, mask and
//! softmax applied to the head's score rows between them, and one output buffer is written. The
//! work of the fixtures' sizes is small, so it runs on the calling thread. The opset-23 fused
//! transformer_tiny, one thread, alternating builds: batch 8 from 0.284-0.331 ms (slower than the
//! unfused model's 0.248-0.262 once its MatMuls ran on `small_gemm`; the kernel then took one
//! query row at a time) to 0.243-0.252 ms, batch 1 from 0.061-0.079 to 0.055-0.066 ms.

use crate::kernels::activation::{exp, map_interleaved};
use crate::kernels::rows::{lanes, sum};
use crate::kernels::small_gemm::{small_gemm, SmallProduct};

/// An operand `[batch, heads, seq, size]` as a slice with the strides of its first three axes; the
/// last axis is contiguous.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads<'a> {
    pub values: &'a [f32],
    pub strides: [usize; 3],
    pub dims: [usize; 4],
}

impl Heads<'_> {
    /// The values from head `h` of batch entry `b` on.
    fn head(&self, b: usize, h: usize) -> &[f32] {
        &self.values[b * self.strides[0] + h * self.strides[1]..]
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
    let mut scores = vec![0.0f32; q_seq * total];
    let mut head_out = vec![0.0f32; q_seq * value_size];
    for b in 0..batch {
        for h in 0..q_heads {
            let kv_head = h / group.max(1);
            // Q K^T of this head, [q_seq, total]: K^T is K's rows read as columns.
            let q_k = SmallProduct {
                a: q.head(b, h),
                a_strides: [q.strides[2], 1],
                b: k.head(b, kv_head),
                b_strides: [1, k.strides[2]],
                dims: [q_seq, head_size, total],
                bias: None,
                activation: None,
            };
            small_gemm(&mut scores, &q_k);
            for (i, row) in scores.chunks_exact_mut(total).enumerate() {
                row.iter_mut().for_each(|score| *score *= options.scale);
                match bias {
                    Some(Bias::Additive { values, strides }) => {
                        let start = b * strides[0] + h * strides[1] + i * strides[2];
                        row.iter_mut().zip(&values[start..start + total]).for_each(|(score, &bias)| *score += bias);
                    }
                    Some(Bias::Bool { values, strides }) => {
                        let start = b * strides[0] + h * strides[1] + i * strides[2];
                        for (score, &attend) in row.iter_mut().zip(&values[start..start + total]) {
                            if attend == 0 {
                                *score = f32::NEG_INFINITY;
                            }
                        }
                    }
                    None => {}
                }
                if options.causal {
                    row.iter_mut().skip(i + 1).for_each(|score| *score = f32::NEG_INFINITY);
                }
                // A row that attends no key stays all -inf here and becomes a zero row below.
                let max = lanes(row, f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    row.iter_mut().for_each(|score| *score = 0.0);
                    continue;
                }
                map_interleaved(row, |score| exp(score - max));
                let inverse = 1.0 / sum(row);
                row.iter_mut().for_each(|score| *score *= inverse);
            }
            // P V of this head, [q_seq, value_size], then into Y's strided rows.
            let p_v = SmallProduct {
                a: &scores,
                a_strides: [total, 1],
                b: v.head(b, kv_head),
                b_strides: [v.strides[2], 1],
                dims: [q_seq, total, value_size],
                bias: None,
                activation: None,
            };
            small_gemm(&mut head_out, &p_v);
            for (i, row) in head_out.chunks_exact(value_size).enumerate() {
                let at = b * out_strides[0] + h * out_strides[1] + i * out_strides[2];
                out[at..at + value_size].copy_from_slice(row);
            }
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
