"""Times one model on one Python peer (ONNX Runtime or tract) in this process and
prints one JSON object shaped like `slimnet bench --json`: median_ms, p10_ms,
p90_ms, peak_rss_bytes (this process's VmHWM), or {"error": "..."} with exit
status 2 when the engine cannot load or run the model.

bench/compare runs it once per round, each time in a fresh process, with the
interpreter of the venv that has the engine (assets/venv for onnxruntime,
bench/.venv for tract).

Usage: python bench/peer.py {ort,tract} MODEL --input NAME=X.npy ... \
           [--threads T] [--runs N] [--warmup W]
       python bench/peer.py {ort,tract} --baseline   (import the engine, then report RSS)
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TRACT_DTYPES = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32",
                "int8": "i8", "uint8": "u8", "bool": "bool"}


def peak_rss_bytes():
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def ort_runner(model, feeds, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return f"onnxruntime {ort.__version__}", lambda: sess.run(None, feeds)


def tract_runner(model, feeds, threads):
    import tract
    if threads != 1:
        # the Python bindings expose no executor or thread-count setting
        raise NotImplementedError("tract's Python API runs on one thread only")
    m = tract.onnx().load(str(model))
    for i, a in enumerate(feeds.values()):
        dims = ",".join(str(d) for d in a.shape)
        m.set_input_fact(i, f"{dims},{TRACT_DTYPES[a.dtype.name]}" if dims else TRACT_DTYPES[a.dtype.name])
    runnable = m.into_model().into_runnable()  # into_runnable optimizes for this CPU
    state = runnable.spawn_state()
    inputs = [tract.Tensor.from_numpy(np.ascontiguousarray(a)) for a in feeds.values()]
    return f"tract {tract.version()}", lambda: state.run(inputs)


RUNNERS = {"ort": ort_runner, "tract": tract_runner}


def short(e):
    """The error without the Rust backtrace tract appends."""
    return f"{type(e).__name__}: {e}".split("\n\nStack backtrace")[0].strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine", choices=sorted(RUNNERS))
    ap.add_argument("model", nargs="?")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=X.npy",
                    help="in the model's declared input order")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--baseline", action="store_true",
                    help="only import the engine and report this process's peak RSS")
    args = ap.parse_args()
    if args.baseline:
        __import__({"ort": "onnxruntime", "tract": "tract"}[args.engine])
        print(json.dumps({"engine": args.engine, "peak_rss_bytes": peak_rss_bytes()}))
        return 0
    if args.model is None or args.runs < 1:
        ap.error("MODEL and --runs >= 1 are required")
    feeds = {}
    for spec in args.input:
        name, _, path = spec.partition("=")
        feeds[name] = np.load(path)
    try:
        version, run = RUNNERS[args.engine](args.model, feeds, args.threads)
    except Exception as e:  # noqa: BLE001 - any load failure is a table entry
        print(json.dumps({"error": f"fails to load: {short(e)}"}))
        return 2
    try:
        for _ in range(args.warmup):
            run()
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            run()
            times.append((time.perf_counter() - t) * 1e3)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"fails to run: {short(e)}"}))
        return 2
    times.sort()
    pick = lambda p: times[round((len(times) - 1) * p)]
    print(json.dumps({
        "model": str(args.model), "runtime": version, "threads": args.threads,
        "warmup": args.warmup, "runs": args.runs, "median_ms": pick(0.5),
        "p10_ms": pick(0.1), "p90_ms": pick(0.9), "peak_rss_bytes": peak_rss_bytes(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
