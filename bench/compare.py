"""Times slimnet (`slimnet bench`) and ONNX Runtime on each asset model's first
reference case, taking turns, and writes medians and ratios to BENCHMARKS.md.

Usage: bench/compare [--runs N] [--rounds R] [--models stem,stem]
"""
import argparse
import datetime
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SLIMNET = ROOT / "target" / "release" / "slimnet"


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ort_median_ms(model, feeds, runs):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def slimnet_median_ms(model, inputs, runs):
    cmd = [str(SLIMNET), "bench", str(model), "--runs", str(runs), "--warmup", "3", "--json"]
    for name, path in inputs.items():
        cmd += ["--input", f"{name}={path}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="")
    args = ap.parse_args()
    manifests = sorted((ASSETS / "reference").glob("*.json"))
    wanted = set(filter(None, args.models.split(",")))
    rows = []
    for m in manifests:
        stem = m.stem
        if wanted and stem not in wanted:
            continue
        spec = json.loads(m.read_text())
        case = spec["cases"][0]
        model = ASSETS / spec["model"]
        inputs = {k: ASSETS / v for k, v in case["inputs"].items()}
        feeds = {k: np.load(v) for k, v in inputs.items()}
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(slimnet_median_ms(model, inputs, args.runs))
            theirs.append(ort_median_ms(model, feeds, args.runs))
        s, o = statistics.median(ours), statistics.median(theirs)
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        rows.append((stem, case["name"], shapes, s, o, s / o))
        print(f"{stem:22s} slimnet {s:9.3f} ms  onnxruntime {o:9.3f} ms  ratio {s / o:6.2f}", flush=True)
    cmd = "bench/compare" + "".join(
        f" --{k} {v}" for k, v in [("runs", args.runs), ("rounds", args.rounds)]
    )
    lines = [
        "# Benchmarks",
        "",
        "Latency at one thread, slimnet against ONNX Runtime "
        f"{ort.__version__} (all graph optimizations on), on each asset model's first reference "
        "case. Each round runs slimnet's `bench` (3 warm-up runs, then the median of N) and then "
        "ONNX Runtime the same way; the table gives the median over rounds. Ratio = slimnet / "
        "ONNX Runtime (below 1 means slimnet is faster).",
        "",
        f"- command: `{cmd}`",
        f"- machine: {cpu_name()}, {platform.system()} {platform.machine()}",
        f"- date: {datetime.date.today().isoformat()}",
        "- slimnet runtime: the reference interpreter (exact, not yet optimized)",
        "",
        "| model | case | inputs | slimnet ms | ONNX Runtime ms | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for stem, case, shapes, s, o, r in rows:
        lines.append(f"| {stem} | {case} | {shapes} | {s:.3f} | {o:.3f} | {r:.2f} |")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
