//! Which nodes a pass may touch: include and exclude lists of node names and op types.

/// Scopes a pass. A node is in scope when it matches an include entry (or there are none) and no
/// exclude entry. An entry matches a node's name or its op type, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl NodeFilter {
    /// Whether a node called `name` of type `op_type` may be changed.
    pub fn allows(&self, name: &str, op_type: &str) -> bool {
        let matches = |entry: &String| entry == op_type || (!name.is_empty() && entry == name);
        (self.include.is_empty() || self.include.iter().any(matches)) && !self.exclude.iter().any(matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude_match_names_and_op_types() {
        let all = NodeFilter::default();
        assert!(all.allows("conv1", "Conv"));
        let only_conv = NodeFilter { include: vec!["Conv".into()], exclude: vec!["conv2".into()] };
        assert!(only_conv.allows("conv1", "Conv"));
        assert!(!only_conv.allows("conv2", "Conv"));
        assert!(!only_conv.allows("relu", "Relu"));
        // An unnamed node is matched by its op type only.
        let no_empty = NodeFilter { include: Vec::new(), exclude: vec![String::new()] };
        assert!(no_empty.allows("", "Relu"));
    }
}
