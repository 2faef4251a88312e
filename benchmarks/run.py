"""Run every benchmark and write `benchmarks/results.json` (one flat object).

    python benchmarks/run.py [--quick] [--json] [--only startup_memory,train_overhead,...]

Each part runs in its own Python process (so TensorFlow state, op determinism and memory from one part
never leak into the next) and each comparison inside a part is measured side by side in that run.
`--quick` uses smaller data and fewer repetitions (a few minutes on 2 quiet cores); the full run takes
much longer (the Keras example alone trains 15 epochs). A part that fails or does not exist is reported
as such in the table and in `errors`; its keys are left out rather than invented.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

HERE = Path(__file__).resolve().parent
PARTS = ["startup_memory", "train_overhead", "time_to_accuracy", "predict_latency", "classroom_load", "draw_latency",
         "export_latency", "sweep_engines", "page_render"]
REQUIRED = ["train_images_per_s_app", "train_images_per_s_plain_fit", "train_overhead_ratio", "example_test_acc",
            "example_wall_s", "fast_test_acc", "fast_wall_s", "fast_s_to_beat_example", "predict_p50_ms",
            "predict_p95_ms", "model_predict_p50_ms", "startup_s", "rss_serving_mb", "rss_training_peak_mb",
            "draw_stroke_to_prediction_p50_ms", "draw_stroke_to_prediction_p95_ms", "draw_stroke_to_settled_p50_ms",
            "draw_10_sessions_stroke_to_prediction_p95_ms"]


def targets(parts: list[str]) -> dict[str, str]:
    """Each part's own TARGETS (the one place each target is written), merged for the summary table."""
    import importlib

    out: dict[str, str] = {}
    for name in parts:
        try:
            out.update(getattr(importlib.import_module(name), "TARGETS", {}))
        except Exception as e:  # a part that cannot even be imported is reported when it runs
            print(f"  (targets of {name} unavailable: {type(e).__name__}: {e})")
    return out


_CHILD = """
import json, sys
sys.path.insert(0, {here!r})
import {mod} as m
res = m.run(quick={quick})
with open({out!r}, "w") as f:
    json.dump(res, f, default=str)
"""


def run_part(name: str, quick: bool) -> tuple[dict[str, Any], str | None, float]:
    """(results, error or None, seconds) of one part, run in a child process."""
    if not (HERE / f"{name}.py").is_file():
        return {}, f"benchmarks/{name}.py does not exist yet: its figures are missing", 0.0
    out = Path(tempfile.mkstemp(prefix=f"bench_{name}_", suffix=".json")[1])
    t = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(common.ROOT)}
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(here=str(HERE), mod=name, quick=quick, out=str(out))],
                          cwd=common.ROOT, env=env, check=False)  # the part's own log goes to our stdout
    secs = time.perf_counter() - t
    try:
        if proc.returncode != 0:
            return {}, f"{name} failed with exit code {proc.returncode} (its log is above)", secs
        return json.loads(out.read_text()), None, secs
    finally:
        out.unlink(missing_ok=True)


def flat(res: dict[str, Any]) -> dict[str, Any]:
    """Numbers, strings and booleans only (curves and lists stay in the printed log)."""
    return {k: v for k, v in res.items() if v is None or isinstance(v, (int, float, str, bool))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data, fewer repetitions")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    ap.add_argument("--out", default=str(HERE / "results.json"))
    a = ap.parse_args()
    parts = a.only.split(",") if a.only else PARTS
    results: dict[str, Any] = {"machine": common.machine(), "date": common.today(),
                               "mode": "quick" if a.quick else "full"}
    errors, t0 = [], time.perf_counter()
    for name in parts:
        print(f"\n### {name}{' (quick)' if a.quick else ''}", flush=True)
        res, err, secs = run_part(name, a.quick)
        for k, v in res.items():
            if k.endswith("_curve"):
                print(f"  {k}: " + ", ".join(f"{s}s:{acc:.4f}" for s, acc in v))
        results.update(flat(res))
        results[f"seconds_{name}"] = round(secs, 1)
        if err:
            errors.append(err)
            print(f"  ERROR: {err}", flush=True)
    if "predict_p50_ms" in results and "model_predict_p50_ms" in results and results["predict_p50_ms"]:
        results["predict_speedup_vs_model_predict"] = round(results["model_predict_p50_ms"] / results["predict_p50_ms"], 1)
    missing = [k for k in REQUIRED if results.get(k) is None] if not a.only else []
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    results["errors"] = "; ".join(errors + ([f"missing keys: {', '.join(missing)}"] if missing else []))
    common.print_table(results, f"mnist-studio benchmarks ({results['mode']})", targets(parts))
    if a.json:
        print(common.dumps(results))
    common.write_json(Path(a.out), results)
    print(f"\nwrote {a.out}")
    return 1 if errors or missing else 0


if __name__ == "__main__":
    sys.exit(main())
