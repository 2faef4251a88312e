"""Draw-page latency: a canvas image (280x280 RGBA, as the canvas returns it) -> ten probabilities.

The measured path is the page's: `preprocess.preprocess(canvas, "mnist")` then `inference.predict_one`
(the model's traced `tf.function`), p50 and p95 over 200 calls after a warm-up. Next to it, in the
same process and on the same preprocessed input: `model.predict` (what the page does NOT use), and
for information the parts around it: decoding the canvas's PNG data URL (what
`CanvasResult.image_data` does on every rerun), preprocessing and inference alone, and the "Why"
section (SmoothGrad saliency + Grad-CAM + the first two conv layers' feature maps).

The model is models/pretrained when it is there (the model a user draws for), else a classic CNN
trained for one epoch on 600 images (latency does not depend on the weights).

    python benchmarks/predict_latency.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402

TARGETS = {"predict_p50_ms": "<= 5", "predict_p95_ms": "<= 15", "predict_speedup_vs_model_predict": ">= 20"}


def canvas_image(img28: np.ndarray, size: int = 280) -> np.ndarray:
    """An MNIST digit rendered as the canvas returns a drawing: white strokes, alpha = ink."""
    from PIL import Image

    alpha = np.asarray(Image.fromarray(img28.astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR))
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = alpha
    return rgba


def get_model() -> tuple[Any, str]:
    from mnist_core.inference import load_model

    pre = common.ROOT / "models" / "pretrained" / "model.keras"
    if pre.exists():
        return load_model(pre), "models/pretrained"
    from mnist_core.config import preset_config
    from mnist_core.data import load_mnist
    from mnist_core.training import train
    from tests.conftest import take

    ds = take(load_mnist(common.data_dir(), "data_dir"), 600, 100)
    model = train(preset_config("classic", epochs=1), None, ds)["model"]
    path = Path(tempfile.mkdtemp()) / "model.keras"
    model.save(path)
    return load_model(path), "classic, 1 epoch on 600 images (no models/pretrained)"


def timed(fn, n: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t) * 1000
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from mnist_core import explain
    from mnist_core.data import load_mnist
    from mnist_core.inference import predict_one
    from mnist_core.preprocess import preprocess

    load_before = os.getloadavg()[0]
    model, model_name = get_model()
    ds = load_mnist(common.data_dir(), "data_dir")
    canvas = canvas_image(ds.x_test[0])
    n = 200
    n_keras = 20 if quick else 50

    def full():
        return predict_one(model, preprocess(canvas, "mnist").image)

    full_ms = timed(full, n)
    x28 = preprocess(canvas, "mnist").image
    pre_ms = timed(lambda: preprocess(canvas, "mnist"), n)
    infer_ms = timed(lambda: predict_one(model, x28), n)
    x = x28.reshape(1, 28, 28, 1).astype(np.float32)
    keras_ms = timed(lambda: model.predict(x, verbose=0), n_keras, warmup=2)
    same = bool(np.allclose(model.predict(x, verbose=0)[0], full(), atol=1e-5))

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def decode():  # what CanvasResult.image_data does with the data URL the browser sends
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))))

    decode_ms = timed(decode, n)

    def why():
        sal, cls = explain.saliency(model, x28)
        explain.grad_cam(model, x28, cls)
        explain.feature_maps(model, x28)

    why_ms = timed(why, 50 if quick else n)

    p50, p95 = common.pct(full_ms, 50), common.pct(full_ms, 95)
    kp50 = common.pct(keras_ms, 50)
    return {
        "predict_p50_ms": round(p50, 3),
        "predict_p95_ms": round(p95, 3),
        "model_predict_p50_ms": round(kp50, 2),
        "model_predict_p95_ms": round(common.pct(keras_ms, 95), 2),
        "predict_speedup_vs_model_predict": round(kp50 / p50, 1),
        "predict_calls": n,
        "model_predict_calls": n_keras,
        "preprocess_p50_ms": round(common.pct(pre_ms, 50), 3),
        "infer_p50_ms": round(common.pct(infer_ms, 50), 3),
        "infer_p95_ms": round(common.pct(infer_ms, 95), 3),
        "canvas_png_decode_p50_ms": round(common.pct(decode_ms, 50), 3),
        "explain_p50_ms": round(common.pct(why_ms, 50), 2),
        "explain_p95_ms": round(common.pct(why_ms, 95), 2),
        "same_probabilities_as_model_predict": same,
        "predict_model": model_name,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer model.predict / explain calls")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    a = ap.parse_args()
    res = run(quick=a.quick)
    common.print_table({"machine": common.machine(), **res}, "Draw page: canvas -> probabilities", TARGETS)
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
