//! Before passes run: initializers listed as graph inputs in IR version 3 models are taken out of
//! the inputs, so that folding can create initializers and ONNX Runtime treats weights as constants.

use whittle_ir::Model;

use crate::pass::PassContext;

/// IR versions before 4 require every initializer to be a graph input; from 4 on an initializer
/// that is an input is an overridable default, which ONNX Runtime does not fold. Callers never
/// feed them (whittle and ORT read them from the file), so the feed interface is unchanged.
pub fn initializers_out_of_inputs(model: &mut Model, context: &mut PassContext) {
    if model.ir_version >= 4 {
        return;
    }
    let graph = &mut model.graph;
    let initializers: std::collections::HashSet<String> = graph.initializers.iter().map(|tensor| tensor.name.clone()).collect();
    graph.inputs.retain(|input| !initializers.contains(&input.name));
    model.ir_version = 4;
    context.ir_version = 4;
}
