"""Times one model in ONNX Runtime the way `whittle bench` times it in whittle, for `cargo xtask bench-ort`.

The feed is the first BATCH samples of a fixture's eval.npz (the same samples whittle's run reads), one
intra-op thread pool of THREADS threads, inter-op parallelism off, ORT's default graph optimizations (what a
user of ORT gets). Each timed run is one `InferenceSession.run`, outputs copied out, as whittle's run
includes its download. Prints one JSON object: p50/p90/p99/mean/min in milliseconds and the run count.
"""

import argparse
import json
import math
import time

import numpy as np
import onnxruntime as ort


def percentile(sorted_times, p):
    # Nearest rank, as whittle-eval computes it.
    rank = max(1, min(len(sorted_times), math.ceil(p / 100.0 * len(sorted_times))))
    return sorted_times[rank - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    arrays = np.load(args.data)
    feed = {inp.name: arrays[inp.name][: args.batch] for inp in session.get_inputs()}
    for _ in range(args.warmup):
        session.run(None, feed)
    times = []
    started = time.perf_counter()
    while not times or time.perf_counter() - started < args.seconds:
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "iterations": len(times),
        "mean_ms": sum(times) / len(times),
        "p50_ms": percentile(times, 50),
        "p90_ms": percentile(times, 90),
        "p99_ms": percentile(times, 99),
        "min_ms": times[0],
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
