//! The error type of whittle-quant.

/// What keeps a range from being calibrated or a tensor from being quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    #[error("unknown calibration method '{method}' (expected minmax, percentile:<p> or entropy)")]
    UnknownMethod { method: String },
    #[error("percentile {percentile} is outside (0, 100]")]
    BadPercentile { percentile: f64 },
    #[error("no finite values were observed")]
    NoData,
    #[error("range [{min}, {max}] is not finite or not ordered")]
    BadRange { min: f32, max: f32 },
    #[error("axis {axis} is out of range for shape {shape:?}")]
    BadAxis { axis: usize, shape: Vec<usize> },
    #[error("{values} values do not fill shape {shape:?}")]
    ShapeMismatch { values: usize, shape: Vec<usize> },
    #[error("{count} weight scales for {channels} bias values")]
    ScaleCount { count: usize, channels: usize },
    #[error("bias element {index} ({value}) does not fit int32 at scale {scale:e}")]
    BiasOverflow { index: usize, value: f32, scale: f32 },
    #[error("weight contains a non-finite value at element {index}")]
    NonFinite { index: usize },
}
