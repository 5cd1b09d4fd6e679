//! Gemm: `alpha * A' * B' + beta * C` on matrices (<https://onnx.ai/onnx/operators/onnx__Gemm.html>).
//!
//! Opset 7 replaced the `broadcast` attribute by unidirectional broadcasting of C; 11 made C optional;
//! 13 added types.
//!
//! On burn-flex, f32 products run on whittle's GEMM kernel ([`crate::kernels::gemm`]), with a
//! constant B packed once at plan time and C added as a bias in the kernel; other devices and
//! dtypes stay on burn.

use std::ops::RangeInclusive;

use rten_gemm::{BiasVector, GemmInputA, GemmInputB};

use crate::kernels::gemm::{self as kernel, ConstantRhs};
use crate::kernels::{self, activate_burn, Activation};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = alpha * A' * B' + beta * C`, where `X'` is `X` transposed when the flag says so, then the
/// activation fused into it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    /// B' packed for the f32 kernel, when B is a constant f32 matrix.
    pub(crate) packed: Option<ConstantRhs>,
    /// An activation the planner fused into this node (see `crate::fuse`).
    pub(crate) activation: Option<Activation>,
}

impl Operator for Gemm {
    const OP_TYPE: &'static str = "Gemm";
    const OPSETS: RangeInclusive<i64> = 7..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["alpha", "beta", "transA", "transB"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        let trans_b = node.flag("transB", false)?;
        Ok(Gemm {
            alpha: node.float("alpha", 1.0)?,
            beta: node.float("beta", 1.0)?,
            trans_a: node.flag("transA", false)?,
            trans_b,
            packed: node.constant_input(1).and_then(|b| ConstantRhs::pack(b, trans_b)),
            activation: None,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (a, b, c) = (inputs.take(0)?, inputs.take(1)?, inputs.take_optional(2));
        let dtype = a.dtype();
        if a.rank() != 2 || b.rank() != 2 {
            fail!("A and B must be matrices, got shapes {:?} and {:?}", a.shape(), b.shape());
        }
        if b.dtype() != dtype {
            fail!("A is {dtype} but B is {}", b.dtype());
        }
        let flip = |shape: &[usize], transposed: bool| if transposed { [shape[1], shape[0]] } else { [shape[0], shape[1]] };
        let ([m, k], [k_b, n]) = (flip(a.shape(), self.trans_a), flip(b.shape(), self.trans_b));
        if k != k_b {
            fail!("A' is {m}x{k} but B' is {k_b}x{n}");
        }
        let c = c.filter(|_| self.beta != 0.0);
        if let Some(c) = &c {
            if c.dtype() != dtype {
                fail!("A is {dtype} but C is {}", c.dtype());
            }
            // C broadcasts one way only: to [M, N], never the other way round.
            let fits = c.rank() <= 2
                && c.shape().iter().rev().zip([n, m]).all(|(&size, target)| size == target || size == 1);
            if !fits {
                fail!("C of shape {:?} does not broadcast to [{m}, {n}]", c.shape());
            }
        }
        if let Some(y) = self.run_kernel(&a, &b, c.as_ref(), [m, k, n])? {
            return Ok(vec![y]);
        }
        let mut a = a.float::<2>()?;
        let mut b = b.float::<2>()?;
        // Transposes are strided views; the matmul reads them in place.
        if self.trans_a {
            a = a.transpose();
        }
        if self.trans_b {
            b = b.transpose();
        }
        let mut y = a.matmul(b);
        if self.alpha != 1.0 {
            y = y.mul_scalar(self.alpha);
        }
        if let Some(c) = c {
            let mut c = c.unsqueeze_to(2)?.float::<2>()?;
            if self.beta != 1.0 {
                c = c.mul_scalar(self.beta);
            }
            y = y + c;
        }
        Ok(vec![activate_burn(Value::from_float(y, dtype)?, self.activation)?])
    }
}

impl Gemm {
    /// Runs a checked product `[m, k] x [k, n]` on whittle's f32 kernel; `None` when it does not
    /// apply (not flex, not f32) and burn runs it instead.
    fn run_kernel(&self, a: &Value, b: &Value, c: Option<&Value>, [m, k, n]: [usize; 3]) -> Result<Option<Value>, OpError> {
        let Some(a_tensor) = kernels::flex_f32(a) else { return Ok(None) };
        let packed = self.packed.as_ref().filter(|packed| [packed.k, packed.n] == [k, n]);
        let b_tensor = match packed {
            Some(_) => None,
            None => match kernels::flex_f32(b) {
                Some(tensor) => Some(tensor),
                None => return Ok(None),
            },
        };
        let c_tensor = match c.map(kernels::flex_f32) {
            Some(None) => return Ok(None),
            c => c.flatten(),
        };
        let (a_values, b_values) = (kernels::contiguous(&a_tensor), b_tensor.as_ref().map(kernels::contiguous));
        let a_matrix = GemmInputA::Unpacked(kernel::matrix(&a_values, m, k, self.trans_a));
        let b_matrix = match (packed, &b_values) {
            (Some(packed), _) => GemmInputB::Packed(packed.packed.get()),
            (None, Some(values)) => GemmInputB::Unpacked(kernel::matrix(values, k, n, self.trans_b)),
            (None, None) => return Ok(None),
        };
        let mut out = vec![0.0f32; m * n];
        let c_values = c_tensor.as_ref().map(kernels::contiguous);
        // C `[N]` or `[1, N]` with beta 1 (torch's Linear) is a row bias; any other C is broadcast
        // into the output first and scaled there by the kernel's beta.
        let (beta, bias) = match (c, &c_values) {
            (Some(c), Some(values)) if self.beta == 1.0 && c.element_count() == n && c.shape().last() == Some(&n) => {
                (0.0, Some(BiasVector::Row(&values[..])))
            }
            (Some(c), Some(values)) => {
                let shape = c.shape();
                let (rows, cols) = match shape {
                    [] => (1, 1),
                    [cols] => (1, *cols),
                    [rows, cols, ..] => (*rows, *cols),
                };
                for (i, row) in out.chunks_mut(n.max(1)).enumerate() {
                    for (j, element) in row.iter_mut().enumerate() {
                        *element = values[(if rows == 1 { 0 } else { i }) * cols + if cols == 1 { 0 } else { j }];
                    }
                }
                (self.beta, None)
            }
            _ => (0.0, None),
        };
        kernel::gemm(&mut out, a_matrix, b_matrix, self.alpha, beta, bias, self.activation)?;
        Ok(Some(kernels::output(out, &[m, n])?))
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn linear_layer_with_transposed_weights() {
        // torch's Linear exports as Gemm(x, W, b, transB=1): y = x W^T + b.
        // x = [[1, 2]], W = [[1, 0], [0, 1], [1, 1]], b = [0.5, -0.5, 0]: y = [1.5, 1.5, 3].
        let gemm = node("Gemm", 3, 1, vec![("transB", AttrValue::Int(1))]);
        let out = run(
            &gemm,
            13,
            vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), f32_value(&[3], &[0.5, -0.5, 0.0])],
        );
        assert_close(&out[0], &[1, 3], &[1.5, 1.5, 3.0]);
    }

    #[test]
    fn alpha_beta_and_transposed_a() {
        // A' = [[1, 3], [2, 4]] (A = [[1, 2], [3, 4]] transposed), B = I, C = [[1], [2]] broadcast over columns.
        // Y = 2 * A' + 0.5 * C = [[2.5, 6.5], [5, 9]].
        let gemm = node("Gemm", 3, 1, vec![("transA", AttrValue::Int(1)), ("alpha", AttrValue::Float(2.0)), ("beta", AttrValue::Float(0.5))]);
        let out = run(
            &gemm,
            13,
            vec![f32_value(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), f32_value(&[2, 2], &[1.0, 0.0, 0.0, 1.0]), f32_value(&[2, 1], &[1.0, 2.0])],
        );
        assert_close(&out[0], &[2, 2], &[2.5, 6.5, 5.0, 9.0]);
    }

    #[test]
    fn inner_dimension_mismatch_is_an_error() {
        let err = try_run(&node("Gemm", 2, 1, vec![]), 13, vec![f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3, 1], &[1.0, 2.0, 3.0])]);
        assert_eq!(err.unwrap_err(), "A' is 1x2 but B' is 3x1");
    }

    #[test]
    fn c_must_broadcast_to_the_output() {
        let err = try_run(
            &node("Gemm", 3, 1, vec![]),
            13,
            vec![f32_value(&[1, 1], &[1.0]), f32_value(&[1, 2], &[1.0, 2.0]), f32_value(&[3], &[1.0, 2.0, 3.0])],
        );
        assert_eq!(err.unwrap_err(), "C of shape [3] does not broadcast to [1, 2]");
    }

    #[test]
    fn flags_must_be_zero_or_one() {
        let err = parse(&node("Gemm", 2, 1, vec![("transB", AttrValue::Int(2))]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (Gemm): attribute 'transB': must be 0 or 1, found 2");
    }
}
