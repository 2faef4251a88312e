"""The Train page on run folders written here (no training): comparing runs shows only the settings
that differ and says plainly when the runs were trained on different data; a run stopped mid-epoch says
where it stopped and draws its last epoch there; the curves have the smoothing control; default names
are short (issue 20, items 5, 6 and 10)."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import runs
from mnist_core.config import preset_config
from tests.app.apptest import APP, open_page

LOCAL = {"data_source": "data_dir", "data": "MNIST from a data directory: 22,699 training and 10,000 test images (x)",
         "n_train": 20430, "n_val": 2269, "n_test": 10000}
BUNDLED = {"data_source": "bundled", "data": "the bundled MNIST sample: 10,000 training and 2,000 test images (y)",
           "n_train": 9000, "n_val": 1000, "n_test": 2000}


def fake_run(root: Path, name: str, cfg, data: dict, state: str = "finished", epochs_done: int = 2,
             progress: dict | None = None) -> Path:
    """A run folder as the trainer leaves it: config, status, history, batches, metrics and a model file."""
    run = runs.folder(runs.create_run(cfg, name, root=root))
    steps = 10
    for e in range(1, epochs_done + 1):
        last = steps if e < epochs_done or progress is None else progress["batch"]
        runs.append_batches(run, [{"epoch": e, "batch": b, "x": round(e - 1 + b / steps, 5), "loss": 1.0 / (e + b),
                                   "accuracy": 0.5 + 0.04 * b} for b in range(1, last + 1)])
        runs.append_history(run, {"epoch": e, "loss": 1.0 / e, "accuracy": 0.9, "val_loss": 1.1 / e,
                                  "val_accuracy": 0.8 + 0.05 * e, "lr": cfg.learning_rate, "seconds": 1.0})
    with zipfile.ZipFile(run.model, "w") as z:  # listed as usable; never loaded by the Train page
        z.writestr("config.json", "{}")
    runs.atomic_write_json(run.metrics, {**data, "test_accuracy": 0.95, "test_loss": 0.2, "mistakes": 100,
                                         "train_seconds": 5.0, "images_per_s": 1000.0, "epochs_done": epochs_done})
    if progress:
        runs.atomic_write_json(run.progress, {**progress, "loss": 0.3, "accuracy": 0.9, "elapsed_s": 3.0,
                                              "updated": time.time()})
    runs.set_status(run, state, finished=time.time(), pid=None)
    return run.path


@pytest.fixture
def root(runs_root, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    fake_run(runs_root, "classic-1", preset_config("classic", epochs=2), LOCAL)
    fake_run(runs_root, "classic-2", preset_config("classic", epochs=2, learning_rate=5e-4, limit=2000), LOCAL)
    fake_run(runs_root, "fast-1", preset_config("fast", epochs=2), BUNDLED)
    return runs_root


def open_train() -> AppTest:
    return open_page("app_pages/train.py")


def differing(at: AppTest):
    """The comparison's table of differing settings, a row per setting (AppTest shows no dataframe keys)."""
    return next(d.value for d in at.dataframe if d.value.columns[0] == "setting").set_index("setting")


def test_comparing_runs_shows_what_differs_and_warns_about_different_data(root):
    at = open_train()
    assert at.text_input(key="tr_name").value == "classic-3"  # short, the first free number
    at.multiselect(key="tr_compare").set_value(["classic-1", "classic-2"]).run()
    table = differing(at)
    assert list(table.index) == ["Learning rate", "Subset size (images)"]
    assert list(table.columns) == ["classic-1", "classic-2"]
    assert list(table.loc["Subset size (images)"]) == ["all images", "2,000"]
    assert not [w for w in at.warning if "same data" in w.value]

    at.multiselect(key="tr_compare").set_value(["classic-1", "fast-1"]).run()
    warning = next(w.value for w in at.warning if "not trained on the same data" in w.value)
    assert "Local MNIST copy (22,699 + 10,000 images)" in warning and "Bundled sample (10,000 + 2,000 images)" in warning
    table = differing(at)
    assert {"Preset", "Batch size", "Trained on"} <= set(table.index)  # the fast preset's own settings
    assert "Epochs" not in table.index and "Seed" not in table.index  # the same in both
    chart = next(c for c in at.get("plotly_chart") if "tr_compare_chart" in c.proto.id)
    legend = json.loads(chart.proto.spec)["layout"]["legend"]
    assert (legend["yref"], legend["y"], legend["yanchor"]) == ("container", 0, "bottom")  # names under the plot
    assert not at.exception


def test_a_run_stopped_mid_epoch_says_where_and_draws_it_there(root):
    fake_run(root, "halfway", preset_config("classic", epochs=5), LOCAL, state="stopped", epochs_done=2,
             progress={"epoch": 2, "epochs": 5, "batch": 4, "batches_per_epoch": 10})
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["train_watch"] = "halfway"
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert any("Stopped by request during epoch 2 of 5, at batch 4 of 10 (1 full epoch trained)" in w.value
               for w in at.warning), [w.value for w in at.warning]
    live = json.loads(next(c for c in at.get("plotly_chart") if "tr_live_chart" in c.proto.id).proto.spec)
    epochs = next(t for t in live["data"] if t["name"] == "train (epoch mean)")
    assert epochs["x"] == [1, 1.4]  # epoch 2 was cut short at batch 4 of 10
    assert {t["name"] for t in live["data"]} >= {"per batch", "smoothed (0.60)", "validation"}
    assert any(m.label.startswith("Test accuracy") and "10,000 test images" in (m.help or "") for m in at.metric)

    at.slider(key="tr_smooth").set_value(0.0).run()  # no smoothing: the raw batch curve alone, drawn solid
    live = json.loads(next(c for c in at.get("plotly_chart") if "tr_live_chart" in c.proto.id).proto.spec)
    assert not [t for t in live["data"] if t["name"].startswith("smoothed")]
    assert not at.exception
