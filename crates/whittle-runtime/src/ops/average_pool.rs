//! AveragePool: the mean over sliding windows (<https://onnx.ai/onnx/operators/onnx__AveragePool.html>).
//!
//! Opset 7 added `count_include_pad`, 10 `ceil_mode`, 11 the current padding rules, 19
//! `dilations`, 22 types; one definition covers them all (an attribute given before its opset is
//! refused). Strides default to 1. The divisor counts the window's taps on the input, or
//! with `count_include_pad` also those on the pads (never those a ceil-mode window hangs past the
//! pads). 1-, 2- and 3-D pooling, shared with MaxPool in `spatial.rs`.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::spatial::{pool, refuse_newer_attributes, Pooling, Window};
use crate::value::{ElementKind, Value};

/// `Y = mean over each window of X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AveragePool {
    pub window: Window,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl Operator for AveragePool {
    const OP_TYPE: &'static str = "AveragePool";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] =
        &["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        refuse_newer_attributes(node, &[("count_include_pad", 7), ("ceil_mode", 10), ("dilations", 19)])?;
        let window = Window::parse(node)?;
        if window.kernel.is_none() {
            return Err(OpError::attribute("kernel_shape", "is required"));
        }
        Ok(AveragePool {
            window,
            ceil_mode: node.flag("ceil_mode", false)?,
            count_include_pad: node.flag("count_include_pad", false)?,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        if x.kind() != ElementKind::Float {
            fail!("AveragePool is not defined on {} (it takes floats)", x.dtype());
        }
        let shape = x.shape().to_vec();
        if !(3..=5).contains(&shape.len()) {
            fail!("X {shape:?} must have 1 to 3 spatial axes");
        }
        let window = self.window.resolve(&shape[2..], self.window.kernel.as_deref().unwrap_or_default())?;
        Ok(vec![pool(x, &window, self.ceil_mode, Pooling::Average { include_pad: self.count_include_pad })?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn ints(values: &[i64]) -> AttrValue {
        AttrValue::Ints(values.to_vec())
    }

    fn ramp(count: usize) -> Vec<f32> {
        (1..=count).map(|i| i as f32).collect()
    }

    #[test]
    fn two_by_two_stride_two() {
        // 4x4 ramp 1..16: block means (1+2+5+6)/4 = 3.5, 5.5, 11.5, 13.5.
        let pool = node("AveragePool", 1, 1, vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]);
        let out = run(&pool, 19, vec![f32_value(&[1, 1, 4, 4], &ramp(16))]);
        assert_close(&out[0], &[1, 1, 2, 2], &[3.5, 5.5, 11.5, 13.5]);
    }

    #[test]
    fn padding_is_excluded_or_included_from_the_divisor() {
        // x = [1, 2, 3], kernel 2, pads (1, 1): windows [p, 1], [1, 2], [2, 3], [3, p].
        let x = f32_value(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let excluded = node("AveragePool", 1, 1, vec![("kernel_shape", ints(&[2])), ("pads", ints(&[1, 1]))]);
        assert_close(&run(&excluded, 19, vec![x.clone()])[0], &[1, 1, 4], &[1.0, 1.5, 2.5, 3.0]);
        let included = node(
            "AveragePool",
            1,
            1,
            vec![("kernel_shape", ints(&[2])), ("pads", ints(&[1, 1])), ("count_include_pad", AttrValue::Int(1))],
        );
        assert_close(&run(&included, 19, vec![x])[0], &[1, 1, 4], &[0.5, 1.5, 2.5, 1.5]);
    }

    #[test]
    fn ceil_mode_partial_window_never_counts_the_overhang() {
        // x = [1, 2, 3, 4, 5], kernel 2, stride 2, ceil: windows [1, 2], [3, 4], [5] -> 1.5, 3.5, 5,
        // even with count_include_pad (the overhang past the input is not a pad).
        let pool = node(
            "AveragePool",
            1,
            1,
            vec![
                ("kernel_shape", ints(&[2])),
                ("strides", ints(&[2])),
                ("ceil_mode", AttrValue::Int(1)),
                ("count_include_pad", AttrValue::Int(1)),
            ],
        );
        let out = run(&pool, 19, vec![f32_value(&[1, 1, 5], &ramp(5))]);
        assert_close(&out[0], &[1, 1, 3], &[1.5, 3.5, 5.0]);
    }

    #[test]
    fn dilated_three_dimensional() {
        // 3x3x3 ramp, kernel 2 dilation 2 on every axis: the one window takes the 8 corners,
        // whose mean is the centre value 14.
        let pool = node("AveragePool", 1, 1, vec![("kernel_shape", ints(&[2, 2, 2])), ("dilations", ints(&[2, 2, 2]))]);
        let out = run(&pool, 19, vec![f32_value(&[1, 1, 3, 3, 3], &ramp(27))]);
        assert_close(&out[0], &[1, 1, 1, 1, 1], &[14.0]);
    }

    #[test]
    fn three_dimensional_padded_excludes_pads_per_axis() {
        // 2x2x2 ramp 1..8, kernel 2, pads 1 at the start of every axis, stride 2: the first window
        // holds only element 1, the others average growing corners; check the full 1x1x1 corner
        // and the window over everything: output [1, 1, 2, 2, 2] at [0,0,0] = 1, [1,1,1] = 8.
        let pool = node(
            "AveragePool",
            1,
            1,
            vec![("kernel_shape", ints(&[2, 2, 2])), ("strides", ints(&[1, 1, 1])), ("pads", ints(&[1, 1, 1, 0, 0, 0]))],
        );
        let out = run(&pool, 19, vec![f32_value(&[1, 1, 2, 2, 2], &ramp(8))]);
        // Window at (d, h, w) covers input indices {d-1, d} x {h-1, h} x {w-1, w} clipped to 0..2.
        let mut expected = Vec::new();
        for d in 0..2usize {
            for h in 0..2usize {
                for w in 0..2usize {
                    let mut values = Vec::new();
                    for a in d.saturating_sub(1)..=d {
                        for b in h.saturating_sub(1)..=h {
                            for c in w.saturating_sub(1)..=w {
                                values.push((a * 4 + b * 2 + c + 1) as f64);
                            }
                        }
                    }
                    expected.push(values.iter().sum::<f64>() / values.len() as f64);
                }
            }
        }
        assert_close(&out[0], &[1, 1, 2, 2, 2], &expected);
    }

    #[test]
    fn errors() {
        let dilated = node("AveragePool", 1, 1, vec![("kernel_shape", ints(&[2])), ("dilations", ints(&[2]))]);
        let err = parse(&dilated, 18, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (AveragePool): attribute 'dilations': exists from opset 19 on");
        let err = parse(&node("AveragePool", 1, 1, vec![]), 19, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (AveragePool): attribute 'kernel_shape': is required");
        let pool = node("AveragePool", 1, 1, vec![("kernel_shape", ints(&[2, 2]))]);
        let err = try_run(&pool, 19, vec![i64_value(&[1, 1, 2, 2], &[1, 2, 3, 4])]).unwrap_err();
        assert_eq!(err, "AveragePool is not defined on i64 (it takes floats)");
        let err = try_run(&pool, 19, vec![f32_value(&[1, 1, 2], &[1.0, 2.0])]).unwrap_err();
        assert_eq!(err, "kernel [2, 2] has 2 sizes for 1 spatial axes");
        let err = try_run(&pool, 19, vec![f32_value(&[1, 0, 2, 2], &[])]).unwrap_err();
        assert_eq!(err, "X [1, 0, 2, 2] has no samples or channels to pool");
    }
}
