//! Scales and zero points from a real range, and ONNX's quantize / dequantize arithmetic.

use serde::Serialize;

use crate::QuantError;

/// An 8-bit integer type that ONNX's QuantizeLinear produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantType {
    U8,
    I8,
}

impl QuantType {
    /// The integer range used for a range of reals. Symmetric int8 leaves out -128 so that zero is
    /// exactly in the middle and `-x` quantizes to `-q(x)` (ONNX Runtime's quantizer does the same).
    pub fn bounds(self, symmetric: bool) -> (i32, i32) {
        match (self, symmetric) {
            (QuantType::U8, _) => (0, 255),
            (QuantType::I8, false) => (-128, 127),
            (QuantType::I8, true) => (-127, 127),
        }
    }

    /// The saturation range of the type itself (what QuantizeLinear clamps to).
    pub fn limits(self) -> (i32, i32) {
        match self {
            QuantType::U8 => (0, 255),
            QuantType::I8 => (-128, 127),
        }
    }

    /// The name used in reports and flags (`u8`, `i8`).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::U8 => "u8",
            QuantType::I8 => "i8",
        }
    }

    /// One quantized value as the byte ONNX stores (two's complement for i8).
    pub fn to_byte(self, q: i32) -> u8 {
        let (lo, hi) = self.limits();
        let q = q.clamp(lo, hi);
        match self {
            QuantType::U8 => q as u8,
            QuantType::I8 => (q as i8) as u8,
        }
    }
}

/// A scale and zero point: `real = (q - zero_point) * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
    pub qtype: QuantType,
}

impl QParams {
    /// The parameters that map `[min, max]` onto `qtype`.
    ///
    /// The range is first widened to contain 0, because zero padding and ReLU's zeros must be exact.
    /// Symmetric: zero point in the middle of the type (0 for i8, 128 for u8), scale from the larger
    /// of |min| and |max|. Asymmetric: the whole integer range spans [min, max]. A range of only
    /// zeros gets scale 1, so that nothing divides by zero downstream.
    pub fn from_range(min: f32, max: f32, qtype: QuantType, symmetric: bool) -> Result<QParams, QuantError> {
        if !min.is_finite() || !max.is_finite() || min > max {
            return Err(QuantError::BadRange { min, max });
        }
        let (qmin, qmax) = qtype.bounds(symmetric);
        let (mut lo, mut hi) = (f64::from(min.min(0.0)), f64::from(max.max(0.0)));
        if symmetric {
            let bound = lo.abs().max(hi.abs());
            (lo, hi) = (-bound, bound);
        }
        if hi == lo {
            let zero_point = if symmetric { (qmin + qmax + 1) / 2 } else { qmin };
            return Ok(QParams { scale: 1.0, zero_point, qtype });
        }
        let scale = (hi - lo) / f64::from(qmax - qmin);
        let zero_point = if symmetric {
            // (qmin + qmax) / 2 rounded half to even: 0 for i8 (-127..127), 128 for u8 (127.5).
            (f64::from(qmin + qmax) / 2.0).round_ties_even() as i32
        } else {
            (f64::from(qmin) - lo / scale).round_ties_even().clamp(f64::from(qmin), f64::from(qmax)) as i32
        };
        Ok(QParams { scale: scale as f32, zero_point, qtype })
    }
}

/// ONNX QuantizeLinear of one value: `saturate(round_half_even(x / scale) + zero_point)`, the
/// division in f32 as the spec's reference does.
pub fn quantize_value(x: f32, params: &QParams) -> i32 {
    let (lo, hi) = params.qtype.limits();
    let q = (x / params.scale).round_ties_even();
    // ONNX leaves NaN undefined; it maps to the zero point (real 0) here. The sum is clamped in f64
    // so that huge values saturate instead of wrapping.
    let q = if q.is_nan() { 0.0 } else { f64::from(q) };
    (q + f64::from(params.zero_point)).clamp(f64::from(lo), f64::from(hi)) as i32
}

/// [`quantize_value`] over a slice.
pub fn quantize(values: &[f32], params: &QParams) -> Vec<i32> {
    values.iter().map(|&x| quantize_value(x, params)).collect()
}

/// ONNX DequantizeLinear: `(q - zero_point) * scale`.
pub fn dequantize(values: &[i32], params: &QParams) -> Vec<f32> {
    values.iter().map(|&q| (q - params.zero_point) as f32 * params.scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_u8_spans_the_range_with_zero_exact() {
        // [-1, 3] over 0..255: scale 4/255, zero point round(1 / (4/255)) = round(63.75) = 64.
        let p = QParams::from_range(-1.0, 3.0, QuantType::U8, false).unwrap();
        assert_eq!(p.scale, (4.0f64 / 255.0) as f32);
        assert_eq!(p.zero_point, 64);
        assert_eq!(quantize_value(0.0, &p), 64);
        assert_eq!(quantize_value(3.0, &p), 255);
        assert_eq!(quantize_value(-1.0, &p), 0);
        assert_eq!(quantize_value(100.0, &p), 255, "saturates");
        // A positive-only range (after ReLU) is widened to contain 0.
        let relu = QParams::from_range(0.5, 2.0, QuantType::U8, false).unwrap();
        assert_eq!((relu.scale, relu.zero_point), ((2.0f64 / 255.0) as f32, 0));
    }

    #[test]
    fn symmetric_int8_leaves_out_minus_128() {
        let p = QParams::from_range(-0.5, 2.54, QuantType::I8, true).unwrap();
        assert_eq!(p.zero_point, 0);
        assert_eq!(p.scale, (2.54f64 / 127.0) as f32);
        assert_eq!(quantize_value(-2.54, &p), -127);
        assert_eq!(quantize_value(-10.0, &p), -128, "QuantizeLinear itself still saturates at the type's limit");
        let u = QParams::from_range(-1.0, 1.0, QuantType::U8, true).unwrap();
        assert_eq!((u.zero_point, u.scale), (128, (2.0f64 / 255.0) as f32));
    }

    #[test]
    fn rounding_is_half_to_even_like_quantize_linear() {
        let p = QParams { scale: 1.0, zero_point: 0, qtype: QuantType::I8 };
        assert_eq!(quantize(&[0.5, 1.5, 2.5, -0.5, -1.5], &p), vec![0, 2, 2, 0, -2]);
        assert_eq!(dequantize(&[3, -2], &QParams { scale: 0.5, zero_point: 1, qtype: QuantType::I8 }), vec![1.0, -1.5]);
    }

    #[test]
    fn degenerate_and_bad_ranges() {
        let zero = QParams::from_range(0.0, 0.0, QuantType::U8, false).unwrap();
        assert_eq!((zero.scale, zero.zero_point), (1.0, 0));
        assert_eq!(QParams::from_range(0.0, 0.0, QuantType::I8, true).unwrap().zero_point, 0);
        assert!(matches!(QParams::from_range(1.0, -1.0, QuantType::U8, false), Err(QuantError::BadRange { .. })));
        assert!(QParams::from_range(f32::NAN, 1.0, QuantType::U8, false).is_err());
    }

    #[test]
    fn bytes_are_twos_complement() {
        assert_eq!(QuantType::I8.to_byte(-1), 0xff);
        assert_eq!(QuantType::I8.to_byte(-300), 0x80);
        assert_eq!(QuantType::U8.to_byte(300), 0xff);
    }
}
