"""Sweeps on the embedded engine (no Ray), end to end: a 4-trial sweep of tiny trainings run by the CLI
(`python -m mnist_core sweep`) through the real scheduler, supervisor and trainer processes, with every
trial's run folder complete and ASHA's stops exactly those its rule gives on the trials' own histories;
then the Sweep page (AppTest) listing it, its plot and table, and its best run made the current model;
the form (driven by sweep.SPACE) and its errors; Start and Stop from the page. The same sweep on a real
Ray is in tests/cluster/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import runs, sweeps
from mnist_core.sweep import SPACE, asha_should_stop
from tests.app.apptest import heading, open_page
from tests.conftest import take, write_idx_folder
from tests.core.test_scheduler import hold_slot, wait_for

ROOT = Path(__file__).resolve().parents[2]
# Two good learning rates first, then two hopeless ones: ASHA has clear cases to stop.
SWEEP = {"base": {"epochs": 3, "batch_size": 32}, "space": {"learning_rate": {"choices": [3e-3, 1e-3, 1e-6, 3e-6]}},
         "method": "grid", "early_stopping": "asha",
         "asha": {"metric": "val_accuracy", "grace_period": 1, "reduction_factor": 2}}
TRIAL_FILES = ("config.json", "status.json", "history.csv", "batches.csv", "model.keras", "metrics.json",
               "checkpoint.keras", "evaluation", "tensorboard")


def complete(run: Path) -> list[str]:
    """What a finished or stopped trial's run folder lacks (empty: complete)."""
    missing = [f for f in TRIAL_FILES if not (run / f).exists()]
    info = runs.run_info(run)
    if not info.usable or info.test_accuracy is None or len(info.history) != info.epochs_done:
        missing.append(f"a usable, evaluated model ({info.state}, {info.error})")
    return missing


def check_asha(root: Path, names: list[str], metric: str = "val_accuracy") -> None:
    """Trials ran one after the other (one slot, in order): trial k was judged at each rung against the
    whole histories of trials 0..k-1. Each must have stopped exactly where the rule says."""
    hist = [[r[metric] for r in runs.read_history(root / n)] for n in names]
    for k, name in enumerate(names):
        epochs = runs.load_config(root / name).epochs
        stop_at = next((t for t in range(1, epochs) if asha_should_stop(hist[k][:t], hist[:k], max_t=epochs)), None)
        st = runs.read_status(root / name)
        if stop_at is None:
            assert (st["state"], len(hist[k])) == ("finished", epochs), (name, st)
        else:
            assert (st["state"], st["error"], len(hist[k])) == ("stopped", sweeps.asha_reason(stop_at), stop_at)


@pytest.fixture(scope="module")
def cli_sweep(mnist, tmp_path_factory):
    """The 4-trial sweep, run once by the CLI on 600 training images (540 fit, 60 validation)."""
    tmp = tmp_path_factory.mktemp("sweep")
    data, root = write_idx_folder(take(mnist, 600, 300), tmp / "data"), tmp / "runs"
    (tmp / "sweep.json").write_text(json.dumps(SWEEP))
    env = {**os.environ, "MNIST_RUNS_DIR": str(root), "MNIST_MAX_TRAININGS": "1", "MNIST_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("MNIST_RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "mnist_core", "sweep", "--config", str(tmp / "sweep.json"),
                          "--name", "emb", "--data-dir", str(data)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    return out, root, data, [f"emb-t{i:02d}" for i in range(4)]


def test_cli_sweep_every_trial_is_a_complete_run_and_asha_stops_the_poor_ones(cli_sweep):
    out, root, _, names = cli_sweep
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in names:
        assert complete(root / name) == [], name
        assert runs.read_status(root / name)["sweep"] == "emb"
    check_asha(root, names)
    stopped = [n for n in names if runs.read_status(root / n)["state"] == "stopped"]
    assert stopped, "ASHA stopped no trial"
    # Progress per trial as it happened, then the table, best first.
    for n in names:
        assert f"{n}: epoch 1/3  val_accuracy" in out.stdout
    assert f"{stopped[0]}: stopped (early-stopped by ASHA at epoch" in out.stdout
    table = out.stdout.split("sweep emb finished", 1)[1].splitlines()
    info = sweeps.read_sweep(sweeps.SweepFolder(root / ".sweeps" / "emb"))
    assert table[2].split()[0] == info.ranked()[0][0].name == info.best.name
    assert info.state == "finished" and info.n_ended == 4
    assert sorted(r.name for r in runs.list_runs(root)) == names  # the sweep folder is no run


def test_cli_lists_sweeps(cli_sweep):
    _, root, _, _ = cli_sweep
    env = {**os.environ, "MNIST_RUNS_DIR": str(root), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "mnist_core", "sweep", "--list"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    best = sweeps.read_sweep(sweeps.SweepFolder(root / ".sweeps" / "emb")).best.name
    assert "emb" in out and "finished" in out and "4/4" in out and best in out


@pytest.fixture
def page_env(monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    monkeypatch.delenv("MNIST_RAY_ADDRESS", raising=False)

    def use(root: Path, data: Path) -> None:
        monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
        monkeypatch.setenv("MNIST_DATA_DIR", str(data))

    return use


def open_sweep_page() -> AppTest:
    return open_page("app_pages/sweep.py")


def test_the_sweep_page_shows_the_sweep_and_its_best_run(cli_sweep, page_env):
    _, root, data, names = cli_sweep
    page_env(root, data)
    info = sweeps.read_sweep(sweeps.SweepFolder(root / ".sweeps" / "emb"))
    at = open_sweep_page()
    assert "emb" in heading(at) and "finished" in heading(at)
    table = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert list(table["trial"]) == [t.name for t, _ in info.ranked()]
    assert set(table.loc[table["state"] == "stopped", "note"]) <= {sweeps.asha_reason(e) for e in (1, 2)}
    fig = json.loads(next(c for c in at.get("plotly_chart") if "parcoords" in c.proto.spec).proto.spec)
    dims = {d["label"]: d["values"] for d in fig["data"][0]["dimensions"]}
    assert set(dims) == {"learning_rate (log)", "val_accuracy"} and len(dims["val_accuracy"]) == 4
    best = info.best.name
    other = next(n for n in names if n != best)
    at.sidebar.selectbox(key="current_run").set_value(other).run()
    assert at.session_state["current_run"] == other and not at.button(key="sw_use_best").disabled
    at.button(key="sw_use_best").click().run()
    assert at.session_state["current_run"] == best and at.sidebar.selectbox(key="current_run").value == best
    assert at.button(key="sw_use_best").disabled
    assert not at.exception


def test_the_sweep_page_imports_neither_tensorflow_nor_ray():
    code = ("import sys; sys.path.insert(0, '.'); import ui.sweep_view, mnist_core.sweeps, mnist_core.sweep_cli, "
            "mnist_core.scheduler; bad = {'tensorflow', 'ray'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_dims_cover_the_search_space():
    from ui.sweep_view import DIMS

    assert list(DIMS) == list(SPACE)  # one row per searchable setting, in SPACE's order


def test_the_form_builds_the_sweep_the_core_validates(tmp_path, mnist, page_env):
    root = tmp_path / "runs"
    page_env(root, write_idx_folder(take(mnist, 600, 300), tmp_path / "data"))
    at = open_sweep_page()
    assert any("No sweeps yet" in i.value for i in at.info)
    caption = lambda: next(c.value for c in at.caption if "trials." in c.value)  # noqa: E731
    assert caption().startswith("3 trials")  # the default: three learning rates
    at.checkbox(key="swf_on_batch_size").check().run()
    at.text_input(key="swf_choices_batch_size").set_value("32, abc").run()
    assert any("Batch size: 'abc' is not a whole number" in e.value for e in at.error)
    assert at.button(key="sw_start").disabled
    at.text_input(key="swf_choices_batch_size").set_value("32, 64").run()
    assert caption().startswith("6 trials") and not at.error
    at.radio(key="swf_mode_learning_rate").set_value("loguniform").run()
    assert any("Learning rate: a grid needs choices, not a range" in e.value for e in at.error)
    at.radio(key="swf_method").set_value("random").run()
    at.number_input(key="swf_trials").set_value(5).run()
    assert caption().startswith("5 trials")
    # The custom preset's knobs are searchable only with that preset.
    assert at.checkbox(key="swf_on_filters").disabled
    at.selectbox(key="swf_preset").set_value("custom").run()
    assert not at.checkbox(key="swf_on_filters").disabled
    at.checkbox(key="swf_on_filters").check().run()
    at.text_input(key="swf_choices_filters").set_value("16-32; 8").run()
    assert caption().startswith("5 trials") and not at.error
    at.text_input(key="swf_choices_batch_size").set_value("32, 600").run()  # more than the 540 images to fit
    assert any("Batch size: is larger than the 540 training images" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert not root.exists() or runs.list_runs(root) == []  # nothing was started
    assert not at.exception


def test_start_and_stop_a_sweep_from_the_page(tmp_path, mnist, page_env):
    root = tmp_path / "runs"
    page_env(root, write_idx_folder(take(mnist, 600, 300), tmp_path / "data"))
    slot = hold_slot(root)  # nothing trains: the trials wait in the queue until stopped
    try:
        at = open_sweep_page()
        at.text_input(key="swf_name").set_value("fromui").run()
        at.button(key="sw_start").click().run()
        assert any("Started sweep fromui: 3 trials" in s.value for s in at.success), [e.value for e in at.error]
        assert "fromui" in heading(at) and "queued" in heading(at)
        assert sorted(r.name for r in runs.list_runs(root)) == [f"fromui-t{i:02d}" for i in range(3)]
        at.button(key="sw_stop").click().run()
        folder = sweeps.SweepFolder(root / ".sweeps" / "fromui")
        wait_for(lambda: not sweeps.read_sweep(folder).active, 30, "the sweep to stop")
        at.run()
        assert "stopped" in heading(at)
        assert {t.error for t in sweeps.read_sweep(folder).trials} == {sweeps.CANCELLED}
        assert not at.exception
    finally:
        slot.close()
