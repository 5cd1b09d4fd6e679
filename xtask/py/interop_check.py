#!/usr/bin/env python3
"""Check that models re-saved by whittle are interchangeable with the originals.

Usage::

    interop_check.py MANIFEST.json [--jobs N] [--report OUT.json] [--timeout S]

MANIFEST is a JSON list of ``{"name", "original", "saved", "data_sets"}``
objects (``data_sets``: directories holding ``input_K.pb`` files, may be
empty). For every entry:

1. ``onnx.checker.check_model(path, full_check=True)`` runs on both files (by
   path, so external data and >2 GB models work). If the original passes, the
   saved model must pass too.
2. ONNX Runtime (CPU, one thread, same SessionOptions for both) runs the
   original. If that fails the entry is ``ort-unsupported`` (not a failure).
   Otherwise the saved model must load and run, and every output must be
   bit-identical to the original's (dtype, shape, raw bytes; NaN-safe) for
   every data set. Without data sets, inputs are synthesised from the declared
   input types with a seeded RNG (unknown dims = 1), or the entry is
   ``no-inputs`` when that is impossible.

Entries run in a pool of worker processes. Each worker handles one entry at a
time, so a worker that crashes (e.g. a segfault inside ORT) or exceeds the
per-entry timeout is attributed to exactly one entry and replaced.

Prints ``FAIL <name>: <reason>`` per failing entry and a summary line. Exit
status: 0 all good, 1 any failure, 2 usage error (bad arguments/manifest).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TypeProto, numpy_helper

MAX_REASON = 300
DEFAULT_TIMEOUT_S = 600.0
RNG_SEED = 0

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


ORT_SOURCE_LOC = re.compile(r"/onnxruntime_src/\S+:\d+ ")


def strip_cpp_signature(text: str, pos: int) -> int:
    """Index just past the C++ signature "ns::f(args...) const " at pos."""
    open_at = text.find("(", pos)
    # A signature may carry a return type ("virtual Status ns::f(...)") but
    # never a sentence; requiring "::" and no ". " keeps real text intact.
    head = text[pos:open_at]
    if open_at < 0 or "::" not in head or ". " in head or len(head) > 200:
        return pos
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            end = i + 1
            if text.startswith(" const", end):
                end += len(" const")
            return end + 1 if text.startswith(" ", end) else end
    return pos


def short(exc: BaseException | str) -> str:
    """One-line, bounded description of an error, for FAIL lines and reports.

    ORT messages start with a source location and a full C++ signature that
    would use up the length budget, so those are cut out.
    """
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    while m := ORT_SOURCE_LOC.search(text):
        text = text[: m.start()] + text[strip_cpp_signature(text, m.end()) :]
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


class UsageError(Exception):
    pass


def load_manifest(path: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise UsageError("manifest must be a JSON list")
    for i, e in enumerate(entries):
        ok = (
            isinstance(e, dict)
            and all(isinstance(e.get(k), str) for k in ("name", "original", "saved"))
            and isinstance(e.get("data_sets", []), list)
            and all(isinstance(d, str) for d in e.get("data_sets", []))
        )
        if not ok:
            raise UsageError(f"manifest entry {i} is malformed: {json.dumps(e)[:200]}")
    return entries


# --------------------------------------------------------------------------
# Checker
# --------------------------------------------------------------------------


def run_checker(path: str) -> str | None:
    """Return None if the model passes, else a short error."""
    try:
        onnx.checker.check_model(path, full_check=True)
        return None
    except Exception as exc:  # checker raises several exception types
        return short(exc)


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Inputs a caller must feed: IR<4 models also list initializers."""
    inits = {t.name for t in model.graph.initializer}
    return [x for x in model.graph.input if x.name not in inits]


def decode_value(data: bytes, type_proto: TypeProto) -> Any:
    """Decode an input_K.pb according to the declared graph input type."""
    kind = type_proto.WhichOneof("value")
    if kind == "sequence_type":
        return numpy_helper.to_list(onnx.SequenceProto.FromString(data))
    if kind == "map_type":
        return numpy_helper.to_dict(onnx.MapProto.FromString(data))
    if kind == "optional_type":
        return numpy_helper.to_optional(onnx.OptionalProto.FromString(data))
    if kind == "tensor_type":
        return numpy_helper.to_array(onnx.TensorProto.FromString(data))
    # Untyped input: protobuf parsing is lenient, so only accept a parse that
    # actually populated the container's distinguishing field.
    seq = onnx.SequenceProto.FromString(data)
    if seq.elem_type:
        return numpy_helper.to_list(seq)
    return numpy_helper.to_array(onnx.TensorProto.FromString(data))


def load_data_set(ds_dir: str, inputs: list[onnx.ValueInfoProto]) -> dict[str, Any]:
    """Map input_K.pb files to the non-initializer graph inputs in order."""
    feeds = {}
    for k, info in enumerate(inputs):
        path = Path(ds_dir) / f"input_{k}.pb"
        if not path.exists():
            break  # trailing optional inputs may be omitted
        feeds[info.name] = decode_value(path.read_bytes(), info.type)
    return feeds


def synth_tensor(tt: onnx.TypeProto.Tensor, rng: np.random.Generator) -> np.ndarray:
    if not tt.HasField("shape"):
        raise ValueError("unranked tensor input")
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
    if dtype == np.object_:
        return rng.choice(np.array(["a", "bc", ""], dtype=object), size=shape)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        # Small non-negative values keep index-like inputs (Gather, Slice...) valid.
        return rng.integers(0, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def synth_inputs(inputs: list[onnx.ValueInfoProto]) -> dict[str, Any] | None:
    """Seeded inputs from declared types, or None if some type can't be made."""
    rng = np.random.default_rng(RNG_SEED)
    feeds = {}
    try:
        for info in inputs:
            kind = info.type.WhichOneof("value")
            if kind == "tensor_type":
                feeds[info.name] = synth_tensor(info.type.tensor_type, rng)
            elif kind == "sequence_type" and info.type.sequence_type.elem_type.HasField(
                "tensor_type"
            ):
                elem = info.type.sequence_type.elem_type.tensor_type
                feeds[info.name] = [synth_tensor(elem, rng)]
            else:
                return None
    except (ValueError, TypeError, KeyError):
        return None
    return feeds


# --------------------------------------------------------------------------
# Bit-exact comparison
# --------------------------------------------------------------------------


class RawTensor(NamedTuple):
    """A tensor output numpy can't represent (bfloat16, float8...), as bytes."""

    data_type: str
    shape: tuple
    data: bytes


def diff_values(a: Any, b: Any, where: str) -> str | None:
    """Describe the first difference between two ORT outputs, or None."""
    if isinstance(a, RawTensor) and isinstance(b, RawTensor):
        for field in RawTensor._fields[:2]:
            if getattr(a, field) != getattr(b, field):
                return f"{where}: {field} {getattr(a, field)} != {getattr(b, field)}"
        return None if a.data == b.data else f"{where}: values differ"
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype:
            return f"{where}: dtype {a.dtype} != {b.dtype}"
        if a.shape != b.shape:
            return f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype == np.object_:  # strings: tobytes() would compare pointers
            same = a.tolist() == b.tolist()
        else:
            same = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        return None if same else f"{where}: values differ"
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: sequence length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if d := diff_values(x, y, f"{where}[{i}]"):
                return d
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a, key=repr) != sorted(b, key=repr):
            return f"{where}: map keys differ"
        for k in a:
            if d := diff_values(a[k], b[k], f"{where}[{k!r}]"):
                return d
        return None
    if type(a) is not type(b):
        return f"{where}: kind {type(a).__name__} != {type(b).__name__}"
    return None if a == b else f"{where}: values differ"


# --------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # One thread each: deterministic reductions and no oversubscription of
    # the worker pool.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    # Errors surface as exceptions; ORT would also log them (and warnings
    # about unused initializers...) to stderr, drowning the FAIL lines.
    opts.log_severity_level = 4
    return opts


def make_session(path: str, opts: ort.SessionOptions) -> ort.InferenceSession:
    # Random ops without a seed attribute draw their seed from ORT's global
    # seed when the kernel is created; resetting it before each session makes
    # original and saved produce the same random stream.
    ort.set_seed(RNG_SEED)
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


NPY_USERDEF = 256  # numpy type numbers from here on are user-defined dtypes
SUB_BYTE_TYPES = {
    getattr(onnx.TensorProto, n)
    for n in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")
    if hasattr(onnx.TensorProto, n)
}


def is_numpy_native(value: Any) -> bool:
    # ml_dtypes types (bfloat16, float8*, int4...) are user-defined numpy
    # dtypes that ORT's numpy bridge rejects.
    return not isinstance(value, np.ndarray) or value.dtype.num < NPY_USERDEF


def to_ort_value(value: Any) -> ort.OrtValue:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"cannot feed {type(value).__name__} as an OrtValue")
    if is_numpy_native(value):
        return ort.OrtValue.ortvalue_from_numpy(value)
    elem_type = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
    if elem_type in SUB_BYTE_TYPES or value.dtype.itemsize not in (1, 2):
        # ml_dtypes stores one element per byte; ORT wants them packed.
        raise TypeError(f"cannot feed {value.dtype} to onnxruntime")
    bits = value.view(np.uint8 if value.dtype.itemsize == 1 else np.uint16)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, elem_type)


def from_ort_value(value: ort.OrtValue) -> Any:
    if not value.is_tensor() or value.data_type() == "tensor(string)":
        return value.numpy()
    size = value.tensor_size_in_bytes()
    data = ctypes.string_at(value.data_ptr(), size) if size else b""
    return RawTensor(value.data_type(), tuple(value.shape()), data)


def run_model(sess: ort.InferenceSession, feeds: dict[str, Any]) -> list[Any]:
    """sess.run, falling back to OrtValues for dtypes numpy can't carry."""
    if all(is_numpy_native(v) for v in feeds.values()):
        try:
            return sess.run(None, feeds)
        except RuntimeError as exc:
            # e.g. a bfloat16 output: "No corresponding Numpy type for Tensor Type"
            if "Numpy type" not in str(exc):
                raise
    ort_feeds = {k: to_ort_value(v) for k, v in feeds.items()}
    return [from_ort_value(v) for v in sess.run_with_ort_values(None, ort_feeds)]


def feed_sets(entry: dict, model: onnx.ModelProto) -> list[dict[str, Any]] | None:
    inputs = graph_inputs(model)
    if entry.get("data_sets"):
        return [load_data_set(d, inputs) for d in entry["data_sets"]]
    synth = synth_inputs(inputs)
    return None if synth is None else [synth]


def ort_error(exc: BaseException, entry: dict) -> str:
    """short() without the model paths ORT repeats in its messages."""
    text = f"{type(exc).__name__}: {exc}"
    for key in ("original", "saved"):
        text = text.replace(entry[key], f"<{key}>")
    return short(text)


def compare_ort(entry: dict, result: dict, progress) -> None:
    """Fill result["ort"] and append to result["failures"]."""
    opts = session_options()
    progress("ort-original")
    try:
        # Loaded without external data: only graph inputs/types are needed.
        model = onnx.load(entry["original"], load_external_data=False)
        orig = make_session(entry["original"], opts)
        feeds = feed_sets(entry, model)
        expected = [run_model(orig, f) for f in feeds] if feeds is not None else None
    except Exception as exc:
        result["ort"] = f"ort-unsupported: {ort_error(exc, entry)}"
        return
    names = [o.name for o in orig.get_outputs()]
    del orig  # free memory before loading the second copy of a large model

    progress("ort-saved")
    try:
        saved = make_session(entry["saved"], opts)
    except Exception as exc:
        result["ort"] = "failed"
        result["failures"].append(f"ORT cannot load saved model: {ort_error(exc, entry)}")
        return
    saved_names = [o.name for o in saved.get_outputs()]
    if saved_names != names:
        result["ort"] = "failed"
        result["failures"].append(f"output names differ: {names} != {saved_names}")
        return
    if feeds is None:
        result["ort"] = "no-inputs"
        return
    for i, (f, want) in enumerate(zip(feeds, expected)):
        try:
            got = run_model(saved, f)
        except Exception as exc:
            result["ort"] = "failed"
            result["failures"].append(f"ORT cannot run saved model: {ort_error(exc, entry)}")
            return
        for name, a, b in zip(names, want, got):
            if d := diff_values(a, b, f"data set {i} output {name!r}"):
                result["ort"] = "failed"
                result["failures"].append(d)
                return
    result["ort"] = "compared"
    result["data_sets_compared"] = len(feeds)


# --------------------------------------------------------------------------
# One entry
# --------------------------------------------------------------------------


def check_entry(entry: dict, progress) -> dict:
    """Run all checks for one manifest entry; never raises."""
    start = time.monotonic()
    result = {
        "name": entry["name"],
        "checker_original": None,
        "checker_saved": None,
        "ort": None,
        "data_sets_compared": 0,
        "failures": [],
    }
    progress("checker", result)
    try:
        missing = [k for k in ("original", "saved") if not os.path.isfile(entry[k])]
        if missing:
            result["failures"] += [f"{k} model not found: {entry[k]}" for k in missing]
            return finish(result, start)
        orig_err = run_checker(entry["original"])
        saved_err = run_checker(entry["saved"])
        result["checker_original"] = orig_err or "ok"
        result["checker_saved"] = saved_err or "ok"
        if orig_err is None and saved_err is not None:
            result["failures"].append(f"checker rejects saved model: {saved_err}")
        compare_ort(entry, result, lambda phase: progress(phase, result))
    except Exception as exc:  # harness bug or unreadable file: report, go on
        result["failures"].append(f"internal error: {short(exc)}")
    return finish(result, start)


def finish(result: dict, start: float) -> dict:
    result["seconds"] = round(time.monotonic() - start, 3)
    return result


# --------------------------------------------------------------------------
# Worker pool (crash- and hang-tolerant)
# --------------------------------------------------------------------------


def worker_main(conn: mpc.Connection) -> None:
    """Receive (index, entry), send ("phase", ...) updates then ("done", ...)."""

    def progress(phase: str, partial: dict) -> None:
        conn.send(("phase", phase, partial))

    while True:
        task = conn.recv()
        if task is None:
            return
        _, entry = task
        conn.send(("done", None, check_entry(entry, progress)))


class Worker:
    def __init__(self, ctx: mp.context.BaseContext):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: int | None = None
        self.started = 0.0
        self.phase = ""
        self.partial: dict | None = None

    def assign(self, index: int, entry: dict) -> None:
        self.task, self.started, self.phase, self.partial = index, time.monotonic(), "", None
        self.conn.send((index, entry))


def lost_result(entry: dict, worker: Worker, why: str) -> dict:
    """Result for an entry whose worker died or hung, keyed on the phase."""
    result = dict(worker.partial or {"name": entry["name"], "failures": []})
    result["failures"] = list(result.get("failures", []))
    if worker.phase == "ort-original":
        # ORT misbehaving on the original model is ORT's limitation.
        result["ort"] = f"ort-unsupported: {why} on original"
    else:
        result["ort"] = "failed"
        result["failures"].append(f"{why} during {worker.phase or 'startup'}")
    return result


def run_pool(entries: list[dict], jobs: int, timeout: float) -> list[dict]:
    # fork shares the already-imported onnx/onnxruntime modules with workers;
    # no ORT session exists in the parent, so forking is safe.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    results: list[dict | None] = [None] * len(entries)
    pending = iter(range(len(entries)))
    workers = [Worker(ctx) for _ in range(min(jobs, len(entries)))]

    def dispatch(w: Worker) -> None:
        idx = next(pending, None)
        if idx is None:
            w.task = None
            w.conn.send(None)
        else:
            w.assign(idx, entries[idx])

    for w in workers:
        dispatch(w)
    while any(w.task is not None for w in workers):
        busy = [w for w in workers if w.task is not None]
        ready = mpc.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], 1.0)
        for w in busy:
            if w.conn in ready:
                try:
                    kind, phase, payload = w.conn.recv()
                except EOFError:  # worker exited; reap it below
                    w.proc.join()
                    kind = "dead"
                if kind == "phase":
                    w.phase, w.partial = phase, payload
                    continue
                if kind == "done":
                    results[w.task] = payload
                    dispatch(w)
                    continue
            dead = not w.proc.is_alive()
            hung = time.monotonic() - w.started > timeout
            if dead or hung:
                if hung:
                    w.proc.kill()
                w.proc.join()
                code = w.proc.exitcode
                why = f"timeout after {timeout:.0f}s" if hung else f"worker died (exit {code})"
                results[w.task] = lost_result(entries[w.task], w, why)
                workers[workers.index(w)] = nw = Worker(ctx)
                dispatch(nw)
    for w in workers:
        w.proc.join(5)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def summarise(results: list[dict]) -> str:
    n = len(results)
    checker_ok = sum(
        r.get("checker_original") == "ok" and r.get("checker_saved") == "ok"
        for r in results
    )
    orig_fail = sum(r.get("checker_original") not in (None, "ok") for r in results)
    compared = sum(r.get("ort") == "compared" for r in results)
    unsupported = sum(str(r.get("ort")).startswith("ort-unsupported") for r in results)
    no_inputs = sum(r.get("ort") == "no-inputs" for r in results)
    failed = sum(bool(r["failures"]) for r in results)
    return (
        f"interop: {n} models, {checker_ok} checker-ok, {compared} ort-compared, "
        f"{failed} failed ({unsupported} ort-unsupported, {no_inputs} no-inputs, "
        f"{orig_fail} checker-fails-on-original)"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="JSON list of {name, original, saved, data_sets}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report", help="write per-entry results as JSON here")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per entry"
    )
    args = parser.parse_args(argv)  # exits with status 2 on usage errors
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs and --timeout must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        entries = load_manifest(args.manifest)
    except UsageError as exc:
        print(f"interop_check: {exc}", file=sys.stderr)
        return 2
    start = time.monotonic()
    results = run_pool(entries, args.jobs, args.timeout) if entries else []
    for r in results:
        if r["failures"]:
            print(f"FAIL {r['name']}: {'; '.join(r['failures'])}")
    print(f"{summarise(results)} in {time.monotonic() - start:.1f}s")
    if args.report:
        Path(args.report).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
