"""A classroom on one server: 30 students predicting at once with the one shared model.

Each client is a thread running exactly what the Draw page runs for a drawing: `preprocess` on a 280x280
RGBA canvas image (white strokes on a transparent background, real MNIST test digits rendered the way
the canvas returns them) and `inference.predict_one` on the model loaded once and shared by every
session (as `ui.loaders.model` shares it through `st.cache_resource`). Two phases:

- classroom: every client sends a drawing, "thinks" for a random 0.1-0.5 s (students redraw every second
  or so, so this is harsher than a real class) and sends the next -> p50/p95/max latency, throughput.
- burst: all 30 clients released at the same instant by a barrier, several times -> the worst case of
  30 simultaneous requests on a server with few cores.

Identities are on, as in a class: each client signs in once with its own display name (a classroom name
claimed in a temporary runs folder), every request checks its signed token first as the router does on
each script run, and every fifth drawing is added to the class set (`classset.add`, what Draw's "Add to
the class set" does); the class set must end with exactly the drawings added (`classset_lost`).

Every answer is compared with a single-threaded reference prediction of the same image, so a race in the
shared model shows up as `mismatches`; exceptions are counted as `errors`. Memory: this process's RSS
after the model is loaded and warmed up, after a first classroom round and after a second one; "flat"
means the second round adds (almost) nothing. The model is models/pretrained when it exists, else an
untrained classic CNN (same cost per call).

    python benchmarks/classroom_load.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MNIST_OFFLINE", "1")

import common  # noqa: E402
import numpy as np  # noqa: E402

CLIENTS = 30
QUICK = dict(requests=12, bursts=3, think=(0.1, 0.5))
FULL = dict(requests=60, bursts=10, think=(0.1, 0.5))
TARGETS = {"classroom_p95_ms": "<= 100", "classroom_errors": "0", "classroom_mismatches": "0",
           "rss_growth_second_round_mb": "<= 20", "classset_lost": "0"}


def canvases(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """n Draw-page canvas images of real MNIST test digits, and their labels."""
    from mnist_core.data import load_mnist

    try:
        ds = load_mnist(common.data_dir(), "data_dir")
    except SystemExit:
        ds = load_mnist(source="bundled")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds.y_test), n, replace=False)
    out = []
    for i in idx:
        from PIL import Image

        alpha = np.asarray(Image.fromarray(ds.x_test[i]).resize((280, 280), Image.Resampling.BILINEAR))
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., :3] = 255
        rgba[..., 3] = alpha
        out.append(rgba)
    return out, ds.y_test[idx]


def load_shared_model() -> tuple[Any, str]:
    from mnist_core.inference import load_model

    pre = common.ROOT / "models" / "pretrained" / "model.keras"
    if pre.is_file():
        return load_model(pre), "models/pretrained"
    from mnist_core.architectures import build_model
    from mnist_core.config import ArchConfig

    return build_model(ArchConfig()), "untrained classic CNN (no pretrained model yet)"


def draw_page_predict(model: Any, canvas: np.ndarray) -> np.ndarray:
    """The Draw page's code path for one drawing."""
    from mnist_core.inference import predict_one
    from mnist_core.preprocess import preprocess

    pre = preprocess(canvas, "mnist")
    if pre.blank:
        raise ValueError("a digit canvas came out blank")
    return predict_one(model, pre.image)


def _classroom(model: Any, images: list[np.ndarray], reference: np.ndarray, requests: int,
               think: tuple[float, float], tokens: list[str], added: list[int]) -> dict[str, Any]:
    from mnist_core import classset, identity
    from mnist_core.preprocess import preprocess

    latencies: list[float] = []
    add_latencies: list[float] = []
    errors: list[str] = []
    mismatches = [0]
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(cid: int) -> None:
        rnd = random.Random(cid)
        start.wait()
        for r in range(requests):
            k = (cid * requests + r) % len(images)
            t = time.perf_counter()
            try:
                name = identity.verify_token(tokens[cid])  # who is asking, as on every script run
                probs = draw_page_predict(model, images[k])
                dt = time.perf_counter() - t
                if r % 5 == 0:  # a student adds this drawing to the class set (timed on its own: an fsync)
                    t_add = time.perf_counter()
                    classset.add(preprocess(images[k], "mnist").image, int(reference[k]), name)
                    with lock:
                        added[0] += 1
                        add_latencies.append(time.perf_counter() - t_add)
                with lock:
                    latencies.append(dt)
                    if int(probs.argmax()) != reference[k]:
                        mismatches[0] += 1
            except Exception as e:  # counted, and the client goes on like a browser session would
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
            time.sleep(rnd.uniform(*think))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000
    return {"n": len(latencies), "p50_ms": common.pct(ms, 50) if len(ms) else None,
            "p95_ms": common.pct(ms, 95) if len(ms) else None, "max_ms": float(ms.max()) if len(ms) else None,
            "errors": len(errors), "first_error": errors[0] if errors else None, "mismatches": mismatches[0],
            "rps": len(latencies) / wall,
            "add_p95_ms": common.pct(np.asarray(add_latencies) * 1000, 95) if add_latencies else None}


def _bursts(model: Any, images: list[np.ndarray], reference: np.ndarray, bursts: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = [0]
    mismatches = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(cid: int) -> None:
        for b in range(bursts):
            k = (b * CLIENTS + cid) % len(images)
            barrier.wait()  # everyone presses at the same instant
            t = time.perf_counter()
            try:
                probs = draw_page_predict(model, images[k])
                with lock:
                    latencies.append(time.perf_counter() - t)
                    mismatches[0] += int(int(probs.argmax()) != reference[k])
            except Exception:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ms = np.asarray(latencies) * 1000
    return {"n": len(ms), "p50_ms": common.pct(ms, 50), "p95_ms": common.pct(ms, 95), "max_ms": float(ms.max()),
            "errors": errors[0], "mismatches": mismatches[0]}


def run(quick: bool = True) -> dict[str, Any]:
    import tempfile

    from mnist_core import classset, identity

    p = QUICK if quick else FULL
    pid = os.getpid()
    os.environ["MNIST_RUNS_DIR"] = tempfile.mkdtemp(prefix="classroom_load_")
    os.environ["MNIST_CLASSROOM"] = "1"
    tokens = [identity.claim_name(f"student {c:02d}")[1] for c in range(CLIENTS)]
    added = [0]
    model, model_name = load_shared_model()
    images, labels = canvases(200)
    # Single-threaded reference answers (also warms up the traced graph before the clients arrive).
    reference = np.array([int(draw_page_predict(model, im).argmax()) for im in images])
    t = time.perf_counter()
    for im in images[:50]:
        draw_page_predict(model, im)
    single_ms = (time.perf_counter() - t) / 50 * 1000
    rss_before = common.rss_mb(pid)
    first = _classroom(model, images, reference, p["requests"], p["think"], tokens, added)
    rss_mid = common.rss_mb(pid)
    second = _classroom(model, images, reference, p["requests"], p["think"], tokens, added)
    rss_after = common.rss_mb(pid)
    burst = _bursts(model, images, reference, p["bursts"])
    lat = {k: [first[k], second[k]] for k in ("p50_ms", "p95_ms", "max_ms")}
    return {
        "classroom_clients": CLIENTS,
        "classroom_model": model_name,
        "classroom_model_accuracy_on_canvases": float((reference == labels).mean()),
        "classroom_single_request_ms": single_ms,
        "classroom_requests": first["n"] + second["n"],
        "classroom_p50_ms": float(np.mean(lat["p50_ms"])),
        "classroom_p95_ms": float(max(lat["p95_ms"])),
        "classroom_max_ms": float(max(lat["max_ms"])),
        "classroom_throughput_rps": float((first["rps"] + second["rps"]) / 2),
        "classroom_errors": first["errors"] + second["errors"] + burst["errors"],
        "classroom_first_error": first["first_error"] or second["first_error"],
        "classroom_mismatches": first["mismatches"] + second["mismatches"] + burst["mismatches"],
        "classroom_identities": len(tokens),
        "classset_added": added[0],
        "classset_add_p95_ms": max(first["add_p95_ms"] or 0, second["add_p95_ms"] or 0),
        "classset_lost": added[0] - len(classset.load()),
        "burst_requests": burst["n"],
        "burst_p50_ms": burst["p50_ms"],
        "burst_p95_ms": burst["p95_ms"],
        "burst_max_ms": burst["max_ms"],
        "rss_before_mb": rss_before,
        "rss_after_first_round_mb": rss_mid,
        "rss_after_mb": rss_after,
        "rss_growth_second_round_mb": rss_after - rss_mid,
        "machine": common.machine(),
        "date": common.today(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK['requests']} requests per client per round")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args()
    res = run(quick=a.quick)
    if a.json:
        print(common.dumps(res))
    else:
        common.print_table(res, f"classroom load: {CLIENTS} concurrent Draw-page clients", TARGETS)
    ok = (res["classroom_errors"] == 0 and res["classroom_mismatches"] == 0 and res["classset_lost"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
