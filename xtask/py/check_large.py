#!/usr/bin/env python3
"""Check the > 2 GiB model that `cargo xtask large-model` saved with external data.

Usage: check_large.py MODEL.onnx N

The model has three float32 initializers ``w0..w2`` of N elements with
``w_k[i] = k * 1000 + (i % 1000)``, and outputs ``y_k = Gather(w_k, indices)``.
This script checks the file with ``onnx.checker.check_model(path, full_check=True)``
(the path form, which handles models over 2 GiB), runs it in ONNX Runtime and
compares the gathered values with the formula computed here in numpy.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    path, n = sys.argv[1], int(sys.argv[2])
    onnx.checker.check_model(path, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    indices = np.array([0, 1, 999, 1000, 123_456_789 % n, n // 2, n - 2, n - 1], dtype=np.int64)
    outputs = session.run(None, {"indices": indices})
    for k, got in enumerate(outputs):
        expected = (k * 1000 + indices % 1000).astype(np.float32)
        if not np.array_equal(got, expected):
            print(f"y{k}: expected {expected}, got {got}")
            return 1
    print(f"large model: onnx.checker ok, ONNX Runtime gathered {len(outputs)} x {len(indices)} values as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
