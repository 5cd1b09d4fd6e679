"""ONNX Runtime's own quantizer beside whittle's, for `cargo xtask quant-vs-ort`.

usage: quant_vs_ort.py FIXTURE_DIR OUT_DIR WHITTLE_STATIC WHITTLE_DYNAMIC [--seconds S]

Quantizes FIXTURE_DIR/model.onnx with onnxruntime.quantization (quantize_static: QDQ, MinMax,
per-channel, u8 activations, s8 weights, calibrated on calib.npz in batches of 64; quantize_dynamic:
s8 per-channel weights), then measures every model (fp32, whittle's two, ORT's two) in ONNX Runtime:
file size, accuracy on eval.npz against eval_labels.npy, and p50 latency of one run over the first 8
eval samples on one intra-op thread. A model ORT cannot load or run is reported with its error, not
skipped. Prints one JSON object per model, one per line.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static


class Reader(CalibrationDataReader):
    def __init__(self, arrays, names, batch):
        first = arrays[names[0]].shape[0]
        self.feeds = iter([{n: arrays[n][i : i + batch] for n in names} for i in range(0, first, batch)])

    def get_next(self):
        return next(self.feeds, None)


def measure(label, path, eval_arrays, labels, seconds):
    row = {"model": label, "bytes": os.path.getsize(path)}
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        scores = session.run(None, {n: eval_arrays[n] for n in names})[0]
        row["accuracy"] = float((scores.argmax(axis=1) == labels).mean())
        feed = {n: eval_arrays[n][:8] for n in names}
        for _ in range(5):
            session.run(None, feed)
        times, deadline = [], time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 10:
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1e3)
        times.sort()
        row["p50_ms"] = times[max(1, math.ceil(0.5 * len(times))) - 1]
    except Exception as error:  # reported in the table: a model ORT cannot run is a result
        row["error"] = str(error).splitlines()[0][:160]
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fixture")
    parser.add_argument("out")
    parser.add_argument("whittle_static")
    parser.add_argument("whittle_dynamic")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    model = os.path.join(args.fixture, "model.onnx")
    calib = np.load(os.path.join(args.fixture, "calib.npz"))
    eval_arrays = np.load(os.path.join(args.fixture, "eval.npz"))
    labels = np.load(os.path.join(args.fixture, "eval_labels.npy"))
    names = [i.name for i in ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()]
    ort_static = os.path.join(args.out, "ort-static.onnx")
    ort_dynamic = os.path.join(args.out, "ort-dynamic.onnx")
    failures = {}
    try:
        quantize_static(
            model, ort_static, Reader(calib, names, 64), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
    except Exception as error:  # ORT's quantizer failing is a result too
        failures[ort_static] = "quantize_static failed: " + str(error).splitlines()[-1][:160]
    dynamic_label = "ORT quantize_dynamic"
    try:
        quantize_dynamic(model, ort_dynamic, per_channel=True, weight_type=QuantType.QInt8)
    except Exception as first_error:
        # ORT 1.31's quantize_dynamic transposes Gemm weights but keeps the shapes the model declares
        # for them in value_info, then fails its own shape inference ("Inferred shape and existing
        # shape differ"). Removing the initializers' value_info is what a user would do; the row says so.
        stripped = os.path.join(args.out, "fp32-no-weight-value-info.onnx")
        proto = onnx.load(model)
        weights = {tensor.name for tensor in proto.graph.initializer}
        kept = [info for info in proto.graph.value_info if info.name not in weights]
        del proto.graph.value_info[:]
        proto.graph.value_info.extend(kept)
        onnx.save(proto, stripped)
        try:
            quantize_dynamic(stripped, ort_dynamic, per_channel=True, weight_type=QuantType.QInt8)
            dynamic_label = "ORT quantize_dynamic (weights' value_info removed first)"
        except Exception as error:
            failures[ort_dynamic] = (
                "quantize_dynamic failed: " + str(first_error).splitlines()[-1][:160]
                + "; again without the weights' value_info: " + str(error).splitlines()[-1][:160]
            )
    for label, path in [
        ("fp32", model),
        ("whittle int8-static", args.whittle_static),
        ("ORT quantize_static", ort_static),
        ("whittle int8-dynamic", args.whittle_dynamic),
        (dynamic_label, ort_dynamic),
    ]:
        if path in failures:
            row = {"model": label, "error": failures[path]}
        else:
            row = measure(label, path, eval_arrays, labels, args.seconds)
        row["onnxruntime"] = ort.__version__
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
