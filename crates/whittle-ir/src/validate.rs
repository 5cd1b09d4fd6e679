//! Structural checks of a graph: single producers, defined inputs, no cycles, consistent types; and topological order.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{Graph, IrError, Model, Node, TypeKind};

impl Model {
    /// Checks the main graph (with its subgraphs) and every function body.
    pub fn validate(&self) -> Result<(), IrError> {
        self.graph.validate()?;
        for function in &self.functions {
            let graph = Graph {
                name: format!("function {}", function.name),
                nodes: function.nodes.clone(),
                inputs: function.inputs.iter().map(|name| crate::ValueInfo::new(name.clone(), None)).collect(),
                outputs: function.outputs.iter().map(|name| crate::ValueInfo::new(name.clone(), None)).collect(),
                ..Graph::default()
            };
            graph.validate()?;
        }
        Ok(())
    }
}

impl Graph {
    /// Checks that every value is produced exactly once, every node input and graph output is
    /// defined, nodes form no cycle, and initializers agree with the types declared for them.
    /// Subgraphs are checked too; they may read any value of the graphs around them.
    pub fn validate(&self) -> Result<(), IrError> {
        self.validate_in_scope(&HashSet::new())
    }

    /// Like [`Graph::validate`] for a subgraph, which may also read the `outer` values of the graphs
    /// around it.
    pub fn validate_in_scope(&self, outer: &HashSet<&str>) -> Result<(), IrError> {
        let mut producers: HashMap<&str, String> = HashMap::new();
        // A graph input may share its name with an initializer: the initializer is its default.
        for input in &self.inputs {
            producers.insert(&input.name, "a graph input".to_string());
        }
        for tensor in &self.initializers {
            producers.insert(&tensor.name, "an initializer".to_string());
        }
        for sparse in &self.sparse_initializers {
            producers.insert(&sparse.values.name, "a sparse initializer".to_string());
        }
        for node in &self.nodes {
            for output in node.outputs.iter().filter(|output| !output.is_empty()) {
                let by = format!("node '{}' ({})", node.label(), node.op_type);
                if let Some(first) = producers.insert(output, by.clone()) {
                    return Err(IrError::ValueProducedTwice {
                        graph: self.name.clone(),
                        value: output.clone(),
                        first,
                        second: by,
                    });
                }
            }
        }
        let visible = |name: &str| producers.contains_key(name) || outer.contains(name);
        for node in &self.nodes {
            for input in node.inputs.iter().filter(|input| !input.is_empty()) {
                if !visible(input) {
                    return Err(IrError::UndefinedValue {
                        graph: self.name.clone(),
                        node: node.label(),
                        op: node.op_type.clone(),
                        value: input.clone(),
                    });
                }
            }
        }
        for output in &self.outputs {
            if !visible(&output.name) {
                return Err(IrError::UndefinedOutput { graph: self.name.clone(), value: output.name.clone() });
            }
        }
        self.check_initializer_types()?;
        self.topological_order()?;

        let mut inner_scope: HashSet<&str> = outer.clone();
        inner_scope.extend(producers.keys().copied());
        for node in &self.nodes {
            for subgraph in node.subgraphs() {
                subgraph.validate_in_scope(&inner_scope)?;
            }
        }
        Ok(())
    }

    fn check_initializer_types(&self) -> Result<(), IrError> {
        for tensor in &self.initializers {
            tensor.check_data_size()?;
            let declared = self.inputs.iter().chain(&self.value_info).filter(|info| info.name == tensor.name);
            for info in declared {
                let Some(ty) = &info.ty else { continue };
                let TypeKind::Tensor { elem, shape } = &ty.kind else { continue };
                let dtype_differs = *elem != crate::DataType::Undefined && *elem != tensor.dtype;
                let shape_differs = shape.as_ref().is_some_and(|shape| {
                    shape.rank() != tensor.dims.len()
                        || shape.0.iter().zip(&tensor.dims).any(|(dim, &size)| dim.size().is_some_and(|known| known != size))
                });
                if dtype_differs || shape_differs {
                    return Err(IrError::TypeMismatch {
                        graph: self.name.clone(),
                        value: tensor.name.clone(),
                        declared: ty.to_string(),
                        actual: format!("{}{:?}", tensor.dtype, tensor.dims),
                    });
                }
            }
        }
        Ok(())
    }

    /// Node indices in an order where every node comes after the producers of its inputs,
    /// including values its subgraphs read from this graph. Keeps file order where it can.
    pub fn topological_order(&self) -> Result<Vec<usize>, IrError> {
        let mut producer_of: HashMap<&str, usize> = HashMap::new();
        for (index, node) in self.nodes.iter().enumerate() {
            for output in node.outputs.iter().filter(|output| !output.is_empty()) {
                producer_of.insert(output, index);
            }
        }
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        let mut pending: Vec<usize> = vec![0; self.nodes.len()];
        for (index, node) in self.nodes.iter().enumerate() {
            let mut needs: BTreeSet<usize> = BTreeSet::new();
            for input in node_reads(node) {
                if let Some(&producer) = producer_of.get(input.as_str()) {
                    needs.insert(producer);
                }
            }
            pending[index] = needs.len();
            for producer in needs {
                dependents[producer].push(index);
            }
        }
        let mut ready: BTreeSet<usize> = (0..self.nodes.len()).filter(|&index| pending[index] == 0).collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(index) = ready.pop_first() {
            order.push(index);
            for &dependent in &dependents[index] {
                pending[dependent] -= 1;
                if pending[dependent] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        if order.len() < self.nodes.len() {
            let stuck = (0..self.nodes.len()).find(|&index| pending[index] > 0).unwrap_or(0);
            let node = &self.nodes[stuck];
            return Err(IrError::Cycle { graph: self.name.clone(), node: node.label(), op: node.op_type.clone() });
        }
        Ok(order)
    }

    /// Names this graph reads but does not define: the values it takes from the graphs around it.
    pub fn free_values(&self) -> BTreeSet<String> {
        let mut defined: HashSet<&str> = HashSet::new();
        defined.extend(self.inputs.iter().map(|input| input.name.as_str()));
        defined.extend(self.initializers.iter().map(|tensor| tensor.name.as_str()));
        defined.extend(self.sparse_initializers.iter().map(|sparse| sparse.values.name.as_str()));
        for node in &self.nodes {
            defined.extend(node.outputs.iter().map(String::as_str));
        }
        let mut free = BTreeSet::new();
        for node in &self.nodes {
            for input in node_reads(node) {
                if !input.is_empty() && !defined.contains(input.as_str()) {
                    free.insert(input);
                }
            }
        }
        for output in &self.outputs {
            if !defined.contains(output.name.as_str()) {
                free.insert(output.name.clone());
            }
        }
        free
    }
}

/// Every value a node reads: its inputs and what its subgraphs take from outside them.
fn node_reads(node: &Node) -> Vec<String> {
    let mut reads: Vec<String> = node.inputs.iter().filter(|input| !input.is_empty()).cloned().collect();
    for subgraph in node.subgraphs() {
        reads.extend(subgraph.free_values());
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttrValue, Attribute, DataType, Shape, Tensor, Type, ValueInfo};

    fn f32_input(name: &str, sizes: &[i64]) -> ValueInfo {
        ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(sizes)))))
    }

    fn chain() -> Graph {
        Graph {
            name: "g".into(),
            nodes: vec![Node::new("relu", "Relu", &["x"], &["y"]), Node::new("neg", "Neg", &["y"], &["z"])],
            inputs: vec![f32_input("x", &[2])],
            outputs: vec![ValueInfo::new("z", None)],
            ..Graph::default()
        }
    }

    #[test]
    fn a_well_formed_chain_validates_in_order() {
        let graph = chain();
        graph.validate().unwrap();
        assert_eq!(graph.topological_order().unwrap(), vec![0, 1]);
    }

    #[test]
    fn out_of_order_nodes_are_sorted() {
        let mut graph = chain();
        graph.nodes.reverse();
        assert_eq!(graph.topological_order().unwrap(), vec![1, 0]);
    }

    #[test]
    fn an_undefined_input_names_node_and_value() {
        let mut graph = chain();
        graph.nodes[1].inputs[0] = "missing".into();
        let err = graph.validate().unwrap_err();
        assert_eq!(err.to_string(), "graph 'g': node 'neg' (Neg) reads 'missing', which nothing produces");
    }

    #[test]
    fn a_value_produced_twice_is_rejected() {
        let mut graph = chain();
        graph.nodes[1].outputs[0] = "y".into();
        graph.outputs[0].name = "y".into();
        let err = graph.validate().unwrap_err();
        assert_eq!(err.to_string(), "graph 'g': value 'y' is produced twice, by node 'relu' (Relu) and by node 'neg' (Neg)");
    }

    #[test]
    fn a_cycle_is_rejected() {
        let mut graph = chain();
        graph.nodes[0].inputs[0] = "z".into();
        let err = graph.validate().unwrap_err();
        assert!(matches!(err, IrError::Cycle { .. }), "{err}");
    }

    #[test]
    fn an_initializer_disagreeing_with_its_declared_type_is_rejected() {
        let mut graph = chain();
        graph.inputs.push(f32_input("w", &[3]));
        graph.initializers.push(Tensor::from_f32("w", vec![2], &[1.0, 2.0]).unwrap());
        let err = graph.validate().unwrap_err();
        assert_eq!(err.to_string(), "graph 'g': value 'w' is declared f32[3] but initializer holds f32[2]");
    }

    #[test]
    fn subgraphs_may_read_outer_values_and_order_counts_them() {
        let then_branch = Graph {
            name: "then".into(),
            nodes: vec![Node::new("inner", "Identity", &["y"], &["t"])],
            outputs: vec![ValueInfo::new("t", None)],
            ..Graph::default()
        };
        let mut if_node = Node::new("if", "If", &["cond"], &["out"]);
        if_node.attributes.push(Attribute::new("then_branch", AttrValue::Graph(Box::new(then_branch))));
        let mut graph = chain();
        graph.inputs.push(ValueInfo::new("cond", None));
        // The If node comes first in the file but reads `y` inside its branch.
        graph.nodes.insert(0, if_node);
        graph.validate().unwrap();
        assert_eq!(graph.topological_order().unwrap(), vec![1, 0, 2]);

        let mut broken = graph.clone();
        broken.nodes[0].attributes[0].value.subgraphs_mut()[0].nodes[0].inputs[0] = "nowhere".into();
        let err = broken.validate().unwrap_err();
        assert_eq!(err.to_string(), "graph 'then': node 'inner' (Identity) reads 'nowhere', which nothing produces");
    }
}
