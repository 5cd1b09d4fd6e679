//! Activation ranges of a model on calibration data, for static quantization.
//!
//! The tensors to observe become extra outputs of a copy of the model, which runs in the runtime
//! feed by feed; each feed's values stream into a whittle-quant [`RangeObserver`] and are dropped,
//! so memory holds one feed's activations and a fixed-size histogram per tensor, whatever the size
//! of the calibration set.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use whittle_data::Feed;
use whittle_ir::{Model, ValueInfo};
use whittle_quant::{CalibrationMethod, RangeObserver};
use whittle_runtime::{RuntimeOptions, Session};

use crate::compare::{named_feed, runtime_error};
use crate::error::{EvalError, Result};
use crate::latency::with_threads;

/// How calibration runs.
#[derive(Debug, Clone)]
pub struct CalibrationOptions {
    pub runtime: RuntimeOptions,
    pub method: CalibrationMethod,
    /// Threads for every kernel; `None` uses one per core.
    pub threads: Option<usize>,
}

impl CalibrationOptions {
    pub fn new(method: CalibrationMethod) -> CalibrationOptions {
        CalibrationOptions { runtime: RuntimeOptions::default(), method, threads: None }
    }
}

/// The calibrated range of one tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorRange {
    pub tensor: String,
    /// The smallest and largest finite values seen.
    pub observed_min: f32,
    pub observed_max: f32,
    /// The range the method chose (equal to the observed one for `minmax`).
    pub min: f32,
    pub max: f32,
    /// Finite values seen, and NaN or infinite ones (left out of the range).
    pub values: u64,
    pub non_finite: u64,
}

/// Every observed tensor's range, in the order asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub method: CalibrationMethod,
    pub feeds: usize,
    pub samples: usize,
    pub ranges: Vec<TensorRange>,
}

impl Calibration {
    /// The range of `tensor`, when it was observed.
    pub fn range(&self, tensor: &str) -> Option<&TensorRange> {
        self.ranges.iter().find(|range| range.tensor == tensor)
    }
}

/// Runs `model` (read from `path`, named in errors) on every feed and calibrates `tensors`: graph
/// inputs or values that nodes of the main graph produce, of a float type.
pub fn calibrate(
    model: &Model,
    path: &Path,
    feeds: &[Feed],
    tensors: &[String],
    options: &CalibrationOptions,
) -> Result<Calibration> {
    if feeds.is_empty() {
        return Err(EvalError::Calibration { reason: "the calibration data holds no samples".into() });
    }
    let graph = &model.graph;
    let produced: BTreeSet<&str> = graph
        .nodes
        .iter()
        .flat_map(|node| node.outputs.iter())
        .chain(graph.inputs.iter().map(|input| &input.name))
        .map(String::as_str)
        .filter(|name| !name.is_empty())
        .collect();
    if let Some(missing) = tensors.iter().find(|name| !produced.contains(name.as_str())) {
        return Err(EvalError::Calibration {
            reason: format!("tensor '{missing}' is neither a graph input nor an output of a node of the main graph"),
        });
    }
    let mut observed = model.clone();
    for name in tensors {
        if !observed.graph.outputs.iter().any(|output| &output.name == name) {
            observed.graph.outputs.push(ValueInfo::new(name.clone(), None));
        }
    }
    let session = Session::new(&observed, &options.runtime).map_err(runtime_error(path))?;
    let mut observers: Vec<RangeObserver> = tensors.iter().map(|_| RangeObserver::new(options.method)).collect();
    let work = || -> Result<usize> {
        let mut samples = 0;
        for feed in feeds {
            samples += feed.tensors.first().and_then(|tensor| tensor.dims.first()).map_or(1, |&n| n.max(0) as usize);
            let outputs = session.run(named_feed(feed)).map_err(runtime_error(path))?;
            for (name, observer) in tensors.iter().zip(&mut observers) {
                let Some((_, tensor)) = outputs.iter().find(|(output, _)| output == name) else {
                    return Err(EvalError::Mismatch { reason: format!("a run returned no value for '{name}'") });
                };
                if !tensor.dtype.is_float() {
                    return Err(EvalError::Calibration {
                        reason: format!("tensor '{name}' is {}: only float tensors are calibrated", tensor.dtype),
                    });
                }
                let values = tensor.to_f32_vec().ok_or_else(|| EvalError::Calibration {
                    reason: format!("tensor '{name}': {} values cannot be read", tensor.dtype),
                })?;
                observer.observe(&values);
            }
        }
        Ok(samples)
    };
    let samples = with_threads(options.threads, work)??;
    let ranges = tensors
        .iter()
        .zip(&observers)
        .map(|(name, observer)| {
            let no_data = |_| EvalError::Calibration { reason: format!("tensor '{name}' held no finite value") };
            let (observed_min, observed_max) = observer.min_max().map_err(no_data)?;
            let (min, max) = observer.range().map_err(no_data)?;
            Ok(TensorRange {
                tensor: name.clone(),
                observed_min,
                observed_max,
                min,
                max,
                values: observer.count(),
                non_finite: observer.non_finite(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Calibration { method: options.method, feeds: feeds.len(), samples, ranges })
}
