//! `whittle bench`: latency percentiles, throughput and peak memory of one model.

use crate::cli::BenchArgs;
use crate::settings;

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (data, options) = settings::bench(args)?;
    let report = whittle_eval::bench(&args.model, &data, &options)?;
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::emit(&report.to_text())?;
    }
    Ok(())
}
