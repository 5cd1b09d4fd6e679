"""Writes crates/whittle-passes/src/since_versions.rs from the installed onnx package's operator schemas.

Two tables: every version in which each ai.onnx op got a new definition, and the new versions whose
signature is unchanged (same attributes with the same types and defaults, same inputs and outputs, same
type parameters) while every type constraint only grew: versions that added element types and nothing
else, which whittle's opset upgrade may step over. Run in the interop venv:

    target/venvs/interop/bin/python xtask/py/opset_tables.py > crates/whittle-passes/src/since_versions.rs
"""

from collections import defaultdict

import onnx
import onnx.defs


def signature(schema):
    attributes = sorted(
        (a.name, int(a.type), a.required, a.default_value.SerializeToString() if a.default_value else b"")
        for a in schema.attributes.values()
    )
    inputs = [(i.name, int(i.option)) for i in schema.inputs]
    outputs = [(o.name, int(o.option)) for o in schema.outputs]
    return attributes, inputs, outputs


def types(schema):
    return {tc.type_param_str: set(tc.allowed_type_strs) for tc in schema.type_constraints}


def main():
    history = defaultdict(dict)
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            history[schema.name][schema.since_version] = schema
    print(f"//! The versions of every ai.onnx operator, generated from onnx {onnx.__version__}'s schemas by")
    print("//! `xtask/py/opset_tables.py` (do not edit by hand).")
    print()
    print(f"/// Every opset version in which each ai.onnx op got a new definition (onnx {onnx.__version__}'s schemas,")
    print("/// `onnx.defs.get_all_schemas_with_history()`).")
    print("pub const SINCE_VERSIONS: &[(&str, &[i64])] = &[")
    for name in sorted(history):
        versions = ", ".join(str(v) for v in sorted(history[name]))
        print(f'    ("{name}", &[{versions}]),')
    print("];")
    print()
    print("/// New versions whose signature equals the previous version's (attributes, defaults, inputs, outputs,")
    print("/// type parameters) and whose type constraints only grew: they added element types.")
    print("pub const SIGNATURE_UNCHANGED: &[(&str, i64)] = &[")
    for name in sorted(history):
        versions = sorted(history[name])
        for before, after in zip(versions, versions[1:]):
            old, new = history[name][before], history[name][after]
            old_types, new_types = types(old), types(new)
            grew = old_types.keys() == new_types.keys() and all(old_types[k] <= new_types[k] for k in old_types)
            if signature(old) == signature(new) and grew:
                print(f'    ("{name}", {after}),')
    print("];")


if __name__ == "__main__":
    main()
