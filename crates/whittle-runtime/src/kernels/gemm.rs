//! f32 matrix products on rten-gemm, with constant operands packed once at plan time.
//!
//! rten-gemm was chosen over `gemm` 0.19 (already in the tree through burn-flex) because its API is
//! safe (`gemm` exposes `unsafe fn gemm` over raw pointers, and the workspace forbids `unsafe`) and
//! it keeps a packed copy of a constant operand (`prepack_a`, `prepack_b`), so a weight matrix is
//! re-laid out for the micro-kernel once instead of on every call. Both ran at ONNX Runtime's speed
//! with pre-packed weights when the runtime issue measured them.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedAMatrix, PackedBMatrix};
use rten_tensor::Matrix;

use crate::kernels::Activation;
use crate::ops::OpError;

/// The process's f32 GEMM: rten-gemm picks its micro-kernel (AVX-512, AVX2+FMA, NEON, generic) for
/// the CPU once. Packed matrices are only valid for the kernel that packed them, so every packing and
/// every product goes through this one executor.
///
/// The executor is `Sync` but not `Send` (it boxes a `dyn Kernel: Sync`), so a static cannot own it;
/// it is made once, leaked (a few bytes for the process's lifetime) and shared by reference.
pub(crate) fn executor() -> &'static GemmExecutor<f32> {
    static EXECUTOR: OnceLock<&'static GemmExecutor<f32>> = OnceLock::new();
    EXECUTOR.get_or_init(|| Box::leak(Box::new(GemmExecutor::default())))
}

/// A matrix packed once for the GEMM, shared by every clone of the op that holds it. Two handles are
/// equal when they are the same packing (the op enum compares ops; packed bytes have no meaning
/// outside the kernel).
pub(crate) struct Packed<M>(Arc<M>);

impl<M> Packed<M> {
    pub fn new(matrix: M) -> Packed<M> {
        Packed(Arc::new(matrix))
    }

    pub fn get(&self) -> &M {
        &self.0
    }
}

impl<M> Clone for Packed<M> {
    fn clone(&self) -> Packed<M> {
        Packed(Arc::clone(&self.0))
    }
}

impl<M> PartialEq for Packed<M> {
    fn eq(&self, other: &Packed<M>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<M> Eq for Packed<M> {}

impl<M> fmt::Debug for Packed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Packed")
    }
}

/// The right-hand operand `[K, N]` of a product with a constant B, packed.
pub(crate) type PackedB = Packed<PackedBMatrix<f32>>;

/// A left-hand operand `[M, K]` packed (a convolution's weights).
pub(crate) type PackedA = Packed<PackedAMatrix<f32>>;

/// A constant right-hand operand B' `[k, n]` packed at plan time (MatMul's and Gemm's weights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConstantRhs {
    pub k: usize,
    pub n: usize,
    pub packed: PackedB,
}

impl ConstantRhs {
    /// Packs the f32 matrix `tensor` as B', its transpose when `transposed`; `None` for other
    /// dtypes and ranks, which the op runs on burn.
    pub fn pack(tensor: &whittle_ir::Tensor, transposed: bool) -> Option<ConstantRhs> {
        let (values, dims) = crate::kernels::constant_f32(tensor)?;
        let [rows, cols] = dims[..] else { return None };
        let (k, n) = if transposed { (cols, rows) } else { (rows, cols) };
        (values.len() == k * n).then(|| ConstantRhs { k, n, packed: pack_b(&values, k, n, transposed) })
    }
}

/// A constant f32 vector added to every row of a product (a bias Add the planner folded into
/// MatMul, see `crate::fuse`), shared by every clone of the op. Two are equal when their bits are.
#[derive(Debug, Clone)]
pub(crate) struct ConstantBias(pub Arc<[f32]>);

impl PartialEq for ConstantBias {
    fn eq(&self, other: &ConstantBias) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(other.0.iter()).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for ConstantBias {}

/// Packs the constant B' `[k, n]`, stored row-major as `[k, n]`, or as `[n, k]` when `transposed`
/// (Gemm's transB, torch's Linear weights).
pub(crate) fn pack_b(values: &[f32], k: usize, n: usize, transposed: bool) -> PackedB {
    Packed::new(executor().prepack_b(matrix(values, k, n, transposed)))
}

/// Packs the constant A `[m, k]`, stored row-major.
pub(crate) fn pack_a(values: &[f32], m: usize, k: usize) -> PackedA {
    Packed::new(executor().prepack_a(matrix(values, m, k, false)))
}

/// A `[rows, cols]` view of `values` with the given row and column strides (a transposed or
/// head-strided operand, read in place); an error when `values` is too short for them.
pub(crate) fn strided_matrix(values: &[f32], rows: usize, cols: usize, strides: [usize; 2]) -> Result<Matrix<'_>, OpError> {
    Matrix::from_slice_with_strides([rows, cols], values, strides).map_err(|err| {
        OpError::new(format!("a [{rows}, {cols}] operand with strides {strides:?} does not fit its data: {err:?}"))
    })
}

/// A `[rows, cols]` view of `values`, stored row-major as `[rows, cols]`, or as `[cols, rows]` when
/// `transposed`. Callers pass slices of exactly `rows * cols` elements.
pub(crate) fn matrix(values: &[f32], rows: usize, cols: usize, transposed: bool) -> Matrix<'_> {
    if transposed {
        Matrix::from_data([cols, rows], values).transposed()
    } else {
        Matrix::from_data([rows, cols], values)
    }
}

/// `out = alpha * a @ b + beta * out + bias`, then `activation`, with `out` `[a.rows(), b.cols()]`
/// row-major. With `beta` 0 the old contents of `out` are not read.
pub(crate) fn gemm(
    out: &mut [f32],
    a: GemmInputA<'_, f32>,
    b: GemmInputB<'_, f32>,
    alpha: f32,
    beta: f32,
    bias: Option<BiasVector<'_, f32>>,
    activation: Option<Activation>,
) -> Result<(), OpError> {
    let options = GemmOptions { alpha, beta, bias, ..GemmOptions::default() };
    // A single row times an unpacked B would take rten-gemm's gemv path, whose column tail rounds
    // differently from its vector body: with the constant weights of the light zoo models, logits of
    // 1e5 and more came out one ulp apart in the last 8 of 1000 columns, which a softmax turns into a
    // visible error (light/resnet50). Packing the row (K values) sends it through the tiled kernel,
    // where every column is computed alike.
    let packed_row;
    let a = match (a, b) {
        (GemmInputA::Unpacked(row), GemmInputB::Unpacked(_)) if a.rows() == 1 => {
            packed_row = executor().prepack_a(row);
            GemmInputA::Packed(&packed_row)
        }
        (a, _) => a,
    };
    executor().gemm(out, a, b, options).map_err(|err| OpError::new(format!("gemm kernel: {err}")))?;
    if let Some(activation) = activation {
        activation.apply(out);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `[m, k] x [k, n]` in f64 over row-major buffers.
    pub fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j])).sum();
            }
        }
        out
    }

    pub fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| ((i * 7) % 13) as f32 * scale - 0.5).collect()
    }

    pub fn assert_near(actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!((f64::from(a) - e).abs() <= 1e-5 * e.abs().max(1.0), "element {index}: got {a}, expected {e}");
        }
    }

    fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols).flat_map(|j| (0..rows).map(move |i| values[i * cols + j])).collect()
    }

    #[test]
    fn packed_and_unpacked_operands_match_a_reference_product() {
        // Sizes on both sides of the micro-kernel's tiles, a single row (rten's gemv path when
        // unpacked) and a deep K that spans several depth blocks (256 f32).
        for (m, k, n) in [(1, 64, 128), (8, 64, 128), (5, 300, 17), (33, 9, 16), (1, 40, 1000), (2, 40, 1000)] {
            let (a, b) = (ramp(m * k, 0.1), ramp(k * n, 0.05));
            let expected = reference(&a, &b, m, k, n);
            let b_t = transpose(&b, k, n);
            let product = |a: GemmInputA<'_, f32>, b: GemmInputB<'_, f32>| {
                let mut out = vec![f32::NAN; m * n];
                gemm(&mut out, a, b, 1.0, 0.0, None, None).unwrap();
                out
            };
            let unpacked_a = || GemmInputA::Unpacked(matrix(&a, m, k, false));
            assert_near(&product(unpacked_a(), GemmInputB::Unpacked(matrix(&b, k, n, false))), &expected);
            assert_near(&product(unpacked_a(), GemmInputB::Unpacked(matrix(&b_t, k, n, true))), &expected);
            for packed in [pack_b(&b, k, n, false), pack_b(&b_t, k, n, true)] {
                assert_near(&product(unpacked_a(), GemmInputB::Packed(packed.get())), &expected);
            }
            let packed_a = pack_a(&a, m, k);
            assert_near(&product(GemmInputA::Packed(packed_a.get()), GemmInputB::Unpacked(matrix(&b, k, n, false))), &expected);
        }
    }

    #[test]
    fn alpha_beta_bias_and_relu_are_applied_in_order() {
        // out = relu(2 * a @ b + 0.5 * out + bias_row).
        let (m, k, n) = (3, 4, 5);
        let (a, b) = (ramp(m * k, 0.1), ramp(k * n, 0.05));
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.1 - 0.2).collect();
        let initial = ramp(m * n, 0.02);
        let product = reference(&a, &b, m, k, n);
        let expected: Vec<f64> =
            (0..m * n).map(|i| (2.0 * product[i] + 0.5 * f64::from(initial[i]) + f64::from(bias[i % n])).max(0.0)).collect();
        let mut out = initial.clone();
        let packed = pack_b(&b, k, n, false);
        gemm(
            &mut out,
            GemmInputA::Unpacked(matrix(&a, m, k, false)),
            GemmInputB::Packed(packed.get()),
            2.0,
            0.5,
            Some(BiasVector::Row(&bias)),
            Some(Activation::Relu),
        )
        .unwrap();
        assert_near(&out, &expected);
    }

    #[test]
    fn every_column_of_a_single_row_product_rounds_alike() {
        // light/resnet50 regression: x [1, 2048] of large values times constant weights 0.02 (B
        // unpacked, transposed, as its final Gemm reads them) must give 1000 identical logits.
        let (k, n) = (2048, 1000);
        let x: Vec<f32> = (0..k).map(|i| 1000.0 + i as f32).collect();
        let weights = vec![0.02f32; n * k];
        let mut out = vec![0.0; n];
        let b = GemmInputB::Unpacked(matrix(&weights, k, n, true));
        gemm(&mut out, GemmInputA::Unpacked(matrix(&x, 1, k, false)), b, 1.0, 0.0, None, None).unwrap();
        assert!(out.iter().all(|&v| v.to_bits() == out[0].to_bits()), "{:?}", &out[n - 10..]);
    }

    #[test]
    fn mismatched_operands_are_an_error_not_a_panic() {
        let (a, b) = (ramp(6, 0.1), ramp(6, 0.1));
        let mut out = vec![0.0; 4];
        let err = gemm(
            &mut out,
            GemmInputA::Unpacked(matrix(&a, 2, 3, false)),
            GemmInputB::Unpacked(matrix(&b, 2, 3, false)),
            1.0,
            0.0,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(err.reason, "gemm kernel: columns of matrix `a` must match rows of matrix `b`");
    }

    #[test]
    fn packings_compare_by_identity() {
        let b = ramp(6, 0.1);
        let packed = pack_b(&b, 2, 3, false);
        assert_eq!(packed, packed.clone());
        assert_ne!(packed, pack_b(&b, 2, 3, false));
    }
}
