"""The benchmark scripts import, their helpers compute what they claim, and run.py writes one flat
results.json with every required key. Not a timed test: anything that trains uses a few hundred images."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import take

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import run as bench_run  # noqa: E402
import startup_memory  # noqa: E402
import time_to_accuracy as tta  # noqa: E402
import train_overhead  # noqa: E402


def test_common_helpers():
    assert common.pct([1, 2, 3, 4, 100], 50) == 3.0
    assert "cores" in common.machine()
    assert common.rss_mb(os.getpid()) > 10
    assert common.rss_mb(2**22 + 12345) == 0.0  # no such process
    with common.RssSampler(lambda: [os.getpid()], every_s=0.01) as s:
        _ = np.ones((4096, 4096))  # 128 MB touched while sampling
        import time

        time.sleep(0.1)
    assert s.samples >= 2 and s.peak_mb > 100 and 100 < s.peak_pss_mb <= s.peak_mb + 1
    assert 0 < common.pss_mb(os.getpid()) <= common.rss_mb(os.getpid()) + 1
    assert isinstance(common.has_tensorflow(os.getpid()), bool)


def test_time_to_accuracy_summary():
    ex = [(1, 10.0, 0.97), (2, 20.0, 0.98), (3, 30.0, 0.985)]
    fast = [(1, 8.0, 0.98), (2, 16.0, 0.99), (3, 24.0, 0.993), (4, 32.0, 0.995)]
    s = tta.summarise(ex, fast)
    assert s["example_test_acc"] == 0.985 and s["example_wall_s"] == 30.0
    assert s["fast_s_to_beat_example"] == 16.0  # first epoch strictly above 0.985
    assert s["fast_beat_fraction_of_example_wall"] == pytest.approx(16 / 30, abs=1e-3)
    assert s["fast_test_acc"] == 0.993  # last epoch that ended within the example's 30 s
    assert s["fast_final_test_acc"] == 0.995 and s["fast_wall_s"] == 32.0
    never = tta.summarise(ex, [(1, 5.0, 0.9)])
    assert never["fast_s_to_beat_example"] is None  # not reached is reported, not invented
    assert s["example_stalled_epochs"] == 0 and s["example_wall_s_steady"] == 30.0


def test_time_to_accuracy_discounts_stalled_example_epochs():
    # Epoch 3 of the example took 30 s instead of ~10 (a stall): the steady wall counts it as 10 s, and
    # the fractions against it are the larger, conservative ones.
    ex = [(1, 12.0, 0.97), (2, 22.0, 0.98), (3, 52.0, 0.983), (4, 62.0, 0.984), (5, 72.0, 0.985)]
    fast = [(1, 8.0, 0.98), (2, 16.0, 0.9867), (3, 24.0, 0.99), (4, 55.0, 0.993), (5, 70.0, 0.994)]
    s = tta.summarise(ex, fast)
    assert s["example_stalled_epochs"] == 1 and s["example_wall_s_steady"] == pytest.approx(52.0)
    assert s["fast_beat_fraction_of_example_wall"] == pytest.approx(16 / 72, abs=1e-3)
    assert s["fast_beat_fraction_of_example_steady_wall"] == pytest.approx(16 / 52, abs=1e-3)
    assert s["fast_test_acc"] == 0.994 and s["fast_test_acc_within_steady_wall"] == 0.99
    assert s["fast_s_to_beat_9866"] == 16.0  # the 98.66 %


def test_example_model_matches_keras_example(mnist):
    m = tta.example_model()
    assert m.count_params() == 34_826  # the keras.io mnist_convnet summary
    small = take(mnist, 300, 200)
    rec = tta.run_example(small, epochs=1, log=lambda *_: None)
    (epoch, secs, acc), = rec
    assert epoch == 1 and secs > 0 and 0.0 <= acc <= 1.0


def test_plain_fit_tiny(data_dir):
    cfg = train_overhead.bench_config(limit=300, epochs=1)
    r = train_overhead.plain_fit(cfg.to_json(), str(data_dir))
    assert r["n_fit"] == 270 and len(r["seconds"]) == 1 and r["seconds"][0] > 0
    steady, first = train_overhead._ips({"seconds": [2.0, 1.0, 1.0, 9.0], "n_fit": 100})
    assert steady == 100.0 and first == 50.0  # the median steady epoch: a stalled one does not count
    assert train_overhead._steady([{"seconds": [2.0, 1.0, 1.1]}, {"seconds": [3.0, 0.9]}]) == [1.0, 1.1, 0.9]


def test_run_writes_flat_results(tmp_path, monkeypatch):
    fake = {
        "startup_memory": {"startup_s": 2.0, "rss_serving_mb": 700.0, "rss_training_peak_mb": 1500.0,
                           "home_imports_tensorflow": False, "startup_runs_s": [2.0]},
        "train_overhead": {"train_images_per_s_app": 990.0, "train_images_per_s_plain_fit": 1000.0,
                           "train_overhead_ratio": 0.99},
        "time_to_accuracy": tta.summarise([(1, 10.0, 0.98)], [(1, 3.0, 0.99)]) | {"tta_fast_curve": [[3.0, 0.99]]},
        "predict_latency": {"predict_p50_ms": 2.0, "predict_p95_ms": 4.0, "model_predict_p50_ms": 60.0},
        "classroom_load": {"classroom_p95_ms": 50.0, "classroom_errors": 0},
        "draw_latency": {"draw_stroke_to_prediction_p50_ms": 70.0, "draw_stroke_to_prediction_p95_ms": 130.0,
                         "draw_stroke_to_settled_p50_ms": 120.0, "draw_10_sessions_stroke_to_prediction_p95_ms": 400.0},
    }
    # Parts without a fake (added since) report nothing; the required keys come from the fakes.
    monkeypatch.setattr(bench_run, "run_part", lambda name, quick: (fake.get(name, {}), None, 0.1))
    out = tmp_path / "results.json"
    monkeypatch.setattr(sys, "argv", ["run.py", "--quick", "--out", str(out)])
    assert bench_run.main() == 0
    res = json.loads(out.read_text())
    for k in bench_run.REQUIRED:
        assert isinstance(res[k], (int, float)) and not isinstance(res[k], bool), k
    assert isinstance(res["machine"], str) and isinstance(res["date"], str)
    assert all(not isinstance(v, (list, dict)) for v in res.values())  # one flat object
    assert res["predict_speedup_vs_model_predict"] == 30.0 and res["errors"] == ""


def test_run_reports_missing_part(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_run, "HERE", tmp_path)  # no part files there
    res, err, _ = bench_run.run_part("predict_latency", quick=True)
    assert res == {} and "does not exist" in err


def test_startup_memory_targets_cover_required_keys():
    for k in ("startup_s", "rss_serving_mb", "rss_training_peak_mb"):
        assert k in startup_memory.TARGETS
