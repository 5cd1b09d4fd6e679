//! `whittle inspect`: a model's interface, opsets, op histogram and parameters, as a table or JSON.

use std::fmt::Write;

use serde::Serialize;
use whittle_ir::ModelSummary;

use super::{human_bytes, load_model};
use crate::cli::InspectArgs;

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    file_bytes: u64,
    #[serde(flatten)]
    summary: &'a ModelSummary,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    graph: Option<String>,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let loaded = load_model(&args.model)?;
    let file_bytes = std::fs::metadata(&args.model)?.len();
    let summary = ModelSummary::new(&loaded.model, args.largest);
    let graph = args.graph.then(|| loaded.model.to_string());
    if args.json {
        let report =
            Report { file: args.model.display().to_string(), file_bytes, summary: &summary, warnings: &loaded.warnings, graph };
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else if let Some(graph) = graph {
        super::emit(&graph)?;
    } else {
        super::emit(&table(&args.model.display().to_string(), file_bytes, &summary))?;
    }
    Ok(())
}

fn table(file: &str, file_bytes: u64, summary: &ModelSummary) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}{value}");
    };
    row("model", format!("{file} ({})", human_bytes(file_bytes)));
    let producer = if summary.producer.is_empty() { String::new() } else { format!(", producer {}", summary.producer) };
    row("ir", format!("version {}{producer}", summary.ir_version));
    row("opsets", summary.opsets.iter().map(|(domain, version)| format!("{domain} {version}")).collect::<Vec<_>>().join(", "));
    let width = summary.inputs.iter().chain(&summary.outputs).map(|value| value.name.len()).max().unwrap_or(0);
    for (label, values) in [("inputs", &summary.inputs), ("outputs", &summary.outputs)] {
        if values.is_empty() {
            row(label, "none".into());
        }
        for (index, value) in values.iter().enumerate() {
            row(if index == 0 { label } else { "" }, format!("{:<width$}  {}", value.name, value.ty));
        }
    }
    row("nodes", format!("{} ({} subgraphs, {} functions)", summary.node_count, summary.subgraph_count, summary.function_count));
    for (index, (domain, ops)) in summary.op_histogram.iter().enumerate() {
        let mut ops: Vec<(&String, &usize)> = ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let ops: Vec<String> = ops.iter().map(|(op, count)| format!("{op} {count}")).collect();
        row(if index == 0 { "ops" } else { "" }, format!("{domain}: {}", ops.join(", ")));
    }
    let per_type: Vec<String> = summary
        .parameters
        .iter()
        .map(|(dtype, count)| format!("{dtype} {} ({})", count.elements, human_bytes(count.bytes)))
        .collect();
    let detail = if per_type.is_empty() { String::new() } else { format!(": {}", per_type.join(", ")) };
    row("params", format!("{} ({}){detail}", summary.parameter_count, human_bytes(summary.parameter_bytes)));
    let width = summary.largest_initializers.iter().map(|init| init.name.len()).max().unwrap_or(0);
    for (index, init) in summary.largest_initializers.iter().enumerate() {
        let dims: Vec<String> = init.dims.iter().map(i64::to_string).collect();
        let shape = format!("{}[{}]", init.dtype, dims.join(","));
        row(if index == 0 { "largest" } else { "" }, format!("{:<width$}  {shape:<20}  {}", init.name, human_bytes(init.bytes)));
    }
    for (index, (key, value)) in summary.metadata.iter().enumerate() {
        row(if index == 0 { "metadata" } else { "" }, format!("{key} = {value}"));
    }
    out
}
