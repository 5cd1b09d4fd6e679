//! whittle's criterion benchmarks, one module per topic; each module's first line says what regression it guards.
//!
//! `cargo bench -p whittle-benches` runs them all; `cargo bench -p whittle-benches -- model/` one topic.

mod fusion;
mod kernels;
mod models;
mod onnx_io;

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main};
use whittle_ir::Tensor;
use whittle_runtime::Session;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name).join("model.onnx")
}

/// `iterations` runs of `session` on `feed` with every kernel on a pool of `threads` threads. The timed
/// loop runs inside the pool (criterion's bencher cannot move into it), so every kernel of every run
/// sees `threads` threads.
fn timed_runs(session: &Session, feed: &[(String, Tensor)], threads: usize, iterations: u64) -> Duration {
    whittle_eval::with_threads(Some(threads), || {
        let start = Instant::now();
        for _ in 0..iterations {
            session.run(feed.to_vec()).expect("run");
        }
        start.elapsed()
    })
    .expect("thread pool")
}

criterion_group!(
    benches,
    onnx_io::load_and_save,
    models::fixtures,
    kernels::matmul,
    kernels::matmul_integer,
    kernels::conv,
    kernels::cnn_ops,
    fusion::fused_fixtures
);
criterion_main!(benches);
