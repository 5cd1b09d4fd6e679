//! Measures models in whittle's runtime: latency percentiles and peak memory (`bench`), the
//! side-by-side report of two models on the same data (`compare`) that every optimizing command
//! reuses, and activation ranges on calibration data (`calibrate`) for static quantization.
//!
//! Numbers come from running the model in [`whittle_runtime::Session`]s on data read by
//! [`whittle_data`]; closeness and accuracy are computed by [`whittle_metrics`] in f64. Reports are
//! plain serde structs, so the CLI prints them as JSON or Markdown and later commands (fuse,
//! quantize, optimize) embed them.

mod bench;
mod calibrate;
mod compare;
mod error;
mod latency;
mod memory;
mod profile;
mod synthetic;

pub use bench::{bench, BenchData, BenchOptions, BenchReport, FedInput};
pub use calibrate::{calibrate, Calibration, CalibrationOptions, TensorRange};
pub use compare::{compare, human_bytes, model_file_bytes, CompareOptions, CompareReport, Deltas, ModelReport, OutputComparison};
pub use error::{EvalError, Result};
pub use latency::{measure, with_threads, Budget, Latency, LatencyOptions};
pub use memory::PeakMemory;
pub use profile::{profile, OpTime, Profile, StepProfile};
pub use synthetic::{synthetic_feed, InputShapes};
