"""Reference activation statistics from ONNX Runtime, for whittle's calibration tests.

usage: activation_ranges.py MODEL DATA.npz TENSOR[,TENSOR...] PERCENTILE

Runs MODEL once on all of DATA (arrays keyed by input name) with the named intermediate tensors added
as outputs, graph optimizations off so that they exist as in the file, and prints JSON
{tensor: {"min", "max", "abs_percentile"}}; graph inputs are read from DATA itself.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    model_path, data_path, names, percentile = sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4])
    model = onnx.load(model_path)
    data = np.load(data_path)
    inputs = {i.name for i in model.graph.input}
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in inputs and name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: data[i.name] for i in session.get_inputs()}
    wanted = [name for name in names if name not in inputs]
    values = dict(zip(wanted, session.run(wanted, feeds)))
    values.update({name: feeds[name] for name in names if name in inputs})
    stats = {
        name: {
            "min": float(values[name].min()),
            "max": float(values[name].max()),
            "abs_percentile": float(np.percentile(np.abs(values[name]), percentile)),
        }
        for name in names
    }
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
