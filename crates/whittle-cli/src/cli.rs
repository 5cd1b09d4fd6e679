//! Command-line syntax: clap types only. Validation and defaults that need thought live in `settings`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// whittle makes trained neural networks smaller and faster before they are deployed.
#[derive(Debug, Parser)]
#[command(name = "whittle", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a model's interface, opsets, operators and parameters.
    Inspect(InspectArgs),
    /// Re-save a model: normalise its tensors, or move initializers to (or from) an external data file.
    Convert(ConvertArgs),
    /// Run a model once on inputs from files and summarise or save its outputs.
    Run(RunArgs),
    /// Measure a model's latency (mean, p50, p90, p99), throughput and peak memory.
    Bench(BenchArgs),
    /// Run two models on the same data and report fidelity, accuracy, size and latency side by side.
    Compare(CompareArgs),
    /// Quantize a model (INT8 QDQ with calibrated activations), measure it against the original and
    /// write it when it meets the budget.
    Quantize(QuantizeArgs),
    /// Fuse operators and clean the graph up; write the model only if its outputs stay within tolerance.
    Fuse(FuseArgs),
}

#[derive(Debug, clap::Args)]
pub struct FuseArgs {
    /// The ONNX model to fuse.
    pub model: PathBuf,
    /// Where to write the fused model; it must not be the input.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Run only these passes of the default pipeline (cleanup, fuse-conv, fuse-matmul, fuse-patterns,
    /// fuse-attention).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub passes: Option<Vec<String>>,
    /// Leave these passes out.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub disable: Vec<String>,
    /// The opset fused forms may use (Gelu needs 20, Attention 23); the model is moved there when it is older.
    #[arg(long, value_name = "N")]
    pub target_opset: Option<i64>,
    /// Change only these nodes: node names or op types.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub include: Vec<String>,
    /// Never change these nodes: node names or op types.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub exclude: Vec<String>,
    /// The largest tensor constant folding may create, in bytes.
    #[arg(long, default_value_t = whittle_passes::DEFAULT_FOLD_MAX_BYTES, value_name = "BYTES")]
    pub fold_max_bytes: usize,
    /// The size of a symbolic batch axis in the generated check inputs.
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How commands that run two models side by side (`compare`, `fuse`) run and time them.
#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    /// Threads for every kernel (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Timed runs of each model for latency, on the first feed; 0 skips latency.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub iters: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub warmup: usize,
    /// The device to run on: `cpu` (burn-flex), or a backend this build has (`ndarray`, `wgpu` with
    /// their cargo features).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The ONNX model to measure.
    pub model: PathBuf,
    /// Threads for every kernel (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub warmup: usize,
    /// Timed runs (default 50 unless --seconds is given).
    #[arg(long, value_name = "N", conflicts_with = "seconds")]
    pub iters: Option<usize>,
    /// Time runs for this many seconds instead of a fixed count.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Batch size: the size of a symbolic first axis, or the samples per feed taken from --data.
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// A shape for an input with symbolic dimensions, as NAME=DIMS (`input=1x3x224x224`); repeatable.
    #[arg(long = "shape", value_name = "NAME=DIMS")]
    pub shapes: Vec<String>,
    /// Measure on the first feed of this data (.npz or folder) instead of generated inputs.
    #[arg(long, value_name = "DATA", conflicts_with = "shapes")]
    pub data: Option<PathBuf>,
    /// The device to run on: `cpu` (burn-flex), or a backend this build has (`ndarray`, `wgpu` with
    /// their cargo features).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Also time every step and print where the time goes, per op type and for the slowest nodes.
    #[arg(long)]
    pub profile: bool,
    /// The integer kernels of a quantized model's fused int8 layers: the best this CPU has, or
    /// the AVX2 ones alone, to measure on a CPU with AVX512-VNNI what one without it gets.
    #[arg(long, value_enum, default_value_t = Int8KernelsArg::Best)]
    pub int8_kernels: Int8KernelsArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Int8KernelsArg {
    Best,
    Avx2,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The reference model (the original).
    pub reference: PathBuf,
    /// The candidate model (the optimized one).
    pub candidate: PathBuf,
    /// Inputs: a .npz keyed by input name with samples along axis 0, or a folder of .npz files and
    /// ONNX test_data_set_* folders.
    #[arg(long, value_name = "DATA")]
    pub data: PathBuf,
    /// Class ids, one per sample (.npy), for task accuracy.
    #[arg(long, value_name = "LABELS.npy")]
    pub labels: Option<PathBuf>,
    /// Samples per run when the data is one .npz and the batch axis is symbolic (default 1).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as Markdown (the default output is the same tables).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The ONNX model to quantize.
    pub model: PathBuf,
    /// Where to write the quantized model.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// What to produce: int8-static (QuantizeLinear/DequantizeLinear pairs, activations calibrated),
    /// int8-dynamic (weights ahead, activations at run time: MatMulInteger / ConvInteger), fp16 or
    /// bf16 (initializers and computation in half precision, unsafe ops kept f32).
    #[arg(long, value_name = "MODE")]
    pub mode: String,
    /// Calibration inputs (.npz keyed by input name, or a folder), run through whittle's runtime;
    /// int8-static needs them.
    #[arg(long, value_name = "DATA")]
    pub calib_data: Option<PathBuf>,
    /// How activation ranges are chosen: minmax, percentile:<p> (e.g. percentile:99.99) or entropy.
    #[arg(long, default_value = "minmax", value_name = "METHOD")]
    pub calib_method: String,
    /// Data the result is measured on (default: the calibration data).
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// Class ids of --data (or of the calibration data), one per sample (.npy), for accuracy.
    #[arg(long, value_name = "LABELS.npy")]
    pub labels: Option<PathBuf>,
    /// One weight scale per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Weight type: i8 (default) or u8.
    #[arg(long, default_value = "i8", value_name = "TYPE")]
    pub weight_type: String,
    /// Activation type: u8 (default) or i8.
    #[arg(long, default_value = "u8", value_name = "TYPE")]
    pub activation_type: String,
    /// Weights with a zero point fitted to their range instead of symmetric around 0.
    #[arg(long)]
    pub weight_asymmetric: bool,
    /// Activations symmetric around 0 instead of fitted to their range.
    #[arg(long)]
    pub activation_symmetric: bool,
    /// Node names or op types to keep in float (comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub exclude: Vec<String>,
    /// Lowest mean cosine similarity of every output to the original's; the most sensitive layers
    /// stay in float until it holds.
    #[arg(long, value_name = "X")]
    pub min_cosine: Option<f64>,
    /// Most accuracy the model may lose, in percentage points (needs --labels).
    #[arg(long, value_name = "POINTS")]
    pub max_accuracy_drop: Option<f64>,
    /// Write the model even when the budget does not hold (the exit code still says so).
    #[arg(long)]
    pub force: bool,
    /// fp16/bf16: make the model's inputs and outputs half precision too (default: they stay f32,
    /// with Casts at the boundary).
    #[arg(long)]
    pub half_io: bool,
    /// Samples per run when the data is one .npz and the batch axis is symbolic (default 1).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The ONNX model to run.
    pub model: PathBuf,
    /// An input: `NAME=FILE` with a .npy, .npz or ONNX .pb file; a bare .npz feeds every input its
    /// arrays are named after, and a bare file feeds a model's only input.
    #[arg(short, long = "input", value_name = "NAME=FILE", required = true)]
    pub inputs: Vec<String>,
    /// Write every output to this .npz, keyed by output name.
    #[arg(short, long, value_name = "OUT.npz")]
    pub output: Option<PathBuf>,
    /// The device to run on: `cpu` (burn-flex), or a backend this build has (`ndarray`, `wgpu` with
    /// their cargo features).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Print the output summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The ONNX model to read.
    pub model: PathBuf,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the whole graph in whittle's text form.
    #[arg(long)]
    pub graph: bool,
    /// How many of the largest initializers to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub largest: usize,
}

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The ONNX model to read.
    pub model: PathBuf,
    /// Where to write the model; it must not be the input.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Where initializers go: inline unless over 2 GiB (`auto`), to `<OUT>.data` (`always`), or inline (`never`).
    #[arg(long, value_enum, default_value_t = ExternalDataArg::Auto, value_name = "WHEN")]
    pub external_data: ExternalDataArg,
    /// With external data, initializers smaller than this many bytes stay inline.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    pub external_min_bytes: usize,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExternalDataArg {
    Auto,
    Always,
    Never,
}
