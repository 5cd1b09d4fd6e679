"""ONNX Runtime's view of a model whittle wrote, for the quantization tests.

usage: quantized_check.py MODEL DATA.npz OUT.npz

Checks MODEL with onnx.checker (full check, with shape inference), runs it in ONNX Runtime (CPU,
default graph optimizations, as a user would) on all of DATA (arrays keyed by input name), and
writes its outputs to OUT.npz keyed by output name.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    model_path, data_path, out_path = sys.argv[1:4]
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    data = np.load(data_path)
    feeds = {i.name: data[i.name] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    np.savez(out_path, **dict(zip(names, session.run(names, feeds))))


if __name__ == "__main__":
    main()
