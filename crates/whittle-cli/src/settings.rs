//! Settings resolved from the command line: flags combined and checked before any work starts.

use std::path::Path;

use anyhow::{bail, Context};
use whittle_ir::{Tensor, ValueInfo};
use whittle_onnx::{ExternalData, SaveOptions};

use whittle_data::Batching;
use whittle_eval::{BenchData, BenchOptions, Budget, CompareOptions, InputShapes, LatencyOptions};
use whittle_passes::quantize::{Budget as QuantizeBudget, CalibrationMethod, Mode, QdqOptions, QuantType, QuantizeOptions};
use whittle_runtime::{Backend, Int8Kernels, RuntimeOptions};

use crate::cli::{BenchArgs, CompareArgs, ConvertArgs, ExternalDataArg, FuseArgs, Int8KernelsArg, MeasureArgs, QuantizeArgs};

/// How `convert` saves, from its flags.
pub fn save_options(args: &ConvertArgs) -> SaveOptions {
    let external_data = match args.external_data {
        ExternalDataArg::Auto => ExternalData::Auto,
        ExternalDataArg::Always => ExternalData::Always { min_bytes: args.external_min_bytes },
        ExternalDataArg::Never => ExternalData::Never,
    };
    SaveOptions { external_data }
}

/// The feed of `run`: `--input NAME=FILE` arguments resolved against the model's feed inputs.
pub fn run_feeds(arguments: &[String], inputs: &[ValueInfo]) -> anyhow::Result<Vec<(String, Tensor)>> {
    let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    let mut feeds: Vec<(String, Tensor)> = Vec::new();
    let mut add = |name: String, tensor: Tensor| -> anyhow::Result<()> {
        if !names.contains(&name.as_str()) {
            bail!("'{name}' is not an input of the model (inputs: {})", names.join(", "));
        }
        if feeds.iter().any(|(fed, _)| *fed == name) {
            bail!("input '{name}' is given twice");
        }
        feeds.push((name, tensor));
        Ok(())
    };
    for argument in arguments {
        match argument.split_once('=') {
            Some((name, file)) => {
                let path = Path::new(file);
                let mut arrays = whittle_data::read_arrays(path)?;
                // A .npz for one input: its only array, or the array named after the input.
                let index = match arrays.iter().position(|array| array.name == name) {
                    Some(index) => index,
                    None if arrays.len() == 1 => 0,
                    None => bail!("{}: no array named '{name}' among {} arrays", path.display(), arrays.len()),
                };
                add(name.to_string(), arrays.swap_remove(index))?;
            }
            None => {
                let path = Path::new(argument);
                let arrays = whittle_data::read_arrays(path)?;
                let is_archive = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("npz"));
                if is_archive {
                    for array in arrays {
                        let name = array.name.clone();
                        add(name, array).with_context(|| path.display().to_string())?;
                    }
                } else if let ([array], [only]) = (arrays.as_slice(), names.as_slice()) {
                    add(only.to_string(), array.clone())?;
                } else {
                    bail!(
                        "{}: name the input it feeds, as NAME={} (inputs: {})",
                        path.display(),
                        path.display(),
                        names.join(", ")
                    );
                }
            }
        }
    }
    let missing: Vec<&str> = names.iter().copied().filter(|name| !feeds.iter().any(|(fed, _)| fed == name)).collect();
    if !missing.is_empty() {
        bail!("no data for input(s) {}: give --input NAME=FILE for each", missing.join(", "));
    }
    Ok(feeds)
}

/// The runtime for `--device NAME`.
pub fn runtime_options(device: &str) -> anyhow::Result<RuntimeOptions> {
    match Backend::from_name(device) {
        Some(backend) => Ok(RuntimeOptions::new(backend)),
        None => {
            let available: Vec<&str> = Backend::available().iter().map(|backend| backend.name()).collect();
            match Backend::feature_for(device) {
                Some(feature) => bail!(
                    "device '{device}' is not in this build: it needs a build with `--features {feature}` (available: cpu, {})",
                    available.join(", ")
                ),
                None => bail!("device '{device}' is not in this build (available: cpu, {})", available.join(", ")),
            }
        }
    }
}

/// `--shape NAME=1x3x224x224` arguments.
fn input_shapes(arguments: &[String], batch: Option<usize>) -> anyhow::Result<InputShapes> {
    let mut shapes = InputShapes { batch: batch.map(|batch| batch as i64), ..InputShapes::default() };
    for argument in arguments {
        let Some((name, dims)) = argument.split_once('=') else {
            bail!("--shape '{argument}' is not NAME=DIMS (for example input=1x3x224x224)");
        };
        let sizes = dims
            .split('x')
            .map(|size| size.trim().parse::<i64>().ok().filter(|&size| size >= 0))
            .collect::<Option<Vec<i64>>>()
            .with_context(|| format!("--shape '{argument}': '{dims}' is not sizes separated by x"))?;
        if shapes.by_input.insert(name.to_string(), sizes).is_some() {
            bail!("--shape gives input '{name}' twice");
        }
    }
    Ok(shapes)
}

fn batching(batch: Option<usize>) -> anyhow::Result<Batching> {
    match batch {
        Some(0) => bail!("--batch must be 1 or more"),
        Some(batch) => Ok(Batching::Samples(batch)),
        None => Ok(Batching::Model),
    }
}

/// What `bench` measures and how, from its flags.
pub fn bench(args: &BenchArgs) -> anyhow::Result<(BenchData, BenchOptions)> {
    let budget = match (args.iters, args.seconds) {
        (Some(0), _) => bail!("--iters must be 1 or more"),
        (Some(iterations), _) => Budget::Iterations(iterations),
        (None, Some(seconds)) if !(seconds > 0.0 && seconds.is_finite()) => bail!("--seconds must be positive, got {seconds}"),
        (None, Some(seconds)) => Budget::Seconds(seconds),
        (None, None) => Budget::Iterations(50),
    };
    let data = match &args.data {
        Some(path) => BenchData::File { path: path.clone(), batching: batching(args.batch)? },
        None => BenchData::Synthetic(input_shapes(&args.shapes, args.batch)?),
    };
    let options = BenchOptions {
        runtime: runtime_options(&args.device)?.with_int8_kernels(match args.int8_kernels {
            Int8KernelsArg::Best => Int8Kernels::Best,
            Int8KernelsArg::Avx2 => Int8Kernels::Avx2,
        }),
        threads: args.threads,
        latency: LatencyOptions { warmup: args.warmup, budget },
        // As many profiled runs as timed ones, within reason: a step's median needs a few runs, not
        // thousands.
        profile_runs: args.profile.then(|| match budget {
            Budget::Iterations(count) => count.clamp(1, 200),
            Budget::Seconds(_) => 100,
        }),
    };
    Ok((data, options))
}

/// `--iters` timed runs after `--warmup` untimed ones; none for `--iters 0`.
fn latency(args: &MeasureArgs) -> Option<LatencyOptions> {
    (args.iters > 0).then_some(LatencyOptions { warmup: args.warmup, budget: Budget::Iterations(args.iters) })
}

/// How `compare` runs, from its flags.
pub fn compare(args: &CompareArgs) -> anyhow::Result<CompareOptions> {
    Ok(CompareOptions {
        runtime: runtime_options(&args.measure.device)?,
        latency: latency(&args.measure),
        threads: args.measure.threads,
        batching: batching(args.batch)?,
    })
}

/// `--weight-type` / `--activation-type`.
fn quant_type(flag: &str, name: &str) -> anyhow::Result<QuantType> {
    match name {
        "u8" => Ok(QuantType::U8),
        "i8" => Ok(QuantType::I8),
        _ => bail!("{flag} '{name}' is not u8 or i8"),
    }
}

/// How `quantize` runs, from its flags.
pub fn quantize(args: &QuantizeArgs) -> anyhow::Result<QuantizeOptions> {
    let mut options = QuantizeOptions::new(Mode::from_name(&args.mode)?, args.calib_data.clone());
    options.method = args.calib_method.parse::<CalibrationMethod>().with_context(|| "--calib-method".to_string())?;
    options.qdq = QdqOptions {
        weight_type: quant_type("--weight-type", &args.weight_type)?,
        weight_symmetric: !args.weight_asymmetric,
        per_channel: !args.per_tensor,
        activation_type: quant_type("--activation-type", &args.activation_type)?,
        activation_symmetric: args.activation_symmetric,
    };
    if let Some(min) = args.min_cosine.filter(|min| !(-1.0..=1.0).contains(min)) {
        bail!("--min-cosine must be within [-1, 1], got {min}");
    }
    if let Some(drop) = args.max_accuracy_drop.filter(|drop| drop.is_nan() || *drop < 0.0) {
        bail!("--max-accuracy-drop must be 0 or more points, got {drop}");
    }
    options.eval_data = args.data.clone();
    options.labels = args.labels.clone();
    options.exclude = args.exclude.clone();
    options.budget = QuantizeBudget { min_cosine: args.min_cosine, max_accuracy_drop: args.max_accuracy_drop };
    options.force = args.force;
    options.keep_io_types = !args.half_io;
    options.batching = batching(args.batch)?;
    options.runtime = runtime_options(&args.measure.device)?;
    options.threads = args.measure.threads;
    options.latency = latency(&args.measure);
    Ok(options)
}

/// What `fuse` runs and how it checks, from its flags.
pub fn fuse(args: &FuseArgs) -> anyhow::Result<whittle_passes::FuseOptions> {
    if args.batch == Some(0) {
        bail!("--batch must be 1 or more");
    }
    Ok(whittle_passes::FuseOptions {
        passes: args.passes.clone(),
        disable: args.disable.clone(),
        target_opset: args.target_opset,
        filter: whittle_passes::NodeFilter { include: args.include.clone(), exclude: args.exclude.clone() },
        fold_max_bytes: args.fold_max_bytes,
        runtime: runtime_options(&args.measure.device)?,
        batch: args.batch.map(|batch| batch as i64),
        latency: latency(&args.measure),
        threads: args.measure.threads,
    })
}
