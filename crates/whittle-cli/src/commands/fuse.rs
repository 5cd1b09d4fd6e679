//! `whittle fuse`: fuse and clean up a model, check it against the original, write it if it holds.

use std::collections::BTreeSet;
use std::fmt::Write;

use anyhow::bail;
use whittle_passes::FuseReport;

use super::human_bytes;
use crate::cli::FuseArgs;
use crate::settings;

pub fn run(args: &FuseArgs) -> anyhow::Result<()> {
    let options = settings::fuse(args)?;
    let report = whittle_passes::fuse(&args.model, &args.output, &options)?;
    for run in report.passes.iter().filter(|run| !run.converged) {
        eprintln!("warning: pass '{}' stopped after {} sweeps without reaching a fixed point", run.pass, run.sweeps);
    }
    if args.json {
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::emit(&markdown(&report))?;
    }
    if !report.within_tolerance {
        let worst =
            report.deviations.iter().filter(|deviation| !deviation.within_tolerance).filter_map(|d| d.detail.clone()).next();
        bail!(
            "{}: the fused model moves outputs beyond its tolerance ({}): {}; nothing was written",
            args.model.display(),
            report.tolerance,
            worst.unwrap_or_default()
        );
    }
    Ok(())
}

fn latency(stats: &whittle_passes::ModelStats) -> String {
    stats.latency.as_ref().map_or_else(|| "-".into(), |latency| format!("{:.3} ms", latency.p50_ms))
}

fn markdown(report: &FuseReport) -> String {
    let mut out = String::new();
    let (before, after) = (&report.before, &report.after);
    let verb = if report.written { "wrote" } else { "did not write" };
    let _ = writeln!(out, "# whittle fuse: {} ({verb} {})\n", report.input.display(), report.output.display());
    let _ = writeln!(out, "| | before | after |\n| --- | ---: | ---: |");
    let _ = writeln!(out, "| nodes | {} | {} |", before.nodes, after.nodes);
    let _ = writeln!(out, "| file size | {} | {} |", human_bytes(before.file_bytes), human_bytes(after.file_bytes));
    let _ = writeln!(out, "| latency p50 | {} | {} |", latency(before), latency(after));
    let _ = writeln!(out, "| opset | {} | {} |", before.opset, after.opset);
    let threads = report.threads.map_or_else(|| "all cores".to_string(), |threads| threads.to_string());
    let _ = writeln!(out, "\nLatency in whittle's runtime, threads: {threads}.\n\n## Nodes per op\n\n| op | before | after |\n| --- | ---: | ---: |");
    let ops: BTreeSet<&String> = before.ops.keys().chain(after.ops.keys()).collect();
    for op in ops {
        let count = |stats: &whittle_passes::ModelStats| stats.ops.get(op).copied().unwrap_or(0);
        let _ = writeln!(out, "| {op} | {} | {} |", count(before), count(after));
    }
    let _ = writeln!(out, "\n## Rules fired\n\n| pass | rule | times | first nodes |\n| --- | --- | ---: | --- |");
    for run in &report.passes {
        for (rule, firing) in &run.rules {
            let mut nodes: Vec<&str> = firing.nodes.iter().take(3).map(String::as_str).collect();
            if firing.nodes.len() > 3 {
                nodes.push("...");
            }
            let _ = writeln!(out, "| {} | {rule} | {} | {} |", run.pass, firing.count, nodes.join(", "));
        }
    }
    let _ = writeln!(out, "\n## Output deviation\n\nTolerance {}; check inputs: {}.\n", report.tolerance, report.check_inputs);
    let _ = writeln!(out, "| output | max abs error | within tolerance |\n| --- | ---: | --- |");
    for deviation in &report.deviations {
        let within = if deviation.within_tolerance { "yes" } else { "NO" };
        let _ = writeln!(out, "| {} | {:.3e} | {within} |", deviation.output, deviation.max_abs_error);
    }
    out
}
