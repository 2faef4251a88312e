"""Single-image latency of the exported models next to the app's Keras path.

The model (models/pretrained by default) is exported by `mnist_core.export` (the code the app and the
CLI use) to a temporary folder: LiteRT float32, LiteRT dynamic-range quantized and ONNX. Then, in this
one process and on the same MNIST test images fed one at a time as float32 (1, 28, 28, 1): the LiteRT
interpreter (ai-edge-litert) on each .tflite, an onnxruntime session (CPU provider) on the .onnx, and the
app's Draw path `inference.predict_one` on the loaded Keras model (its traced `tf.function`). p50/p95
of each over the same calls after a warm-up, the ratios to the Keras path, the file sizes, and the
largest probability difference of each runtime from Keras on those images (a sanity check that the
timed calls compute the same thing). Preprocessing is left out: it is the same for every path.

    python benchmarks/export_latency.py [--quick] [--json] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402
from predict_latency import timed  # noqa: E402

DEFAULT_MODEL = common.ROOT / "models" / "pretrained" / "model.keras"
EXPORTED = ("litert", "litert_quant", "onnx")  # the formats a phone or a TF-less server would run


def run(quick: bool = False, model_path: Path = DEFAULT_MODEL) -> dict[str, Any]:
    from mnist_core import export
    from mnist_core.data import load_mnist
    from mnist_core.inference import load_model, predict_one

    load_before = os.getloadavg()[0]
    model = load_model(model_path)
    ds = load_mnist(common.data_dir(), "data_dir")
    n = 100 if quick else 500
    images = [(ds.x_test[i].astype(np.float32) / 255.0).reshape(1, 28, 28, 1) for i in range(n)]

    def over_images(fn):
        """A call that feeds the next image each time, cycling through the same n images."""
        state = {"i": 0}

        def call():
            state["i"] = (state["i"] + 1) % n
            return fn(images[state["i"]])
        return call

    keras_fn = lambda x: predict_one(model, x[0, :, :, 0])  # noqa: E731  the app's path, from a 28x28 image
    res: dict[str, Any] = {}
    ms = {"keras_predict_one": timed(over_images(keras_fn), n, warmup=20)}
    reference = np.stack([keras_fn(x) for x in images])
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in EXPORTED:
            path, _ = export.export_model(model, fmt, Path(tmp) / export.FORMATS[fmt].filename)
            runner, runtime = export.load_runner(fmt, path)
            ms[fmt] = timed(over_images(runner), n, warmup=20)
            got = np.stack([runner(x)[0] for x in images])
            res[f"{fmt}_bytes"] = path.stat().st_size
            res[f"{fmt}_max_prob_diff_vs_keras"] = float(np.abs(got - reference).max())
            res[f"{fmt}_runtime"] = runtime
    for name, t in ms.items():
        res[f"{name}_p50_ms"] = round(common.pct(t, 50), 3)
        res[f"{name}_p95_ms"] = round(common.pct(t, 95), 3)
    for fmt in EXPORTED:
        res[f"{fmt}_speedup_vs_keras_p50"] = round(res["keras_predict_one_p50_ms"] / res[f"{fmt}_p50_ms"], 1)
    res.update({"export_latency_calls": n, "export_latency_model": str(Path(model_path).resolve()),
                "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)})
    order = [f"{p}_{s}" for p in ("keras_predict_one", *EXPORTED) for s in ("p50_ms", "p95_ms")]
    return {**{k: res[k] for k in order}, **{k: v for k, v in res.items() if k not in order}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 calls per path instead of 500")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a .keras file (default: the pretrained)")
    a = ap.parse_args()
    res = run(quick=a.quick, model_path=a.model)
    common.print_table({"machine": common.machine(), **res}, "Single-image latency: exports vs the app's Keras path")
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
