"""Sweeps and trainings on a real Ray (the head of conftest.py), never a mock: a 4-trial sweep of tiny
trainings on Ray Tune finishes with every trial's run folder complete and ASHA stopping the hopeless
ones; the Sweep page lists it; a Train-page training runs as a Ray task and is watched live; Stop ends a
Ray training (model saved) and a Ray sweep; a killed Ray worker marks its run failed; an address nobody
answers is a clear error at start. The same sweep on the embedded engine: tests/app/test_sweep.py."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import ray_engine, runs, scheduler, sweeps
from mnist_core.config import preset_config
from mnist_core.sweep import SweepConfig, asha_rungs
from tests.app.apptest import APP, heading
from tests.app.test_sweep import SWEEP, complete
from tests.conftest import take, write_idx_folder
from tests.core.test_scheduler import hold_slot, wait_for

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 900  # a sweep of four tiny trainings on 2 CPUs, with room for a loaded machine


@pytest.fixture(scope="session")
def data(mnist, tmp_path_factory) -> Path:
    """600 training and 300 test images of real MNIST as a data directory."""
    return write_idx_folder(take(mnist, 600, 300), tmp_path_factory.mktemp("raydata"))


@pytest.fixture(scope="module")
def ray_sweep(ray_head, data, tmp_path_factory):
    """The 4-trial sweep of tests/app/test_sweep.py, two trials at a time on Ray Tune, run once."""
    root = tmp_path_factory.mktemp("rayruns")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_RAY_ADDRESS", ray_head)
        mp.setenv("MNIST_RUNS_DIR", str(root))
        folder = sweeps.start_sweep(SweepConfig.from_dict({**SWEEP, "max_concurrent": 2}), "onray", root=root,
                                    data_dir=str(data))
        t0 = time.monotonic()
        wait_for(lambda: not sweeps.read_sweep(folder).active, LIMIT_S, "the Ray sweep to end")
        yield folder, time.monotonic() - t0


def test_a_sweep_on_ray_tune_finishes_with_every_trial_a_complete_run(ray_sweep):
    folder, seconds = ray_sweep
    info = sweeps.read_sweep(folder)
    assert info.state == "finished" and info.engine == "ray", (info.state, info.error, folder.log.read_text()[-3000:])
    assert info.error is None and info.n_ended == 4
    for t in info.trials:
        assert complete(t.path) == [], t.name
        assert (t.status["engine"], t.status["sweep"]) == ("ray", "onray")
    stopped = [t for t in info.trials if t.state == "stopped"]
    assert stopped, f"ASHA stopped no trial in {seconds:.0f} s"
    for t in stopped:  # stopped at a rung, with the reason, the model saved and evaluated
        assert t.error == sweeps.asha_reason(t.epochs_done) and t.epochs_done in asha_rungs(3), t.status
    # Two at a time in grid order: the hopeless rates start once a good one has ended, so both meet
    # its epoch-1 result at the first rung; 3e-3 leads at every epoch, so it is never cut.
    by_lr = {t.config.learning_rate: t for t in info.trials}
    assert [(by_lr[lr].state, by_lr[lr].epochs_done) for lr in (1e-6, 3e-6)] == [("stopped", 1)] * 2
    assert (by_lr[3e-3].state, by_lr[3e-3].epochs_done) == ("finished", 3)
    # The Tune driver has ended; Tune's own records are inside the sweep folder, not in the runs listing.
    wait_for(lambda: not runs.pid_alive(info.status["pid"], needle="onray"), 60, "the driver to exit")
    assert folder.tune.is_dir() and sorted(r.name for r in runs.list_runs(folder.root)) == [t.name for t in info.trials]
    assert scheduler.queued(folder.root) == []  # Tune's trials were never the local queue's


def test_the_sweep_page_lists_the_ray_sweep(ray_sweep, monkeypatch):
    folder, _ = ray_sweep
    monkeypatch.setenv("MNIST_RUNS_DIR", str(folder.root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/sweep.py").run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("#### onray") and "finished" in m.value for m in at.markdown)
    table = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert len(table) == 4 and set(table["state"]) <= {"finished", "stopped"}
    assert any("Ray Tune at" in (p.proto.text or "") for p in at.get("progress"))
    assert at.button(key="sw_use_best") is not None and "parcoords" in "".join(c.proto.spec for c in at.get("plotly_chart"))


def test_a_trial_of_a_ray_sweep_resumes_as_an_ordinary_queued_run(ray_sweep, monkeypatch):
    folder, _ = ray_sweep
    monkeypatch.setenv("MNIST_RUNS_DIR", str(folder.root))
    cut = next(t for t in sweeps.read_sweep(folder).trials if t.state == "stopped")
    hold = hold_slot(folder.root)  # it must not train here: only be queued
    try:
        scheduler.requeue_for_resume(cut.path)
        st = runs.read_status(cut.path)
        assert st["state"] == "queued" and st["engine"] is None and st["sweep"] == "onray"
        assert [r.name for r in scheduler.queued(folder.root)] == [cut.name]  # this queue's now
        assert sweeps.epoch_hook(cut.path, None) is None  # resumed by hand: no ASHA, it trains to its end
    finally:
        scheduler.cancel(cut.path)
        hold.close()
    assert runs.read_status(cut.path)["state"] == "stopped"


def test_a_train_page_training_runs_on_ray_and_is_watched_live(on_ray, data, monkeypatch):
    monkeypatch.setenv("MNIST_TRAIN_ENGINE", "ray")
    monkeypatch.setenv("MNIST_DATA_DIR", str(data))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/train.py").run()
    at.checkbox(key="tr_use_limit").check().run()
    at.number_input(key="tr_limit").set_value(600)
    at.number_input(key="tr_epochs").set_value(3)
    at.text_input(key="tr_name").set_value("rayrun").run()
    at.button(key="tr_start").click().run()
    assert not at.error, [e.value for e in at.error]
    seen = set()

    def watch(a: AppTest) -> bool:  # what the live panel shows along the way
        h = heading(a)
        seen.update(s for s in ("queued", "running", "finished") if s in h)
        # the progress bars (plain HTML in a markdown element, train_live.progress_bars)
        if "running" in h and any(re.search(r"Epoch \d+ of 3: batch", m.value) for m in a.markdown):
            seen.add("progress")
        if "running" in h and a.get("plotly_chart"):
            seen.add("curves")
        return "finished" in h or "failed" in h

    deadline = time.monotonic() + LIMIT_S
    while not watch(at) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    st = runs.read_status(on_ray / "rayrun")
    assert st["state"] == "finished", (st, runs.log_tail(on_ray / "rayrun"))
    assert st["engine"] == "ray" and {"running", "progress", "finished"} <= seen, seen
    assert any(m.label == "Test accuracy" for m in at.metric) and at.get("plotly_chart")
    assert complete(on_ray / "rayrun") == []


def _trainer_parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_stop_ends_a_ray_training_and_a_dead_worker_fails_it(on_ray, data, monkeypatch):
    monkeypatch.setenv("MNIST_TRAIN_ENGINE", "ray")
    cfg = preset_config("classic", epochs=50, limit=600)
    run = scheduler.submit(cfg, "stopme", root=on_ray, data_dir=str(data))
    wait_for(lambda: runs.read_progress(run).get("batch", 0) >= 2, LIMIT_S, "the Ray training to start")
    scheduler.cancel(run)
    wait_for(lambda: not runs.run_info(run).active, 180, "the stop")
    st = runs.read_status(run)
    assert st["state"] == "stopped" and runs.run_info(run).usable, st
    sup = st["supervisor"]
    wait_for(lambda: not runs.pid_alive(sup, needle="stopme"), 60, "the Ray task's supervisor to end")

    doomed = scheduler.submit(cfg, "doomed", root=on_ray, data_dir=str(data))
    wait_for(lambda: runs.read_progress(doomed).get("batch", 0) >= 2, LIMIT_S, "the second Ray training")
    trainer = runs.read_status(doomed)["pid"]
    worker = _trainer_parent(trainer)
    assert "ray::" in Path(f"/proc/{worker}/cmdline").read_text()  # the Ray worker running the task
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not runs.run_info(doomed).active, 120, "the dead worker to be noticed")
    st = runs.read_status(doomed)
    assert st["state"] == "failed" and "the Ray worker running the trainer died" in st["error"], st
    wait_for(lambda: not runs.pid_alive(trainer), 30, "the trainer to die with its worker")
    time.sleep(1.0)  # nothing may write to the failed run afterwards (a trainer left behind would)
    assert runs.read_status(doomed)["state"] == "failed"


def test_stopping_a_sweep_on_ray(on_ray, data):
    slow = {**SWEEP, "base": {"epochs": 40, "batch_size": 32}, "max_concurrent": 2}
    folder = sweeps.start_sweep(SweepConfig.from_dict(slow), "halt", root=on_ray, data_dir=str(data))
    wait_for(lambda: any(runs.read_progress(t.path).get("batch", 0) >= 2 for t in sweeps.read_sweep(folder).trials),
             LIMIT_S, "a trial to train")
    sweeps.stop_sweep(folder)
    wait_for(lambda: not sweeps.read_sweep(folder).active, 300, "the sweep to stop")
    info = sweeps.read_sweep(folder)
    assert info.state == "stopped", (info.state, info.error, folder.log.read_text()[-3000:])
    for t in info.trials:
        assert t.state == "stopped" and t.error in (sweeps.SWEEP_STOPPED, sweeps.CANCELLED, None), t.status
        if t.epochs_done or t.status.get("started"):
            assert t.usable, t.name  # a trial that trained keeps its model
    assert any(t.error == sweeps.CANCELLED for t in info.trials)  # two of four never started


def test_an_address_nobody_answers_is_a_clear_error_at_start(on_ray, monkeypatch):
    closed = f"127.0.0.1:{ray_engine.free_port()}"
    monkeypatch.setenv("MNIST_RAY_ADDRESS", closed)
    monkeypatch.setenv("MNIST_TRAIN_ENGINE", "ray")
    run = scheduler.submit(preset_config("classic", epochs=1, limit=300), "nowhere", root=on_ray)
    folder = sweeps.start_sweep(SweepConfig.from_dict(SWEEP), "nowhere-sw", root=on_ray)
    wait_for(lambda: not runs.run_info(run).active and not sweeps.read_sweep(folder).active, 120, "both to fail")
    want = f"cannot reach the Ray cluster at {closed} (MNIST_RAY_ADDRESS)"
    assert runs.read_status(run)["state"] == "failed" and want in runs.read_status(run)["error"]
    info = sweeps.read_sweep(folder)
    assert info.state == "failed" and want in info.error
    assert {t.state for t in info.trials} == {"failed"} and all(want in t.error for t in info.trials)
    with pytest.raises(ray_engine.EngineError, match="is not host:port"):
        ray_engine.check_reachable("headnode")
    json.dumps(info.status)  # the record stays plain JSON
