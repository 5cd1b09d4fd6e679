//! `whittle compare`: two models on the same data, side by side.

use crate::cli::CompareArgs;
use crate::settings;

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let options = settings::compare(args)?;
    eprintln!("running {} and {} on {}", args.reference.display(), args.candidate.display(), args.data.display());
    let report = whittle_eval::compare(&args.reference, &args.candidate, &args.data, args.labels.as_deref(), &options)?;
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::emit(&report.to_markdown())?;
    }
    Ok(())
}
