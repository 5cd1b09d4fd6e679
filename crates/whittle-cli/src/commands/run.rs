//! `whittle run`: one run of a model on inputs from files; a summary of each output, or all of them
//! written to a `.npz`.

use std::fmt::Write;

use anyhow::Context;
use serde::Serialize;
use whittle_ir::Tensor;
use whittle_runtime::Session;

use super::load_model;
use crate::cli::RunArgs;
use crate::settings;

/// How many leading values of each output the summary shows.
const SHOWN_VALUES: usize = 6;

#[derive(Serialize)]
struct OutputSummary {
    name: String,
    dtype: String,
    shape: Vec<i64>,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    first_values: Vec<f64>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let loaded = load_model(&args.model)?;
    let inputs: Vec<_> = loaded.model.graph.feed_inputs().cloned().collect();
    let feeds = settings::run_feeds(&args.inputs, &inputs)?;
    let session = Session::new(&loaded.model, &settings::runtime_options(&args.device)?)
        .with_context(|| args.model.display().to_string())?;
    let outputs = session.run(feeds).with_context(|| args.model.display().to_string())?;
    if let Some(path) = &args.output {
        whittle_onnx::check_not_input(&args.model, path)?;
        let tensors: Vec<Tensor> = outputs.iter().map(|(name, tensor)| Tensor { name: name.clone(), ..tensor.clone() }).collect();
        whittle_data::write_npz(path, &tensors)?;
        eprintln!("wrote {} outputs to {}", tensors.len(), path.display());
    }
    let summaries: Vec<OutputSummary> = outputs.iter().map(|(name, tensor)| summarize(name, tensor)).collect();
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&summaries)?))?;
    } else if args.output.is_none() {
        super::emit(&table(&summaries))?;
    }
    Ok(())
}

fn summarize(name: &str, tensor: &Tensor) -> OutputSummary {
    let values = whittle_metrics::to_f64(tensor).unwrap_or_default();
    let finite = values.iter().copied().filter(|value| value.is_finite());
    OutputSummary {
        name: name.to_string(),
        dtype: tensor.dtype.name(),
        shape: tensor.dims.clone(),
        min: finite.clone().reduce(f64::min),
        max: finite.clone().reduce(f64::max),
        mean: (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64),
        first_values: values.iter().take(SHOWN_VALUES).copied().collect(),
    }
}

fn table(summaries: &[OutputSummary]) -> String {
    let mut out = String::new();
    let width = summaries.iter().map(|summary| summary.name.len()).max().unwrap_or(0);
    for summary in summaries {
        let dims: Vec<String> = summary.shape.iter().map(i64::to_string).collect();
        let ty = format!("{}[{}]", summary.dtype, dims.join(","));
        let number = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"));
        let first: Vec<String> = summary.first_values.iter().map(|v| format!("{v:.6}")).collect();
        let _ = writeln!(
            out,
            "{:<width$}  {ty:<16}  min {}  max {}  mean {}  [{}{}]",
            summary.name,
            number(summary.min),
            number(summary.max),
            number(summary.mean),
            first.join(", "),
            if summary.first_values.len() < summary.shape.iter().product::<i64>() as usize { ", ..." } else { "" }
        );
    }
    out
}
