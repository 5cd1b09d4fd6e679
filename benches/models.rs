//! Guards end-to-end latency of each fixture in whittle's runtime at 1 and 2 threads, batch 1 and 8: any op,
//! planner or memory-plan regression on a real model shows here (`cargo xtask bench-ort` puts the same
//! runs beside ONNX Runtime).

use criterion::{BenchmarkId, Criterion};
use whittle_data::Batching;
use whittle_runtime::{RuntimeOptions, Session};

use crate::{fixture, timed_runs};

pub fn fixtures(c: &mut Criterion) {
    for name in ["digits_mlp", "digits_cnn", "transformer_tiny"] {
        let path = fixture(name);
        let model = whittle_onnx::load(&path).expect("fixture loads").model;
        let session = Session::new(&model, &RuntimeOptions::default()).expect("fixture plans");
        let inputs: Vec<_> = model.graph.feed_inputs().cloned().collect();
        let data = path.with_file_name("eval.npz");
        let mut group = c.benchmark_group(format!("model/{name}"));
        for batch in [1, 8] {
            let feeds = whittle_data::load_feeds(&data, &inputs, Batching::Samples(batch)).expect("eval data");
            let feed: Vec<_> = feeds[0].tensors.iter().map(|tensor| (tensor.name.clone(), tensor.clone())).collect();
            for threads in [1, 2] {
                let id = BenchmarkId::new(format!("batch{batch}"), format!("{threads}t"));
                group.bench_function(id, |b| b.iter_custom(|iterations| timed_runs(&session, &feed, threads, iterations)));
            }
        }
        group.finish();
    }
}
