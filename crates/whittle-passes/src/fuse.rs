//! `fuse` as a library call: load, run the pipeline, check the outputs against the original within
//! the declared tolerance, measure both, and write the model only when it is within tolerance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use whittle_eval::{Budget, InputShapes, Latency, LatencyOptions};
use whittle_ir::{canonical_domain, Model, Tensor, DEFAULT_DOMAIN};
use whittle_metrics::FidelityAccumulator;
use whittle_onnx::SaveOptions;
use whittle_runtime::{RuntimeOptions, Session};

use crate::error::{runtime_error, PassError, Result};
use crate::filter::NodeFilter;
use crate::pass::{PassContext, PassRun, DEFAULT_FOLD_MAX_BYTES};
use crate::tolerance::Tolerance;

/// What `fuse` runs and how it checks the result.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Passes of the default pipeline to run; `None` runs all.
    pub passes: Option<Vec<String>>,
    pub disable: Vec<String>,
    /// The opset fused forms may use; the model is moved there first when it is newer than its own.
    pub target_opset: Option<i64>,
    pub filter: NodeFilter,
    pub fold_max_bytes: usize,
    pub runtime: RuntimeOptions,
    /// The size of a symbolic batch axis in the check inputs.
    pub batch: Option<i64>,
    /// Timed runs of each model; `None` skips latency.
    pub latency: Option<LatencyOptions>,
    pub threads: Option<usize>,
}

impl Default for FuseOptions {
    fn default() -> FuseOptions {
        FuseOptions {
            passes: None,
            disable: Vec::new(),
            target_opset: None,
            filter: NodeFilter::default(),
            fold_max_bytes: DEFAULT_FOLD_MAX_BYTES,
            runtime: RuntimeOptions::default(),
            batch: None,
            latency: Some(LatencyOptions { warmup: 2, budget: Budget::Iterations(10) }),
            threads: None,
        }
    }
}

/// Node counts, opset and file size of one side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStats {
    pub opset: i64,
    pub nodes: usize,
    /// Nodes per op type (`domain.Op` outside ai.onnx), sorted by name.
    pub ops: BTreeMap<String, usize>,
    pub file_bytes: u64,
    pub latency: Option<Latency>,
}

/// How far one output moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputDeviation {
    pub output: String,
    pub max_abs_error: f64,
    pub within_tolerance: bool,
    /// The first element outside the tolerance, when there is one.
    pub detail: Option<String>,
}

/// Everything `fuse` did and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuseReport {
    pub input: PathBuf,
    pub output: PathBuf,
    /// False when the deviation exceeded the tolerance and nothing was written.
    pub written: bool,
    pub before: ModelStats,
    pub after: ModelStats,
    pub passes: Vec<PassRun>,
    pub tolerance: Tolerance,
    /// The check inputs: generated from the declared shapes.
    pub check_inputs: String,
    pub deviations: Vec<OutputDeviation>,
    pub within_tolerance: bool,
    pub threads: Option<usize>,
}

/// Node counts per op type of the main graph.
pub fn op_histogram(model: &Model) -> BTreeMap<String, usize> {
    let mut ops = BTreeMap::new();
    for node in &model.graph.nodes {
        let domain = canonical_domain(&node.domain);
        let key = if domain == DEFAULT_DOMAIN { node.op_type.clone() } else { format!("{domain}.{}", node.op_type) };
        *ops.entry(key).or_insert(0) += 1;
    }
    ops
}

/// Runs the pipeline of `options` on `model` in memory; returns what each pass did and the
/// tolerance the result must meet.
pub fn optimize(model: &mut Model, options: &FuseOptions) -> Result<(Vec<PassRun>, Tolerance)> {
    let manager = crate::passes::pipeline(options.passes.as_deref(), &options.disable)?;
    if let Some(target) = options.target_opset {
        let current = model.opset_version("").unwrap_or(1);
        if target > current {
            crate::opset::upgrade(model, target)?;
        } else if target < current {
            return Err(PassError::Opset { from: current, to: target, reason: "whittle does not lower opsets".into() });
        }
    }
    let mut context = PassContext::for_model(model);
    context.filter = options.filter.clone();
    context.fold_max_bytes = options.fold_max_bytes;
    crate::normalize::initializers_out_of_inputs(model, &mut context);
    let runs = manager.run(model, &context)?;
    Ok((runs, manager.tolerance()))
}

/// Loads `input`, fuses it, checks and measures both models, and writes `output` when the outputs
/// stay within tolerance. A deviation beyond it is reported, not an error: the caller decides.
pub fn fuse(input: &Path, output: &Path, options: &FuseOptions) -> Result<FuseReport> {
    whittle_onnx::check_not_input(input, output)?;
    let loaded = whittle_onnx::load(input)?;
    let original = loaded.model.clone();
    let file_bytes = whittle_eval::model_file_bytes(input, &loaded)?;
    let mut fused = loaded.model;
    let (passes, tolerance) = match optimize(&mut fused, options) {
        Ok(done) => done,
        Err(error @ PassError::UnknownPass { .. }) => return Err(error),
        Err(error) => return Err(PassError::Model { path: input.to_path_buf(), reason: error.to_string() }),
    };

    let inputs: Vec<_> = original.graph.feed_inputs().cloned().collect();
    let shapes = InputShapes { batch: options.batch, ..InputShapes::default() };
    let feed = whittle_eval::synthetic_feed(&inputs, &shapes)?;
    let session = |model: &Model, path: &Path| Session::new(model, &options.runtime).map_err(runtime_error(path));
    let original_session = session(&original, input)?;
    let fused_session = session(&fused, output)?;
    let work = || -> Result<(Vec<OutputDeviation>, Option<Latency>, Option<Latency>)> {
        let run = |session: &Session, path: &Path| session.run(feed.clone()).map_err(runtime_error(path));
        let deviations = deviations(&run(&original_session, input)?, &run(&fused_session, output)?, tolerance);
        let time = |session: &Session, path: &Path| -> Result<Option<Latency>> {
            options
                .latency
                .as_ref()
                .map(|latency| whittle_eval::measure(session, &feed, latency))
                .transpose()
                .map_err(runtime_error(path))
        };
        Ok((deviations, time(&original_session, input)?, time(&fused_session, output)?))
    };
    let (deviations, latency_before, latency_after) = whittle_eval::with_threads(options.threads, work)??;
    let within_tolerance = deviations.iter().all(|deviation| deviation.within_tolerance);
    let after_bytes = if within_tolerance {
        let saved = whittle_onnx::save(&fused, output, &SaveOptions::default())?;
        saved.model_bytes + saved.external_data.as_ref().map_or(0, |(_, bytes)| *bytes)
    } else {
        whittle_onnx::to_bytes(&fused)?.len() as u64
    };
    let stats = |model: &Model, file_bytes: u64, latency: Option<Latency>| ModelStats {
        opset: model.opset_version("").unwrap_or(1),
        nodes: model.graph.nodes.len(),
        ops: op_histogram(model),
        file_bytes,
        latency,
    };
    Ok(FuseReport {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        written: within_tolerance,
        before: stats(&original, file_bytes, latency_before),
        after: stats(&fused, after_bytes, latency_after),
        passes,
        tolerance,
        check_inputs: describe_feed(&feed),
        deviations,
        within_tolerance,
        threads: options.threads,
    })
}

/// Output by output, how far `candidate` is from `reference` and whether it is within `tolerance`.
pub fn deviations(reference: &[(String, Tensor)], candidate: &[(String, Tensor)], tolerance: Tolerance) -> Vec<OutputDeviation> {
    reference
        .iter()
        .zip(candidate)
        .map(|((name, want), (_, got))| {
            let mut fidelity = FidelityAccumulator::new(name.clone());
            let measured = fidelity.add(want, got);
            let checked = measured.clone().and_then(|()| tolerance.check(name, want, got));
            OutputDeviation {
                output: name.clone(),
                max_abs_error: if measured.is_ok() { fidelity.finish().max_abs_error } else { f64::INFINITY },
                within_tolerance: checked.is_ok(),
                detail: checked.err().map(|error| error.to_string()),
            }
        })
        .collect()
}

fn describe_feed(feed: &[(String, Tensor)]) -> String {
    let inputs: Vec<String> = feed.iter().map(|(name, tensor)| format!("{name} {}{:?}", tensor.dtype, tensor.dims)).collect();
    format!("generated (deterministic): {}", inputs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviations_name_the_output_beyond_tolerance() {
        let reference = vec![("y".to_string(), Tensor::from_f32("y", vec![3], &[1.0, 2.0, 3.0]).unwrap())];
        let close = vec![("y".to_string(), Tensor::from_f32("y", vec![3], &[1.0, 2.000001, 3.0]).unwrap())];
        let far = vec![("y".to_string(), Tensor::from_f32("y", vec![3], &[1.0, 2.5, 3.0]).unwrap())];
        let ok = deviations(&reference, &close, Tolerance::Exact);
        assert!(ok[0].within_tolerance && ok[0].detail.is_none());
        let bad = deviations(&reference, &far, Tolerance::BATCH_NORM_FOLD);
        assert!(!bad[0].within_tolerance);
        assert!((bad[0].max_abs_error - 0.5).abs() < 1e-12);
        assert!(bad[0].detail.as_deref().unwrap().starts_with("output 'y': element 1 is 2.5, expected 2"), "{:?}", bad[0].detail);
    }
}
