//! f32 Add, Sub, Mul and Div for the broadcasts exported models use: equal shapes, a scalar, and an
//! operand that repeats along the leading axes (a bias `[n]` against `[.., n]`, positions `[16, 64]`
//! against `[batch, 16, 64]`). The result is written into the larger operand's buffer when nothing
//! else holds it (its last use), else into one new buffer.
//!
//! On `transformer_tiny` at batch 1 an Add of 1024 elements took 1.4 us through burn (alignment
//! reshapes, dispatch, a fresh buffer), more than the arithmetic; every other broadcast (`[n, 1]`
//! against `[n, m]`, both operands stretched) stays on burn.

use burn_flex::FlexTensor;

use crate::broadcast::{broadcast_shape, Arithmetic};
use crate::kernels::{self, flex_f32, Contiguous};
use crate::ops::OpError;
use crate::value::Value;

/// `a op b` on the kernel, or the operands back when the kernel does not apply (not flex f32
/// values, or a broadcast other than the ones of the file's documentation), boxed so that the
/// common answer stays small.
pub(crate) fn arithmetic(op: Arithmetic, a: Value, b: Value) -> Result<Result<Value, OpError>, Box<(Value, Value)>> {
    let Ok(shape) = broadcast_shape(a.shape(), b.shape()) else { return Err(Box::new((a, b))) };
    // Which operand has the result's shape, and how often the other one repeats in it.
    let (big_is_a, period) = if a.shape() == shape.as_slice() && repeats_in(b.shape(), &shape) {
        (true, b.element_count())
    } else if b.shape() == shape.as_slice() && repeats_in(a.shape(), &shape) {
        (false, a.element_count())
    } else {
        return Err(Box::new((a, b)));
    };
    if shape.contains(&0) {
        return Err(Box::new((a, b)));
    }
    let (Some(a_tensor), Some(b_tensor)) = (flex_f32(&a), flex_f32(&b)) else { return Err(Box::new((a, b))) };
    drop((a, b));
    let (big, small) = if big_is_a { (a_tensor, b_tensor) } else { (b_tensor, a_tensor) };
    let small = kernels::contiguous(&small);
    // Sub and Div are not symmetric: with the small operand on the left, the arguments swap back.
    let result = match (op, big_is_a) {
        (Arithmetic::Add, _) => apply(big, &small, period, &shape, |x, y| x + y),
        (Arithmetic::Mul, _) => apply(big, &small, period, &shape, |x, y| x * y),
        (Arithmetic::Sub, true) => apply(big, &small, period, &shape, |x, y| x - y),
        (Arithmetic::Sub, false) => apply(big, &small, period, &shape, |x, y| y - x),
        (Arithmetic::Div, true) => apply(big, &small, period, &shape, |x, y| x / y),
        (Arithmetic::Div, false) => apply(big, &small, period, &shape, |x, y| y / x),
    };
    Ok(result)
}

/// Whether an operand of `shape` repeats along the leading axes of `target`: without its leading
/// 1s, it is the end of `target` (a scalar, `[n]` against `[.., n]`, `[1, s, n]` against
/// `[b, s, n]`).
fn repeats_in(shape: &[usize], target: &[usize]) -> bool {
    let first = shape.iter().position(|&size| size != 1).unwrap_or(shape.len());
    let core = &shape[first..];
    core.len() <= target.len() && target[target.len() - core.len()..] == *core
}

/// `f(big[i], small[i % period])` for every element of `big`, in `big`'s buffer when nothing else
/// holds it.
fn apply(
    big: FlexTensor,
    small: &Contiguous,
    period: usize,
    shape: &[usize],
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> Result<Value, OpError> {
    kernels::map_tensor_in_place(big, shape, |values| combine_in_place(values, small, period, f))
}

/// `values[i] = f(values[i], small[i % period])`, compiled for the widest vectors the CPU has
/// (pulp's dispatch, as `activation::map_interleaved`) instead of the baseline's 4 SSE2 lanes.
/// transformer_tiny at batch 64, one thread: its 4 Div steps 0.127 -> 0.118 ms, 7 Adds 0.067 ->
/// 0.062, 4 Muls 0.052 -> 0.049. Division stays the costly one (its `x / sqrt 2` of 131k values is
/// five times an Add of as many): `vdivps` does about as many values a cycle at every width.
/// IEEE operations give the same results at every width.
fn combine_in_place(values: &mut [f32], small: &[f32], period: usize, f: impl Fn(f32, f32) -> f32 + Copy) {
    struct Combine<'a, F>(&'a mut [f32], &'a [f32], usize, F);
    impl<F: Fn(f32, f32) -> f32 + Copy> pulp::WithSimd for Combine<'_, F> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let Combine(values, small, period, f) = self;
            combine(values, small, period, f);
        }
    }
    pulp::Arch::new().dispatch(Combine(values, small, period, f));
}

#[inline(always)]
fn combine(values: &mut [f32], small: &[f32], period: usize, f: impl Fn(f32, f32) -> f32) {
    match (period, small) {
        (_, []) => {}
        (1, &[y]) => values.iter_mut().for_each(|x| *x = f(*x, y)),
        _ => {
            for chunk in values.chunks_exact_mut(period) {
                for (x, &y) in chunk.iter_mut().zip(small) {
                    *x = f(*x, y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_support::f32_value;

    fn ramp(count: usize, step: f32) -> Vec<f32> {
        (0..count).map(|i| (i as f32 - 3.0) * step).collect()
    }

    /// `a op b` in f64 with numpy broadcasting of two shapes of the kernel's kinds.
    fn reference(op: Arithmetic, a: (&[usize], &[f32]), b: (&[usize], &[f32])) -> Vec<f64> {
        let shape = broadcast_shape(a.0, b.0).unwrap();
        let count: usize = shape.iter().product();
        let at = |(dims, values): (&[usize], &[f32]), index: usize| {
            // Index into an operand that either has the full shape or repeats along leading axes.
            let n = dims.iter().product::<usize>().max(1);
            f64::from(values[index % n])
        };
        (0..count)
            .map(|i| {
                let (x, y) = (at(a, i), at(b, i));
                match op {
                    Arithmetic::Add => x + y,
                    Arithmetic::Sub => x - y,
                    Arithmetic::Mul => x * y,
                    Arithmetic::Div => x / y,
                }
            })
            .collect()
    }

    #[test]
    fn common_broadcasts_match_f64_in_both_operand_orders() {
        let shapes: [(&[usize], &[usize]); 6] = [
            (&[2, 3, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[]),
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 4]),
            (&[2, 3, 4], &[1, 1, 4]),
            (&[5], &[1]),
        ];
        for (big, small) in shapes {
            for op in [Arithmetic::Add, Arithmetic::Sub, Arithmetic::Mul, Arithmetic::Div] {
                for swapped in [false, true] {
                    let big_values = ramp(big.iter().product(), 0.5);
                    let small_values: Vec<f32> = ramp(small.iter().product(), 0.25).iter().map(|v| v + 7.0).collect();
                    let dims = |shape: &[usize]| shape.iter().map(|&s| s as i64).collect::<Vec<_>>();
                    let (a, b) = (f32_value(&dims(big), &big_values), f32_value(&dims(small), &small_values));
                    let (a, b, expected) = if swapped {
                        (b, a, reference(op, (small, &small_values), (big, &big_values)))
                    } else {
                        (a, b, reference(op, (big, &big_values), (small, &small_values)))
                    };
                    let out = arithmetic(op, a, b).ok().unwrap().unwrap();
                    assert_eq!(out.shape(), big, "{op:?} {big:?} {small:?}");
                    let got = out.to_f32_vec().unwrap();
                    for (g, e) in got.iter().zip(&expected) {
                        // Division by the big operand's 0 gives inf on both sides.
                        let close = f64::from(*g) == *e || (f64::from(*g) - e).abs() <= 1e-6 * e.abs().max(1.0);
                        assert!(close, "{op:?} {swapped}: {g} vs {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_shared_operand_is_not_overwritten() {
        let a = f32_value(&[3], &[1.0, 2.0, 3.0]);
        let kept = a.clone();
        let out = arithmetic(Arithmetic::Add, a, f32_value(&[], &[1.0])).ok().unwrap().unwrap();
        assert_eq!(out.to_f32_vec().unwrap(), vec![2.0, 3.0, 4.0]);
        assert_eq!(kept.to_f32_vec().unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn other_broadcasts_and_dtypes_are_left_to_burn() {
        // [2, 1] against [2, 3] stretches the inner axis; int64 is not the kernel's.
        assert!(arithmetic(Arithmetic::Add, f32_value(&[2, 3], &[0.0; 6]), f32_value(&[2, 1], &[1.0, 2.0])).is_err());
        let int = crate::ops::test_support::i64_value(&[2], &[1, 2]);
        assert!(arithmetic(Arithmetic::Add, int.clone(), int).is_err());
        // Empty tensors too (burn makes their empty result).
        assert!(arithmetic(Arithmetic::Mul, f32_value(&[0, 3], &[]), f32_value(&[3], &[1.0, 2.0, 3.0])).is_err());
    }

    #[test]
    fn scalars_stay_scalars() {
        let out = arithmetic(Arithmetic::Div, f32_value(&[], &[3.0]), f32_value(&[], &[2.0])).ok().unwrap().unwrap();
        assert_eq!(out.shape(), &[] as &[usize]);
        assert_eq!(out.to_f32_vec().unwrap(), vec![1.5]);
    }
}
