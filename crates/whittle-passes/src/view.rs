//! A read-only view of a graph for rules: who produces and who reads each value, which values are
//! constant, and their inferred types (computed on first use, since most rules never ask).

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

use whittle_ir::{Graph, Node, Tensor};

use crate::infer::{infer_types, ValueType};
use crate::pass::PassContext;
use crate::patch::Patch;

/// Whether `node` has at least the inputs its op requires and an output: rules only look at such
/// nodes, so they may index them; a malformed node is left for the runtime to reject by name.
pub fn well_formed(node: &Node) -> bool {
    let required = match node.op_type.as_str() {
        _ if whittle_ir::canonical_domain(&node.domain) != whittle_ir::DEFAULT_DOMAIN => 0,
        "Constant" | "RandomNormal" | "RandomUniform" => 0,
        "BatchNormalization" => 5,
        "MatMul" | "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Conv" | "ConvTranspose" | "Gemm" | "Reshape" => 2,
        _ => 1,
    };
    node.inputs.len() >= required && node.outputs.first().is_some_and(|output| !output.is_empty())
}

/// Every name `graph` and its subgraphs define: inputs, initializers, node outputs.
fn defined_names<'a>(graph: &'a Graph, names: &mut HashSet<&'a str>) {
    names.extend(graph.inputs.iter().map(|input| input.name.as_str()));
    names.extend(graph.initializers.iter().map(|tensor| tensor.name.as_str()));
    for node in &graph.nodes {
        names.extend(node.outputs.iter().filter(|output| !output.is_empty()).map(String::as_str));
        for subgraph in node.subgraphs() {
            defined_names(subgraph, names);
        }
    }
}

/// What a rule sees: the graph, its def-use chains, constants and types, and the pass context.
#[derive(Debug)]
pub struct GraphView<'a> {
    pub graph: &'a Graph,
    pub context: &'a PassContext,
    producers: HashMap<&'a str, usize>,
    /// Indices of the nodes that read each value, subgraph captures included, in node order.
    readers: HashMap<&'a str, Vec<usize>>,
    graph_inputs: HashSet<&'a str>,
    graph_outputs: HashSet<&'a str>,
    constants: HashMap<&'a str, &'a Tensor>,
    names: HashSet<&'a str>,
    types: OnceCell<HashMap<String, ValueType>>,
}

impl<'a> GraphView<'a> {
    pub fn new(graph: &'a Graph, context: &'a PassContext) -> GraphView<'a> {
        GraphView::in_scope(graph, context, None)
    }

    /// The view of a subgraph whose enclosing graphs define `outer`: a fresh name must not shadow
    /// them. (Outer values are not constants here, even where the outer graph has them as
    /// initializers: a rule sees only what the subgraph itself holds.)
    pub fn in_scope(graph: &'a Graph, context: &'a PassContext, outer: Option<&'a HashSet<String>>) -> GraphView<'a> {
        let mut producers = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut names: HashSet<&str> = HashSet::new();
        for (index, node) in graph.nodes.iter().enumerate() {
            for output in node.outputs.iter().filter(|output| !output.is_empty()) {
                producers.insert(output.as_str(), index);
                names.insert(output);
            }
            for input in node.inputs.iter().filter(|input| !input.is_empty()) {
                readers.entry(input.as_str()).or_default().push(index);
            }
        }
        // Values read by subgraphs (If branches, Loop bodies) count as reads of the holding node;
        // their names are owned by the subgraph, so they are resolved against this graph's names.
        for (index, node) in graph.nodes.iter().enumerate() {
            for subgraph in node.subgraphs() {
                for free in subgraph.free_values() {
                    if let Some((&name, _)) = producers.get_key_value(free.as_str()) {
                        readers.entry(name).or_default().push(index);
                    } else if let Some(name) = graph
                        .inputs
                        .iter()
                        .map(|input| input.name.as_str())
                        .chain(graph.initializers.iter().map(|tensor| tensor.name.as_str()))
                        .find(|name| *name == free)
                    {
                        readers.entry(name).or_default().push(index);
                    }
                }
            }
        }
        let graph_inputs: HashSet<&str> = graph.inputs.iter().map(|input| input.name.as_str()).collect();
        let graph_outputs = graph.outputs.iter().map(|output| output.name.as_str()).collect();
        // Before IR version 4 every initializer is also listed as an input, and is a constant; from 4
        // on an initializer that is also an input is only a default the caller may override.
        let overridable = |name: &str| context.ir_version >= 4 && graph_inputs.contains(name);
        let constants = graph
            .initializers
            .iter()
            .filter(|tensor| !overridable(&tensor.name))
            .map(|tensor| (tensor.name.as_str(), tensor))
            .collect();
        names.extend(graph_inputs.iter().copied());
        names.extend(graph.initializers.iter().map(|tensor| tensor.name.as_str()));
        names.extend(graph.value_info.iter().map(|info| info.name.as_str()));
        // Nor may it be a name a nested subgraph defines, which would then shadow the new value.
        for node in &graph.nodes {
            for subgraph in node.subgraphs() {
                defined_names(subgraph, &mut names);
            }
        }
        names.extend(outer.into_iter().flatten().map(String::as_str));
        GraphView { graph, context, producers, readers, graph_inputs, graph_outputs, constants, names, types: OnceCell::new() }
    }

    pub fn node(&self, index: usize) -> &'a Node {
        &self.graph.nodes[index]
    }

    /// The index of the node producing `value`.
    pub fn producer_index(&self, value: &str) -> Option<usize> {
        self.producers.get(value).copied()
    }

    /// The node producing `value`, with its index.
    pub fn producer(&self, value: &str) -> Option<(usize, &'a Node)> {
        self.producer_index(value).map(|index| (index, &self.graph.nodes[index]))
    }

    /// The producer of `value` when it has type `op_type`, `value` is its first output, and
    /// nothing but `reader` (one node) reads `value`: the shape every fusion looks for. Only
    /// [`well_formed`] nodes are returned, so rules may index their inputs.
    pub fn sole_producer(&self, value: &str, op_type: &str) -> Option<(usize, &'a Node)> {
        let (index, node) = self.producer(value)?;
        (node.op_type == op_type
            && node.outputs.first().is_some_and(|first| first == value)
            && self.has_one_reader(value)
            && well_formed(node))
        .then_some((index, node))
    }

    /// The single node reading `value`, when it has type `op_type` and is [`well_formed`].
    pub fn sole_reader(&self, value: &str, op_type: &str) -> Option<(usize, &'a Node)> {
        if !self.has_one_reader(value) {
            return None;
        }
        let index = self.readers(value)[0];
        let node = self.node(index);
        (node.op_type == op_type && well_formed(node)).then_some((index, node))
    }

    /// Indices of the nodes reading `value` (a node reading it twice appears twice).
    pub fn readers(&self, value: &str) -> &[usize] {
        self.readers.get(value).map_or(&[], Vec::as_slice)
    }

    /// Whether exactly one node input reads `value` and it is not a graph output.
    pub fn has_one_reader(&self, value: &str) -> bool {
        self.readers(value).len() == 1 && !self.is_graph_output(value)
    }

    /// Whether nothing reads `value`.
    pub fn is_unused(&self, value: &str) -> bool {
        self.readers(value).is_empty() && !self.is_graph_output(value)
    }

    pub fn is_graph_output(&self, value: &str) -> bool {
        self.graph_outputs.contains(value)
    }

    pub fn is_graph_input(&self, value: &str) -> bool {
        self.graph_inputs.contains(value)
    }

    /// The constant value of `value`: an initializer the caller cannot override.
    pub fn constant(&self, value: &str) -> Option<&'a Tensor> {
        self.constants.get(value).copied()
    }

    /// The inferred type of `value`.
    pub fn value_type(&self, value: &str) -> Option<&ValueType> {
        self.types
            .get_or_init(|| infer_types(self.graph, self.context.opset, &|name: &str| self.constants.get(name).copied()))
            .get(value)
    }

    /// The fixed sizes of `value`, when inference knows them all.
    pub fn sizes(&self, value: &str) -> Option<Vec<i64>> {
        self.value_type(value)?.sizes()
    }

    /// A name no value of the graph has, from `base`; `taken` holds names a patch already chose.
    pub fn fresh_name(&self, base: &str, taken: &[String]) -> String {
        let free = |name: &str| !self.names.contains(name) && !taken.iter().any(|used| used == name);
        if free(base) {
            return base.to_string();
        }
        (1..).map(|suffix| format!("{base}_{suffix}")).find(|name| free(name)).unwrap_or_else(|| base.to_string())
    }

    /// Whether `patch` can be applied: a replaced graph output can only be renamed onto a value
    /// that a kept or added node produces and that is no input, initializer or output itself.
    pub fn can_apply(&self, patch: &Patch) -> bool {
        patch.replace.iter().all(|(old, new)| {
            if !self.is_graph_output(old) {
                return true;
            }
            let produced_by_kept = self.producer_index(new).is_some_and(|index| !patch.remove.contains(&index));
            let produced_by_added = patch.add.iter().any(|node| node.outputs.contains(new));
            (produced_by_kept || produced_by_added)
                && !self.is_graph_input(new)
                && !self.is_graph_output(new)
                && self.graph.initializer(new).is_none()
        })
    }
}
