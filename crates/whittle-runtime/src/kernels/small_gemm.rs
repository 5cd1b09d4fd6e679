//! f32 products too small for a GEMM library's packing: `out = a @ b (+ bias) (then Relu)` for
//! matrices of a few dozen rows and columns, read through their strides.
//!
//! Attention multiplies one `[t, d]` by one `[d, t]` matrix per head: on `transformer_tiny` at
//! batch 8 that is 32 products of 16x16x16 per MatMul node, one rten-gemm call each (packing both
//! operands), 25 us for a node whose 131k multiply-adds take about 2 us. Here `b` is copied once
//! into rows padded to 16 columns and a block of rows by 16 columns of `out` is summed in registers
//! over `k`, in a fixed order, on the instruction set pulp dispatches to (FMA where it has one).

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

/// B gathered once into rows padded to whole blocks of [`WIDTH`] columns (zeros past n), with the
/// padded row length.
fn padded_b(product: &SmallProduct<'_>) -> (Vec<f32>, usize) {
    let [_, k, n] = product.dims;
    let padded = n.next_multiple_of(WIDTH);
    let [row, col] = product.b_strides;
    let mut b = vec![0.0f32; k * padded];
    for (p, b_row) in b.chunks_exact_mut(padded).enumerate() {
        for (j, value) in b_row.iter_mut().take(n).enumerate() {
            *value = product.b[p * row + j * col];
        }
    }
    (b, padded)
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
                for p in 0..k {
                    let b_row = &b[p * padded + first_column..p * padded + first_column + WIDTH];
                    let b_vectors = S::as_simd_f32s(b_row).0;
                    for r in 0..block_rows {
                        // A short last block repeats its last row; only `rows` rows are stored.
                        let i = first_row + r.min(rows - 1);
                        let value = simd.splat_f32s(product.a[i * a_row + p * a_col]);
                        for v in 0..vectors {
                            sums[r * vectors + v] = simd.mul_add_e_f32s(value, b_vectors[v], sums[r * vectors + v]);
                        }
                    }
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
