//! MatMul: matrix product with numpy semantics (<https://onnx.ai/onnx/operators/onnx__MatMul.html>).
//!
//! 1-D operands are promoted (a vector on the left is a row, on the right a column) and the
//! promoted axis removed from the result; leading batch axes broadcast. Opsets 1 to 13 differ only
//! in types.
//!
//! On burn-flex, f32 products run on whittle's GEMM kernel ([`crate::kernels::gemm`]) when B is
//! shared by every batch entry (a constant B packed once at plan time, the transformer's weights)
//! or when both operands have the same batch axes (attention's products, whose operands are read
//! in place through their strides: the transposed K and the head views of Q and V are not copied);
//! other broadcasts, devices and dtypes stay on burn. The planner may fold a following Add of a
//! constant `[N]` vector into the node (`crate::fuse`): the kernel adds it in its output loop.

use std::ops::RangeInclusive;

use rayon::prelude::*;
use rten_gemm::{BiasVector, GemmInputA, GemmInputB};

use crate::broadcast::{arithmetic, broadcast_shape, Arithmetic};
use crate::kernels::gemm::{self as kernel, ConstantBias, ConstantRhs};
use crate::kernels::small_gemm::{small_gemm, small_gemms, SmallProduct, SMALL_PRODUCT};
use crate::kernels::{self, activate_burn, Activation, Strided};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{with_rank, Value};

/// `Y = A @ B`, then the bias and the activation fused into it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatMul {
    /// B packed for the f32 kernel, when it is a constant f32 matrix.
    pub(crate) packed: Option<ConstantRhs>,
    /// A constant `[N]` vector added to every row, from an Add the planner fused into this node.
    pub(crate) bias: Option<ConstantBias>,
    /// An activation the planner fused into this node (see `crate::fuse`).
    pub(crate) activation: Option<Activation>,
}

/// Products below this many multiply-adds run their batch entries on the calling thread: rayon's
/// fork and join on 2 threads cost more than a batch of `transformer_tiny`'s 16x16x16 attention
/// products (2^17 multiply-adds at batch 8).
const PARALLEL_BATCH_WORK: usize = 1 << 20;

impl Operator for MatMul {
    const OP_TYPE: &'static str = "MatMul";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(MatMul { packed: node.constant_input(1).and_then(|b| ConstantRhs::pack(b, false)), bias: None, activation: None })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b) = (inputs.take(0)?, inputs.take(1)?);
        let dtype = a.dtype();
        if b.dtype() != dtype {
            fail!("operands have different dtypes {dtype} and {}", b.dtype());
        }
        let layout = MatMulLayout::new(a.shape(), b.shape())?;
        if let Some(bias) = &self.bias {
            if layout.output.last() != Some(&bias.0.len()) || dtype != whittle_ir::DataType::F32 {
                fail!("the fused bias of {} values does not fit the {dtype} product {:?}", bias.0.len(), layout.output);
            }
        }
        if let Some(y) = self.run_kernel(&a, &b, &layout)? {
            return Ok(vec![y]);
        }
        let device = a.device();
        let (a, b) = (layout.lhs(a)?, layout.rhs(b)?);
        // burn's matmul broadcasts size-1 batch axes of same-rank operands.
        let product = with_rank!(layout.rank(), D => Value::from_float(a.float::<D>()?.matmul(b.float::<D>()?), dtype)?);
        let mut y = layout.output(product)?;
        if let Some(bias) = &self.bias {
            let values = bias.0.iter().map(|&v| f64::from(v)).collect();
            let bias = Value::float_from_f64(values, &[bias.0.len()], dtype, &device)?;
            y[0] = arithmetic(Arithmetic::Add, y[0].clone(), bias)?;
        }
        if let Some(y) = y.first_mut().filter(|_| self.activation.is_some()) {
            *y = activate_burn(y.clone(), self.activation)?;
        }
        Ok(y)
    }
}

impl MatMul {
    /// Runs a checked product on whittle's f32 kernel; `None` when it does not apply (not flex, not
    /// f32, a scalar result, or a broadcast other than a B shared by the whole batch) and burn runs
    /// it instead.
    fn run_kernel(&self, a: &Value, b: &Value, layout: &MatMulLayout) -> Result<Option<Value>, OpError> {
        let rank = layout.rank();
        let (batch_a, batch_b) = (&layout.lhs[..rank - 2], &layout.rhs[..rank - 2]);
        let shared_b = batch_b.iter().all(|&size| size == 1);
        if layout.output.is_empty() || layout.output.contains(&0) || !(shared_b || batch_a == batch_b) {
            return Ok(None);
        }
        let Some(a_tensor) = kernels::flex_f32(a) else { return Ok(None) };
        let (m, k, n) = (layout.lhs[rank - 2], layout.lhs[rank - 1], layout.rhs[rank - 1]);
        let packed = self.packed.as_ref().filter(|packed| b.rank() == 2 && [packed.k, packed.n] == [k, n]);
        let b_tensor = match packed {
            Some(_) => None,
            None => match kernels::flex_f32(b) {
                Some(tensor) => Some(tensor),
                None => return Ok(None),
            },
        };
        let bias = self.bias.as_ref().map(|bias| BiasVector::Row(&bias.0[..]));
        let batch: usize = batch_a.iter().product();
        let mut out = vec![0.0f32; batch * m * n];
        if shared_b {
            // Every batch entry multiplies the same B: one product of all their rows.
            let rows = batch * m;
            let a_values = kernels::contiguous(&a_tensor);
            let b_values = b_tensor.as_ref().map(kernels::contiguous);
            let b_matrix = match (packed, &b_values) {
                (Some(packed), _) => GemmInputB::Packed(packed.packed.get()),
                (None, Some(values)) => GemmInputB::Unpacked(kernel::matrix(values, k, n, false)),
                (None, None) => return Ok(None),
            };
            let a_matrix = GemmInputA::Unpacked(kernel::matrix(&a_values, rows, k, false));
            kernel::gemm(&mut out, a_matrix, b_matrix, 1.0, 0.0, bias, self.activation)?;
        } else if let Some(b_tensor) = b_tensor {
            // One small product per batch entry, each operand read in place through its strides
            // (attention's transposed K and head-strided Q and V are views, not copies).
            // rten-gemm reads rows with a unit last stride; the small products gather any strides.
            let small = m * k * n <= SMALL_PRODUCT;
            let view = if small { Strided::with_any_strides } else { Strided::new };
            let (a_view, b_view) = (view(a_tensor), view(b_tensor));
            let (Some(a_offsets), Some(b_offsets)) = (batch_offsets(&a_view, a.shape()), batch_offsets(&b_view, b.shape()))
            else {
                return Ok(None);
            };
            let matrix_strides = |view: &Strided| {
                let r = view.strides.len();
                [view.strides[r - 2], view.strides[r - 1]]
            };
            let (a_strides, b_strides) = (matrix_strides(&a_view), matrix_strides(&b_view));
            let (a_values, b_values) = (a_view.values(), b_view.values());
            // Batch entry t's product on the small-product kernel.
            let small_product = |t: usize| SmallProduct {
                a: &a_values[a_offsets[t]..],
                a_strides,
                b: &b_values[b_offsets[t]..],
                b_strides,
                dims: [m, k, n],
                bias: self.bias.as_ref().map(|bias| &bias.0[..]),
                activation: self.activation,
            };
            let product = |(t, out): (usize, &mut [f32])| {
                if small {
                    small_gemm(out, &small_product(t));
                    return Ok(());
                }
                let a_matrix = GemmInputA::Unpacked(kernel::strided_matrix(&a_values[a_offsets[t]..], m, k, a_strides)?);
                let b_matrix = GemmInputB::Unpacked(kernel::strided_matrix(&b_values[b_offsets[t]..], k, n, b_strides)?);
                kernel::gemm(out, a_matrix, b_matrix, 1.0, 0.0, bias, self.activation)
            };
            let chunk = m * n;
            if rayon::current_num_threads() > 1 && batch > 1 && batch * m * n * k >= PARALLEL_BATCH_WORK {
                out.par_chunks_mut(chunk).enumerate().try_for_each(product)?;
            } else if small {
                small_gemms(&mut out, batch, small_product);
            } else {
                out.chunks_mut(chunk).enumerate().try_for_each(product)?;
            }
        } else {
            return Ok(None);
        }
        Ok(Some(kernels::output(out, &layout.output)?))
    }
}

/// The offset of each batch entry's matrix in `view`'s values, batch entries in row-major order,
/// for an operand of ONNX shape `shape`; `None` for a 1-D operand (promoted, it has no matrix
/// strides to read).
fn batch_offsets(view: &Strided, shape: &[usize]) -> Option<Vec<usize>> {
    if shape.len() < 2 || view.dims.len() != shape.len() {
        return None;
    }
    let batch_axes = shape.len() - 2;
    let count: usize = shape[..batch_axes].iter().product();
    let mut offsets = Vec::with_capacity(count);
    for index in 0..count {
        let (mut rest, mut offset) = (index, 0);
        for axis in (0..batch_axes).rev() {
            offset += (rest % shape[axis]) * view.strides[axis];
            rest /= shape[axis];
        }
        offsets.push(offset);
    }
    Some(offsets)
}

/// The shapes of a numpy-style matrix product, shared by MatMul, MatMulInteger and QLinearMatMul:
/// 1-D operands promoted to matrices, both operands given one rank with leading 1s, batch axes
/// broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatMulLayout {
    /// The operand shapes as the product reads them: promoted and of rank [`MatMulLayout::rank`].
    pub lhs: Vec<usize>,
    pub rhs: Vec<usize>,
    /// The broadcast batch axes.
    pub batch: Vec<usize>,
    /// The ONNX shape of the result: the batch axes, then M unless A was a vector, then N unless B was.
    pub output: Vec<usize>,
}

impl MatMulLayout {
    pub fn new(a_shape: &[usize], b_shape: &[usize]) -> Result<MatMulLayout, OpError> {
        if a_shape.is_empty() || b_shape.is_empty() {
            fail!("operands must have rank 1 or more, got shapes {a_shape:?} and {b_shape:?}");
        }
        let a = if a_shape.len() == 1 { vec![1, a_shape[0]] } else { a_shape.to_vec() };
        let b = if b_shape.len() == 1 { vec![b_shape[0], 1] } else { b_shape.to_vec() };
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k_b, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k_b {
            fail!("shapes {a_shape:?} and {b_shape:?} do not multiply: inner sizes {k} and {k_b}");
        }
        let batch = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2])
            .map_err(|_| OpError::new(format!("batch axes of {a_shape:?} and {b_shape:?} do not broadcast")))?;
        let rank = batch.len() + 2;
        let pad = |shape: Vec<usize>| [vec![1; rank - shape.len()], shape].concat();
        let mut output = batch.clone();
        if a_shape.len() > 1 {
            output.push(m);
        }
        if b_shape.len() > 1 {
            output.push(n);
        }
        Ok(MatMulLayout { lhs: pad(a), rhs: pad(b), batch, output })
    }

    /// The rank both operands have in the product.
    pub fn rank(&self) -> usize {
        self.batch.len() + 2
    }

    /// A in the shape the product reads.
    pub fn lhs(&self, a: Value) -> Result<Value, OpError> {
        a.reshape(&self.lhs)
    }

    /// B in the shape the product reads.
    pub fn rhs(&self, b: Value) -> Result<Value, OpError> {
        b.reshape(&self.rhs)
    }

    /// A zero point or scale of A: one value (per tensor) or one per row (`[M]` or
    /// `[batch..., M, 1]`), shaped to broadcast against A as the product reads it.
    pub fn row_parameter(&self, param: Value, name: &str) -> Result<Value, OpError> {
        matrix_parameter(param, name, &self.lhs, self.rank() - 2, "row")
    }

    /// A zero point or scale of B: one value (per tensor) or one per column (`[N]` or
    /// `[batch..., 1, N]`), shaped to broadcast against B as the product reads it.
    pub fn column_parameter(&self, param: Value, name: &str) -> Result<Value, OpError> {
        matrix_parameter(param, name, &self.rhs, self.rank() - 1, "column")
    }

    /// The product `[batch..., M, N]` in its ONNX shape.
    pub fn output(&self, product: Value) -> Result<Vec<Value>, OpError> {
        Ok(vec![product.reshape(&self.output)?])
    }
}

/// `param` reshaped to `operand`'s rank: one value, or one per index of `axis` (one of the two
/// matrix axes), as a vector or with the operand's rank (batch axes of the operand's size or 1).
fn matrix_parameter(param: Value, name: &str, operand: &[usize], axis: usize, per: &str) -> Result<Value, OpError> {
    let rank = operand.len();
    if param.element_count() == 1 {
        return param.reshape(&vec![1; rank]);
    }
    let (shape, size) = (param.shape().to_vec(), operand[axis]);
    let target = if shape == [size] {
        let mut target = vec![1; rank];
        target[axis] = size;
        target
    } else if shape.len() <= rank {
        let padded = [vec![1; rank - shape.len()], shape.clone()].concat();
        let fits = padded.iter().enumerate().all(|(i, &dim)| dim == 1 || (dim == operand[i] && (i < rank - 2 || i == axis)));
        if !fits {
            fail!("{name} {shape:?} must hold one value or one per {per} of {operand:?}");
        }
        padded
    } else {
        fail!("{name} {shape:?} must hold one value or one per {per} of {operand:?}");
    };
    param.reshape(&target)
}

#[cfg(test)]
mod tests {
    use crate::ops::test_support::*;

    /// Reference batched matmul in f64 over row-major buffers: `[batch, m, k] x [batch, k, n]`.
    fn reference(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; batch * m * n];
        for t in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    out[(t * m + i) * n + j] =
                        (0..k).map(|p| f64::from(a[(t * m + i) * k + p]) * f64::from(b[(t * k + p) * n + j])).sum();
                }
            }
        }
        out
    }

    fn ramp(count: usize, scale: f32) -> Vec<f32> {
        (0..count).map(|i| (i as f32 - count as f32 / 2.0) * scale).collect()
    }

    #[test]
    fn batched_operands_match_a_reference_product() {
        let (a, b) = (ramp(2 * 3 * 4, 0.25), ramp(2 * 4 * 5, 0.5));
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3, 4], &a), f32_value(&[2, 4, 5], &b)]);
        assert_close(&out[0], &[2, 3, 5], &reference(&a, &b, 2, 3, 4, 5));
        // Several threads run the batch entries of a large enough product in parallel.
        let (a, b) = (ramp(2 * 96 * 128, 0.01), ramp(2 * 128 * 96, 0.01));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let out = pool.install(|| run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 96, 128], &a), f32_value(&[2, 128, 96], &b)]));
        assert_close(&out[0], &[2, 96, 96], &reference(&a, &b, 2, 96, 128, 96));
    }

    #[test]
    fn strided_views_are_read_in_place_like_their_contiguous_copies() {
        // A = swap(1, 2) of [2, 4, 3] and B = swap(1, 2) of [2, 5, 4]: attention's transposed
        // operands, which the kernel reads through their strides.
        let (a_stored, b_stored) = (ramp(2 * 4 * 3, 0.25), ramp(2 * 5 * 4, 0.5));
        let swap = |values: &[f32], dims: [usize; 3]| {
            let [batch, rows, cols] = dims;
            (0..batch * rows * cols).map(|i| values[(i / (rows * cols)) * rows * cols + (i % rows) * cols + (i / rows) % cols]).collect::<Vec<_>>()
        };
        let (a, b) = (swap(&a_stored, [2, 4, 3]), swap(&b_stored, [2, 5, 4]));
        let view = |values: &[f32], dims: &[i64]| {
            let stored = f32_value(dims, values).float::<3>().unwrap().swap_dims(1, 2);
            crate::value::Value::from_float(stored, whittle_ir::DataType::F32).unwrap()
        };
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![view(&a_stored, &[2, 4, 3]), view(&b_stored, &[2, 5, 4])]);
        assert_close(&out[0], &[2, 3, 5], &reference(&a, &b, 2, 3, 4, 5));
    }

    #[test]
    fn matrix_on_the_right_broadcasts_over_the_batch() {
        // [2, 3, 4] x [4, 5]: the weight matrix is shared by both batch entries.
        let (a, b) = (ramp(24, 0.25), ramp(20, 0.5));
        let b_twice: Vec<f32> = b.iter().chain(&b).copied().collect();
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3, 4], &a), f32_value(&[4, 5], &b)]);
        assert_close(&out[0], &[2, 3, 5], &reference(&a, &b_twice, 2, 3, 4, 5));
    }

    #[test]
    fn vectors_are_promoted_and_squeezed() {
        // [3] x [3, 2] -> [2]; [2, 3] x [3] -> [2]; [3] x [3] -> [].
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[3], &[1.0, 1.0, 1.0]), f32_value(&[3, 2], &m)]);
        assert_close(&out[0], &[2], &[9.0, 12.0]);
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3], &m), f32_value(&[3], &[1.0, 0.0, -1.0])]);
        assert_close(&out[0], &[2], &[-2.0, -2.0]);
        let out = run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[3], &[1.0, 2.0, 3.0]), f32_value(&[3], &[4.0, 5.0, 6.0])]);
        assert_close(&out[0], &[], &[32.0]);
    }

    #[test]
    fn mismatched_inner_sizes_are_an_error() {
        let err = try_run(&node("MatMul", 2, 1, vec![]), 13, vec![f32_value(&[2, 3], &[0.0; 6]), f32_value(&[2, 3], &[0.0; 6])]);
        assert_eq!(err.unwrap_err(), "shapes [2, 3] and [2, 3] do not multiply: inner sizes 3 and 2");
    }
}
