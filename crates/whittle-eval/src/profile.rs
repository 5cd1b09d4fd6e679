//! Where a run's time goes: per-step times from profiled runs, summarised per op type and per node.
//!
//! Each step's time is its median over the profiled runs, so one preempted run on a shared machine
//! moves no figure. The per-op-type total is the sum of its steps' medians; it is close to, not equal
//! to, the run's median (the executor's own bookkeeping between steps is in neither).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;
use whittle_ir::Tensor;
use whittle_runtime::{RuntimeError, Session, StepTime};

/// Time spent in one op type, summed over its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpTime {
    pub op_type: String,
    pub steps: usize,
    pub ms: f64,
    /// Fraction of the summed step time, in percent.
    pub percent: f64,
}

/// One step's median time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProfile {
    pub node: String,
    pub op_type: String,
    pub ms: f64,
}

/// The per-op and per-step breakdown of profiled runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub runs: usize,
    /// Sum of the step medians, in milliseconds.
    pub total_ms: f64,
    /// Op types, slowest first.
    pub ops: Vec<OpTime>,
    /// Every step in plan order.
    pub steps: Vec<StepProfile>,
}

/// Runs `session` on `feed` `runs` times (at least once) with per-step timing.
pub fn profile(session: &Session, feed: &[(String, Tensor)], runs: usize) -> Result<Profile, RuntimeError> {
    let mut per_step: Vec<(String, String, Vec<Duration>)> = Vec::new();
    for _ in 0..runs.max(1) {
        let (_, times) = session.run_profiled(feed.to_vec())?;
        if per_step.is_empty() {
            per_step = times.iter().map(|time| (time.node.clone(), time.op_type.clone(), Vec::new())).collect();
        }
        for (entry, StepTime { elapsed, .. }) in per_step.iter_mut().zip(times) {
            entry.2.push(elapsed);
        }
    }
    let steps: Vec<StepProfile> = per_step
        .into_iter()
        .map(|(node, op_type, mut times)| {
            times.sort_unstable();
            let median = times[times.len() / 2];
            StepProfile { node, op_type, ms: median.as_secs_f64() * 1e3 }
        })
        .collect();
    Ok(summarise(runs.max(1), steps))
}

fn summarise(runs: usize, steps: Vec<StepProfile>) -> Profile {
    let total_ms: f64 = steps.iter().map(|step| step.ms).sum();
    let mut by_op: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for step in &steps {
        let entry = by_op.entry(&step.op_type).or_default();
        entry.0 += 1;
        entry.1 += step.ms;
    }
    let mut ops: Vec<OpTime> = by_op
        .into_iter()
        .map(|(op_type, (count, ms))| OpTime {
            op_type: op_type.to_string(),
            steps: count,
            ms,
            percent: if total_ms > 0.0 { 100.0 * ms / total_ms } else { 0.0 },
        })
        .collect();
    ops.sort_by(|a, b| b.ms.total_cmp(&a.ms).then_with(|| a.op_type.cmp(&b.op_type)));
    Profile { runs, total_ms, ops, steps }
}

impl Profile {
    /// The breakdown as aligned text: op types, then the `slowest` slowest steps.
    pub fn to_text(&self, slowest: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "profile     {} runs, step medians sum to {:.3} ms", self.runs, self.total_ms);
        for op in &self.ops {
            let _ = writeln!(out, "  {:<28} {:>3} steps {:>9.4} ms {:>5.1}%", op.op_type, op.steps, op.ms, op.percent);
        }
        let mut order: Vec<&StepProfile> = self.steps.iter().collect();
        order.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let _ = writeln!(out, "slowest steps");
        for step in order.into_iter().take(slowest) {
            let _ = writeln!(out, "  {:<40} {:<20} {:>9.4} ms", step.node, step.op_type, step.ms);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_totals_sum_their_steps_and_sort_slowest_first() {
        let step = |node: &str, op: &str, ms: f64| StepProfile { node: node.into(), op_type: op.into(), ms };
        let profile = summarise(3, vec![step("a", "Conv", 1.0), step("b", "Relu", 0.5), step("c", "Conv", 2.5)]);
        assert_eq!(profile.total_ms, 4.0);
        assert_eq!(profile.ops[0], OpTime { op_type: "Conv".into(), steps: 2, ms: 3.5, percent: 87.5 });
        assert_eq!(profile.ops[1], OpTime { op_type: "Relu".into(), steps: 1, ms: 0.5, percent: 12.5 });
        assert!(profile.to_text(1).contains("c "));
    }
}
