//! Weights to 8-bit integers per tensor or per output channel, and biases to int32.

use serde::Serialize;

use crate::params::quantize_value;
use crate::{QParams, QuantError, QuantType};

/// One scale for the whole tensor, or one per index of `axis` (the output channel: axis 0 of a
/// Conv weight `[M, C/g, kH, kW]`, axis 1 of a MatMul weight `[K, N]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "granularity")]
pub enum Granularity {
    PerTensor,
    PerChannel { axis: usize },
}

/// A quantized weight: one byte per element as ONNX stores it, and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    pub qtype: QuantType,
    pub bytes: Vec<u8>,
    /// One per channel (per-channel), or one.
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
    pub granularity: Granularity,
}

/// Quantizes `values` of `shape` with a range taken from the weights themselves (min/max per
/// channel: weights are known, so nothing is clipped).
pub fn quantize_weights(
    values: &[f32],
    shape: &[usize],
    granularity: Granularity,
    qtype: QuantType,
    symmetric: bool,
) -> Result<QuantizedWeights, QuantError> {
    if shape.iter().product::<usize>() != values.len() {
        return Err(QuantError::ShapeMismatch { values: values.len(), shape: shape.to_vec() });
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { index });
    }
    let (channels, inner) = match granularity {
        Granularity::PerTensor => (1, values.len().max(1)),
        Granularity::PerChannel { axis } => {
            let Some(&channels) = shape.get(axis) else {
                return Err(QuantError::BadAxis { axis, shape: shape.to_vec() });
            };
            (channels, shape[axis + 1..].iter().product())
        }
    };
    let channel_of = |index: usize| (index / inner) % channels.max(1);
    let mut ranges = vec![(0.0f32, 0.0f32); channels];
    for (index, &v) in values.iter().enumerate() {
        let range = &mut ranges[channel_of(index)];
        *range = (range.0.min(v), range.1.max(v));
    }
    let params = ranges.iter().map(|&(lo, hi)| QParams::from_range(lo, hi, qtype, symmetric)).collect::<Result<Vec<_>, _>>()?;
    let bytes = values.iter().enumerate().map(|(i, &v)| qtype.to_byte(quantize_value(v, &params[channel_of(i)]))).collect();
    Ok(QuantizedWeights {
        qtype,
        bytes,
        scales: params.iter().map(|p| p.scale).collect(),
        zero_points: params.iter().map(|p| p.zero_point).collect(),
        granularity,
    })
}

/// A bias quantized to int32 at scale `input_scale * weight_scale[c]` with zero point 0, as the QDQ
/// and QLinear forms expect, so that it adds straight into the int32 accumulator. One weight scale
/// is broadcast to every channel.
pub fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Result<Vec<i32>, QuantError> {
    if weight_scales.len() != 1 && weight_scales.len() != bias.len() {
        return Err(QuantError::ScaleCount { count: weight_scales.len(), channels: bias.len() });
    }
    bias.iter()
        .enumerate()
        .map(|(index, &value)| {
            // The f32 product is the scale the model will store for the bias, so divide by that.
            let scale = input_scale * weight_scales[if weight_scales.len() == 1 { 0 } else { index }];
            let q = (f64::from(value) / f64::from(scale)).round_ties_even();
            if value == 0.0 {
                Ok(0)
            } else if q.is_finite() && q >= f64::from(i32::MIN) && q <= f64::from(i32::MAX) {
                Ok(q as i32)
            } else {
                Err(QuantError::BiasOverflow { index, value, scale })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_follow_each_channel() {
        // Conv weight [2, 1, 1, 2]: channel 0 in [-1, 0.5], channel 1 in [0, 4].
        let q = quantize_weights(&[-1.0, 0.5, 4.0, 2.0], &[2, 1, 1, 2], Granularity::PerChannel { axis: 0 }, QuantType::I8, true)
            .unwrap();
        assert_eq!(q.scales, vec![(1.0f64 / 127.0) as f32, (4.0f64 / 127.0) as f32]);
        assert_eq!(q.zero_points, vec![0, 0]);
        // 0.5 / (1/127) = 63.5 -> 64 (half to even); 2 / (4/127) = 63.5 -> 64.
        assert_eq!(q.bytes, vec![(-127i8) as u8, 64, 127, 64]);
    }

    #[test]
    fn per_channel_on_the_last_axis_of_a_matmul_weight() {
        // [K=2, N=2]: column 0 holds {1, -3}, column 1 holds {2, 0.5}.
        let q =
            quantize_weights(&[1.0, 2.0, -3.0, 0.5], &[2, 2], Granularity::PerChannel { axis: 1 }, QuantType::I8, true).unwrap();
        assert_eq!(q.scales, vec![(3.0f64 / 127.0) as f32, (2.0f64 / 127.0) as f32]);
        assert_eq!(q.bytes[2], (-127i8) as u8);
        assert_eq!(q.bytes[1], 127);
    }

    #[test]
    fn per_tensor_asymmetric_u8() {
        let q = quantize_weights(&[0.0, 1.0, 2.0, 3.0], &[4], Granularity::PerTensor, QuantType::U8, false).unwrap();
        assert_eq!((q.scales.len(), q.zero_points[0]), (1, 0));
        assert_eq!(q.bytes, vec![0, 85, 170, 255]);
    }

    #[test]
    fn bad_weights_are_named() {
        let bad = quantize_weights(&[1.0, f32::NAN], &[2], Granularity::PerTensor, QuantType::I8, true);
        assert_eq!(bad, Err(QuantError::NonFinite { index: 1 }));
        let axis = quantize_weights(&[1.0], &[1], Granularity::PerChannel { axis: 3 }, QuantType::I8, true);
        assert!(matches!(axis, Err(QuantError::BadAxis { axis: 3, .. })));
        let shape = quantize_weights(&[1.0], &[2], Granularity::PerTensor, QuantType::I8, true);
        assert!(matches!(shape, Err(QuantError::ShapeMismatch { .. })));
    }

    #[test]
    fn bias_goes_to_the_accumulator_scale() {
        // Scales 0.5 * [0.1, 0.2] = [0.05, 0.1]: 1.0 / 0.05 = 20, -0.25 / 0.1 = -2.5 -> -2.
        let q = quantize_bias(&[1.0, -0.25], 0.5, &[0.1, 0.2]).unwrap();
        assert_eq!(q, vec![20, -2]);
        assert_eq!(quantize_bias(&[0.0, 3.0], 2.0, &[0.5]).unwrap(), vec![0, 3]);
        assert!(matches!(quantize_bias(&[1e30], 1e-10, &[1e-10]), Err(QuantError::BiasOverflow { index: 0, .. })));
        assert!(matches!(quantize_bias(&[1.0, 2.0, 3.0], 1.0, &[1.0, 1.0]), Err(QuantError::ScaleCount { .. })));
    }
}
