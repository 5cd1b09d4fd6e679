//! The pass interface, rule-based passes, and the manager that runs passes and records what fired.

use std::collections::BTreeMap;

use serde::Serialize;
use whittle_ir::Model;

use crate::error::{PassError, Result};
use crate::filter::NodeFilter;
use crate::patch::{prune_unused, Patch};
use crate::tolerance::Tolerance;
use crate::view::GraphView;

/// What every pass may read: the opsets, the filter and the limits of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PassContext {
    /// The ai.onnx opset the model imports (after any upgrade the manager made).
    pub opset: i64,
    /// The opset fused forms may use; rules emitting a newer op than this stay off.
    pub target_opset: i64,
    pub ir_version: i64,
    pub filter: NodeFilter,
    /// The largest tensor constant folding may create, in bytes.
    pub fold_max_bytes: usize,
    /// Sweeps over the graph before a rule pass gives up reaching a fixed point.
    pub max_sweeps: usize,
}

impl PassContext {
    /// The context for `model` as it is, with default limits.
    pub fn for_model(model: &Model) -> PassContext {
        let opset = model.opset_version("").unwrap_or(1);
        PassContext {
            opset,
            target_opset: opset,
            ir_version: model.ir_version,
            filter: NodeFilter::default(),
            fold_max_bytes: DEFAULT_FOLD_MAX_BYTES,
            max_sweeps: 64,
        }
    }
}

/// Folding may create tensors up to 16 MiB: every weight of resnet50 (the largest 9.4 MB) but not
/// a fully connected layer of VGG (411 MB), whose generator stays a node so the file does not grow
/// by hundreds of megabytes.
pub const DEFAULT_FOLD_MAX_BYTES: usize = 16 << 20;

/// A transformation of a model. Cleanup, fusion, and later quantization and pruning are passes.
pub trait Pass: std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// How far this pass may move the model's outputs.
    fn tolerance(&self) -> Tolerance;
    /// Transforms `model` and records in `run` what it did; returns whether anything changed.
    fn run(&self, model: &mut Model, context: &PassContext, run: &mut PassRun) -> Result<bool>;
}

/// A rule looks at one node and returns the patch that rewrites it, or `None`.
pub type RuleFn = fn(&GraphView<'_>, usize) -> Result<Option<Patch>>;

/// A named rule; `op_types` are the node types it anchors on (empty: every node).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub op_types: &'static [&'static str],
    pub apply: RuleFn,
}

/// How often one rule fired in a pass, and on which nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleFiring {
    pub count: usize,
    pub nodes: Vec<String>,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassRun {
    pub pass: String,
    pub tolerance: Tolerance,
    pub changed: bool,
    pub sweeps: usize,
    /// False when the sweep cap was reached while rules still fired.
    pub converged: bool,
    /// By rule name.
    pub rules: BTreeMap<String, RuleFiring>,
}

impl PassRun {
    fn new(pass: &dyn Pass) -> PassRun {
        PassRun {
            pass: pass.name().to_string(),
            tolerance: pass.tolerance(),
            changed: false,
            sweeps: 0,
            converged: true,
            rules: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, rule: &str, node: String) {
        let firing = self.rules.entry(rule.to_string()).or_default();
        firing.count += 1;
        firing.nodes.push(node);
    }

    pub fn fired(&self) -> usize {
        self.rules.values().map(|firing| firing.count).sum()
    }
}

/// A pass made of rules, applied node by node until none fires.
#[derive(Debug, Clone)]
pub struct RulePass {
    pub name: &'static str,
    pub tolerance: Tolerance,
    pub rules: Vec<Rule>,
}

impl Pass for RulePass {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    fn run(&self, model: &mut Model, context: &PassContext, run: &mut PassRun) -> Result<bool> {
        let mut changed = false;
        run.converged = false;
        for _ in 0..context.max_sweeps {
            run.sweeps += 1;
            let mut sweep_changed = false;
            let mut start = 0;
            while let Some((index, rule, patch)) = self.find(model, context, start)? {
                let label = format!("{} ({})", model.graph.nodes[index].label(), model.graph.nodes[index].op_type);
                patch.apply(&mut model.graph);
                model.graph.validate().map_err(|error| PassError::InvalidPatch {
                    pass: self.name.to_string(),
                    rule: rule.to_string(),
                    node: label.clone(),
                    error: Box::new(error),
                })?;
                run.record(rule, label);
                sweep_changed = true;
                start = index;
            }
            if !sweep_changed {
                run.converged = true;
                break;
            }
            changed = true;
        }
        prune_unused(&mut model.graph);
        Ok(changed)
    }
}

impl RulePass {
    /// The first node at or after `start` where a rule fires with a patch the filter allows.
    fn find(&self, model: &Model, context: &PassContext, start: usize) -> Result<Option<(usize, &'static str, Patch)>> {
        let view = GraphView::new(&model.graph, context);
        for index in start..model.graph.nodes.len() {
            let node = &model.graph.nodes[index];
            for rule in &self.rules {
                if !rule.op_types.is_empty() && !rule.op_types.contains(&node.op_type.as_str()) {
                    continue;
                }
                let Some(patch) = (rule.apply)(&view, index)? else { continue };
                let allowed = patch.remove.iter().all(|&removed| {
                    let node = &model.graph.nodes[removed];
                    context.filter.allows(&node.name, &node.op_type)
                });
                if allowed && view.can_apply(&patch) {
                    return Ok(Some((index, rule.name, patch)));
                }
            }
        }
        Ok(None)
    }
}

/// Runs passes in order, validating the model after each, and collects their reports.
#[derive(Debug, Default)]
pub struct PassManager {
    pub passes: Vec<Box<dyn Pass>>,
}

impl PassManager {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> PassManager {
        PassManager { passes }
    }

    /// The tolerance of the whole sequence: the loosest of its passes'.
    pub fn tolerance(&self) -> Tolerance {
        self.passes.iter().map(|pass| pass.tolerance()).fold(Tolerance::Exact, Tolerance::max)
    }

    /// Runs every pass once, in order, on `model`.
    pub fn run(&self, model: &mut Model, context: &PassContext) -> Result<Vec<PassRun>> {
        let mut runs = Vec::with_capacity(self.passes.len());
        for pass in &self.passes {
            let mut run = PassRun::new(pass.as_ref());
            run.changed = pass.run(model, context, &mut run)?;
            model
                .validate()
                .map_err(|error| PassError::InvalidGraph { pass: pass.name().to_string(), error: Box::new(error) })?;
            runs.push(run);
        }
        Ok(runs)
    }
}
