//! The pass interface, rule-based passes, and the manager that runs passes and records what fired.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use whittle_ir::{Graph, Model};

use crate::error::{PassError, Result};
use crate::filter::NodeFilter;
use crate::patch::{first_out_of_order, prune_unused, Patch};
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
        self.run_graph(&mut model.graph, None, context, run)
    }
}

impl RulePass {
    /// Applies the rules to `graph` until none fires, then to the subgraphs of its nodes (If
    /// branches, Loop and Scan bodies), which see `graph`'s values as outer ones; a subgraph that
    /// changed may have stopped reading an outer value, so `graph` gets one more round after them.
    /// `outer` holds the names of the graphs around `graph`, `None` for the main graph.
    fn run_graph(
        &self,
        graph: &mut Graph,
        outer: Option<&HashSet<String>>,
        context: &PassContext,
        run: &mut PassRun,
    ) -> Result<bool> {
        let mut changed = self.sweep(graph, outer, context, run)?;
        let mut scope: HashSet<String> = outer.cloned().unwrap_or_default();
        scope.extend(graph.inputs.iter().map(|input| input.name.clone()));
        scope.extend(graph.initializers.iter().map(|tensor| tensor.name.clone()));
        scope.extend(graph.nodes.iter().flat_map(|node| node.outputs.iter().filter(|output| !output.is_empty()).cloned()));
        let mut bodies_changed = false;
        for node in &mut graph.nodes {
            for attribute in &mut node.attributes {
                for subgraph in attribute.value.subgraphs_mut() {
                    bodies_changed |= self.run_graph(subgraph, Some(&scope), context, run)?;
                }
            }
        }
        if bodies_changed {
            self.sweep(graph, outer, context, run)?;
        }
        changed |= bodies_changed;
        Ok(changed)
    }

    /// Sweeps over the nodes of `graph` (not its subgraphs) to a fixed point or the sweep cap,
    /// validating after every patch.
    fn sweep(
        &self,
        graph: &mut Graph,
        outer: Option<&HashSet<String>>,
        context: &PassContext,
        run: &mut PassRun,
    ) -> Result<bool> {
        let mut changed = false;
        let mut converged = false;
        let no_outer = HashSet::new();
        let outer_names: HashSet<&str> = outer.unwrap_or(&no_outer).iter().map(String::as_str).collect();
        // Names in reports say which subgraph a node is in; the main graph's nodes keep bare labels.
        let place = if outer.is_some() { format!(" in subgraph '{}'", graph.name) } else { String::new() };
        for _ in 0..context.max_sweeps {
            run.sweeps += 1;
            let mut sweep_changed = false;
            let mut start = 0;
            // Every useful patch removes or replaces a node, so a sweep needs at most one patch per
            // node; a rule that keeps rewriting without progress ends the sweep here, and the cap on
            // sweeps then ends the pass with `converged: false`.
            let mut budget = graph.nodes.len() + 1;
            while let Some((index, rule, patch)) = self.find(graph, outer, context, start)? {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                let label = format!("{} ({}){place}", graph.nodes[index].label(), graph.nodes[index].op_type);
                patch.apply(graph);
                let invalid = |reason: String| PassError::InvalidPatch {
                    pass: self.name.to_string(),
                    rule: rule.to_string(),
                    node: label.clone(),
                    reason,
                };
                graph.validate_in_scope(&outer_names).map_err(|error| invalid(error.to_string()))?;
                if let Some(node) = first_out_of_order(graph) {
                    let node = &graph.nodes[node];
                    return Err(invalid(format!("node '{}' ({}) now comes before a value it reads", node.label(), node.op_type)));
                }
                run.record(rule, label);
                sweep_changed = true;
                start = index;
            }
            if !sweep_changed {
                converged = true;
                break;
            }
            changed = true;
        }
        // The pass converged only if every graph it swept did.
        run.converged &= converged;
        prune_unused(graph);
        Ok(changed)
    }

    /// The first node at or after `start` where a rule fires with a patch the filter allows.
    fn find(
        &self,
        graph: &Graph,
        outer: Option<&HashSet<String>>,
        context: &PassContext,
        start: usize,
    ) -> Result<Option<(usize, &'static str, Patch)>> {
        let view = GraphView::in_scope(graph, context, outer);
        for index in start..graph.nodes.len() {
            let node = &graph.nodes[index];
            if !crate::view::well_formed(node) {
                continue;
            }
            for rule in &self.rules {
                if !rule.op_types.is_empty() && !rule.op_types.contains(&node.op_type.as_str()) {
                    continue;
                }
                let Some(patch) = (rule.apply)(&view, index)? else { continue };
                let allowed = patch.remove.iter().all(|&removed| {
                    let node = &graph.nodes[removed];
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

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, Graph, Node, Tensor, ValueInfo};

    use super::*;
    use crate::rules::tests::{check, f32_info, graph};

    /// `y = If(sum(x) > 0, then: x * (Constant 1 + Constant 2) behind an Identity, else: Identity(x))`:
    /// cleanup inside the branches, which read the outer `x`.
    fn if_model() -> Graph {
        let constant = |name: &str, value: f32| {
            let mut node = Node::new(name, "Constant", &[], &[name]);
            node.attributes.push(Attribute::new("value", AttrValue::Tensor(Tensor::from_f32("", vec![1], &[value]).unwrap())));
            node
        };
        let branch = |name: &str, nodes: Vec<Node>, output: &str| Graph {
            name: name.into(),
            nodes,
            outputs: vec![ValueInfo::new(output, None)],
            ..Graph::default()
        };
        let then_branch = branch(
            "then",
            vec![
                Node::new("copy", "Identity", &["x"], &["a"]),
                constant("k1", 1.0),
                constant("k2", 2.0),
                Node::new("sum", "Add", &["k1", "k2"], &["k"]),
                Node::new("scale", "Mul", &["a", "k"], &["then_out"]),
            ],
            "then_out",
        );
        let else_branch = branch("else", vec![Node::new("pass", "Identity", &["x"], &["else_out"])], "else_out");
        let mut reduce = Node::new("total", "ReduceSum", &["x"], &["s"]);
        reduce.attributes.push(Attribute::new("keepdims", AttrValue::Int(0)));
        let mut branch_node = Node::new("branch", "If", &["c"], &["y"]);
        branch_node.attributes.push(Attribute::new("then_branch", AttrValue::Graph(Box::new(then_branch))));
        branch_node.attributes.push(Attribute::new("else_branch", AttrValue::Graph(Box::new(else_branch))));
        let mut g =
            graph(vec![reduce, Node::new("positive", "Greater", &["s", "zero"], &["c"]), branch_node], &[("x", &[2, 3])], &["y"]);
        g.initializers.push(Tensor::from_f32("zero", vec![], &[0.0]).unwrap());
        g.outputs[0] = f32_info("y", &[2, 3]);
        g
    }

    #[test]
    fn rule_passes_rewrite_subgraph_bodies_too() {
        let model = check(
            if_model(),
            "cleanup",
            &["constant-fold", "constant-to-initializer", "identity"],
            "nodes 3: ReduceSum Greater If",
        );
        let branch = &model.graph.nodes[2];
        let bodies: Vec<&Graph> = branch.subgraphs().collect();
        let ops = |graph: &Graph| graph.nodes.iter().map(|node| node.op_type.clone()).collect::<Vec<_>>();
        // then: the Identity is gone and 1 + 2 folded into one initializer the Mul reads.
        assert_eq!(ops(bodies[0]), ["Mul"]);
        assert_eq!(bodies[0].nodes[0].inputs[0], "x");
        assert_eq!(bodies[0].initializers.len(), 1);
        assert_eq!(bodies[0].initializers[0].to_f32_vec().unwrap(), [3.0]);
        // else: an Identity from an outer value to the branch's output has nothing to be renamed
        // onto inside the branch, so it stays.
        assert_eq!(ops(bodies[1]), ["Identity"]);
    }

    #[test]
    fn fresh_names_in_a_subgraph_do_not_shadow_outer_values() {
        let model = Model::new(if_model(), 10, 18);
        let outer: HashSet<String> = ["x", "s", "c", "zero", "y"].into_iter().map(String::from).collect();
        let context = PassContext::for_model(&model);
        let then_branch = model.graph.nodes[2].subgraphs().next().unwrap();
        let view = GraphView::in_scope(then_branch, &context, Some(&outer));
        assert_eq!(view.fresh_name("zero", &[]), "zero_1");
        assert_eq!(view.fresh_name("k", &[]), "k_1");
        // And the outer graph's view avoids names the branches define.
        let view = GraphView::new(&model.graph, &context);
        assert_eq!(view.fresh_name("then_out", &[]), "then_out_1");
        assert_eq!(view.fresh_name("fresh", &[]), "fresh");
    }

    /// A broken rule: it replaces every Relu with a copy of itself, forever.
    fn rewrite_forever(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
        Ok(Some(Patch::replace_with(vec![index], view.node(index).clone())))
    }

    #[test]
    fn a_rule_that_never_stops_is_capped_and_reported() {
        let graph = Graph {
            nodes: vec![Node::new("relu", "Relu", &["x"], &["y"])],
            inputs: vec![ValueInfo::new("x", None)],
            outputs: vec![ValueInfo::new("y", None)],
            ..Graph::default()
        };
        let mut model = Model::new(graph, 10, 18);
        let mut context = PassContext::for_model(&model);
        context.max_sweeps = 3;
        let pass = RulePass {
            name: "broken",
            tolerance: Tolerance::Exact,
            rules: vec![Rule { name: "rewrite-forever", op_types: &["Relu"], apply: rewrite_forever }],
        };
        let runs = PassManager::new(vec![Box::new(pass)]).run(&mut model, &context).unwrap();
        assert!(!runs[0].converged);
        assert_eq!(runs[0].sweeps, 3);
        // Two patches per sweep: the one-node graph's budget.
        assert_eq!(runs[0].rules["rewrite-forever"].count, 6);
    }
}
