"""Quantization side by side: `slimnet quantize` against ONNX Runtime's
`quantize_static` on the asset models, with the same calibration samples; the
fidelity of both int8 models against the float model on an evaluation set, their
file sizes, and their latency at one thread; written as a section of BENCHMARKS.md.

Run through bench/quantize, which fetches the assets and builds the release
slimnet first. Generated models, inputs and outputs go under bench/out/
(gitignored). Every quantizer and every latency measurement is its own process;
latency as bench/compare measures it (`slimnet bench --json`, bench/peer.py for ONNX
Runtime), the four engine/model pairs taking turns for R rounds, in an order that
rotates each round.

Usage: bench/quantize [--models a,b] [--runs N] [--rounds R] [--no-preprocess]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
TASKS = ASSETS / "data" / "tasks"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SLIMNET = TARGET / "release" / "slimnet"
PEER = ROOT / "bench" / "peer.py"
OUT = ROOT / "bench" / "out" / "quantize"
SECTION = "## Quantization: slimnet vs ONNX Runtime's quantizer"

# model stem -> (calibration file, key), kind of task metric
MODELS = {
    "mnist_cnn": (("mnist_calib.npz", "input"), "mnist"),
    "ppocr_cls": (("ppocr_cls_calib.npz", "x"), "cls"),
    "ppocr_rec": (("ppocr_rec_calib.npz", "x"), "rec"),
    "ppocr_det": (("ppocr_det_calib.npz", "x"), "det"),
    "embedding_model": (("embedding_calib.npz", "input_1"), "emb"),
    "hey_jarvis_v0.1": (("hey_jarvis_calib.npz", "x.1"), "wake"),
    "melspectrogram": (("melspec_calib.npz", "input"), "mel"),
}
METRIC = {
    "mnist": "top-1 accuracy (fp32 model on the same engine in brackets)",
    "cls": "class (argmax) agreement with fp32",
    "rec": "greedy CTC decode identical to fp32",
    "det": "mean IoU of the p > 0.3 maps with fp32",
    "emb": "–",
    "wake": "wake decision (p > 0.5) agreement with fp32",
    "mel": "–",
}


def log(*a):
    print("[quantize]", *a, file=sys.stderr, flush=True)


def model_path(stem):
    return ASSETS / "models" / f"{stem}.onnx"


def input_name(stem):
    import onnx
    g = onnx.load(str(model_path(stem)), load_external_data=False).graph
    init = {i.name for i in g.initializer}
    return [i.name for i in g.input if i.name not in init][0]


def ort_session(path, threads=0):
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


# --- evaluation sets -------------------------------------------------------------------

def wake_chain_inputs():
    """The wake-word evaluation clips (wakeword_eval.npz, not used for calibration)
    through the fp32 chain as openwakeword streams them: melspectrogram of each clip,
    x/10 + 2, 76-frame windows at stride 8, embeddings, then 16-embedding windows at
    stride 1. Returns (clips, windows, features)."""
    z = np.load(TASKS / "wakeword_eval.npz")
    clips = [z[k].astype(np.float32) for k in sorted(z.files)]
    mel, emb = ort_session(model_path("melspectrogram")), ort_session(model_path("embedding_model"))
    windows, feats = [], []
    for c in clips:
        spec = np.squeeze(mel.run(None, {"input": c})[0]) / 10 + 2
        w = np.array([spec[i:i + 76] for i in range(0, spec.shape[0] - 76 + 1, 8)],
                     np.float32)[..., None]
        windows.append(w)
        e = emb.run(None, {"input_1": w})[0].reshape(len(w), 96)
        if len(e) < 16:
            e = np.concatenate([np.repeat(e[:1], 16 - len(e), axis=0), e])
        feats.append(np.stack([e[i:i + 16] for i in range(len(e) - 15)]))
    return clips, np.concatenate(windows), np.concatenate(feats).astype(np.float32)


def eval_set(stem, kind, wake):
    """(batches: list of input arrays, labels or None, description). Each batch is one
    model run; models with a fixed batch of 1 get one batch per sample."""
    if kind == "mnist":
        x = np.load(ROOT / "models" / "mnist_cnn" / "heldout_x.npy")
        y = np.load(ROOT / "models" / "mnist_cnn" / "heldout_y.npy")
        return [x], y, f"held-out digits, {len(x)}"
    if kind in ("cls", "rec", "det"):
        z = np.load(TASKS / f"{stem}_eval.npz")
        x = z["x"]
        labels = z["labels"] if "labels" in z.files else None
        return [x], labels, f"{stem}_eval.npz, {len(x)} × {list(x.shape[1:])}"
    clips, windows, feats = wake
    if kind == "mel":
        return [c for c in clips], None, f"wakeword_eval.npz, {len(clips)} whole clips"
    if kind == "emb":
        return [windows], None, f"{len(windows)} mel windows of wakeword_eval.npz (fp32 chain)"
    if kind == "wake":
        return ([f[None] for f in feats], None,
                f"{len(feats)} embedding windows of wakeword_eval.npz (fp32 chain)")
    raise KeyError(kind)


# --- quantizers ------------------------------------------------------------------------

def clean(msg):
    """An error message without this machine's paths."""
    return str(msg).replace(str(OUT) + "/", "").replace(str(ROOT) + "/", "")


def opset(path):
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset13(src, dst):
    """The model converted to opset 13 (per-axis QuantizeLinear/DequantizeLinear need it)."""
    import onnx
    from onnx import version_converter
    onnx.save(version_converter.convert_version(onnx.load(str(src)), 13), str(dst))


def ort_loads(path):
    try:
        ort_session(path, 1)
        return None
    except Exception as e:  # noqa: BLE001 - the reason is reported
        return clean(f"{type(e).__name__}: {e}").splitlines()[0]


def slimnet_quantize(model, calib, out):
    t = time.perf_counter()
    p = subprocess.run([str(SLIMNET), "quantize", str(model), "--calib", str(calib),
                        "-o", str(out), "--json"], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return {"error": clean((p.stderr.strip().splitlines() or ["failed"])[-1])}
    r = json.loads(p.stdout)
    return {"wall_s": wall, "int8_layers": r.get("int8_layers"), "float_layers": r.get("float_layers"),
            "method": r.get("method"), "samples": r.get("samples"),
            "fidelity": r.get("fidelity")}


def ort_quantize_child(model, calib_npz, key, out, preprocess):
    """In a child process: quantize_static (QDQ, per channel, MinMax, uint8 activations,
    int8 weights) fed one calibration sample per call; prints JSON."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    t0 = time.perf_counter()
    x = np.load(calib_npz)[key]
    src, pre, pre_error = model, "no", None
    if preprocess:
        pre_out = str(Path(out).with_suffix(".pre.onnx"))
        try:
            # symbolic shape inference needs sympy, which the pinned venv does not have
            quant_pre_process(model, pre_out, skip_symbolic_shape=True)
            src, pre = pre_out, "yes"
        except Exception as e:  # noqa: BLE001 - reported, then quantized without it
            pre, pre_error = "failed, so no", f"{type(e).__name__}: {e}"[:300]
    t1 = time.perf_counter()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(x[i:i + 1] for i in range(len(x)))

        def get_next(self):
            a = next(self.it, None)
            return None if a is None else {key: a}

    quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    t2 = time.perf_counter()
    print(json.dumps({"preprocess": pre, "preprocess_error": pre_error,
                      "preprocess_s": t1 - t0, "quantize_s": t2 - t1}))


def ort_quantize(model, calib, key, out, preprocess):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--ort-child", str(model), str(calib),
                        key, str(out), "1" if preprocess else "0"],
                       capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return {"error": clean((p.stderr.strip().splitlines() or ["failed"])[-1])[:300]}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    return r


# --- running the eval set --------------------------------------------------------------

def run_ort(path, name, batches):
    s = ort_session(path)
    return [s.run(None, {name: b})[0] for b in batches]


def run_slimnet(path, name, batches, work):
    """One `slimnet run` process per batch; the first output of each."""
    outs = []
    for i, b in enumerate(batches):
        d = work / f"run{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        np.save(d / "in.npy", b)
        p = subprocess.run([str(SLIMNET), "run", str(path), "-i", f"{name}={d / 'in.npy'}",
                            "-o", str(d), "--json"], capture_output=True, text=True, cwd=ROOT)
        if p.returncode != 0:
            raise RuntimeError(clean((p.stderr.strip().splitlines() or ["slimnet run failed"])[-1]))
        desc = json.loads(p.stdout)
        first = desc[0] if isinstance(desc, list) else desc.get("outputs", [desc])[0]
        f = Path(first["file"])
        outs.append(np.load(f if f.is_absolute() else ROOT / f))
    return outs


def per_sample(outs):
    """The samples of every batch, each flattened (one batch: split along its first
    axis; several: one sample each)."""
    if len(outs) == 1 and outs[0].ndim > 1:
        o = np.asarray(outs[0], np.float64)
        return list(o.reshape(o.shape[0], -1))
    return [np.asarray(o, np.float64).reshape(-1) for o in outs]


def cosine(a, b):
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def ctc(probs):
    seqs = []
    for line in probs:
        best = line.argmax(-1)
        seqs.append(tuple(int(k) for i, k in enumerate(best) if k != 0 and (i == 0 or best[i - 1] != k)))
    return seqs


def metrics(kind, ref, q, labels):
    """(mean cosine of the first output, task metric text) of q against ref."""
    if kind == "wake":  # one score per sample: the cosine of the whole score sequence
        r, o = np.concatenate(ref).reshape(-1), np.concatenate(q).reshape(-1)
        return cosine(r, o), (f"{100 * np.mean((r > 0.5) == (o > 0.5)):.1f}% "
                              f"(max abs score difference {np.max(np.abs(r - o)):.4f})")
    cos = float(np.mean([cosine(a, b) for a, b in zip(per_sample(ref), per_sample(q))]))
    if kind in ("mel", "emb"):
        return cos, "–"
    r, o = np.concatenate(ref), np.concatenate(q)
    if kind == "mnist":
        acc = lambda z: 100 * np.mean(z.argmax(-1) == labels)
        task = f"{acc(o):.1f}% ({acc(r):.1f}%)"
    elif kind == "cls":
        task = f"{100 * np.mean(o.argmax(-1) == r.argmax(-1)):.1f}%"
    elif kind == "rec":
        task = f"{100 * np.mean([x == y for x, y in zip(ctc(r), ctc(o))]):.1f}%"
    elif kind == "det":
        ious = []
        for u, v in zip(r > 0.3, o > 0.3):
            union = np.sum(u | v)
            ious.append(1.0 if union == 0 else np.sum(u & v) / union)
        task = f"{np.mean(ious):.3f} (min {np.min(ious):.3f})"
    else:
        task = "–"
    return cos, task


# --- latency ---------------------------------------------------------------------------

def measure(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        return {"error": clean((p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1])[:200]}
    if p.returncode != 0 or "error" in r:
        return {"error": clean(r.get("error", f"exit {p.returncode}"))[:200]}
    return r


def latency(name, x_file, files, runs, rounds, warmup):
    pairs = {
        "slimnet fp32": ("slimnet", files["fp32"]),
        "slimnet int8": ("slimnet", files["slimnet"]),
        "ORT fp32": ("ort", files["fp32"]),
        "ORT QDQ": ("ort", files["ort"]),
    }
    pairs = {k: v for k, v in pairs.items() if v[1] is not None}
    common = ["--runs", str(runs), "--warmup", str(warmup), "--threads", "1"]
    res = {k: [] for k in pairs}
    keys = list(pairs)
    for r in range(rounds):
        k = r % len(keys)
        for key in keys[k:] + keys[:k]:
            if res[key] and "error" in res[key][-1]:
                continue
            engine, path = pairs[key]
            if engine == "slimnet":
                cmd = [str(SLIMNET), "bench", str(path), "--input", f"{name}={x_file}", *common, "--json"]
            else:
                cmd = [sys.executable, str(PEER), "ort", str(path), "--input", f"{name}={x_file}", *common]
            res[key].append(measure(cmd))
    out = {}
    for key, rs in res.items():
        errs = [r["error"] for r in rs if "error" in r]
        out[key] = {"error": errs[0]} if errs else {
            "median_ms": statistics.median(r["median_ms"] for r in rs), "rounds": len(rs)}
    return out


# --- report ----------------------------------------------------------------------------

def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def kib(b):
    return "–" if b is None else f"{b / 1024:,.0f}"


def ms(r):
    return f"{r['median_ms']:.3f}" if r and "error" not in r else "fails"


def ratio(a, b):
    ok = a and b and "error" not in a and "error" not in b
    return f"{a['median_ms'] / b['median_ms']:.2f}" if ok else "–"


def report(args, rows, load, seconds):
    import onnxruntime
    cmd = "bench/quantize" + "".join(f" {a}" for a in sys.argv[1:])
    L = [
        SECTION,
        "",
        "`slimnet quantize` (its defaults: MSE activation ranges, per-channel int8 weights, uint8 "
        "activations, bias correction, and the search that keeps the layers that hurt most in "
        "float until every output's mean cosine to the float model is ≥ 0.99) against ONNX "
        f"Runtime {onnxruntime.__version__}'s `quantize_static` (QDQ, per channel, MinMax, uint8 "
        "activations, int8 weights), both on the same calibration samples "
        "(assets/data/tasks/*_calib.npz; ONNX Runtime's reader feeds them one per call). Written "
        "by `bench/quantize`; not part of the tests or CI.",
        "",
        f"- command: `{cmd}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}",
        f"- date: {datetime.date.today().isoformat()}; load average before: {load[0]}, after: {load[1]}; "
        f"whole run {seconds / 60:.1f} min",
        "- quantize time: wall time of the quantizer's own process (for ONNX Runtime the Python "
        "start and imports included), calibration included; the quantized files go under "
        "bench/out/ (gitignored)",
        "- ONNX Runtime pre-processing: `quant_pre_process(..., skip_symbolic_shape=True)` "
        "(the pinned venv has no sympy for symbolic shape inference)"
        + (" was tried first; the column says whether it was used" if args.preprocess else
           " was not used (--no-preprocess)") + ". Models below opset 13 (the ppocr ones) are "
        "converted to opset 13 (`onnx.version_converter`) for ONNX Runtime's quantizer, since "
        "per-channel QuantizeLinear/DequantizeLinear need it; slimnet quantizes the original "
        "file",
        "",
        "### Quantizing",
        "",
        "| model | calib samples | slimnet s | ORT s | ORT pre-process | slimnet int8 / float layers | "
        "fp32 KiB | slimnet int8 KiB | ORT int8 KiB |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        s, o = r["slimnet_q"], r["ort_q"]
        L.append("| " + " | ".join([
            r["stem"], str(r["calib_n"]),
            f"{s['wall_s']:.2f}" if "error" not in s else "fails",
            f"{o['wall_s']:.2f}" if "error" not in o else "fails",
            ("–" if "error" in o else o["preprocess"] + (", opset → 13" if o.get("opset13") else "")),
            f"{s['int8_layers']} / {s['float_layers']}" if "error" not in s else "–",
            kib(r["size"]["fp32"]), kib(r["size"]["slimnet"]), kib(r["size"]["ort"])]) + " |")
    L += ["", "### Fidelity on the evaluation set", "",
          "Each quantized file against the fp32 model run on the same engine (ONNX Runtime or "
          "slimnet's runtime, `slimnet run`). Cosine: mean over samples of the cosine "
          "similarity of the first output (hey_jarvis, one score per sample: the cosine of the "
          "sequence of scores).", "",
          "| model | eval set | engine | file | mean cosine | task metric |", "|---|---|---|---|---:|---|"]
    for r in rows:
        first = True
        for (engine, file), m in r["fidelity"].items():
            c = [r["stem"], r["eval_desc"]] if first else ["", ""]
            first = False
            cell = ("fails: " + short_error(m["error"]), "–") if "error" in m else (
                f"{m['cos']:.5f}", m["task"])
            L.append("| " + " | ".join(c + [engine, file, *cell]) + " |")
    L += ["", "Task metrics: " + "; ".join(
        f"{s}: {METRIC[MODELS[s][1]]}" for s in [r["stem"] for r in rows] if METRIC[MODELS[s][1]] != "–")
        + ".", "",
          "### Latency at one thread", "",
          f"Median ms of {args.runs} timed runs after {args.warmup} warm-up runs, each engine/file "
          f"pair in its own process, {args.rounds} rounds taking turns (order rotating); the "
          "median over rounds. Input: the first evaluation sample (batch 1; for the melspectrogram "
          "its first 1760 samples, one streaming call). ORT: ONNX Runtime, "
          "all graph optimizations, bench/peer.py.", "",
          "| model | input | slimnet fp32 | slimnet int8 | ORT fp32 | ORT QDQ | slimnet int8 / slimnet fp32 "
          "| slimnet int8 / ORT QDQ |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        lat = r["latency"]
        for k, v in lat.items():
            if "error" in v:
                notes.append(f"{r['stem']}, {k}: {v['error']}")
        L.append("| " + " | ".join([
            r["stem"], r["lat_input"], *[ms(lat.get(k)) for k in
                                         ("slimnet fp32", "slimnet int8", "ORT fp32", "ORT QDQ")],
            ratio(lat.get("slimnet int8"), lat.get("slimnet fp32")),
            ratio(lat.get("slimnet int8"), lat.get("ORT QDQ"))]) + " |")
    errs = [f"{r['stem']}, ORT pre-process: {r['ort_q']['preprocess_error']}" for r in rows
            if r["ort_q"].get("preprocess_error")]
    if notes or errs:
        L += ["", "Failures:", ""] + [f"- {n}" for n in notes + errs]
    return L


def short_error(e):
    """ONNX Runtime's load errors name the file first; the reason comes after 'failed:'."""
    import re
    e = e.split("failed:", 1)[-1].strip()
    m = re.search(r'In Node, \("([^"]*)", (\w+).*, Error (.*)$', e)
    if m:
        e = f"invalid model, node {m.group(1)} ({m.group(2)}): {m.group(3)}"
    return e.replace("|", "/")[-160:]


def write_section(lines, path):
    """Replaces this section of BENCHMARKS.md (to the next '## ' heading or the end), or
    appends it; keeps its "### Reading" subsection."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    old = text.splitlines()
    try:
        start = old.index(SECTION)
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
        # a hand-written "### Reading" of the numbers stays (to be revised after a rerun)
        reading = next((i for i in range(start, end) if old[i].startswith("### Reading")), None)
        kept = [""] + old[reading:end] if reading is not None else []
        new = old[:start] + lines + kept + ([""] + old[end:] if end < len(old) else [])
    except ValueError:
        new = old + [""] + lines
    path.write_text("\n".join(new).rstrip("\n") + "\n")


def load_average():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ort-child":
        m, c, k, o, pre = sys.argv[2:7]
        return ort_quantize_child(m, c, k, o, pre == "1")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated stems (default: all): " + ",".join(MODELS))
    ap.add_argument("--runs", type=int, default=20, help="timed runs per latency round")
    ap.add_argument("--rounds", type=int, default=3, help="latency rounds of turns")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                    help="quantize_static on the model as it is (no quant_pre_process)")
    ap.add_argument("--out", default="BENCHMARKS.md", help="'-' prints the section instead")
    args = ap.parse_args()
    stems = [s for s in args.models.split(",") if s] or list(MODELS)
    if unknown := set(stems) - set(MODELS):
        ap.error(f"unknown models {sorted(unknown)}; known: {list(MODELS)}")
    started, load0 = time.perf_counter(), load_average()
    wake = wake_chain_inputs() if {"embedding_model", "hey_jarvis_v0.1", "melspectrogram"} & set(stems) else None
    rows = []
    for stem in stems:
        (cfile, key), kind = MODELS[stem]
        work = OUT / stem
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        calib = TASKS / cfile
        name = input_name(stem)
        files = {"fp32": model_path(stem), "slimnet": work / "slimnet_int8.onnx", "ort": work / "ort_qdq.onnx"}
        log(stem, "quantizing")
        sq = slimnet_quantize(files["fp32"], calib, files["slimnet"])
        src, upgraded = files["fp32"], opset(files["fp32"]) < 13
        if upgraded:
            src = work / "fp32_opset13.onnx"
            upgrade_opset13(files["fp32"], src)
        oq = ort_quantize(src, calib, key, files["ort"], args.preprocess)
        if "error" not in oq:
            oq["opset13"] = upgraded
        for k, q in (("slimnet", sq), ("ort", oq)):
            if "error" in q:
                log(stem, k, "quantize fails:", q["error"])
                files[k] = None
        log(stem, f"slimnet {sq.get('wall_s', 0):.2f} s, ORT {oq.get('wall_s', 0):.2f} s; evaluating")
        batches, labels, desc = eval_set(stem, kind, wake)
        fid = {}
        ref_ort = run_ort(files["fp32"], name, batches)
        try:
            ref_sl = run_slimnet(files["fp32"], name, batches, work / "eval")
        except RuntimeError as e:
            ref_sl = e
        pairs = [("ONNX Runtime", "slimnet"), ("ONNX Runtime", "ort"), ("slimnet", "slimnet"),
                 ("slimnet", "ort")]
        if files["slimnet"] is not None and upgraded and ort_loads(files["slimnet"]):
            # slimnet keeps the model's opset; quantize the opset-13 conversion too, so that
            # ONNX Runtime can run a slimnet-quantized file of this model
            files["slimnet13"] = work / "slimnet_int8_opset13.onnx"
            if "error" in slimnet_quantize(src, calib, files["slimnet13"]):
                files["slimnet13"] = None
            pairs.insert(1, ("ONNX Runtime", "slimnet13"))
        for engine, file in pairs:
            title = {"slimnet": "slimnet int8", "ort": "ORT QDQ",
                     "slimnet13": "slimnet int8 of the opset-13 model"}[file]
            if files[file] is None:
                fid[(engine, title)] = {"error": "not quantized"}
                continue
            try:
                if engine == "ONNX Runtime":
                    ref, q = ref_ort, run_ort(files[file], name, batches)
                else:
                    if isinstance(ref_sl, Exception):
                        raise ref_sl
                    ref, q = ref_sl, run_slimnet(files[file], name, batches, work / "eval")
                cos, task = metrics(kind, ref, q, labels)
                fid[(engine, title)] = {"cos": cos, "task": task}
            except Exception as e:  # noqa: BLE001 - reported in the table
                fid[(engine, title)] = {"error": clean(f"{type(e).__name__}: {e}").splitlines()[0]}
            log(stem, engine, title, fid[(engine, title)])
        # batch 1; the melspectrogram as openwakeword streams it, 1760 samples per call
        x1 = batches[0][:1, :1760] if kind == "mel" else batches[0][:1]
        np.save(work / "lat_input.npy", x1)
        log(stem, "latency")
        lat = latency(name, work / "lat_input.npy", files, args.runs, args.rounds, args.warmup)
        log(stem, {k: (round(v["median_ms"], 3) if "error" not in v else v["error"]) for k, v in lat.items()})
        size = {k: (f.stat().st_size if f is not None and f.exists() else None)
                for k, f in files.items() if k in ("fp32", "slimnet", "ort")}
        rows.append({"stem": stem, "calib_n": len(np.load(calib)[key]), "slimnet_q": sq, "ort_q": oq,
                     "size": size, "eval_desc": desc, "fidelity": fid, "latency": lat,
                     "lat_input": f"{name} {list(x1.shape)}"})
    lines = report(args, rows, (load0, load_average()), time.perf_counter() - started)
    if args.out == "-":
        print("\n".join(lines))
    else:
        write_section(lines, ROOT / args.out)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
