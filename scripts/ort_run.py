#!/usr/bin/env python3
"""Run an ONNX model with ONNX Runtime (CPU, 1 thread) on .npy inputs.

    assets/venv/bin/python scripts/ort_run.py MODEL.onnx \
        --input NAME=FILE.npy [--input NAME=FILE.npy ...] --output-dir DIR

`--input FILE.npy` without a name binds the next model input in declared
order. Writes output k (declared order) to DIR/out_<k>.npy exactly as ONNX
Runtime returns it and prints {"outputs": {"<name>": "DIR/out_<k>.npy", ...}}
on stdout. Errors go to stderr with a non-zero exit status.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def fail(msg: str, code: int = 1) -> None:
    print(f"ort_run: {msg}", file=sys.stderr)
    sys.exit(code)


def split_binding(spec: str, names: list[str]) -> tuple[str | None, str]:
    # prefer a split whose left side is an actual input name ('=' may occur in paths)
    for i, ch in enumerate(spec):
        if ch == "=" and spec[:i] in names:
            return spec[:i], spec[i + 1:]
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
        return name, path
    return None, spec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy")
    ap.add_argument("--output-dir", "-o", required=True)
    args = ap.parse_args()

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        fail(f"{e} (run with assets/venv/bin/python; see scripts/fetch-assets)")

    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(args.model, sess_options=so,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - report anything ORT raises
        fail(f"cannot load {args.model}: {e}")

    names = [i.name for i in sess.get_inputs()]
    feeds = {}
    positional = iter(names)
    for spec in args.input:
        name, path = split_binding(spec, names)
        if name is None:
            name = next((n for n in positional if n not in feeds), None)
            if name is None:
                fail(f"more inputs given than the model declares ({names})")
        if name not in names:
            fail(f"model has no input {name!r}; inputs: {names}")
        if name in feeds:
            fail(f"input {name!r} given twice")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            fail(f"cannot read {path}: {e}")
    missing = [n for n in names if n not in feeds]
    if missing:
        fail(f"missing inputs: {missing}")

    try:
        results = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001
        fail(f"run failed: {e}")

    os.makedirs(args.output_dir, exist_ok=True)
    outputs = {}
    for k, (meta, value) in enumerate(zip(sess.get_outputs(), results)):
        path = os.path.join(args.output_dir, f"out_{k}.npy")
        if not isinstance(value, np.ndarray):
            fail(f"output {meta.name!r} is not a tensor ({type(value).__name__})")
        np.save(path, value)
        outputs[meta.name] = path
    print(json.dumps({"outputs": outputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
