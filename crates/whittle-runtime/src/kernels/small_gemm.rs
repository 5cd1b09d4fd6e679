//! f32 products too small for a GEMM library's packing: `out = a @ b (+ bias) (then Relu)` for
//! matrices of a few dozen rows and columns, read through their strides.
//!
//! Attention multiplies one `[t, d]` by one `[d, t]` matrix per head: on `transformer_tiny` at
//! batch 8 that is 32 products of 16x16x16 per MatMul node, one rten-gemm call each (packing both
//! operands), 25 us for a node whose 131k multiply-adds take about 2 us. Here `b` is copied once
//! into rows padded to 16 columns and a block of rows by 16 columns of `out` is summed in registers
//! over `k`, in a fixed order, on the instruction set pulp dispatches to (FMA where it has one).
//! A MatMul's products run in one dispatch with one B buffer ([`small_gemms`]), rows of B with a
//! unit stride are copied whole, A's rows are sliced once, and whole blocks of columns are stored
//! from the registers: `transformer_tiny`'s softmax @ V at batch 64 (256 products of 16x16x16 a
//! node, Sapphire Rapids, one thread) went from 0.090 to 0.057 ms a node; Q @ K^T stays near 0.087,
//! its B gathered one value at a time from K's rows.

use crate::kernels::Activation;

/// Multiply-adds of one product at or below which [`small_gemm`] beats rten-gemm: 32x32x32.
pub(crate) const SMALL_PRODUCT: usize = 1 << 15;

/// One product: `a` `[m, k]` and `b` `[k, n]` read at `values[row * strides[0] + col * strides[1]]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmallProduct<'a> {
    pub a: &'a [f32],
    pub a_strides: [usize; 2],
    pub b: &'a [f32],
    pub b_strides: [usize; 2],
    pub dims: [usize; 3],
    /// One value per column of `out`.
    pub bias: Option<&'a [f32]>,
    pub activation: Option<Activation>,
}

/// Columns per register block: one AVX-512 register of f32 (two AVX2 ones).
const WIDTH: usize = 16;

/// Rows per register block at most.
const ROWS: usize = 8;

/// Registers of sums in flight on a vector instruction set: enough independent adds to hide their
/// latency, within AVX2's 16 registers.
const IN_FLIGHT: usize = 8;

/// Registers of sums a block may hold: the scalar fallback holds one row of [`WIDTH`] lanes.
const ACCUMULATORS: usize = WIDTH;

/// Computes `product` into `out` (`[m, n]`, row-major).
pub(crate) fn small_gemm(out: &mut [f32], product: &SmallProduct<'_>) {
    let (b, padded) = padded_b(product);
    pulp::Arch::new().dispatch(Blocks { out, b: &b, padded, product });
}

/// [`small_gemm`] for `count` products of one shape, `product(t)` the t-th, into the consecutive
/// `[m, n]` blocks of `out`: one dispatch and one buffer for B for them all.
///
/// Why: attention's MatMuls are one 16x16x16 product per batch entry and head (4096 at batch 64
/// on `transformer_tiny`, two MatMul nodes a layer); a dispatch and a B allocation each cost as
/// much as the product.
pub(crate) fn small_gemms<'a>(out: &mut [f32], count: usize, product: impl Fn(usize) -> SmallProduct<'a>) {
    struct Batch<'o, F> {
        out: &'o mut [f32],
        count: usize,
        product: F,
    }
    impl<'a, F: Fn(usize) -> SmallProduct<'a>> pulp::WithSimd for Batch<'_, F> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            let Batch { out, count, product } = self;
            let mut b = Vec::new();
            for t in 0..count {
                let product = product(t);
                let [m, _, n] = product.dims;
                let padded = fill_padded_b(&product, &mut b);
                multiply(simd, &mut out[t * m * n..][..m * n], &b, padded, &product);
            }
        }
    }
    if count > 0 {
        pulp::Arch::new().dispatch(Batch { out, count, product });
    }
}

/// B gathered once into rows padded to whole blocks of [`WIDTH`] columns (zeros past n), with the
/// padded row length.
fn padded_b(product: &SmallProduct<'_>) -> (Vec<f32>, usize) {
    let mut b = Vec::new();
    let padded = fill_padded_b(product, &mut b);
    (b, padded)
}

/// [`padded_b`] into `b`, which holds the previous product's B of the same shape or is empty: the
/// padding columns, never written, stay zero.
#[inline(always)]
fn fill_padded_b(product: &SmallProduct<'_>, b: &mut Vec<f32>) -> usize {
    let [_, k, n] = product.dims;
    let padded = n.next_multiple_of(WIDTH);
    if b.len() != k * padded {
        b.clear();
        b.resize(k * padded, 0.0);
    }
    let [row, col] = product.b_strides;
    if col == 1 {
        for (p, b_row) in b.chunks_exact_mut(padded).enumerate() {
            b_row[..n].copy_from_slice(&product.b[p * row..][..n]);
        }
    } else if row == 1 {
        // A transposed B (attention's K^T): each column is a contiguous run of the source.
        for j in 0..n {
            let column = &product.b[j * col..][..k];
            for (p, &value) in column.iter().enumerate() {
                b[p * padded + j] = value;
            }
        }
    } else {
        for (p, b_row) in b.chunks_exact_mut(padded).enumerate() {
            for (j, value) in b_row.iter_mut().take(n).enumerate() {
                *value = product.b[p * row + j * col];
            }
        }
    }
    padded
}

struct Blocks<'a> {
    out: &'a mut [f32],
    /// `[k, padded]`, row-major.
    b: &'a [f32],
    padded: usize,
    product: &'a SmallProduct<'a>,
}

impl pulp::WithSimd for Blocks<'_> {
    type Output = ();

    // Inlined into pulp's per-instruction-set entry points, so that the block loops, whose trip
    // counts are constants of `S`, unroll with the sums in registers: a block of rows gives the
    // adds independent chains (one row alone waits on each add's latency).
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Blocks { out, b, padded, product } = self;
        multiply(simd, out, b, padded, product);
    }
}

/// The product into `out` with B padded (`[k, padded]`), on instruction set `S`.
#[inline(always)]
fn multiply<S: pulp::Simd>(simd: S, out: &mut [f32], b: &[f32], padded: usize, product: &SmallProduct<'_>) {
    let [m, k, n] = product.dims;
    let [a_row, a_col] = product.a_strides;
    let vectors = (WIDTH / S::F32_LANES).max(1);
    let block_rows = (IN_FLIGHT / vectors).clamp(1, ROWS);
    let zero = simd.splat_f32s(0.0);
    let relu = product.activation == Some(Activation::Relu);
    let mut stored = [0.0f32; ROWS * WIDTH];
    for first_column in (0..n).step_by(WIDTH) {
        let columns = WIDTH.min(n - first_column);
        let mut initial = [0.0f32; WIDTH];
        if let Some(bias) = product.bias {
            initial[..columns].copy_from_slice(&bias[first_column..first_column + columns]);
        }
        let initial = S::as_simd_f32s(&initial).0;
        for first_row in (0..m).step_by(block_rows) {
            let rows = block_rows.min(m - first_row);
            let mut sums = [zero; ACCUMULATORS];
            for r in 0..block_rows {
                sums[r * vectors..(r + 1) * vectors].copy_from_slice(&initial[..vectors]);
            }
            // A short last block repeats its last row; only `rows` rows are stored.
            let row_start = |r: usize| (first_row + r.min(rows - 1)) * a_row;
            if a_col == 1 {
                // Rows of A sliced once to `k` values, so that reading them needs no bounds check
                // per multiply-add (a check per FMA doubled the instructions of the loop).
                let a_rows: [&[f32]; ROWS] = std::array::from_fn(|r| &product.a[row_start(r)..][..k]);
                for p in 0..k {
                    let b_vectors = S::as_simd_f32s(&b[p * padded + first_column..][..WIDTH]).0;
                    for r in 0..block_rows {
                        let value = simd.splat_f32s(a_rows[r][p]);
                        for v in 0..vectors {
                            sums[r * vectors + v] = simd.mul_add_e_f32s(value, b_vectors[v], sums[r * vectors + v]);
                        }
                    }
                }
            } else {
                for p in 0..k {
                    let b_vectors = S::as_simd_f32s(&b[p * padded + first_column..][..WIDTH]).0;
                    for r in 0..block_rows {
                        let value = simd.splat_f32s(product.a[row_start(r) + p * a_col]);
                        for v in 0..vectors {
                            sums[r * vectors + v] = simd.mul_add_e_f32s(value, b_vectors[v], sums[r * vectors + v]);
                        }
                    }
                }
            }
            if !relu && columns == WIDTH {
                // Whole blocks of columns go from the registers to `out`: through `stored` and an
                // element loop the stores took as long as the sums on attention's 16x16 products.
                for r in 0..rows {
                    let start = (first_row + r) * n + first_column;
                    let (target, _) = S::as_mut_simd_f32s(&mut out[start..start + WIDTH]);
                    target[..vectors].copy_from_slice(&sums[r * vectors..(r + 1) * vectors]);
                }
                continue;
            }
            let (stored_vectors, _) = S::as_mut_simd_f32s(&mut stored);
            stored_vectors[..block_rows * vectors].copy_from_slice(&sums[..block_rows * vectors]);
            for (r, values) in stored.chunks_exact(WIDTH).take(rows).enumerate() {
                let start = (first_row + r) * n + first_column;
                for (target, &value) in out[start..start + columns].iter_mut().zip(values) {
                    // NaN fails `<= 0` and stays, as in Activation::apply.
                    *target = if relu && value <= 0.0 { 0.0 } else { value };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_f64() {
        // (m, k, n, A transposed, B transposed, bias, relu)
        let cases = [
            (16, 16, 16, false, true, false, false),
            (3, 5, 7, true, false, true, true),
            (1, 9, 4, false, false, true, false),
            (7, 1, 3, true, true, false, true),
            // Two column blocks (the second partial) and a partial last row block.
            (11, 8, 21, false, true, true, false),
        ];
        for (m, k, n, a_transposed, b_transposed, with_bias, relu) in cases {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 * 0.25 - 1.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 * 0.125 - 0.75).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 1.0).collect();
            // Element (r, c) of A is a[r * k + c] row-major, a[c * m + r] when stored transposed.
            let a_strides = if a_transposed { [1, m] } else { [k, 1] };
            let b_strides = if b_transposed { [1, k] } else { [n, 1] };
            let at = |r: usize, c: usize| f64::from(a[r * a_strides[0] + c * a_strides[1]]);
            let bt = |r: usize, c: usize| f64::from(b[r * b_strides[0] + c * b_strides[1]]);
            let product = SmallProduct {
                a: &a,
                a_strides,
                b: &b,
                b_strides,
                dims: [m, k, n],
                bias: with_bias.then_some(&bias[..]),
                activation: relu.then_some(Activation::Relu),
            };
            let mut out = vec![f32::NAN; m * n];
            small_gemm(&mut out, &product);
            // The scalar fallback (CPUs without AVX2, no FMA) and AVX2 + FMA, each checked too.
            let (b, padded) = padded_b(&product);
            let mut results = vec![out];
            let mut scalar = vec![f32::NAN; m * n];
            pulp::Simd::vectorize(pulp::Scalar::new(), Blocks { out: &mut scalar, b: &b, padded, product: &product });
            results.push(scalar);
            #[cfg(target_arch = "x86_64")]
            if let Some(v3) = pulp::x86::V3::try_new() {
                let mut avx2 = vec![f32::NAN; m * n];
                pulp::Simd::vectorize(v3, Blocks { out: &mut avx2, b: &b, padded, product: &product });
                results.push(avx2);
            }
            // Three products of the shape in one call: the same sums as one at a time.
            let mut batch = vec![f32::NAN; 3 * m * n];
            small_gemms(&mut batch, 3, |_| product);
            for chunk in batch.chunks_exact(m * n) {
                assert_eq!(chunk, &results[0][..]);
            }
            for out in &results {
                for i in 0..m {
                    for j in 0..n {
                        let mut want: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                        if with_bias {
                            want += f64::from(bias[j]);
                        }
                        if relu {
                            want = want.max(0.0);
                        }
                        let got = f64::from(out[i * n + j]);
                        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "({i}, {j}) of {m}x{k}x{n}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
