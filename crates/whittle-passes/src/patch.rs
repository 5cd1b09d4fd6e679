//! Patches: what a rule asks to change, applied to the graph in one step.

use whittle_ir::{Graph, Node, Tensor};

/// A local rewrite: nodes to remove, nodes and initializers to add, and values whose readers
/// should read another value instead. Rules build patches; only the pass manager applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// Indices of nodes to remove.
    pub remove: Vec<usize>,
    pub add: Vec<Node>,
    pub initializers: Vec<Tensor>,
    /// `(old, new)`: every read of `old` reads `new` instead. When `old` is a graph output, `new`
    /// is renamed to `old` so that the model's interface keeps its names.
    pub replace: Vec<(String, String)>,
}

impl Patch {
    /// Removes node `index` and has the readers of its output `output` read `value` instead.
    pub fn bypass(index: usize, output: &str, value: &str) -> Patch {
        Patch { remove: vec![index], replace: vec![(output.to_string(), value.to_string())], ..Patch::default() }
    }

    /// Removes the nodes at `remove` and adds `node` in their place.
    pub fn replace_with(remove: Vec<usize>, node: Node) -> Patch {
        Patch { remove, add: vec![node], ..Patch::default() }
    }

    pub fn with_initializer(mut self, tensor: Tensor) -> Patch {
        self.initializers.push(tensor);
        self
    }

    /// Applies the patch and puts the nodes back in topological order (keeping file order where it
    /// can). The caller checked [`crate::GraphView::can_apply`] and validates the result.
    pub(crate) fn apply(self, graph: &mut Graph) {
        let output_names: Vec<String> = graph.outputs.iter().map(|output| output.name.clone()).collect();
        let mut remove = self.remove;
        remove.sort_unstable();
        remove.dedup();
        for index in remove.into_iter().rev() {
            if index < graph.nodes.len() {
                graph.nodes.remove(index);
            }
        }
        graph.nodes.extend(self.add);
        graph.initializers.extend(self.initializers);
        for (old, new) in &self.replace {
            if output_names.contains(old) {
                rename_everywhere(graph, new, old);
                graph.value_info.retain(|info| info.name != *new);
            } else {
                rename_reads(graph, old, new);
            }
        }
        if let Ok(order) = graph.topological_order() {
            let mut nodes: Vec<Option<Node>> = std::mem::take(&mut graph.nodes).into_iter().map(Some).collect();
            graph.nodes = order.into_iter().filter_map(|index| nodes[index].take()).collect();
        }
    }
}

/// Every read of `old` in `graph` and its subgraphs reads `new`.
fn rename_reads(graph: &mut Graph, old: &str, new: &str) {
    for node in &mut graph.nodes {
        for input in node.inputs.iter_mut().filter(|input| *input == old) {
            *input = new.to_string();
        }
        for attribute in &mut node.attributes {
            for subgraph in attribute.value.subgraphs_mut() {
                rename_reads(subgraph, old, new);
                for output in subgraph.outputs.iter_mut().filter(|output| output.name == old) {
                    output.name = new.to_string();
                }
            }
        }
    }
}

/// `old` is called `new` everywhere: where it is produced and wherever it is read.
fn rename_everywhere(graph: &mut Graph, old: &str, new: &str) {
    for node in &mut graph.nodes {
        for output in node.outputs.iter_mut().filter(|output| *output == old) {
            *output = new.to_string();
        }
    }
    rename_reads(graph, old, new);
}

/// Removes initializers and `value_info` entries nothing refers to any more. Initializers that are
/// also graph inputs stay: from IR version 4 on they are part of the model's interface.
pub(crate) fn prune_unused(graph: &mut Graph) {
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for node in &graph.nodes {
        used.extend(node.inputs.iter().cloned());
        used.extend(node.outputs.iter().cloned());
        for subgraph in node.subgraphs() {
            used.extend(subgraph.free_values());
        }
    }
    used.extend(graph.outputs.iter().map(|output| output.name.clone()));
    let inputs: std::collections::HashSet<String> = graph.inputs.iter().map(|input| input.name.clone()).collect();
    graph.initializers.retain(|tensor| used.contains(&tensor.name) || inputs.contains(&tensor.name));
    graph.value_info.retain(|info| used.contains(&info.name));
}
