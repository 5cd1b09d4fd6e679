//! Two models on the same data: per-output fidelity, task accuracy, file size and latency, with the
//! deltas. This is the core of every report whittle writes (`compare`, and later `fuse`, `quantize`,
//! `optimize`), so the report is a plain serde struct with a Markdown rendering.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use whittle_data::{Batching, Feed};
use whittle_ir::{DataType, Tensor};
use whittle_metrics::{Fidelity, FidelityAccumulator};
use whittle_onnx::LoadedModel;
use whittle_runtime::{RuntimeOptions, Session};

use crate::error::{EvalError, Result};
use crate::latency::{measure, with_threads, Latency, LatencyOptions};

/// How a comparison runs.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    pub runtime: RuntimeOptions,
    /// Latency is measured on the first feed with these runs; `None` skips latency.
    pub latency: Option<LatencyOptions>,
    /// Threads for every kernel; `None` uses one per core.
    pub threads: Option<usize>,
    pub batching: Batching,
}

/// One model's side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub path: PathBuf,
    /// Size of the model file (and of its external data files, when it has them).
    pub file_bytes: u64,
    pub nodes: usize,
    pub latency: Option<Latency>,
    /// Fraction of samples whose predicted class equals the label, when labels were given.
    pub accuracy: Option<f64>,
    /// The output accuracy was read from.
    pub accuracy_output: Option<String>,
}

/// Fidelity of one candidate output to its reference output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputComparison {
    pub reference_output: String,
    pub candidate_output: String,
    pub fidelity: Fidelity,
}

/// Candidate relative to reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deltas {
    /// candidate size / reference size.
    pub size_ratio: f64,
    /// candidate p50 / reference p50, when latency was measured.
    pub p50_ratio: Option<f64>,
    /// (candidate accuracy - reference accuracy) in percentage points, when labels were given.
    pub accuracy_points: Option<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    pub reference: ModelReport,
    pub candidate: ModelReport,
    pub data: PathBuf,
    pub feeds: usize,
    pub samples: usize,
    pub threads: Option<usize>,
    pub device: String,
    pub outputs: Vec<OutputComparison>,
    pub deltas: Deltas,
}

/// Runs `reference` and `candidate` on every feed of `data` and compares them.
///
/// Both models must take the same feed inputs (by name). Outputs are paired by name when both
/// models have the same output names, else by position when they have as many.
pub fn compare(
    reference: &Path,
    candidate: &Path,
    data: &Path,
    labels: Option<&Path>,
    options: &CompareOptions,
) -> Result<CompareReport> {
    let reference_loaded = whittle_onnx::load(reference)?;
    let candidate_loaded = whittle_onnx::load(candidate)?;
    let (reference_model, candidate_model) = (&reference_loaded.model, &candidate_loaded.model);
    let reference_session = Session::new(reference_model, &options.runtime).map_err(runtime_error(reference))?;
    let candidate_session = Session::new(candidate_model, &options.runtime).map_err(runtime_error(candidate))?;

    let inputs: Vec<_> = reference_model.graph.feed_inputs().cloned().collect();
    let mut reference_names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    let mut candidate_names: Vec<&str> = candidate_session.input_names().collect();
    reference_names.sort_unstable();
    candidate_names.sort_unstable();
    if reference_names != candidate_names {
        return Err(EvalError::Mismatch {
            reason: format!(
                "the models take different inputs: {} takes {}, {} takes {}",
                reference.display(),
                reference_names.join(", "),
                candidate.display(),
                candidate_names.join(", ")
            ),
        });
    }
    let pairs = pair_outputs(&reference_session, &candidate_session, reference, candidate)?;
    let feeds = whittle_data::load_feeds(data, &inputs, options.batching)?;
    let labels = labels.map(whittle_data::read_labels).transpose()?;

    let work = || -> Result<CompareReport> {
        let mut accumulators: Vec<FidelityAccumulator> =
            pairs.iter().map(|(reference, _)| FidelityAccumulator::new(reference.clone())).collect();
        let mut reference_scores = Scores::default();
        let mut candidate_scores = Scores::default();
        let mut samples = 0;
        for feed in &feeds {
            let named = named_feed(feed);
            let batch = named.first().and_then(|(_, tensor)| tensor.dims.first()).map_or(1, |&size| size as usize);
            let reference_outputs = reference_session.run(named.clone()).map_err(runtime_error(reference))?;
            let candidate_outputs = candidate_session.run(named).map_err(runtime_error(candidate))?;
            for ((reference_name, candidate_name), accumulator) in pairs.iter().zip(&mut accumulators) {
                let reference_tensor = output(&reference_outputs, reference_name)?;
                let candidate_tensor = output(&candidate_outputs, candidate_name)?;
                accumulator.add(reference_tensor, candidate_tensor)?;
            }
            if let Some(labels) = &labels {
                let range = samples..samples + batch;
                let Some(feed_labels) = labels.get(range.clone()) else {
                    return Err(EvalError::Mismatch {
                        reason: format!("the data has more than the {} samples the labels cover", labels.len()),
                    });
                };
                reference_scores.add(&reference_outputs, feed_labels)?;
                candidate_scores.add(&candidate_outputs, feed_labels)?;
            }
            samples += batch;
        }
        if let Some(labels) = &labels {
            if labels.len() != samples {
                return Err(EvalError::Mismatch { reason: format!("{} labels for {samples} samples of data", labels.len()) });
            }
        }
        let latency = |session: &Session, path: &Path| -> Result<Option<Latency>> {
            match (&options.latency, feeds.first()) {
                (Some(latency_options), Some(feed)) => {
                    Ok(Some(measure(session, &named_feed(feed), latency_options).map_err(runtime_error(path))?))
                }
                _ => Ok(None),
            }
        };
        let reference_report =
            model_report(reference, &reference_loaded, latency(&reference_session, reference)?, &reference_scores)?;
        let candidate_report =
            model_report(candidate, &candidate_loaded, latency(&candidate_session, candidate)?, &candidate_scores)?;
        let deltas = Deltas {
            size_ratio: ratio(candidate_report.file_bytes as f64, reference_report.file_bytes as f64),
            p50_ratio: match (&reference_report.latency, &candidate_report.latency) {
                (Some(a), Some(b)) => Some(ratio(b.p50_ms, a.p50_ms)),
                _ => None,
            },
            accuracy_points: match (reference_report.accuracy, candidate_report.accuracy) {
                (Some(a), Some(b)) => Some((b - a) * 100.0),
                _ => None,
            },
        };
        Ok(CompareReport {
            reference: reference_report,
            candidate: candidate_report,
            data: data.to_path_buf(),
            feeds: feeds.len(),
            samples,
            threads: options.threads,
            device: options.runtime.backend.name().to_string(),
            outputs: pairs
                .iter()
                .zip(&accumulators)
                .map(|((reference_output, candidate_output), accumulator)| OutputComparison {
                    reference_output: reference_output.clone(),
                    candidate_output: candidate_output.clone(),
                    fidelity: accumulator.finish(),
                })
                .collect(),
            deltas,
        })
    };
    with_threads(options.threads, work)?
}

pub(crate) fn runtime_error(path: &Path) -> impl Fn(whittle_runtime::RuntimeError) -> EvalError + '_ {
    move |source| EvalError::Runtime { path: path.to_path_buf(), error: Box::new(source) }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        f64::NAN
    } else {
        numerator / denominator
    }
}

pub(crate) fn named_feed(feed: &Feed) -> Vec<(String, Tensor)> {
    feed.tensors.iter().map(|tensor| (tensor.name.clone(), tensor.clone())).collect()
}

/// The output called `name` of one run. Pairs are built from the sessions' own output names, which
/// every run returns, so a miss is a runtime bug; it is reported rather than papered over.
fn output<'a>(outputs: &'a [(String, Tensor)], name: &str) -> Result<&'a Tensor> {
    outputs
        .iter()
        .find(|(output, _)| output == name)
        .map(|(_, tensor)| tensor)
        .ok_or_else(|| EvalError::Mismatch { reason: format!("a run returned no output '{name}'") })
}

/// Output name pairs (reference, candidate): by name when both have the same names, else by position.
fn pair_outputs(
    reference: &Session,
    candidate: &Session,
    reference_path: &Path,
    candidate_path: &Path,
) -> Result<Vec<(String, String)>> {
    let reference_names: Vec<String> = reference.output_names().map(str::to_string).collect();
    let candidate_names: Vec<String> = candidate.output_names().map(str::to_string).collect();
    let mut sorted_reference = reference_names.clone();
    let mut sorted_candidate = candidate_names.clone();
    sorted_reference.sort_unstable();
    sorted_candidate.sort_unstable();
    if sorted_reference == sorted_candidate {
        return Ok(reference_names.iter().map(|name| (name.clone(), name.clone())).collect());
    }
    if reference_names.len() == candidate_names.len() {
        return Ok(reference_names.into_iter().zip(candidate_names).collect());
    }
    Err(EvalError::Mismatch {
        reason: format!(
            "{} has outputs {} and {} has outputs {}: neither the names nor the counts match",
            reference_path.display(),
            reference_names.join(", "),
            candidate_path.display(),
            candidate_names.join(", ")
        ),
    })
}

/// Correct predictions of one model so far, and the output they are read from.
#[derive(Debug, Default)]
struct Scores {
    output: Option<String>,
    correct: f64,
    samples: usize,
}

impl Scores {
    /// Adds one feed: the first output that holds class scores (float, rank 2 or more: arg-max over
    /// the last axis) or class ids (integer, rank 1) is the prediction.
    fn add(&mut self, outputs: &[(String, Tensor)], labels: &[i64]) -> Result<()> {
        let chosen = match &self.output {
            Some(name) => outputs.iter().find(|(output, _)| output == name),
            None => outputs.iter().find(|(_, tensor)| is_prediction(tensor)),
        };
        let Some((name, tensor)) = chosen else {
            let names: Vec<&str> = outputs.iter().map(|(name, _)| name.as_str()).collect();
            return Err(EvalError::Mismatch {
                reason: format!(
                    "no output holds class scores (float, rank 2 or more) or class ids (integer, rank 1) to compare with labels (outputs: {})",
                    names.join(", ")
                ),
            });
        };
        let accuracy = whittle_metrics::accuracy(name, tensor, labels)?;
        self.correct += accuracy * labels.len() as f64;
        self.samples += labels.len();
        self.output = Some(name.clone());
        Ok(())
    }

    fn accuracy(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.correct / self.samples as f64)
    }
}

fn is_prediction(tensor: &Tensor) -> bool {
    let integer = matches!(
        tensor.dtype,
        DataType::I64
            | DataType::I32
            | DataType::I16
            | DataType::I8
            | DataType::U64
            | DataType::U32
            | DataType::U16
            | DataType::U8
    );
    (tensor.dtype.is_float() && tensor.dims.len() >= 2) || (integer && tensor.dims.len() == 1)
}

fn model_report(path: &Path, loaded: &LoadedModel, latency: Option<Latency>, scores: &Scores) -> Result<ModelReport> {
    Ok(ModelReport {
        path: path.to_path_buf(),
        file_bytes: model_file_bytes(path, loaded)?,
        nodes: loaded.model.graph.nodes.len(),
        latency,
        accuracy: scores.accuracy(),
        accuracy_output: scores.output.clone(),
    })
}

/// The model file's size plus that of the external data files its tensors were read from.
pub fn model_file_bytes(path: &Path, loaded: &LoadedModel) -> Result<u64> {
    let io_error = |error| EvalError::Io { path: path.to_path_buf(), error };
    let mut bytes = std::fs::metadata(path).map_err(io_error)?.len();
    for location in &loaded.external_files {
        bytes += std::fs::metadata(location).map_err(|error| EvalError::Io { path: location.clone(), error })?.len();
    }
    Ok(bytes)
}

impl CompareReport {
    /// The report as Markdown: one table for the models, one for the outputs.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let threads = self.threads.map_or_else(|| "all cores".to_string(), |threads| threads.to_string());
        let _ = writeln!(
            out,
            "## compare\n\n{} feeds, {} samples from `{}`; device {}, threads {}\n",
            self.feeds,
            self.samples,
            self.data.display(),
            self.device,
            threads
        );
        let _ = writeln!(out, "| | reference | candidate | delta |\n| --- | --- | --- | --- |");
        let (a, b) = (&self.reference, &self.candidate);
        let _ = writeln!(out, "| model | `{}` | `{}` | |", a.path.display(), b.path.display());
        let _ = writeln!(out, "| nodes | {} | {} | {:+} |", a.nodes, b.nodes, b.nodes as i64 - a.nodes as i64);
        let _ = writeln!(
            out,
            "| size | {} | {} | x{:.3} |",
            human_bytes(a.file_bytes),
            human_bytes(b.file_bytes),
            self.deltas.size_ratio
        );
        if let (Some(la), Some(lb)) = (&a.latency, &b.latency) {
            for (label, pick) in [("p50", 0), ("p90", 1), ("p99", 2)] {
                let get = |latency: &Latency| [latency.p50_ms, latency.p90_ms, latency.p99_ms][pick];
                let _ = writeln!(
                    out,
                    "| latency {label} | {:.3} ms | {:.3} ms | x{:.3} |",
                    get(la),
                    get(lb),
                    ratio(get(lb), get(la))
                );
            }
        }
        if let (Some(accuracy_a), Some(accuracy_b)) = (a.accuracy, b.accuracy) {
            let _ = writeln!(
                out,
                "| accuracy | {:.2}% | {:.2}% | {:+.2} points |",
                accuracy_a * 100.0,
                accuracy_b * 100.0,
                self.deltas.accuracy_points.unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            out,
            "\n| output | max abs error | mean abs error | mean cosine | top-1 agreement | SQNR |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for comparison in &self.outputs {
            let fidelity = &comparison.fidelity;
            let name = if comparison.reference_output == comparison.candidate_output {
                format!("`{}`", comparison.reference_output)
            } else {
                format!("`{}` / `{}`", comparison.reference_output, comparison.candidate_output)
            };
            let top1 = fidelity.top1_agreement.map_or_else(|| "-".to_string(), |agreement| format!("{:.2}%", agreement * 100.0));
            let sqnr = match fidelity.sqnr_db {
                Some(db) => format!("{db:.1} dB"),
                None if fidelity.max_abs_error == 0.0 => "exact".to_string(),
                None => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "| {name} | {:.3e} | {:.3e} | {:.6} | {top1} | {sqnr} |",
                fidelity.max_abs_error, fidelity.mean_abs_error, fidelity.mean_cosine_similarity
            );
        }
        out
    }
}

/// A byte count for people: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
