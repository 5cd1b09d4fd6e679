//! The numbers of quantization, apart from any graph: activation ranges calibrated from streamed
//! batches, scales and zero points, and weights and biases quantized per tensor or per channel.
//!
//! The graph rewrites that use them (QDQ insertion, dynamic quantization) are passes; this crate
//! knows neither the IR nor the runtime, so its arithmetic is tested on plain slices against f64
//! math, and it follows ONNX's `QuantizeLinear` rules exactly (division in f32, round half to even,
//! saturation), so that what it precomputes equals what a runtime would compute.

mod calibrate;
mod entropy;
mod error;
mod params;
mod weights;

pub use calibrate::{CalibrationMethod, Histogram, RangeObserver, HISTOGRAM_BINS};
pub use entropy::{entropy_threshold, kl_divergence, QUANTIZED_BINS};
pub use error::QuantError;
pub use params::{dequantize, quantize, quantize_value, QParams, QuantType};
pub use weights::{quantize_bias, quantize_weights, Granularity, QuantizedWeights};
