//! `whittle quantize`: quantize, measure against the original, write when the budget holds.

use anyhow::bail;

use crate::cli::QuantizeArgs;
use crate::settings;

pub fn run(args: &QuantizeArgs) -> anyhow::Result<()> {
    let options = settings::quantize(args)?;
    eprintln!("quantizing {} ({})", args.model.display(), args.mode);
    let report = whittle_passes::quantize::quantize(&args.model, &args.output, &options)?;
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::emit(&report.to_markdown())?;
    }
    match (&report.budget_detail, report.written) {
        (None, _) => Ok(()),
        (Some(detail), true) => bail!("the budget does not hold ({detail}); written anyway because of --force"),
        (Some(detail), false) => bail!("the budget does not hold ({detail}); nothing was written (--force writes it anyway)"),
    }
}
