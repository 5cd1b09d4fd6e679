//! Quantization as whittle ships it: `quantize` loads a model, fuses it, calibrates activations on
//! the user's data in whittle's runtime, rewrites it (QDQ), measures the result against the
//! original on evaluation data (fidelity per output, SQNR per quantized layer, accuracy with
//! labels, size and latency), holds it to the user's budget by keeping the most sensitive layers
//! in float, and writes it only when the budget holds (or when forced).

mod dynamic;
mod half;
mod qdq;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use whittle_data::{Batching, Feed};
use whittle_eval::{calibrate, CalibrationOptions, Latency, LatencyOptions};
use whittle_ir::{DataType, Model, Tensor, ValueInfo};
use whittle_metrics::{accuracy, Fidelity, FidelityAccumulator};
use whittle_onnx::SaveOptions;
use whittle_runtime::{RuntimeOptions, Session};

pub use whittle_quant::{CalibrationMethod, QuantType};

pub use half::{convert_to_half, HalfReport, BLOCKED as HALF_BLOCKED};
pub use qdq::{find_layers, insert_qdq, Kept, Layer, QdqOptions, QuantizedLayer, QUANTIZABLE};

use crate::error::{runtime_error, PassError, Result};
use crate::filter::NodeFilter;
use crate::fuse::{optimize, FuseOptions};

/// What `quantize` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// QDQ pairs with activation ranges calibrated on data.
    Int8Static,
    /// Weights quantized ahead, activations at run time (DynamicQuantizeLinear + MatMulInteger /
    /// ConvInteger); no calibration.
    Int8Dynamic,
    /// Initializers and computation in float16, unsafe ops kept in f32.
    Fp16,
    /// The same in bfloat16.
    Bf16,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["int8-dynamic", "int8-static", "fp16", "bf16"];

    /// The half type of the half-precision modes.
    pub fn half_type(self) -> Option<DataType> {
        match self {
            Mode::Fp16 => Some(DataType::F16),
            Mode::Bf16 => Some(DataType::BF16),
            Mode::Int8Static | Mode::Int8Dynamic => None,
        }
    }

    pub fn from_name(name: &str) -> Result<Mode> {
        match name {
            "int8-static" => Ok(Mode::Int8Static),
            "int8-dynamic" => Ok(Mode::Int8Dynamic),
            "fp16" => Ok(Mode::Fp16),
            "bf16" => Ok(Mode::Bf16),
            _ => Err(PassError::Options { reason: format!("unknown mode '{name}' (modes: {})", Mode::NAMES.join(", ")) }),
        }
    }
}

/// The budget a quantized model must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    /// Lowest mean cosine similarity of every output to the original's.
    pub min_cosine: Option<f64>,
    /// Most accuracy lost, in percentage points (needs labels).
    pub max_accuracy_drop: Option<f64>,
}

/// How `quantize` runs.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub mode: Mode,
    pub qdq: QdqOptions,
    pub method: CalibrationMethod,
    /// Calibration inputs (int8-static needs them).
    pub calib_data: Option<PathBuf>,
    /// Data the result is measured on; the calibration data when `None`.
    pub eval_data: Option<PathBuf>,
    pub labels: Option<PathBuf>,
    /// Node names and op types kept in float.
    pub exclude: Vec<String>,
    pub budget: Budget,
    /// Write the model even when the budget does not hold.
    pub force: bool,
    /// Half-precision modes: keep the model's inputs and outputs f32 (Casts at the boundary).
    pub keep_io_types: bool,
    pub batching: Batching,
    pub runtime: RuntimeOptions,
    pub threads: Option<usize>,
    /// Timed runs of each model on the first evaluation feed; `None` skips latency.
    pub latency: Option<LatencyOptions>,
}

impl QuantizeOptions {
    pub fn new(mode: Mode, calib_data: Option<PathBuf>) -> QuantizeOptions {
        QuantizeOptions {
            mode,
            qdq: QdqOptions::default(),
            method: CalibrationMethod::MinMax,
            calib_data,
            eval_data: None,
            labels: None,
            exclude: Vec::new(),
            budget: Budget { min_cosine: None, max_accuracy_drop: None },
            force: false,
            keep_io_types: true,
            batching: Batching::default(),
            runtime: RuntimeOptions::default(),
            threads: None,
            latency: Some(LatencyOptions { warmup: 2, budget: whittle_eval::Budget::Iterations(10) }),
        }
    }
}

/// One side of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub file_bytes: u64,
    pub nodes: usize,
    pub latency: Option<Latency>,
    pub accuracy: Option<f64>,
}

/// A quantized layer with the error of its output against the float model's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    #[serde(flatten)]
    pub layer: QuantizedLayer,
    pub output: String,
    pub sqnr_db: Option<f64>,
    pub mean_cosine_similarity: f64,
}

/// Everything `quantize` did and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizeReport {
    pub input: PathBuf,
    pub output: PathBuf,
    pub mode: Mode,
    pub qdq: QdqOptions,
    /// The calibration method and samples, for the modes that calibrate.
    pub method: Option<CalibrationMethod>,
    pub calibration_samples: usize,
    pub eval_samples: usize,
    pub before: Side,
    pub after: Side,
    /// Per model output, quantized against original on the evaluation data.
    pub outputs: Vec<Fidelity>,
    pub layers: Vec<LayerReport>,
    /// What the half-precision modes converted.
    pub half: Option<HalfReport>,
    /// Quantizable nodes left in float, and why (excluded, kept for the budget, not quantizable).
    pub kept: Vec<Kept>,
    pub budget: Budget,
    pub budget_met: bool,
    /// Why the budget failed, when it did.
    pub budget_detail: Option<String>,
    pub written: bool,
    /// What a reader should know about the numbers (e.g. why INT8 is not faster here).
    pub notes: Vec<String>,
}

/// Quantizes `input` into `output`; see the module documentation. Returns the report whether or
/// not the model was written (`written`); errors are for what could not be done at all.
pub fn quantize(input: &Path, output: &Path, options: &QuantizeOptions) -> Result<QuantizeReport> {
    whittle_onnx::check_not_input(input, output)?;
    let loaded = whittle_onnx::load(input)?;
    let before_bytes = whittle_eval::model_file_bytes(input, &loaded)?;
    let original = loaded.model;
    check_exclude(&original, &options.exclude)?;
    if options.budget.max_accuracy_drop.is_some() && options.labels.is_none() {
        return Err(PassError::Options { reason: "--max-accuracy-drop needs --labels".into() });
    }
    // Fusion first: BatchNormalization folded into Conv weights is quantized once, not twice.
    let mut fused = original.clone();
    optimize(&mut fused, &FuseOptions { latency: None, runtime: options.runtime.clone(), ..FuseOptions::default() })?;
    let filter = NodeFilter { include: Vec::new(), exclude: options.exclude.clone() };
    let (mut layers, mut kept) =
        if options.mode.half_type().is_some() { (Vec::new(), Vec::new()) } else { find_layers(&fused, &filter) };

    if options.mode == Mode::Int8Dynamic {
        let (supported, unsupported): (Vec<Layer>, Vec<Layer>) =
            layers.into_iter().partition(|layer| dynamic::unsupported(&fused, layer).is_none());
        kept.extend(unsupported.iter().filter_map(|layer| dynamic::unsupported(&fused, layer)));
        layers = supported;
    }

    let inputs: Vec<ValueInfo> = original.graph.feed_inputs().cloned().collect();
    let load = |path: &Path| whittle_data::load_feeds(path, &inputs, options.batching);
    let (ranges, calibration_samples) = match options.mode {
        Mode::Int8Static => {
            let Some(calib_data) = &options.calib_data else {
                return Err(PassError::Options { reason: "int8-static needs --calib-data".into() });
            };
            let calib = load(calib_data)?;
            let mut tensors: Vec<String> = layers.iter().map(|layer| layer.input.clone()).collect();
            tensors.sort();
            tensors.dedup();
            let calibration_options =
                CalibrationOptions { runtime: options.runtime.clone(), method: options.method, threads: options.threads };
            let calibration = calibrate(&fused, input, &calib, &tensors, &calibration_options)?;
            let ranges = calibration.ranges.iter().map(|range| (range.tensor.clone(), (range.min, range.max))).collect();
            (ranges, calibration.samples)
        }
        Mode::Int8Dynamic | Mode::Fp16 | Mode::Bf16 => (BTreeMap::new(), 0),
    };
    let eval = match options.eval_data.as_ref().or(options.calib_data.as_ref()) {
        Some(path) => load(path)?,
        None => return Err(PassError::Options { reason: "nothing to measure the result on: give --data".into() }),
    };
    let labels = options.labels.as_deref().map(whittle_data::read_labels).transpose()?;
    let types = match options.mode.half_type() {
        Some(_) => observed_types(&fused, input, &eval[0], options)?,
        None => BTreeMap::new(),
    };
    let rewrite = |model: &mut Model, chosen: &[Layer]| -> Result<(Vec<QuantizedLayer>, Option<HalfReport>, Vec<Kept>)> {
        match options.mode {
            Mode::Int8Static => Ok((insert_qdq(model, chosen, &ranges, &options.qdq)?, None, Vec::new())),
            Mode::Int8Dynamic => Ok((dynamic::insert_dynamic(model, chosen, &options.qdq)?, None, Vec::new())),
            Mode::Fp16 | Mode::Bf16 => {
                let half = options.mode.half_type().unwrap_or(DataType::F16);
                let mut kept = Vec::new();
                let report = convert_to_half(model, half, options.keep_io_types, &types, &filter, &mut kept)?;
                Ok((Vec::new(), Some(report), kept))
            }
        }
    };

    // Candidates are measured against the fused float model, whose layer outputs they share (the
    // original's may have other names); the fused model is within fuse's tolerance of the original,
    // and the accuracy before is the original's own.
    let context = Evaluation::new(&fused, input, &eval, &layers, options)?;
    let reference_accuracy = match labels.as_deref() {
        Some(labels) => Some(Evaluation::new(&original, input, &eval, &[], options)?.reference_accuracy(labels)?),
        None => None,
    };
    // Keep the most sensitive layers in float, one more at a time, until the budget holds.
    let mut float_layers: Vec<String> = Vec::new();
    let (quantized, measured, detail, half_report) = loop {
        let chosen: Vec<Layer> = layers.iter().filter(|layer| !float_layers.contains(&layer.node)).cloned().collect();
        let mut model = fused.clone();
        let (report, half_report, half_kept) = rewrite(&mut model, &chosen)?;
        let measured = context.measure(&model, output, &report, &chosen, labels.as_deref())?;
        let detail = budget_failure(&options.budget, &measured, reference_accuracy);
        let most_sensitive = measured
            .layers
            .iter()
            .filter(|layer| !float_layers.contains(&layer.layer.node))
            .min_by(|a, b| a.sqnr_db.unwrap_or(f64::INFINITY).total_cmp(&b.sqnr_db.unwrap_or(f64::INFINITY)))
            .map(|layer| layer.layer.node.clone());
        match (detail, most_sensitive) {
            (Some(_), Some(node)) => float_layers.push(node),
            (detail, _) => {
                kept.extend(half_kept);
                break (model, measured, detail, half_report);
            }
        }
    };
    for node in &float_layers {
        let op_type = layers.iter().find(|layer| &layer.node == node).map(|layer| layer.op_type.clone()).unwrap_or_default();
        kept.push(Kept { node: node.clone(), op_type, reason: "kept in float to meet the budget (lowest SQNR)".into() });
    }

    // Quantizing nothing is not a result to pass off as one.
    let nothing_done = match &half_report {
        Some(half) => half.nodes_in_half == 0,
        None => measured.layers.is_empty(),
    };
    let detail = detail.or_else(|| {
        nothing_done.then(|| {
            if half_report.is_some() {
                return "no node can run in half precision".to_string();
            }
            if layers.is_empty() {
                format!("no layer can be quantized: the model has no {} node with a constant weight", QUANTIZABLE.join(", "))
            } else {
                "the budget holds only with every layer in float".to_string()
            }
        })
    });
    let budget_met = detail.is_none();
    let written = budget_met || options.force;
    let after_bytes = if written {
        let saved = whittle_onnx::save(&quantized, output, &SaveOptions::default())?;
        saved.model_bytes + saved.external_data.as_ref().map_or(0, |(_, bytes)| *bytes)
    } else {
        whittle_onnx::to_bytes(&quantized)?.len() as u64
    };
    let latency = |model: &Model, path: &Path| context.latency(model, path);
    let (latency_before, latency_after) = (latency(&original, input)?, latency(&quantized, output)?);
    let mut notes = Vec::new();
    if let (Some(before), Some(after)) = (&latency_before, &latency_after) {
        match options.mode.half_type() {
            None => notes.push(int8_speed_note(after.p50_ms, before.p50_ms)),
            Some(half) if after.p50_ms >= before.p50_ms => notes.push(format!(
                "{half} is not faster than f32 in whittle's runtime here (p50 {:.3} ms vs {:.3} ms): burn-flex's \
                 half-precision kernels are slower than its f32 ones on this CPU; the file is smaller, and GPUs run half natively.",
                after.p50_ms, before.p50_ms
            )),
            Some(_) => {}
        }
    }
    if options.mode == Mode::Bf16 {
        notes.push(
            "bf16 models do not run on ONNX Runtime's CPU provider (1.31 has no bf16 Gemm, MatMul or Conv kernels); \
             they run on its CUDA provider and in whittle's runtime"
                .to_string(),
        );
    }
    Ok(QuantizeReport {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        mode: options.mode,
        qdq: options.qdq,
        method: (options.mode == Mode::Int8Static).then_some(options.method),
        calibration_samples,
        eval_samples: context.samples,
        before: Side {
            file_bytes: before_bytes,
            nodes: original.graph.nodes.len(),
            latency: latency_before,
            accuracy: reference_accuracy,
        },
        after: Side {
            file_bytes: after_bytes,
            nodes: quantized.graph.nodes.len(),
            latency: latency_after,
            accuracy: measured.accuracy,
        },
        outputs: measured.outputs,
        layers: measured.layers,
        half: half_report,
        kept,
        budget: options.budget,
        budget_met,
        budget_detail: detail,
        written,
        notes,
    })
}

/// What the measured p50 latencies say about INT8's speed in whittle's runtime, and why.
fn int8_speed_note(after_ms: f64, before_ms: f64) -> String {
    let ratio = after_ms / before_ms;
    let how = "on burn-flex, with an exact int8 kernel for the CPU (AVX-512 VNNI, AVX2, ARM dot product), whittle's \
               runtime runs each quantized layer as one fused step, and layers that only feed each other as one chain \
               (the activation quantized in the kernel, a u8 x i8 -> i32 product on weights laid out at load: whittle's \
               own VNNI loops for symmetric weights, rten-gemm's exact GEMM for other zero points, whittle's exact \
               vpmaddwd loops on AVX2 CPUs without VNNI, whose products take 2-2.5x VNNI's time; scales, bias and Relu \
               in the same pass); elsewhere it runs the ONNX ops";
    if ratio < 1.0 {
        format!("INT8 runs at {ratio:.2}x fp32's p50 latency in whittle's runtime here ({after_ms:.3} ms vs {before_ms:.3} ms): {how}.")
    } else {
        format!(
            "INT8 is not faster than fp32 in whittle's runtime here (p50 {after_ms:.3} ms vs {before_ms:.3} ms, {ratio:.2}x): {how}, \
             but on a model this small each layer's fixed costs (quantizing its input, allocating and dequantizing its output, \
             the step itself) weigh as much as its product, and the ops between layers (pooling, attention, normalization) \
             run in f32 either way."
        )
    }
}

/// Every `--exclude` entry must name a node or an op type of the model.
fn check_exclude(model: &Model, exclude: &[String]) -> Result<()> {
    for entry in exclude {
        if !model.graph.nodes.iter().any(|node| &node.name == entry || &node.op_type == entry) {
            return Err(PassError::Options { reason: format!("--exclude '{entry}' names no node and no op type of the model") });
        }
    }
    Ok(())
}

fn budget_failure(budget: &Budget, measured: &Measured, reference_accuracy: Option<f64>) -> Option<String> {
    if let Some(min) = budget.min_cosine {
        if let Some(worst) = measured.outputs.iter().find(|fidelity| fidelity.mean_cosine_similarity < min) {
            return Some(format!(
                "output '{}': mean cosine similarity {:.6} is below --min-cosine {min}",
                worst.output, worst.mean_cosine_similarity
            ));
        }
    }
    if let (Some(max_drop), Some(before), Some(after)) = (budget.max_accuracy_drop, reference_accuracy, measured.accuracy) {
        let drop = (before - after) * 100.0;
        if drop > max_drop {
            return Some(format!("accuracy dropped {drop:.2} points, more than --max-accuracy-drop {max_drop}"));
        }
    }
    None
}

/// What one candidate scored.
struct Measured {
    outputs: Vec<Fidelity>,
    layers: Vec<LayerReport>,
    accuracy: Option<f64>,
}

/// The original model's outputs and layer outputs on the evaluation feeds, run once, against which
/// every candidate is measured.
struct Evaluation<'a> {
    feeds: Vec<Vec<(String, Tensor)>>,
    reference: Vec<Vec<(String, Tensor)>>,
    outputs: Vec<String>,
    samples: usize,
    options: &'a QuantizeOptions,
}

impl<'a> Evaluation<'a> {
    fn new(
        original: &Model,
        path: &Path,
        feeds: &[Feed],
        layers: &[Layer],
        options: &'a QuantizeOptions,
    ) -> Result<Evaluation<'a>> {
        let outputs: Vec<String> = original.graph.outputs.iter().map(|output| output.name.clone()).collect();
        let observed = with_layer_outputs(original, layers);
        let session = Session::new(&observed, &options.runtime).map_err(runtime_error(path))?;
        let feeds: Vec<Vec<(String, Tensor)>> =
            feeds.iter().map(|feed| feed.tensors.iter().map(|tensor| (tensor.name.clone(), tensor.clone())).collect()).collect();
        let samples =
            feeds.iter().map(|feed| feed.first().and_then(|(_, t)| t.dims.first()).map_or(1, |&n| n.max(0) as usize)).sum();
        let run = || feeds.iter().map(|feed| session.run(feed.clone()).map_err(runtime_error(path))).collect::<Result<Vec<_>>>();
        let reference = whittle_eval::with_threads(options.threads, run)??;
        Ok(Evaluation { feeds, reference, outputs, samples, options })
    }

    fn reference_accuracy(&self, labels: &[i64]) -> Result<f64> {
        self.accuracy(&self.reference, labels)
    }

    /// Accuracy of the first model output over all feeds.
    fn accuracy(&self, runs: &[Vec<(String, Tensor)>], labels: &[i64]) -> Result<f64> {
        let name = &self.outputs[0];
        let scores: Vec<&Tensor> = runs.iter().filter_map(|run| find(run, name)).collect();
        let mut correct = 0.0;
        let mut offset = 0;
        for tensor in scores {
            let rows = tensor.dims.first().map_or(1, |&n| n.max(0) as usize);
            let slice = labels.get(offset..offset + rows).ok_or_else(|| PassError::Options {
                reason: format!("the labels hold {} entries, fewer than the {} evaluation samples", labels.len(), self.samples),
            })?;
            correct += accuracy(name, tensor, slice).map_err(|err| PassError::Options { reason: err.to_string() })? * rows as f64;
            offset += rows;
        }
        if offset != labels.len() {
            return Err(PassError::Options {
                reason: format!("the labels hold {} entries for {} evaluation samples", labels.len(), offset),
            });
        }
        Ok(if offset == 0 { 0.0 } else { correct / offset as f64 })
    }

    fn measure(
        &self,
        candidate: &Model,
        path: &Path,
        quantized: &[QuantizedLayer],
        layers: &[Layer],
        labels: Option<&[i64]>,
    ) -> Result<Measured> {
        let observed = with_layer_outputs(candidate, layers);
        let session = Session::new(&observed, &self.options.runtime).map_err(runtime_error(path))?;
        let run = || {
            self.feeds
                .iter()
                .map(|feed| session.run(adapt_feed(candidate, feed)).map_err(runtime_error(path)))
                .collect::<Result<Vec<_>>>()
        };
        let runs = whittle_eval::with_threads(self.options.threads, run)??;
        let fidelity = |name: &str| -> Result<Fidelity> {
            let mut accumulator = FidelityAccumulator::new(name);
            for (reference, candidate) in self.reference.iter().zip(&runs) {
                if let (Some(want), Some(got)) = (find(reference, name), find(candidate, name)) {
                    accumulator.add(want, got).map_err(|err| PassError::Options { reason: err.to_string() })?;
                }
            }
            Ok(accumulator.finish())
        };
        let outputs = self.outputs.iter().map(|name| fidelity(name)).collect::<Result<Vec<_>>>()?;
        let layers = quantized
            .iter()
            .zip(layers)
            .map(|(quantized, layer)| {
                let fidelity = fidelity(&layer.output)?;
                Ok(LayerReport {
                    layer: quantized.clone(),
                    output: layer.output.clone(),
                    sqnr_db: fidelity.sqnr_db,
                    mean_cosine_similarity: fidelity.mean_cosine_similarity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let accuracy = labels.map(|labels| self.accuracy(&runs, labels)).transpose()?;
        Ok(Measured { outputs, layers, accuracy })
    }

    fn latency(&self, model: &Model, path: &Path) -> Result<Option<Latency>> {
        let (Some(latency), Some(feed)) = (&self.options.latency, self.feeds.first()) else { return Ok(None) };
        let session = Session::new(model, &self.options.runtime).map_err(runtime_error(path))?;
        let work = || whittle_eval::measure(&session, feed, latency).map_err(runtime_error(path));
        Ok(Some(whittle_eval::with_threads(self.options.threads, work)??))
    }
}

/// The dtype of every value of `model`'s main graph, from one run on `feed` with every node output
/// added as a graph output.
fn observed_types(model: &Model, path: &Path, feed: &Feed, options: &QuantizeOptions) -> Result<BTreeMap<String, DataType>> {
    let mut observed = model.clone();
    let present: Vec<String> = observed.graph.outputs.iter().map(|output| output.name.clone()).collect();
    let values: Vec<String> =
        observed.graph.nodes.iter().flat_map(|node| node.outputs.iter()).filter(|o| !o.is_empty()).cloned().collect();
    for value in values.iter().filter(|value| !present.contains(value)) {
        observed.graph.outputs.push(ValueInfo::new(value.clone(), None));
    }
    let session = Session::new(&observed, &options.runtime).map_err(runtime_error(path))?;
    let feed: Vec<(String, Tensor)> = feed.tensors.iter().map(|tensor| (tensor.name.clone(), tensor.clone())).collect();
    let mut types: BTreeMap<String, DataType> = feed.iter().map(|(name, tensor)| (name.clone(), tensor.dtype)).collect();
    let outputs = session.run_values(feed).map_err(runtime_error(path))?;
    for (name, value) in outputs {
        if let whittle_ir::HostValue::Tensor(tensor) = value {
            types.insert(name, tensor.dtype);
        }
    }
    Ok(types)
}

/// `feed` in the dtypes `model` declares for its inputs: f32 data for a model whose inputs were
/// moved to half precision is rounded to it.
fn adapt_feed(model: &Model, feed: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    feed.iter()
        .map(|(name, tensor)| {
            let declared =
                model.graph.inputs.iter().find(|input| &input.name == name).and_then(|input| input.ty.as_ref()?.as_tensor());
            match declared {
                Some((dtype @ (DataType::F16 | DataType::BF16), _)) if tensor.dtype == DataType::F32 => {
                    (name.clone(), half::to_half_tensor(tensor, name, dtype))
                }
                _ => (name.clone(), tensor.clone()),
            }
        })
        .collect()
}

/// `model` with every layer's output added as a graph output, so one run gives all of them.
fn with_layer_outputs(model: &Model, layers: &[Layer]) -> Model {
    let mut observed = model.clone();
    for layer in layers {
        let present = observed.graph.outputs.iter().any(|output| output.name == layer.output);
        let produced = observed.graph.nodes.iter().any(|node| node.outputs.contains(&layer.output));
        if !present && produced {
            observed.graph.outputs.push(ValueInfo::new(layer.output.clone(), None));
        }
    }
    observed
}

fn find<'t>(run: &'t [(String, Tensor)], name: &str) -> Option<&'t Tensor> {
    run.iter().find(|(output, _)| output == name).map(|(_, tensor)| tensor)
}

impl QuantizeReport {
    /// The report as Markdown tables: before/after, outputs, layers, what stayed in float.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let verdict = match (&self.budget_detail, self.written) {
            (None, _) => format!("written to `{}`", self.output.display()),
            (Some(detail), true) => format!("**budget not met** ({detail}); written anyway (--force)"),
            (Some(detail), false) => format!("**budget not met** ({detail}); nothing written"),
        };
        let _ = writeln!(out, "# whittle quantize: `{}`\n\n{verdict}\n", self.input.display());
        let mode = serde_json::to_value(self.mode).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let scheme = match &self.half {
            Some(half) => format!(
                "{} nodes in half precision, {} initializers converted, {} casts added",
                half.nodes_in_half, half.initializers_converted, half.casts_added
            ),
            None => format!(
                "weights {} {} {}, activations {} {}, {}",
                self.qdq.weight_type.name(),
                if self.qdq.weight_symmetric { "symmetric" } else { "asymmetric" },
                if self.qdq.per_channel { "per channel" } else { "per tensor" },
                self.qdq.activation_type.name(),
                if self.qdq.activation_symmetric { "symmetric" } else { "asymmetric" },
                match self.method {
                    Some(method) => format!("calibration {} on {} samples", method_name(method), self.calibration_samples),
                    None => "ranges computed at run time".to_string(),
                },
            ),
        };
        let _ = writeln!(out, "mode {mode}, {scheme}, measured on {} samples\n", self.eval_samples);
        let _ = writeln!(out, "| | before | after |\n| --- | ---: | ---: |");
        let _ = writeln!(
            out,
            "| size | {} | {} |",
            whittle_eval::human_bytes(self.before.file_bytes),
            whittle_eval::human_bytes(self.after.file_bytes)
        );
        let _ = writeln!(out, "| nodes | {} | {} |", self.before.nodes, self.after.nodes);
        if let (Some(a), Some(b)) = (&self.before.latency, &self.after.latency) {
            let _ = writeln!(out, "| latency p50 | {:.3} ms | {:.3} ms |", a.p50_ms, b.p50_ms);
            let _ = writeln!(out, "| latency p90 | {:.3} ms | {:.3} ms |", a.p90_ms, b.p90_ms);
        }
        if let (Some(a), Some(b)) = (self.before.accuracy, self.after.accuracy) {
            let _ = writeln!(out, "| accuracy | {:.2}% | {:.2}% |", a * 100.0, b * 100.0);
        }
        let _ = writeln!(
            out,
            "\n| output | max abs error | mean cosine | top-1 agreement | SQNR |\n| --- | ---: | ---: | ---: | ---: |"
        );
        for fidelity in &self.outputs {
            let top1 = fidelity.top1_agreement.map_or_else(|| "-".to_string(), |a| format!("{:.2}%", a * 100.0));
            let _ = writeln!(
                out,
                "| `{}` | {:.3e} | {:.6} | {top1} | {} |",
                fidelity.output,
                fidelity.max_abs_error,
                fidelity.mean_cosine_similarity,
                db(fidelity.sqnr_db)
            );
        }
        if !self.layers.is_empty() {
            let _ = writeln!(out, "\n| quantized layer | op | input scale | zero point | weight scales | int32 bias | output SQNR | output cosine |\n| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |");
            for layer in &self.layers {
                let q = &layer.layer;
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} | {} | {:.6} |",
                    q.node,
                    q.op_type,
                    q.input_scale.map_or_else(|| "dynamic".to_string(), |scale| format!("{scale:.4e}")),
                    q.input_zero_point.map_or_else(|| "dynamic".to_string(), |zero| zero.to_string()),
                    q.weight_scales,
                    if q.bias_quantized { "yes" } else { "no" },
                    db(layer.sqnr_db),
                    layer.mean_cosine_similarity
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        if !self.kept.is_empty() {
            let _ = writeln!(out, "\n| kept in float | op | why |\n| --- | --- | --- |");
            for kept in &self.kept {
                let _ = writeln!(out, "| `{}` | {} | {} |", kept.node, kept.op_type, kept.reason);
            }
        }
        out
    }
}

fn db(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |db| format!("{db:.1} dB"))
}

fn method_name(method: CalibrationMethod) -> String {
    match method {
        CalibrationMethod::MinMax => "minmax".into(),
        CalibrationMethod::Percentile(p) => format!("percentile:{p}"),
        CalibrationMethod::Entropy => "entropy".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::int8_speed_note;

    #[test]
    fn the_int8_speed_note_follows_the_measured_latencies() {
        let faster = int8_speed_note(0.05, 0.1);
        assert!(
            faster.starts_with("INT8 runs at 0.50x fp32's p50 latency in whittle's runtime here (0.050 ms vs 0.100 ms)"),
            "{faster}"
        );
        let slower = int8_speed_note(0.12, 0.1);
        assert!(
            slower.starts_with("INT8 is not faster than fp32 in whittle's runtime here (p50 0.120 ms vs 0.100 ms, 1.20x)"),
            "{slower}"
        );
        assert!(slower.contains("fixed costs"), "{slower}");
    }
}
