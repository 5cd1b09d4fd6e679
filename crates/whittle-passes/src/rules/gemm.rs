//! MatMul followed by a bias Add becomes one Gemm when both operands are matrices.

use whittle_ir::Node;

use crate::error::Result;
use crate::pass::Rule;
use crate::patch::Patch;
use crate::view::GraphView;

pub const RULES: &[Rule] = &[Rule { name: "matmul-add-to-gemm", op_types: &["Add"], apply: matmul_add_to_gemm }];

fn matmul_add_to_gemm(view: &GraphView<'_>, index: usize) -> Result<Option<Patch>> {
    let add = view.node(index);
    let [a, b] = add.inputs.as_slice() else { return Ok(None) };
    let found = view
        .sole_producer(a, "MatMul")
        .map(|found| (found, b))
        .or_else(|| view.sole_producer(b, "MatMul").map(|found| (found, a)));
    let Some(((matmul_index, matmul), bias)) = found else { return Ok(None) };
    // Gemm takes matrices only; C must broadcast to [M, N] without widening the result.
    let rank = |value: &str| view.value_type(value).and_then(|ty| ty.rank());
    let (Some(2), Some(2)) = (rank(&matmul.inputs[0]), rank(&matmul.inputs[1])) else { return Ok(None) };
    let (Some(product), Some(bias_type)) = (view.value_type(&matmul.outputs[0]), view.value_type(bias)) else { return Ok(None) };
    let (Some(product_dims), Some(bias_dims)) = (&product.dims, &bias_type.dims) else { return Ok(None) };
    let broadcasts_into = bias_dims.len() <= 2
        && bias_dims
            .iter()
            .rev()
            .zip(product_dims.iter().rev())
            .all(|(bias, out)| *bias == whittle_ir::DimValue::Known(1) || bias == out);
    if !broadcasts_into || bias_dims.iter().chain(product_dims).any(|dim| *dim == whittle_ir::DimValue::Unknown) {
        return Ok(None);
    }
    let mut gemm = Node::new(matmul.name.clone(), "Gemm", &[&matmul.inputs[0], &matmul.inputs[1], bias], &[&add.outputs[0]]);
    gemm.domain = matmul.domain.clone();
    Ok(Some(Patch::replace_with(vec![matmul_index, index], gemm)))
}

#[cfg(test)]
mod tests {
    use whittle_ir::Node;

    use crate::rules::tests::{check, graph, ramp};

    #[test]
    fn matmul_and_bias_become_gemm_only_for_matrices() {
        let nodes = vec![Node::new("mm", "MatMul", &["x", "w"], &["m"]), Node::new("add", "Add", &["b", "m"], &["y"])];
        let mut g = graph(nodes.clone(), &[("x", &[2, 4])], &["y"]);
        g.initializers.extend([ramp("w", &[4, 3], 0.1), ramp("b", &[3], 0.5)]);
        check(g, "fuse-matmul", &["matmul-add-to-gemm"], "nodes 1: Gemm");
        let mut g = graph(nodes, &[("x", &[5, 2, 4])], &["y"]);
        g.initializers.extend([ramp("w", &[4, 3], 0.1), ramp("b", &[3], 0.5)]);
        check(g, "fuse-matmul", &[], "nodes 2: MatMul Add");
    }
}
