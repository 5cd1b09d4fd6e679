#!/usr/bin/env python3
"""Check fused models against their originals in ONNX Runtime, and optionally against onnxsim.

Usage::

    fused_check.py MANIFEST.json [--onnxsim OUT_DIR]

MANIFEST is a JSON list of ``{"name", "original", "fused", "rtol", "atol",
"data_sets"}`` objects. For every entry, ONNX Runtime (CPU, one thread) loads
the original and the fused model and runs both on every data set
(``input_K.pb`` files; without data sets, inputs are synthesised from the
declared types with a seeded RNG, unknown dims = 1). Every output of the fused
model must satisfy ``|fused - original| <= atol + rtol * |original|``, and the
fused model must pass ``onnx.checker.check_model(full_check=True)``.

With ``--onnxsim OUT_DIR``, onnxsim (pinned in requirements-interop.txt)
simplifies each original too; its result is checked the same way, and the
node counts of original, onnxsim and whittle are printed side by side.

Prints ``FAIL <name>: <reason>`` per failure and a summary line; exit status 1
on any failure.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds(sess: ort.InferenceSession, data_sets: list[str]) -> list[dict]:
    names = [i.name for i in sess.get_inputs()]
    result = []
    for data_set in data_sets:
        files = sorted(glob.glob(os.path.join(data_set, "input_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
        tensors = [onnx.numpy_helper.to_array(onnx.load_tensor(f)) for f in files]
        result.append(dict(zip(names, tensors)))
    if result:
        return result
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if "float" in i.type:
            feed[i.name] = rng.random(shape, dtype=np.float32)
        elif "int64" in i.type:
            feed[i.name] = rng.integers(0, 8, shape, dtype=np.int64)
        else:
            raise ValueError(f"cannot synthesise input {i.name} of {i.type}")
    return [feed]


def compare(original: str, candidate: str, data_sets: list[str], rtol: float, atol: float) -> str | None:
    onnx.checker.check_model(candidate, full_check=True)
    reference = session(original)
    fused = session(candidate)
    for feed in feeds(reference, data_sets):
        want = reference.run(None, feed)
        got = fused.run(None, {k: v for k, v in feed.items() if k in {i.name for i in fused.get_inputs()}})
        for output, w, g in zip(reference.get_outputs(), want, got):
            w, g = np.asarray(w), np.asarray(g)
            if w.shape != g.shape:
                return f"output {output.name}: shape {g.shape}, expected {w.shape}"
            if w.dtype.kind in "fc":
                excess = np.abs(g - w) - (atol + rtol * np.abs(w))
                if np.any(excess > 0):
                    index = int(np.argmax(excess))
                    return (f"output {output.name}: element {index} is {g.flat[index]}, expected {w.flat[index]} "
                            f"(max abs error {np.max(np.abs(g - w)):.3e})")
            elif not np.array_equal(w, g):
                return f"output {output.name}: values differ"
    return None


def count_nodes(path: str) -> int:
    return len(onnx.load(path, load_external_data=False).graph.node)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("--onnxsim", metavar="OUT_DIR")
    args = parser.parse_args()
    with open(args.manifest) as f:
        entries = json.load(f)
    failures = 0
    rows = []
    for entry in entries:
        name = entry["name"]
        try:
            reason = compare(entry["original"], entry["fused"], entry["data_sets"], entry["rtol"], entry["atol"])
        except Exception as error:  # noqa: BLE001 - any ORT or checker error is a failure of this entry
            reason = f"{type(error).__name__}: {error}"
        if reason:
            failures += 1
            print(f"FAIL {name}: {reason}")
        if args.onnxsim:
            import onnxsim

            simplified = os.path.join(args.onnxsim, name.replace("/", "_") + ".onnx")
            try:
                model, ok = onnxsim.simplify(onnx.load(entry["original"]))
                onnx.save(model, simplified, save_as_external_data=model.ByteSize() > 2**31 - 2**26)
                sim_reason = None if ok else "onnxsim's own check failed"
                sim_reason = sim_reason or compare(entry["original"], simplified, entry["data_sets"], 1e-4, 1e-5)
                sim_nodes = count_nodes(simplified)
            except Exception as error:  # noqa: BLE001
                sim_reason, sim_nodes = f"{type(error).__name__}: {error}", None
            rows.append((name, count_nodes(entry["original"]), sim_nodes, count_nodes(entry["fused"]), sim_reason, reason))
    if args.onnxsim:
        width = max(len(row[0]) for row in rows)
        print(f"{'model':<{width}}  original  onnxsim  whittle  whittle<=onnxsim")
        for name, original, sim, fused, sim_reason, reason in rows:
            verdict = "n/a" if sim is None else ("yes" if fused <= sim else "NO")
            print(f"{name:<{width}}  {original:>8}  {sim if sim is not None else '-':>7}  {fused:>7}  {verdict}")
            if sim_reason:
                print(f"  onnxsim: {sim_reason}")
        behind = [row[0] for row in rows if row[2] is not None and row[3] > row[2]]
        failures += len(behind)
        for name in behind:
            print(f"FAIL {name}: whittle leaves more nodes than onnxsim")
    print(f"fused_check: {len(entries)} models, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
