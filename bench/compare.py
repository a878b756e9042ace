"""Side-by-side latency and peak memory of slimnet and its peers (ONNX Runtime,
tract, rten) on each asset model's first reference case, at one or more thread
counts, written to BENCHMARKS.md together with the kernel microbenchmarks.

Run through bench/compare, which fetches the assets and builds or installs every
engine first. Every measurement is a fresh process (`slimnet bench --json`,
bench/peer.py for the Python peers, bench/rten-runner for rten) that loads the
model, warms up, times N runs and reports median/p10/p90 and its own peak RSS
(VmHWM, which exec resets, so it is the engine's alone). For each model and thread count the engines
take turns for R rounds, in an order that rotates each round.

Usage: bench/compare [--models a,b] [--threads 1,2] [--runs N] [--rounds R]
                     [--engines slimnet,ort,tract,rten] [--quick] [--no-micro]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SLIMNET = TARGET / "release" / "slimnet"
ORT_PYTHON = ASSETS / "venv" / "bin" / "python"
TRACT_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
RTEN_RUNNER = ROOT / "bench" / "rten-runner" / "target" / "release" / "rten-runner"
PEER = ROOT / "bench" / "peer.py"

ENGINES = ["slimnet", "ort", "tract", "rten"]
TITLES = {"slimnet": "slimnet", "ort": "ONNX Runtime", "tract": "tract", "rten": "rten"}
SMALL_MODELS = ["digits_mlp", "mnist_cnn", "hey_jarvis_v0.1"]
KEPT_SECTIONS = ["## Quantization: slimnet vs ONNX Runtime's quantizer"]  # see write_report
FMA_PEAK_GFLOPS = 117.0  # f32 FMA peak of one core, measured on the development machine


# --- measuring -------------------------------------------------------------------------

def run_engine(cmd, env=None, timeout=None):
    """Runs cmd; returns (exit status or None on timeout, stdout, stderr)."""
    try:
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                           errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout:.0f} s"
    return p.returncode, p.stdout, p.stderr


def slimnet_has_threads_flag():
    p = subprocess.run([str(SLIMNET), "bench", "--help"], capture_output=True, text=True)
    return "--threads" in p.stdout


class Engines:
    """Which engines are there, and the command that times one model on each."""

    def __init__(self, wanted, runs, warmup, timeout):
        self.runs, self.warmup, self.timeout = runs, warmup, timeout
        self.available, self.missing = [], {}
        checks = {"slimnet": SLIMNET, "ort": ORT_PYTHON, "tract": TRACT_PYTHON, "rten": RTEN_RUNNER}
        for e in wanted:
            if checks[e].exists():
                self.available.append(e)
            else:
                self.missing[e] = f"not built or installed ({checks[e].relative_to(ROOT)} missing)"
        self.slimnet_threads = "slimnet" in self.available and slimnet_has_threads_flag()

    def command(self, engine, model, inputs, threads):
        """(argv, env), or a string saying why this engine does not run at this thread count."""
        common = ["--runs", str(self.runs), "--warmup", str(self.warmup)]
        ins = [a for n, p in inputs.items() for a in ("--input", f"{n}={p}")]
        env = dict(os.environ)
        if engine == "slimnet":
            cmd = [str(SLIMNET), "bench", str(model), *ins, *common, "--json"]
            if self.slimnet_threads:
                cmd += ["--threads", str(threads)]
            elif threads != 1:
                return "n/a: this slimnet has no --threads"
            return cmd, env
        if engine == "ort":
            return [str(ORT_PYTHON), str(PEER), "ort", str(model), *ins, *common,
                    "--threads", str(threads)], env
        if engine == "tract":
            if threads != 1:
                return "n/a: tract's Python API has no thread setting"
            env["RUST_BACKTRACE"] = "0"
            return [str(TRACT_PYTHON), str(PEER), "tract", str(model), *ins, *common], env
        if engine == "rten":
            env["RTEN_NUM_THREADS"] = str(threads)
            return [str(RTEN_RUNNER), str(model), *ins, *common, "--threads", str(threads)], env
        raise KeyError(engine)

    def measure(self, engine, model, inputs, threads):
        """One round: a dict with median_ms, p10_ms, p90_ms, rss, or with error."""
        c = self.command(engine, model, inputs, threads)
        if isinstance(c, str):
            return {"error": c, "skip": True}
        cmd, env = c
        code, out, err = run_engine(cmd, env, self.timeout)
        if code is None:
            return {"error": err}
        try:
            res = json.loads(out)
        except ValueError:
            last = (err.strip().splitlines() or [f"exit status {code}"])[-1]
            return {"error": f"fails: {last}"}
        if code != 0 or "error" in res:
            return {"error": res.get("error", f"exit status {code}")}
        res["rss"] = res.get("peak_rss_bytes") or 0
        return res


def summarize(rounds):
    """Median over rounds of each round's median, p10 and p90; max peak RSS."""
    errors = [r["error"] for r in rounds if "error" in r]
    if errors:
        return {"error": errors[0]}
    med = lambda k: statistics.median(r[k] for r in rounds)
    return {"median_ms": med("median_ms"), "p10_ms": med("p10_ms"), "p90_ms": med("p90_ms"),
            "rss": max(r["rss"] for r in rounds), "rounds": len(rounds)}


def bench_model(engines, stem, spec, threads, rounds):
    case = spec["cases"][0]
    model = ASSETS / spec["model"]
    inputs = {k: ASSETS / v for k, v in case["inputs"].items()}
    per_engine = {e: [] for e in engines.available}
    for r in range(rounds):
        k = r % len(engines.available)
        for e in engines.available[k:] + engines.available[:k]:
            if per_engine[e] and "error" in per_engine[e][-1]:
                continue  # failed once: the same model will fail again
            per_engine[e].append(engines.measure(e, model, inputs, threads))
    return {e: summarize(rs) for e, rs in per_engine.items()}


def input_shapes(spec):
    import numpy as np
    ins = spec["cases"][0]["inputs"]
    return ", ".join(f"{k} {list(np.load(ASSETS / v, mmap_mode='r').shape)}" for k, v in ins.items())


# --- microbenchmarks -------------------------------------------------------------------

def microbenchmarks(peak_default):
    """[(example, output, peak used)] for the kernel examples that exist."""
    results = []
    for name in ["gemm", "conv"]:
        if not (ROOT / "crates" / "kernels" / "examples" / f"{name}.rs").exists():
            continue
        p = subprocess.run(["cargo", "run", "--release", "-q", "-p", "slimnet-kernels",
                            "--example", name], cwd=ROOT, capture_output=True, text=True)
        out = p.stdout if p.returncode == 0 else f"failed (exit {p.returncode}):\n{p.stderr}"
        peak = peak_default
        for line in out.splitlines():  # an example that measures the peak itself wins
            m = re.search(r"peak.*?([\d.]+)\s*GFLOP/s", line, re.I)
            if m:
                peak = float(m.group(1))
        results.append((name, out, peak))
        print(out, flush=True)
    return results


def with_fraction(out, peak):
    lines = []
    for line in out.rstrip().splitlines():
        m = re.search(r"([\d.]+)\s*GFLOP/s", line)
        if m and not re.search(r"peak", line, re.I):
            line += f"   {float(m.group(1)) / peak:6.1%} of peak"
        lines.append(line)
    return lines


# --- report ----------------------------------------------------------------------------

def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def versions():
    def py(python, code):
        if not python.exists():
            return None
        p = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        return p.stdout.strip() or None
    return {
        "ort": py(ORT_PYTHON, "import onnxruntime; print(onnxruntime.__version__)"),
        "tract": py(TRACT_PYTHON, "import tract; print(tract.version())"),
        "rten": "0.27.0",
    }


def baselines(engines):
    """Peak RSS of the Python peers' processes that only import the engine."""
    out = {}
    for e, python in [("ort", ORT_PYTHON), ("tract", TRACT_PYTHON)]:
        if e in engines.available:
            code, stdout, _ = run_engine([str(python), str(PEER), e, "--baseline"])
            if code == 0:
                out[e] = json.loads(stdout)["peak_rss_bytes"]
    return out


def mib(b):
    return f"{b / 2**20:.1f}"


class Notes:
    """Numbered footnotes for failure reasons, so the tables stay narrow."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"

    def cell(self, res):
        if "error" not in res:
            return None
        err = res["error"]
        if err.startswith("n/a"):
            return "n/a " + self.ref(err[len("n/a: "):])
        head = err.split(":", 1)[0] if err.startswith("fails") else "fails"
        return f"{head} {self.ref(err)}"


def table(rows, engines, threads, notes):
    peers = [e for e in engines if e != "slimnet"]
    head = ["model", "inputs"] + [f"{TITLES[e]} ms" for e in engines]
    if "slimnet" in engines:
        head += [f"slimnet / {TITLES[p]}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    mem = ["| model | " + " | ".join(f"{TITLES[e]} MiB" for e in engines) + " |",
           "|---|" + "---:|" * len(engines)]
    for stem, shapes, by_thread in rows:
        res = by_thread[threads]
        cells = [stem, shapes]
        for e in engines:
            r = res[e]
            cells.append(notes.cell(r) or
                         f"{r['median_ms']:.3f} ({r['p10_ms']:.3f}–{r['p90_ms']:.3f})")
        if "slimnet" in engines:
            s = res["slimnet"]
            for p in peers:
                o = res[p]
                ok = "error" not in s and "error" not in o
                cells.append(f"{s['median_ms'] / o['median_ms']:.2f}" if ok else "–")
        lines.append("| " + " | ".join(cells) + " |")
        mem.append(f"| {stem} | " + " | ".join(
            "–" if "error" in res[e] else mib(res[e]["rss"]) for e in engines) + " |")
    return lines, mem


def write_report(path, args, engines, rows, micro, vers, base, loads):
    names = engines.available
    notes = Notes()
    cmd = "bench/compare" + "".join(f" {a}" for a in sys.argv[1:])
    peers_desc = []
    if "ort" in names:
        peers_desc.append(f"ONNX Runtime {vers['ort']} (CPU provider, all graph optimizations, "
                          "intra-op threads = N)")
    if "tract" in names:
        peers_desc.append(f"tract {vers['tract']} (Python wheel; load, input facts set to the "
                          "case's shapes, `into_runnable()` optimizes; one thread only)")
    if "rten" in names:
        peers_desc.append(f"rten {vers['rten']} (bench/rten-runner: the .onnx file loaded "
                          "directly, weights prepacked, a thread pool of N)")
    lines = [
        "# Benchmarks",
        "",
        "Latency and peak memory of slimnet against its peers on each asset model's first "
        "reference case, written by `bench/compare`. Every measurement is a fresh process that "
        f"loads the model, runs it {args.warmup} times untimed, then times {args.runs} runs; for "
        f"each model and thread count the engines take turns for {args.rounds} rounds (the order "
        "rotates every round). Cells give the median over rounds of each round's median, and in "
        "brackets the medians of each round's p10 and p90, in milliseconds. Ratio = slimnet / "
        "peer (below 1: slimnet is faster).",
        "",
        f"- command: `{cmd}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.machine()}",
        f"- date: {datetime.date.today().isoformat()}",
        f"- load average (1, 5, 15 min) before: {loads[0]}, after: {loads[1]} "
        "(other work on a shared machine makes every number noisier, 2-thread ones most)",
        "- slimnet: `slimnet bench --json`" + (" --threads N" if engines.slimnet_threads else
                                               " (this build has no --threads: one thread only)"),
        *[f"- {d}" for d in peers_desc],
        *[f"- {TITLES[e]}: left out, {why}" for e, why in engines.missing.items()],
        "- The Python peers are timed around their Python call, which adds a few microseconds "
        "per run; that matters only for the smallest models.",
    ]
    for t in args.threads:
        tl, mem = table(rows, names, t, notes)
        lines += ["", f"## {t} thread{'s' if t > 1 else ''}", "", *tl, "",
                  f"Peak RSS of each engine's process at {t} thread{'s' if t > 1 else ''} "
                  "(max over rounds):", "", *mem]
    if base:
        lines += ["", "The Python peers' RSS includes the interpreter, numpy and the engine's "
                  "library; a process that only imports them peaks at " +
                  ", ".join(f"{mib(v)} MiB ({TITLES[e]})" for e, v in base.items()) + "."]
    if notes.items:
        lines += ["", "Notes:", ""] + [f"{i + 1}. {n.splitlines()[0]}" +
                                       ("".join(f" / {l.strip()}" for l in n.splitlines()[1:]
                                                if l.strip()))[:600]
                                       for i, n in enumerate(notes.items)]
    if micro:
        lines += ["", "## Kernel microbenchmarks", "",
                  "`cargo run --release -p slimnet-kernels --example NAME`, one thread; the "
                  "fraction is of the f32 FMA peak of one core "
                  f"({', '.join(f'{n}: {p:g} GFLOP/s' for n, _, p in micro)}; "
                  "the default is the peak measured on the development machine, `--fma-peak` "
                  "overrides it, and an example that prints its own measured peak wins)."]
        for name, out, peak in micro:
            lines += ["", f"`{name}`:", "", "```", *with_fraction(out, peak), "```"]
    # keep the sections other scripts write (bench/quantize), from their heading on
    kept = []
    if path.exists():
        old = path.read_text().splitlines()
        start = next((i for i, l in enumerate(old) if l in KEPT_SECTIONS), None)
        if start is not None:
            kept = [""] + old[start:]
    path.write_text("\n".join(lines + kept).rstrip("\n") + "\n")


# --- main ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated stems (default: all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--runs", type=int, help="timed runs per round (default 20, quick 5)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, help="rounds of turns (default 5, quick 2)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer runs and rounds, and only the small models unless --models")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per engine process")
    ap.add_argument("--no-micro", action="store_true", help="skip the kernel microbenchmarks")
    ap.add_argument("--fma-peak", type=float, default=FMA_PEAK_GFLOPS,
                    help="f32 FMA GFLOP/s of one core, for the microbenchmark fractions")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    args.runs = args.runs or (5 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.threads = [int(t) for t in args.threads.split(",") if t]
    wanted = [e for e in args.engines.split(",") if e]
    if unknown := set(wanted) - set(ENGINES):
        ap.error(f"unknown engines {sorted(unknown)}; known: {ENGINES}")
    models = set(filter(None, args.models.split(","))) or (set(SMALL_MODELS) if args.quick else None)

    load_before = load_average()
    engines = Engines(wanted, args.runs, args.warmup, args.timeout)
    for e, why in engines.missing.items():
        print(f"warning: {e} {why}", file=sys.stderr)
    rows = []
    for m in sorted((ASSETS / "reference").glob("*.json")):
        if models is not None and m.stem not in models:
            continue
        spec = json.loads(m.read_text())
        by_thread = {}
        for t in args.threads:
            res = bench_model(engines, m.stem, spec, t, args.rounds)
            by_thread[t] = res
            print(f"{m.stem:22s} {t}T " + "  ".join(
                f"{e} {r['median_ms']:9.3f} ms" if "error" not in r else f"{e} {r['error'][:40]!r}"
                for e, r in res.items()), flush=True)
        rows.append((m.stem, input_shapes(spec), by_thread))
    micro = [] if args.no_micro else microbenchmarks(args.fma_peak)
    out = ROOT / args.out
    loads = (load_before, load_average())
    write_report(out, args, engines, rows, micro, versions(), baselines(engines), loads)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
