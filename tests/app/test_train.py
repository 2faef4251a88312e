"""The Train page through AppTest: the form (what each preset builds, new conv blocks), validation, a
real tiny training run started through the scheduler as its own process (on the shared MNIST),
reattaching from a fresh session, the queue, Stop, and a killed trainer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import architectures, checkpoints, runs, scheduler
from mnist_core.config import PRESET_NAMES, ArchConfig, preset_config
from tests.app.apptest import heading, open_page

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(runs_root, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    yield runs_root
    # Never leave a trainer behind: stop every run still in progress and wait for it to end.
    for r in runs.list_runs(runs_root):
        if r.active:
            scheduler.cancel(r.path)
    deadline = time.monotonic() + 60
    while any(r.active for r in runs.list_runs(runs_root)) and time.monotonic() < deadline:
        time.sleep(0.2)


def open_train() -> AppTest:
    return open_page("app_pages/train.py", timeout=30)


def wait_for(at: AppTest, pred, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if pred(at):
            return
        time.sleep(1.0)
    pytest.fail(f"timed out after {limit_s:.0f} s waiting for {what}; page shows {heading(at)!r}; "
                f"errors {[e.value for e in at.error]}")


def set_tiny(at: AppTest, limit: int = 300, epochs: int = 1, name: str | None = None) -> None:
    at.checkbox(key="tr_use_limit").check().run()
    at.number_input(key="tr_limit").set_value(limit)
    at.number_input(key="tr_epochs").set_value(epochs)
    if name:
        at.text_input(key="tr_name").set_value(name)
    at.run()


def run_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def test_form_defaults_presets_and_param_count(env):
    at = open_train()
    assert at.selectbox(key="tr_preset").value == "classic"
    assert at.number_input(key="tr_batch").value == 32 and at.number_input(key="tr_epochs").value == 5
    params = next(m for m in at.metric if m.label == "Parameters")
    assert params.value == "93,322"  # the classic network, counted without TensorFlow
    # A preset's network is fixed: no builder fields that could misdescribe it.
    assert "tr_blocks" not in [w.key for w in at.number_input]

    at.selectbox(key="tr_preset").set_value("fast").run()
    fast = preset_config("fast")  # the form shows the preset's recommended settings
    assert at.number_input(key="tr_batch").value == fast.batch_size
    assert at.selectbox(key="tr_sched").value == fast.lr_schedule
    assert at.checkbox(key="tr_aug").value == fast.augment and at.number_input(key="tr_epochs").value == fast.epochs
    assert at.text_input(key="tr_name").value.startswith("fast-")

    at.selectbox(key="tr_preset").set_value("custom").run()
    before = next(m for m in at.metric if m.label == "Parameters").value
    at.number_input(key="tr_dense").set_value(256).run()
    after = next(m for m in at.metric if m.label == "Parameters").value
    assert before != after and not at.number_input(key="tr_blocks").disabled

    # A visit to another page keeps what the user set.
    at.number_input(key="tr_epochs").set_value(7)
    at.text_input(key="tr_name").set_value("my-run").run()
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/train.py").run()
    assert at.selectbox(key="tr_preset").value == "custom" and at.number_input(key="tr_dense").value == 256
    assert at.number_input(key="tr_epochs").value == 7 and at.text_input(key="tr_name").value == "my-run"
    assert not at.exception


def test_classroom_demo_sets_a_short_run_that_still_has_a_curve(env):
    """The demo button keeps the preset and sets a subset and several epochs (an epoch point per
    epoch: one epoch gave one dot per curve)."""
    from ui.train_form import DEMO

    at = open_train()
    at.button(key="tr_demo").click().run()
    assert at.checkbox(key="tr_use_limit").value
    assert at.number_input(key="tr_limit").value == DEMO["limit"] <= 5000
    assert at.number_input(key="tr_epochs").value == DEMO["epochs"] >= 3
    assert at.selectbox(key="tr_preset").value == "classic" and not at.exception


def layer_table(at: AppTest):
    return next(d.value for d in at.dataframe if "kind" in d.value.columns)


def test_the_form_shows_what_each_preset_builds(env):
    """For every preset the layer table and parameter count on the form are the built network's."""
    keras = pytest.importorskip("keras")
    at = open_train()
    for preset in PRESET_NAMES:
        at.selectbox(key="tr_preset").set_value(preset).run()
        table = layer_table(at)
        model = architectures.build_model(preset_config(preset).arch)
        built = [lyr for lyr in model.layers if not isinstance(lyr, keras.layers.InputLayer)]
        assert list(table["layer"]) == [lyr.name for lyr in built], preset
        assert list(table["params"]) == [lyr.count_params() for lyr in built], preset
        assert list(table["output"]) == ["×".join(map(str, lyr.output.shape[1:])) for lyr in built], preset
        params = next(m for m in at.metric if m.label == "Parameters").value
        assert params == f"{model.count_params():,}", preset
    assert not at.exception


def test_a_new_conv_block_gets_a_sensible_width(env):
    """classic -> custom -> 3 blocks: the new third block doubles the second (it once got 1 filter)."""
    at = open_train()
    at.selectbox(key="tr_preset").set_value("custom").run()
    assert [at.number_input(key=f"tr_f{i}").value for i in range(2)] == [32, 64]
    at.number_input(key="tr_blocks").set_value(3).run()
    assert at.number_input(key="tr_f2").value == 128
    at.number_input(key="tr_blocks").set_value(4).run()
    assert at.number_input(key="tr_f3").value == 256
    at.number_input(key="tr_f1").set_value(16).run()
    at.number_input(key="tr_blocks").set_value(1).run()
    at.number_input(key="tr_blocks").set_value(2).run()
    assert at.number_input(key="tr_f1").value == 64  # hidden and shown again: double the block before
    params = next(m for m in at.metric if m.label == "Parameters").value
    expected = architectures.param_count(ArchConfig(preset="custom", conv_blocks=2, filters=(32, 64)))
    assert params == f"{expected:,}"
    assert not at.exception


def test_form_refuses_impossible_combination(env):
    at = open_train()
    at.checkbox(key="tr_use_limit").check().run()
    at.number_input(key="tr_limit").set_value(300)
    at.number_input(key="tr_batch").set_value(400).run()
    errors = [e.value for e in at.error]
    assert any("Batch size: is larger than the 270 training images" in e for e in errors), errors
    assert at.button(key="tr_start").disabled
    assert run_folders(env) == []

    # A taken or unusable name is refused at Start, and nothing is launched.
    at.number_input(key="tr_batch").set_value(32).run()
    (env / "taken").mkdir()
    at.text_input(key="tr_name").set_value("taken").run()
    at.button(key="tr_start").click().run()
    assert any("already exists" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="tr_name").set_value("../escape").run()
    at.button(key="tr_start").click().run()
    assert any("Run name" in e.value for e in at.error), [e.value for e in at.error]
    assert run_folders(env) == ["taken"]


def test_tiny_run_finishes_with_curves_and_can_become_current(env):
    at = open_train()
    set_tiny(at, name="tiny-ui")
    at.button(key="tr_start").click().run()
    assert not at.error, [e.value for e in at.error]
    assert (env / "tiny-ui" / "status.json").exists()  # claimed at once, before any process starts
    assert "tiny-ui" in heading(at)

    # A fresh session (a reload, a second tab) reattaches to the run in progress.
    other = open_train()
    assert "tiny-ui" in heading(other) and any(w in heading(other) for w in ("queued", "running", "finished"))

    wait_for(at, lambda a: "finished" in heading(a) or "failed" in heading(a), 80, "the run to finish")
    assert "finished" in heading(at), [e.value for e in at.error]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Test accuracy"].endswith("%") and "Images / s" in labels and "Training time" in labels
    live = at.get("plotly_chart")
    assert live, "no curves drawn"
    fig = live[0].proto.spec
    assert '"train"' in fig and '"validation"' in fig  # per-epoch training and validation curves

    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    row = table[table["name"] == "tiny-ui"].iloc[0]
    assert row["status"] == "finished" and row["test acc"].endswith("%")

    # With another usable model chosen in the sidebar, "Use as current model" switches back to this run.
    shutil.copytree(env / "tiny-ui", env / "other")
    at.run()
    at.sidebar.selectbox(key="current_run").set_value("other").run()
    assert at.session_state["current_run"] == "other" and not at.button(key="tr_use_current").disabled
    at.button(key="tr_use_current").click().run()
    assert at.session_state["current_run"] == "tiny-ui"
    assert at.sidebar.selectbox(key="current_run").value == "tiny-ui"
    assert at.button(key="tr_use_current").disabled  # it is the current model now

    # Runs overlay in one chart; deleting asks first; the pretrained model cannot be picked for deletion.
    assert at.multiselect(key="tr_compare").value == ["tiny-ui"]  # default: the runs that existed
    at.multiselect(key="tr_compare").select("other").run()
    assert any('"other"' in c.proto.spec and '"tiny-ui"' in c.proto.spec for c in at.get("plotly_chart"))
    shutil.copytree(env / "tiny-ui", env / runs.PRETRAINED)
    at.run()
    assert runs.PRETRAINED not in at.selectbox(key="tr_del_pick").options
    at.selectbox(key="tr_del_pick").set_value("other").run()
    at.button(key="tr_del_ask").click().run()
    assert (env / "other").is_dir() and any("cannot be undone" in w.value for w in at.warning)
    at.button(key="tr_del_yes").click().run()
    assert not (env / "other").exists() and any("Deleted run other" in m.value for m in at.success)
    assert not at.exception


def test_queue_and_stop(env):
    at = open_train()
    set_tiny(at, limit=8000, epochs=3, name="big")
    at.button(key="tr_start").click().run()
    set_tiny(at, limit=300, epochs=1, name="second")
    at.button(key="tr_start").click().run()
    assert "second" in heading(at)
    # One training slot: the second run waits in line, with its place shown.
    assert any("Queued: number" in i.value for i in at.info), [i.value for i in at.info]

    # Stop the queued run: it leaves the queue without training.
    at.button(key="tr_stop").click().run()
    wait_for(at, lambda a: "stopped" in heading(a), 20, "the queued run to leave the queue")
    assert runs.read_status(env / "second")["error"] == "cancelled before training started"

    # Watch the big run, stop it once batches are going: it ends `stopped` with the model so far.
    at.button(key="tr_close").click().run()
    assert "big" in heading(at)  # reattached to the run still in progress
    wait_for(at, lambda a: runs.read_progress(env / "big").get("batch", 0) >= 2, 60, "the big run to train")
    at.button(key="tr_stop").click().run()
    assert runs.stop_requested(env / "big")
    wait_for(at, lambda a: "stopped" in heading(a) or "failed" in heading(a), 60, "the stop")
    st_ = runs.read_status(env / "big")
    assert st_["state"] == "stopped", st_
    assert (env / "big" / "model.keras").exists() and len(runs.read_history(env / "big")) < 3
    assert any("Stopped by request" in w.value for w in at.warning)
    assert not at.exception


def test_page_modules_do_not_import_tensorflow():
    code = ("import sys; sys.path.insert(0, '.'); import ui.train_form, ui.train_live, ui.runs_table, ui.state, "
            "mnist_core.plots, mnist_core.architectures, mnist_core.runs, mnist_core.scheduler; "
            "assert 'tensorflow' not in sys.modules, 'tf imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_killed_trainer_is_reported_failed(env):
    at = open_train()
    set_tiny(at, name="doomed")
    at.button(key="tr_start").click().run()
    run = env / "doomed"
    wait_for(at, lambda a: runs.read_status(run)["state"] == "running", 60, "the trainer to start")
    os.kill(runs.read_status(run)["pid"], signal.SIGKILL)  # a crash (or OOM kill) of the trainer process
    wait_for(at, lambda a: "failed" in heading(a), 20, "the failure to show")
    errors = [e.value for e in at.error]
    assert any("the trainer was killed (SIGKILL" in e for e in errors), errors
    assert not at.exception


def test_resume_a_stopped_run_and_continue_a_finished_one(env, data_dir, mnist):
    """A run stopped in epoch 2 offers "Resume from epoch 1"; the resumed run finishes all its epochs.
    A finished run offers "Continue training": a new run starting from its weights."""
    from mnist_core.training import request_stop, train
    from tests.conftest import take

    cfg = preset_config("classic", epochs=2, limit=600)
    run = runs.create_run(cfg, "halfway", root=env, data_dir=str(data_dir))
    # Stop asked at epoch 1's last batch (always reported): the trainer sees it after epoch 2's first batch,
    # however fast the machine (on_batch is called at most every 0.5 s otherwise).
    train(cfg, run, take(mnist, 600, 200),
          on_batch=lambda p: p["epoch"] == 1 and p["batch"] == p["batches_per_epoch"] and request_stop())
    assert runs.read_status(run)["state"] == "stopped"
    assert checkpoints.read_state(run).epoch == 1  # epoch 2 was cut short: its checkpoint is epoch 1's

    at = open_train()
    at.session_state["train_watch"] = "halfway"
    at.run()
    assert "halfway" in heading(at) and "stopped" in heading(at)
    at.button(key="tr_resume").click().run()
    assert runs.read_status(run)["state"] in runs.ACTIVE
    wait_for(at, lambda a: "finished" in heading(a), 120, "the resumed run to finish")
    assert [h["epoch"] for h in runs.read_history(run)] == [1, 2]

    at.number_input(key="tr_more_epochs").set_value(1)
    at.button(key="tr_more_go").click().run()
    child = runs.load_config(env / "halfway-more")
    assert child.init_from == "halfway" and child.epochs == 1 and child.arch == cfg.arch
    assert "halfway-more" in heading(at)
    assert not at.exception
