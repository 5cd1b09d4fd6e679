#!/usr/bin/env python3
"""Materialise the ONNX backend test data of the installed ``onnx`` package.

Usage::

    backend_data.py --out DIR [--force] [--verify-light]

Writes the standard backend-test layout::

    DIR/<kind>/<test_name>/model.onnx
    DIR/<kind>/<test_name>/test_data_set_N/{input_K.pb,output_K.pb}

Kinds:

* ``node``: generated from the case definitions in
  ``onnx.backend.test.case.node`` (onnx >= 1.23 no longer ships the generated
  files in the wheel). Serialisation mirrors ``onnx/backend/test/cmd_tools.py``.
* ``simple``, ``pytorch-converted``, ``pytorch-operator``: copied verbatim from
  ``onnx/backend/test/data/<kind>/``.
* ``light``: ``light_<name>.onnx`` + ``light_<name>_output_0.pb`` are shipped
  without inputs; the inputs are regenerated exactly as the onnx backend runner
  does (``Runner.generate_dummy_data(x, seed=0, random=False)``) so the shipped
  expected output applies. Written as ``DIR/light/<name>/``.
* ``real`` is skipped: it needs network downloads.

The run is deterministic and idempotent: ``DIR/.stamp`` records the onnx
version and a hash of this script; when it matches nothing is done. Output is
built in a sibling temporary directory and swapped in at the end, so an
interrupted run never leaves a half-written DIR with a valid stamp.

``--verify-light`` additionally runs every light model in ONNX Runtime on the
generated inputs and compares against the shipped output (informational only;
it never changes the exit status).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, TypeProto, ValueInfoProto, numpy_helper

COPIED_KINDS = ("simple", "pytorch-converted", "pytorch-operator")
ONNX_DATA_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data"
LIGHT_RTOL, LIGHT_ATOL = 1e-3, 1e-4


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Stamp handling
# --------------------------------------------------------------------------


def stamp_text() -> str:
    """Identity of the generated data: onnx version + this script's content."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return f"onnx={onnx.__version__}\nscript-sha256={digest}\n"


def stamp_matches(out: Path) -> bool:
    stamp = out / ".stamp"
    return stamp.is_file() and stamp.read_text() == stamp_text()


# --------------------------------------------------------------------------
# Serialisation shared by node cases (mirrors cmd_tools.generate_data)
# --------------------------------------------------------------------------


def value_to_proto(value: Any, type_proto: TypeProto, name: str) -> Any:
    """Convert a case value to the proto matching the declared graph type.

    The declared type decides the container kind, as in cmd_tools.py: values
    for sequence/map/optional slots are plain Python lists/dicts/None.
    """
    kind = type_proto.WhichOneof("value")
    if kind == "map_type":
        return numpy_helper.from_dict(value, name)
    if kind == "sequence_type":
        return numpy_helper.from_list(value, name)
    if kind == "optional_type":
        return numpy_helper.from_optional(value, name)
    if kind != "tensor_type":
        raise ValueError(f"unsupported graph value type {kind!r} for {name!r}")
    # Some cases pre-build TensorProtos (e.g. for dtypes numpy lacks).
    if isinstance(value, TensorProto):
        return value
    return numpy_helper.from_array(value, name)


def write_values(
    dirpath: Path, prefix: str, values: list[Any], infos: list[ValueInfoProto]
) -> None:
    for j, value in enumerate(values):
        proto = value_to_proto(value, infos[j].type, infos[j].name)
        (dirpath / f"{prefix}_{j}.pb").write_bytes(proto.SerializeToString())


def write_case(
    case_dir: Path, model: ModelProto, data_sets: list[tuple[list, list]]
) -> None:
    case_dir.mkdir(parents=True)
    (case_dir / "model.onnx").write_bytes(model.SerializeToString())
    for i, (inputs, outputs) in enumerate(data_sets):
        ds_dir = case_dir / f"test_data_set_{i}"
        ds_dir.mkdir()
        write_values(ds_dir, "input", inputs, list(model.graph.input))
        write_values(ds_dir, "output", outputs, list(model.graph.output))


# --------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------


def collect_node_cases() -> list:
    """Run the onnx node case generators deterministically.

    Many generators draw from np.random's global state without seeding; fixing
    the seed up front makes the output reproducible run to run. The
    generators also compute expected outputs with numpy and deliberately hit
    overflow/NaN paths, hence the silenced RuntimeWarnings.
    """
    import onnx.backend.test.case.node as node_cases

    np.random.seed(0)
    random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return node_cases.collect_testcases(None)


def generate_node(out: Path) -> int:
    cases = collect_node_cases()
    for case in cases:
        write_case(out / "node" / case.name, case.model, case.data_sets)
    return len(cases)


def copy_shipped(out: Path, kind: str) -> int:
    src = ONNX_DATA_DIR / kind
    shutil.copytree(src, out / kind)
    return sum(1 for p in src.iterdir() if p.is_dir())


def dummy_input(x: ValueInfoProto) -> np.ndarray:
    """Same data as onnx Runner.generate_dummy_data(x, seed=0, random=False).

    Re-implemented rather than imported because the runner module pulls in
    unittest machinery and its API is private; the formula is tiny.
    """
    tt = x.type.tensor_type
    if x.type.WhichOneof("value") != "tensor_type" or tt.elem_type != TensorProto.FLOAT:
        raise NotImplementedError(f"light input {x.name!r} is not a float tensor")
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
    n = np.prod(shape)
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def light_inputs(model: ModelProto) -> list[tuple[str, np.ndarray]]:
    # These models use IR<4 style: initializers are repeated as graph inputs.
    inits = {i.name for i in model.graph.initializer}
    return [(x.name, dummy_input(x)) for x in model.graph.input if x.name not in inits]


def generate_light(out: Path) -> int:
    count = 0
    for model_path in sorted((ONNX_DATA_DIR / "light").glob("light_*.onnx")):
        name = model_path.stem[len("light_") :]
        ds_dir = out / "light" / name / "test_data_set_0"
        ds_dir.mkdir(parents=True)
        shutil.copyfile(model_path, ds_dir.parent / "model.onnx")
        for k, (input_name, value) in enumerate(light_inputs(onnx.load(model_path))):
            # The runner writes unnamed tensors; naming them is harmless and
            # lets name-based loaders match inputs. The data is identical.
            proto = numpy_helper.from_array(value, input_name)
            (ds_dir / f"input_{k}.pb").write_bytes(proto.SerializeToString())
        shipped = model_path.with_name(f"{model_path.stem}_output_0.pb")
        shutil.copyfile(shipped, ds_dir / "output_0.pb")
        count += 1
    return count


def generate_all(out: Path) -> None:
    """Build into a temporary sibling, then swap it into place."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"backend-data: node: {generate_node(tmp)}")
    for kind in COPIED_KINDS:
        log(f"backend-data: {kind}: {copy_shipped(tmp, kind)}")
    log(f"backend-data: light: {generate_light(tmp)}")
    (tmp / ".stamp").write_text(stamp_text())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


# --------------------------------------------------------------------------
# Optional verification of the light inputs against the shipped outputs
# --------------------------------------------------------------------------


def verify_light(out: Path) -> None:
    import onnxruntime as ort

    for case_dir in sorted((out / "light").iterdir()):
        ds = case_dir / "test_data_set_0"
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # unused-initializer warnings are noise here
        sess = ort.InferenceSession(
            str(case_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        feeds = {}
        names = [n for n, _ in light_inputs(onnx.load(case_dir / "model.onnx"))]
        for k, name in enumerate(names):
            tensor = TensorProto.FromString((ds / f"input_{k}.pb").read_bytes())
            feeds[name] = numpy_helper.to_array(tensor)
        got = sess.run(None, feeds)[0]
        want = numpy_helper.to_array(
            TensorProto.FromString((ds / "output_0.pb").read_bytes())
        )
        ok = got.shape == want.shape and np.allclose(
            got, want, rtol=LIGHT_RTOL, atol=LIGHT_ATOL
        )
        err = np.max(np.abs(got - want)) if got.shape == want.shape else float("nan")
        status = "ok" if ok else "MISMATCH"
        log(f"verify-light: {case_dir.name}: {status} (max abs err {err:.3g})")


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--force", action="store_true", help="ignore the stamp")
    parser.add_argument(
        "--verify-light",
        action="store_true",
        help="run light models in onnxruntime against the shipped outputs",
    )
    args = parser.parse_args()
    out = args.out.resolve()

    if not args.force and stamp_matches(out):
        log(f"backend-data: {out} up to date (onnx {onnx.__version__})")
    else:
        generate_all(out)
    if args.verify_light:
        verify_light(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
