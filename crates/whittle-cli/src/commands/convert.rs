//! `whittle convert`: load and save a model, choosing where its initializers live.

use serde::Serialize;

use super::{human_bytes, load_model};
use crate::cli::ConvertArgs;
use crate::settings;

#[derive(Serialize)]
struct Report {
    input: String,
    output: String,
    input_bytes: u64,
    output_bytes: u64,
    external_data: Option<String>,
    external_data_bytes: u64,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    whittle_onnx::check_not_input(&args.model, &args.output)?;
    let options = settings::save_options(args);
    let loaded = load_model(&args.model)?;
    let saved = whittle_onnx::save(&loaded.model, &args.output, &options)?;
    let report = Report {
        input: args.model.display().to_string(),
        output: args.output.display().to_string(),
        input_bytes: std::fs::metadata(&args.model)?.len(),
        output_bytes: saved.model_bytes,
        external_data: saved.external_data.as_ref().map(|(path, _)| path.display().to_string()),
        external_data_bytes: saved.external_data.as_ref().map_or(0, |(_, bytes)| *bytes),
    };
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        let mut text = format!("wrote {} ({})\n", report.output, human_bytes(report.output_bytes));
        if let Some(data) = &report.external_data {
            text.push_str(&format!("wrote {data} ({})\n", human_bytes(report.external_data_bytes)));
        }
        super::emit(&text)?;
    }
    Ok(())
}
