//! The > 2 GiB check: a generated model too large for one protobuf message is saved with external
//! data automatically, reloads equal, and passes onnx.checker and ONNX Runtime. It writes about
//! 2.3 GB to `target/` for some seconds and deletes it, so it is a task of its own, run by `test`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use whittle_ir::{DataType, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};
use whittle_onnx::{SaveOptions, PROTOBUF_LIMIT};

use crate::run as run_command;

/// Elements per initializer: three of them take 3 * 760 MB, past protobuf's 2 GiB limit.
const ELEMENTS: usize = 190_000_000;
const WEIGHTS: usize = 3;

pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let model = large_model()?;
    let weight_bytes = (WEIGHTS * ELEMENTS * 4) as u64;
    ensure!(weight_bytes > PROTOBUF_LIMIT, "the model must not fit one protobuf message");
    std::fs::create_dir_all(root.join("target"))?;
    let dir = tempfile::Builder::new().prefix("large-model-").tempdir_in(root.join("target"))?;
    let path = dir.path().join("large.onnx");

    let saved = whittle_onnx::save(&model, &path, &SaveOptions::default())?;
    let (data_path, data_bytes) = saved.external_data.context("a model over 2 GiB was saved without external data")?;
    ensure!(data_bytes >= weight_bytes, "external data holds {data_bytes} bytes, expected at least {weight_bytes}");
    ensure!(saved.model_bytes < 1 << 20, "the model file itself is {} bytes", saved.model_bytes);
    eprintln!("saved {} ({} bytes) and {} ({data_bytes} bytes)", path.display(), saved.model_bytes, data_path.display());

    let reloaded = whittle_onnx::load(&path)?.model;
    ensure!(reloaded == model, "the reloaded model differs from the saved one");
    drop(reloaded);
    drop(model);

    let python = root.join("target/venvs/interop/bin/python");
    run_command(Command::new(python).arg(root.join("xtask/py/check_large.py")).arg(&path).arg(ELEMENTS.to_string()))?;
    dir.close()?;
    eprintln!("large-model: ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `y_k = Gather(w_k, indices)` over three initializers with `w_k[i] = k * 1000 + i % 1000`.
fn large_model() -> Result<Model> {
    let mut graph = Graph {
        name: "large".into(),
        inputs: vec![ValueInfo::new("indices", Some(Type::tensor(DataType::I64, Some(Shape::known(&[8])))))],
        ..Graph::default()
    };
    for k in 0..WEIGHTS {
        let mut bytes = Vec::with_capacity(ELEMENTS * 4);
        for i in 0..ELEMENTS {
            bytes.extend_from_slice(&((k * 1000 + i % 1000) as f32).to_le_bytes());
        }
        let (weight, output) = (format!("w{k}"), format!("y{k}"));
        graph.initializers.push(Tensor::from_bytes(weight.as_str(), DataType::F32, vec![ELEMENTS as i64], bytes)?);
        graph.nodes.push(Node::new(format!("gather{k}"), "Gather", &[&weight, "indices"], &[&output]));
        graph.outputs.push(ValueInfo::new(output, Some(Type::tensor(DataType::F32, Some(Shape::known(&[8]))))));
    }
    let model = Model::new(graph, 8, 17);
    model.validate()?;
    Ok(model)
}
