//! Guards the latency gain of fusion: the CNN and transformer fixtures before and after `fuse`'s default
//! pipeline (at opset 20 for the transformer, so GELU is one op), at batch 8 and 1 and 2 threads, in
//! whittle's runtime. A fused model slower than its original shows as `fused` above `original`.

use criterion::{BenchmarkId, Criterion};
use whittle_data::Batching;
use whittle_passes::{optimize, FuseOptions};
use whittle_runtime::{RuntimeOptions, Session};

use crate::{fixture, timed_runs};

pub fn fused_fixtures(c: &mut Criterion) {
    for (name, target_opset) in [("digits_cnn", None), ("transformer_tiny", Some(20))] {
        let path = fixture(name);
        let original = whittle_onnx::load(&path).expect("fixture loads").model;
        let mut fused = original.clone();
        optimize(&mut fused, &FuseOptions { target_opset, ..FuseOptions::default() }).expect("fixture fuses");
        let inputs: Vec<_> = original.graph.feed_inputs().cloned().collect();
        let feeds = whittle_data::load_feeds(&path.with_file_name("eval.npz"), &inputs, Batching::Samples(8)).expect("eval data");
        let feed: Vec<_> = feeds[0].tensors.iter().map(|tensor| (tensor.name.clone(), tensor.clone())).collect();
        let mut group = c.benchmark_group(format!("fusion/{name}"));
        for (variant, model) in [("original", &original), ("fused", &fused)] {
            let session = Session::new(model, &RuntimeOptions::default()).expect("model plans");
            for threads in [1, 2] {
                let id = BenchmarkId::new(variant, format!("{threads}t"));
                group.bench_function(id, |b| b.iter_custom(|iterations| timed_runs(&session, &feed, threads, iterations)));
            }
        }
        group.finish();
    }
}
