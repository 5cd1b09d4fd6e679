//! One model's latency and peak memory on synthetic or user data: the library side of `whittle bench`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use whittle_data::Batching;
use whittle_ir::Tensor;
use whittle_runtime::{RuntimeOptions, Session};

use crate::compare::{human_bytes, model_file_bytes};
use crate::error::{EvalError, Result};
use crate::latency::{measure, with_threads, Latency, LatencyOptions};
use crate::memory::PeakMemory;
use crate::profile::{profile, Profile};
use crate::synthetic::{synthetic_feed, InputShapes};

/// Where the benchmark's feed comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchData {
    /// Generated values of the declared shapes (see [`synthetic_feed`]).
    Synthetic(InputShapes),
    /// The first feed of a data file or folder, cut to this batching.
    File { path: PathBuf, batching: Batching },
}

/// How a benchmark runs.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    pub runtime: RuntimeOptions,
    pub threads: Option<usize>,
    pub latency: LatencyOptions,
    /// Also time each step over this many runs (after the timed ones) and report the breakdown.
    pub profile_runs: Option<usize>,
}

/// One fed input, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FedInput {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// What `bench` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub model: PathBuf,
    pub file_bytes: u64,
    pub device: String,
    /// Threads every kernel ran on; `None` is one per core.
    pub threads: Option<usize>,
    /// `synthetic`, or the data file the feed came from.
    pub data: String,
    pub inputs: Vec<FedInput>,
    pub latency: Latency,
    /// Peak resident memory of the process while the model was planned and run, where the system reports it.
    pub peak_memory: Option<PeakMemory>,
    /// Per-op-type and per-step times, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// Plans the model at `path`, then times it on one feed.
pub fn bench(path: &Path, data: &BenchData, options: &BenchOptions) -> Result<BenchReport> {
    let reset = PeakMemory::reset();
    let loaded = whittle_onnx::load(path)?;
    let inputs: Vec<_> = loaded.model.graph.feed_inputs().cloned().collect();
    let (feed, source): (Vec<(String, Tensor)>, String) = match data {
        BenchData::Synthetic(shapes) => (synthetic_feed(&inputs, shapes)?, "synthetic".into()),
        BenchData::File { path: data_path, batching } => {
            let feeds = whittle_data::load_feeds(data_path, &inputs, *batching)?;
            let Some(first) = feeds.into_iter().next() else {
                return Err(EvalError::Options { reason: format!("{}: no feeds", data_path.display()) });
            };
            let feed = first.tensors.into_iter().map(|tensor| (tensor.name.clone(), tensor)).collect();
            (feed, first.source)
        }
    };
    let runtime_error = |source| EvalError::Runtime { path: path.to_path_buf(), error: Box::new(source) };
    let (latency, profile) = with_threads(options.threads, || -> Result<(Latency, Option<Profile>)> {
        let session = Session::new(&loaded.model, &options.runtime).map_err(runtime_error)?;
        let latency = measure(&session, &feed, &options.latency).map_err(runtime_error)?;
        let profile = match options.profile_runs {
            Some(runs) => Some(profile(&session, &feed, runs).map_err(runtime_error)?),
            None => None,
        };
        Ok((latency, profile))
    })??;
    Ok(BenchReport {
        model: path.to_path_buf(),
        file_bytes: model_file_bytes(path, &loaded)?,
        device: options.runtime.backend.name().to_string(),
        threads: options.threads,
        data: source,
        inputs: feed
            .iter()
            .map(|(name, tensor)| FedInput { name: name.clone(), dtype: tensor.dtype.name(), shape: tensor.dims.clone() })
            .collect(),
        latency,
        peak_memory: PeakMemory::read(reset),
        profile,
    })
}

impl BenchReport {
    /// The report as aligned text lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let threads = self.threads.map_or_else(|| "all cores".to_string(), |threads| threads.to_string());
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|input| {
                let dims: Vec<String> = input.shape.iter().map(i64::to_string).collect();
                format!("{} {}[{}]", input.name, input.dtype, dims.join(","))
            })
            .collect();
        let latency = &self.latency;
        let _ = writeln!(out, "model       {} ({})", self.model.display(), human_bytes(self.file_bytes));
        let _ = writeln!(out, "device      {}, threads {threads}", self.device);
        let _ = writeln!(out, "inputs      {} ({})", inputs.join(", "), self.data);
        let _ = writeln!(out, "runs        {}", latency.iterations);
        let _ = writeln!(
            out,
            "latency     mean {:.3} ms  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  (min {:.3}, max {:.3})",
            latency.mean_ms, latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.min_ms, latency.max_ms
        );
        let _ = writeln!(out, "throughput  {:.1} samples/s ({} per run)", latency.throughput_per_s, latency.samples_per_run);
        match &self.peak_memory {
            Some(peak) => {
                let scope = if peak.since_reset { "while planning and running" } else { "since the process started" };
                let _ = writeln!(out, "peak memory {} resident, {scope}", human_bytes(peak.bytes));
            }
            None => {
                let _ = writeln!(out, "peak memory not reported by this system");
            }
        }
        if let Some(profile) = &self.profile {
            out.push_str(&profile.to_text(10));
        }
        out
    }
}
