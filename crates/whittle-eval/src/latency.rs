//! Latency of one model on one feed: warm-up runs, then timed runs summarised as percentiles.
//!
//! Each timed run is a whole `Session::run`: the upload of the feed, every node, and the download of
//! the outputs, as a caller of the model pays it (ONNX Runtime's `InferenceSession.run` also copies
//! its outputs out). Percentiles use the nearest-rank rule on the sorted run times.

use std::time::{Duration, Instant};

use serde::Serialize;
use whittle_ir::Tensor;
use whittle_runtime::{RuntimeError, Session};

use crate::error::{EvalError, Result};

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Exactly this many timed runs.
    Iterations(usize),
    /// Timed runs until this many seconds have passed (at least one run).
    Seconds(f64),
}

/// Warm-up and measurement budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyOptions {
    /// Untimed runs first, so that caches, allocator pools and lazily built kernels are warm.
    pub warmup: usize,
    pub budget: Budget,
}

impl Default for LatencyOptions {
    fn default() -> LatencyOptions {
        LatencyOptions { warmup: 5, budget: Budget::Iterations(50) }
    }
}

/// Run times of one model on one feed, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub iterations: usize,
    /// Samples in each run (the feed's size along axis 0), for the throughput.
    pub samples_per_run: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Samples per second at the mean run time.
    pub throughput_per_s: f64,
}

impl Latency {
    /// Summarises run times. `times` must not be empty.
    fn from_times(mut times: Vec<Duration>, samples_per_run: usize) -> Latency {
        times.sort_unstable();
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        let total: f64 = times.iter().copied().map(ms).sum();
        let mean_ms = total / times.len() as f64;
        Latency {
            iterations: times.len(),
            samples_per_run,
            mean_ms,
            p50_ms: ms(percentile(&times, 50.0)),
            p90_ms: ms(percentile(&times, 90.0)),
            p99_ms: ms(percentile(&times, 99.0)),
            min_ms: ms(times[0]),
            max_ms: ms(times[times.len() - 1]),
            throughput_per_s: if mean_ms > 0.0 { samples_per_run as f64 * 1e3 / mean_ms } else { 0.0 },
        }
    }
}

/// The nearest-rank percentile of sorted, non-empty `times`: the smallest time that at least `p`
/// percent of the runs do not exceed.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

/// Times `session` on `feed` (one tensor per input) after `options.warmup` untimed runs.
pub fn measure(session: &Session, feed: &[(String, Tensor)], options: &LatencyOptions) -> Result<Latency, RuntimeError> {
    let samples_per_run = feed.first().and_then(|(_, tensor)| tensor.dims.first()).map_or(1, |&size| size.max(0) as usize);
    for _ in 0..options.warmup {
        session.run(feed.to_vec())?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    loop {
        let done = match options.budget {
            Budget::Iterations(count) => times.len() >= count.max(1),
            Budget::Seconds(seconds) => !times.is_empty() && started.elapsed().as_secs_f64() >= seconds,
        };
        if done {
            break;
        }
        // Cloning the feed copies no tensor data (tensors share their bytes), so it stays out of the timing's way.
        let feed = feed.to_vec();
        let start = Instant::now();
        let outputs = session.run(feed)?;
        times.push(start.elapsed());
        drop(outputs);
    }
    Ok(Latency::from_times(times, samples_per_run))
}

/// Runs `work` with every kernel it starts on a pool of `threads` threads; `None` keeps rayon's
/// global pool (one thread per core, or `RAYON_NUM_THREADS`).
pub fn with_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> T + Send) -> Result<T> {
    match threads {
        None => Ok(work()),
        Some(0) => Err(EvalError::Options { reason: "--threads must be 1 or more".into() }),
        Some(threads) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|err| EvalError::Threads { threads, reason: err.to_string() })?;
            Ok(pool.install(work))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_nearest_rank_rule() {
        // 1..=100 ms: the p-th percentile of 100 evenly spaced values is the p-th value.
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&times, 90.0), Duration::from_millis(90));
        assert_eq!(percentile(&times, 99.0), Duration::from_millis(99));
        // 4 runs: p50 is the 2nd (ceil(2.0)), p90 and p99 the 4th (ceil(3.6), ceil(3.96)).
        let times: Vec<Duration> = [10, 20, 30, 40].into_iter().map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50.0), Duration::from_millis(20));
        assert_eq!(percentile(&times, 90.0), Duration::from_millis(40));
        assert_eq!(percentile(&times, 0.0), Duration::from_millis(10));
    }

    #[test]
    fn summary_is_computed_from_unsorted_times() {
        let times: Vec<Duration> = [30, 10, 20].into_iter().map(Duration::from_millis).collect();
        let latency = Latency::from_times(times, 4);
        assert_eq!(latency.iterations, 3);
        assert!((latency.mean_ms - 20.0).abs() < 1e-9);
        assert!((latency.p50_ms - 20.0).abs() < 1e-9);
        assert!((latency.min_ms - 10.0).abs() < 1e-9 && (latency.max_ms - 30.0).abs() < 1e-9);
        // 4 samples every 20 ms is 200 samples a second.
        assert!((latency.throughput_per_s - 200.0).abs() < 1e-9);
    }

    #[test]
    fn a_pool_of_n_threads_is_what_kernels_see() {
        assert_eq!(with_threads(Some(2), rayon::current_num_threads).unwrap(), 2);
        assert_eq!(with_threads(Some(1), rayon::current_num_threads).unwrap(), 1);
        assert!(with_threads(Some(0), || ()).is_err());
    }
}
