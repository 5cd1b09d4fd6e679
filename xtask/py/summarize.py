#!/usr/bin/env python3
"""Summarise ONNX models with the onnx Python package, as an independent reference for `whittle inspect`.

Usage: summarize.py MODEL.onnx [MODEL.onnx ...]
       summarize.py --list FILE     (one model path per line)

Prints one JSON object per model (a JSON list) with the fields `whittle inspect --json` reports,
computed here from onnx's own protobuf classes: ir_version, opsets, inputs and outputs (name and
type in whittle's text form), node_count and op_histogram over the main graph and all subgraphs,
subgraph_count, function_count and parameters per element type (initializers, dense and sparse).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
from onnx import helper

# whittle's short names for ONNX element types, keyed by onnx's enum names.
SHORT_NAMES = {
    "FLOAT": "f32", "UINT8": "u8", "INT8": "i8", "UINT16": "u16", "INT16": "i16", "INT32": "i32",
    "INT64": "i64", "STRING": "string", "BOOL": "bool", "FLOAT16": "f16", "DOUBLE": "f64",
    "UINT32": "u32", "UINT64": "u64", "COMPLEX64": "c64", "COMPLEX128": "c128", "BFLOAT16": "bf16",
    "FLOAT8E4M3FN": "f8e4m3fn", "FLOAT8E4M3FNUZ": "f8e4m3fnuz", "FLOAT8E5M2": "f8e5m2",
    "FLOAT8E5M2FNUZ": "f8e5m2fnuz", "UINT4": "u4", "INT4": "i4", "FLOAT4E2M1": "f4e2m1",
    "FLOAT8E8M0": "f8e8m0", "UINT2": "u2", "INT2": "i2", "UNDEFINED": "undefined",
}


def dtype_name(code: int) -> str:
    return SHORT_NAMES[onnx.TensorProto.DataType.Name(code)]


def shape_text(tensor_type) -> str:
    if not tensor_type.HasField("shape"):
        return "[..]"
    dims = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(str(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append("?")
    return "[" + ",".join(dims) + "]"


def type_text(tp) -> str:
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return dtype_name(tp.tensor_type.elem_type) + shape_text(tp.tensor_type)
    if which == "sparse_tensor_type":
        return "sparse " + dtype_name(tp.sparse_tensor_type.elem_type) + shape_text(tp.sparse_tensor_type)
    if which == "sequence_type":
        return f"seq<{type_text(tp.sequence_type.elem_type)}>"
    if which == "map_type":
        return f"map<{dtype_name(tp.map_type.key_type)},{type_text(tp.map_type.value_type)}>"
    if which == "optional_type":
        return f"optional<{type_text(tp.optional_type.elem_type)}>"
    return "?"


def tensor_bytes(tensor) -> int:
    count = int(np.prod(tensor.dims, dtype=np.int64)) if len(tensor.dims) else 1
    if tensor.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    bits = {"UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2}.get(
        onnx.TensorProto.DataType.Name(tensor.data_type))
    if bits is None:
        bits = 8 * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return (count * bits + 7) // 8


def walk(graph, stats) -> None:
    stats["graphs"] += 1
    for tensor in list(graph.initializer) + [sparse.values for sparse in graph.sparse_initializer]:
        entry = stats["parameters"].setdefault(dtype_name(tensor.data_type), {"elements": 0, "bytes": 0})
        entry["elements"] += int(np.prod(tensor.dims, dtype=np.int64)) if len(tensor.dims) else 1
        entry["bytes"] += tensor_bytes(tensor)
    for node in graph.node:
        stats["node_count"] += 1
        domain = node.domain or "ai.onnx"
        ops = stats["op_histogram"].setdefault(domain, {})
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                walk(attribute.g, stats)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    walk(subgraph, stats)


def summarize(path: str) -> dict:
    model = onnx.load(path, load_external_data=False)
    stats = {"graphs": 0, "node_count": 0, "op_histogram": {}, "parameters": {}}
    walk(model.graph, stats)
    initializer_names = {tensor.name for tensor in model.graph.initializer}
    value = lambda info: {"name": info.name, "type": type_text(info.type) if info.HasField("type") else "?"}
    return {
        "ir_version": model.ir_version,
        "opsets": {(opset.domain or "ai.onnx"): opset.version for opset in model.opset_import},
        "inputs": [value(info) for info in model.graph.input if info.name not in initializer_names],
        "outputs": [value(info) for info in model.graph.output],
        "node_count": stats["node_count"],
        "op_histogram": stats["op_histogram"],
        "subgraph_count": stats["graphs"] - 1,
        "function_count": len(model.functions),
        "parameters": stats["parameters"],
        "parameter_count": sum(entry["elements"] for entry in stats["parameters"].values()),
        "parameter_bytes": sum(entry["bytes"] for entry in stats["parameters"].values()),
    }


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    paths = sys.argv[1:]
    if paths[0] == "--list":
        with open(paths[1], encoding="utf-8") as listing:
            paths = [line.rstrip("\n") for line in listing if line.strip()]
    json.dump([summarize(path) for path in paths], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
