"""mnist_core.sweeps (running a sweep, embedded engine): trials are ordinary run folders grouped by their
sweep, what is refused before anything is written, ASHA asked at each epoch end (decided as
`asha_should_stop` decides on the same histories), a trial stopped with a reason by `train`, stopping a
whole sweep, and the sweep's state read from its trials. Training slot 0 is held by the test where
nothing should train (as in test_scheduler.py); one tiny in-process training checks the stop reason.
The whole 4-trial sweep runs in tests/app/test_sweep.py (through the CLI and the Sweep page)."""

from __future__ import annotations

import json
import math
import time

import pytest

from mnist_core import runs, scheduler, sweeps
from mnist_core.config import preset_config
from mnist_core.sweep import SweepConfig, asha_should_stop, trial_configs
from tests.core.test_scheduler import hold_slot, wait_for

SWEEP = {"base": {"epochs": 3, "limit": 300}, "space": {"learning_rate": {"choices": [3e-3, 1e-3, 1e-6, 3e-6]}},
         "method": "grid", "early_stopping": "asha", "asha": {"grace_period": 1, "reduction_factor": 2}}


@pytest.fixture
def root(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    monkeypatch.delenv("MNIST_RAY_ADDRESS", raising=False)
    slot = hold_slot(runs_root)  # nothing trains in these tests unless a test says so
    yield runs_root
    for r in runs.list_runs(runs_root):
        if r.active:
            scheduler.cancel(r.path)
    wait_for(lambda: not any(r.active for r in runs.list_runs(runs_root)), 30, "every trial to end")
    slot.close()


def test_a_sweep_is_a_group_of_ordinary_queued_runs(root):
    sweep = SweepConfig.from_dict(SWEEP)
    folder = sweeps.start_sweep(sweep, "lr", root=root)
    names = [f"lr-t{i:02d}" for i in range(4)]
    assert json.loads(folder.config.read_text()) == sweep.to_dict()
    assert sweeps.read_sweep_status(folder)["trials"] == names and folder.path == root / ".sweeps" / "lr"
    listed = runs.list_runs(root)  # the runs listing sees the trials and never the sweep folder
    assert sorted(r.name for r in listed) == names and not any(r.damaged for r in listed)
    for i, (name, cfg) in enumerate(zip(names, trial_configs(sweep), strict=True)):
        st = runs.read_status(root / name)
        assert (st["sweep"], st["trial"]) == ("lr", i) and runs.load_config(root / name) == cfg
    # Queued through the scheduler like any training, first in line first.
    assert [r.name for r in scheduler.queued(root)] == names
    info = sweeps.read_sweep(folder)
    assert info.state == "queued" and info.engine == "embedded" and info.n_ended == 0
    assert [s["learning_rate"] for s in info.settings] == [3e-3, 1e-3, 1e-6, 3e-6]


@pytest.mark.parametrize("name, setup, words", [
    ("taken", lambda r: (r / ".sweeps" / "taken").mkdir(parents=True), "a sweep named 'taken' already exists"),
    ("lr", lambda r: (r / "lr-t02").mkdir(), "a run named 'lr-t02' already exists"),
    ("x" * 61, lambda r: None, "sweep name is too long"),
    ("../up", lambda r: None, "contains '/'"),
])
def test_bad_names_are_refused_and_nothing_is_written(root, name, setup, words):
    setup(root)
    before = sorted(p.name for p in root.rglob("*"))
    with pytest.raises(runs.RunError, match=words.replace("(", r"\(")):
        sweeps.start_sweep(SweepConfig.from_dict(SWEEP), name, root=root)
    assert sorted(p.name for p in root.rglob("*")) == before


def test_a_sweep_larger_than_the_queue_or_the_data_is_refused(root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_QUEUED", "3")
    with pytest.raises(runs.RunError, match="room for 3 more trainings .* this sweep has 4 trials"):
        sweeps.start_sweep(SweepConfig.from_dict(SWEEP), "big", root=root)
    monkeypatch.setenv("MNIST_MAX_QUEUED", "50")
    too_big = {**SWEEP, "space": {"batch_size": {"choices": [32, 250]}}}
    with pytest.raises(runs.RunError, match=r"trial small-t01: batch_size: is larger than the 225 training"):
        sweeps.start_sweep(SweepConfig.from_dict(too_big), "small", root=root, n_train=250)
    assert not (root / ".sweeps" / "big").exists() and not (root / ".sweeps" / "small").exists()
    assert runs.list_runs(root) == []


def test_stopping_a_sweep_cancels_its_queued_trials(root):
    folder = sweeps.start_sweep(SweepConfig.from_dict(SWEEP), "halt", root=root)
    wait_for(lambda: runs.read_status(root / "halt-t00").get("pid") is not None, 10, "the first supervisor")
    sweeps.stop_sweep(folder)
    wait_for(lambda: not sweeps.read_sweep(folder).active, 30, "the sweep to end")
    info = sweeps.read_sweep(folder)
    assert info.state == "stopped" and info.n_ended == 4
    assert {t.state for t in info.trials} == {"stopped"}
    assert {t.error for t in info.trials} == {sweeps.CANCELLED}


def history(run, values: list[float]) -> None:
    for e, v in enumerate(values, 1):
        runs.append_history(run, {"epoch": e, "val_accuracy": v, "loss": 1.0, "accuracy": 0.5})


def test_the_epoch_hook_asks_asha_with_the_siblings_histories_as_they_stand(root):
    sweep = SweepConfig.from_dict(SWEEP)
    folder = sweeps.start_sweep(sweep, "rung", root=root)
    t = [root / f"rung-t{i:02d}" for i in range(4)]
    history(t[0], [0.6, 0.7, 0.8])
    history(t[1], [0.2])
    called = []
    hook = sweeps.epoch_hook(t[2], called.append)
    history(t[2], [0.3])  # the trainer has written this epoch's row when on_epoch is called
    want = asha_should_stop([0.3], [[0.6, 0.7, 0.8], [0.2], []], max_t=3)
    assert hook({"epoch": 1}) == (sweeps.asha_reason(1) if want else None) and called == [{"epoch": 1}]
    history(t[3], [0.1])
    assert sweeps.epoch_hook(t[3])({"epoch": 1}) == "early-stopped by ASHA at epoch 1"  # below the median
    # A trial's last epoch is never cut, whatever the others did.
    assert sweeps.should_stop(t[3], 3, 3, sweep, [runs.folder(p) for p in t[:3]]) is None
    # Plain runs, and sweeps without early stopping, keep their on_epoch as it is.
    plain = runs.create_run(preset_config("classic"), "plain", root=root, pid=None)
    assert sweeps.epoch_hook(plain, called.append) == called.append
    calm = sweeps.start_sweep(SweepConfig.from_dict({**SWEEP, "early_stopping": "none"}), "calm", root=root)
    assert sweeps.epoch_hook(calm.trial("calm-t00"), None) is None
    assert sweeps.read_sweep(folder).state == "queued"


def test_ranking_the_best_trial_and_damage(root):
    folder = sweeps.start_sweep(SweepConfig.from_dict(SWEEP), "rank", root=root)
    t = [root / f"rank-t{i:02d}" for i in range(4)]
    for p, v in zip(t, [0.5, 0.9, 0.2, math.nan], strict=True):
        history(p, [v])
    info = sweeps.read_sweep(folder)
    assert [r["trial"] for r in info.rows()] == ["rank-t01", "rank-t00", "rank-t02", "rank-t03"]
    assert info.best is None  # no trial has a model yet
    (t[2] / "status.json").write_text("{not json")
    (folder.status).write_text(json.dumps({**sweeps.read_sweep_status(folder), "engine": "spark"}))
    listed = {s.name: s for s in sweeps.list_sweeps(root)}
    assert "unknown engine 'spark'" in listed["rank"].damaged


def test_train_records_the_reason_on_epoch_gives_for_stopping(tiny, tmp_path):
    from mnist_core.training import train

    cfg = preset_config("classic", epochs=3, limit=300)
    run = runs.create_run(cfg, "cut", root=tmp_path)
    t0 = time.monotonic()
    m = train(cfg, run, tiny, on_epoch=lambda row: sweeps.asha_reason(1) if row["epoch"] == 1 else None)
    st = runs.read_status(run)
    assert (st["state"], st["error"]) == ("stopped", "early-stopped by ASHA at epoch 1"), time.monotonic() - t0
    assert m["epochs_done"] == 1 and m["stopped_early"] and len(runs.read_history(run)) == 1
    info = runs.run_info(run)
    assert info.usable and info.test_accuracy is not None  # saved and evaluated: every page can use it
