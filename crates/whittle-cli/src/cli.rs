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
