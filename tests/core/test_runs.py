"""mnist_core.runs and the slots of mnist_core.scheduler: safe names, run creation, atomic writes,
status of dead trainers, listing damaged folders, deletion rules and the training-slot limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnist_core import runs, scheduler
from mnist_core.config import preset_config
from mnist_core.runs import RunError

ROOT = Path(__file__).resolve().parents[2]
CFG = preset_config("classic", epochs=1, limit=100)


# --- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "../evil", "..", "/etc/passwd", "x/../../y", "a\\b", "...",
                                  "", "   ", "x" * 300, "y" * 65, "///", "\0"])
def test_unsafe_names(name, tmp_path):
    """Each is refused, or made into one harmless folder name inside the runs folder."""
    try:
        safe = runs.safe_run_name(name)
    except RunError as e:
        assert str(e)
        return
    assert safe and "/" not in safe and "\\" not in safe and ".." not in safe and len(safe) <= 64
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_empty_and_long_names_refused():
    for name in ("", "  ", "x" * 300):
        with pytest.raises(RunError):
            runs.safe_run_name(name)


@pytest.mark.parametrize("name,expected", [("my run", "my-run"), ("classic-1", "classic-1"),
                                           ("v1.2_final", "v1.2_final"), ("  lead  ", "lead"),
                                           ("é-accent", "accent")])
def test_ordinary_names(name, expected):
    assert runs.safe_run_name(name) == expected


def test_create_run_refuses_duplicates(runs_root):
    d = runs.create_run(CFG, "one", root=runs_root)
    assert d == runs_root / "one"
    assert runs.load_config(d) == CFG
    assert runs.read_status(d)["state"] == "queued"
    before = (d / "config.json").read_bytes()
    with pytest.raises(RunError, match="already exists"):
        runs.create_run(preset_config("mlp"), "one", root=runs_root)
    assert (d / "config.json").read_bytes() == before


def test_create_run_with_a_path_name_writes_nothing_outside(runs_root):
    try:
        d = runs.create_run(CFG, "../escape", root=runs_root)
    except RunError:
        d = None
    assert not (runs_root.parent / "escape").exists()
    if d is not None:
        assert d.parent == runs_root
    assert runs.runs_root() == runs_root  # the fixture's MNIST_RUNS_DIR


# --- atomic writes ------------------------------------------------------------------------------
def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "metrics.json"
    runs.atomic_write_json(p, {"a": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError):
        runs.atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["metrics.json"]


@pytest.fixture(scope="module")
def small_model():
    from mnist_core.architectures import build_model

    return build_model(preset_config("mlp").arch)


def _partial_save(path, *a, **k):
    Path(path).write_bytes(b"PK\x03\x04 half a model")
    raise OSError("No space left on device")


def test_failure_mid_save_leaves_no_model(tmp_path, small_model, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(small_model, "save", _partial_save)
    with pytest.raises(OSError, match="No space"):
        runs.save_model_atomic(small_model, run)
    assert not (run / "model.keras").exists()
    assert list(run.iterdir()) == [], "a temporary file was left behind"


def test_failure_mid_save_keeps_previous_model(tmp_path, small_model, monkeypatch):
    from mnist_core.inference import load_model

    run = tmp_path / "run"
    run.mkdir()
    runs.save_model_atomic(small_model, run)
    good = (run / "model.keras").read_bytes()
    monkeypatch.setattr(small_model, "save", _partial_save)
    with pytest.raises(OSError):
        runs.save_model_atomic(small_model, run)
    assert (run / "model.keras").read_bytes() == good
    assert [p.name for p in run.iterdir()] == ["model.keras"]
    assert load_model(run / "model.keras").count_params() == small_model.count_params()


def test_history_and_progress(tmp_path):
    runs.append_history(tmp_path, {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.4,
                                   "val_accuracy": 0.85, "lr": 0.001, "seconds": 1.5, "junk": 3})
    runs.append_history(tmp_path, {"epoch": 2, "loss": 0.3, "accuracy": 0.9, "lr": 0.001, "seconds": 1.2})
    h = runs.read_history(tmp_path)
    assert [r["epoch"] for r in h] == [1, 2]
    assert h[0]["val_accuracy"] == 0.85 and h[1]["val_loss"] is None and "junk" not in h[0]
    assert runs.read_progress(tmp_path) == {}
    (tmp_path / "progress.json").write_text('{"batch": 3')  # caught mid-write by a reader
    assert runs.read_progress(tmp_path) == {}


# --- status of trainers that died -----------------------------------------------------------------
def test_dead_pid_reported_failed(runs_root):
    d = runs.create_run(CFG, "dead", root=runs_root)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    runs.set_status(d, "running", pid=p.pid)
    st = runs.read_status(d)
    assert st["state"] == "failed" and "killed or crashed" in st["error"]
    assert json.loads((d / "status.json").read_text())["state"] == "running"  # file left as it is


def test_recycled_pid_reported_failed(runs_root):
    """A live process that is not our trainer (the pid was reused) does not keep a run 'running'."""
    d = runs.create_run(CFG, "recycled", root=runs_root)
    p = subprocess.Popen(["sleep", "30"])
    try:
        runs.set_status(d, "running", pid=p.pid)
        assert runs.read_status(d)["state"] == "failed"
    finally:
        p.kill()
        p.wait()


def test_live_trainer_and_killed_trainer(runs_root):
    d = runs.create_run(CFG, "live", root=runs_root)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)  # mnist_core trainer"])
    try:
        runs.set_status(d, "running", pid=p.pid)
        assert runs.read_status(d)["state"] == "running"
        p.kill()  # not reaped (no wait): a zombie counts as dead
        deadline = time.monotonic() + 10
        while runs.read_status(d)["state"] != "failed" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runs.read_status(d)["state"] == "failed"
    finally:
        p.kill()
        p.wait()
    assert runs.read_status(d)["state"] == "failed"


def test_status_without_pid_is_failed(runs_root):
    d = runs.create_run(CFG, "nopid", root=runs_root)
    (d / "status.json").write_text(json.dumps({"state": "running", "created": 1.0}))
    assert runs.read_status(d)["state"] == "failed"
    runs.set_status(d, "finished", pid=None)
    assert runs.read_status(d)["state"] == "finished"
    with pytest.raises(ValueError):
        runs.set_status(d, "exploded")


# --- listing and deleting -------------------------------------------------------------------------
def test_list_runs_skips_and_reports_broken(runs_root):
    good = runs.create_run(CFG, "good", root=runs_root)
    time.sleep(0.01)
    newer = runs.create_run(preset_config("mlp", epochs=2), "newer", root=runs_root)
    corrupt = runs.create_run(CFG, "corrupt-config", root=runs_root)
    (corrupt / "config.json").write_text("{ this is not json")
    missing = runs.create_run(CFG, "missing-config", root=runs_root)
    (missing / "config.json").unlink()
    invalid = runs.create_run(CFG, "invalid-config", root=runs_root)
    (invalid / "config.json").write_text(json.dumps({**CFG.to_dict(), "epochs": 0}))
    bad_status = runs.create_run(CFG, "corrupt-status", root=runs_root)
    (bad_status / "status.json").write_text("{")
    (runs_root / ".slots").mkdir()
    (runs_root / "stray-file.txt").write_text("not a run")

    listed = runs.list_runs(runs_root)
    infos = [r for r in listed if r.damaged is None]
    assert [r.name for r in infos] == ["newer", "good"]  # newest first
    assert infos[0].preset == "mlp" and infos[0].epochs == 2 and infos[0].state == "queued"
    assert infos[1].params == 93_322 and infos[1].path == good
    broken = {r.name: r.damaged for r in listed if r.damaged is not None}
    assert set(broken) == {"corrupt-config", "missing-config", "invalid-config", "corrupt-status"}
    assert "config.json" in broken["corrupt-config"] and "config.json" in broken["missing-config"]
    assert "epochs" in broken["invalid-config"] and "status.json" in broken["corrupt-status"]
    assert all(r.state == "failed" and not r.usable for r in listed if r.damaged)
    assert newer.exists()
    assert runs.list_runs(runs_root / "nothing-here") == []


def test_pretrained_listed_first_and_protected(runs_root):
    runs.create_run(CFG, "a-run", root=runs_root)
    time.sleep(0.01)
    pre = runs.create_run(CFG, runs.PRETRAINED, root=runs_root)
    runs.set_status(pre, "stopped", pid=None)
    time.sleep(0.01)
    runs.create_run(CFG, "z-run", root=runs_root)
    infos = runs.list_runs(runs_root)
    assert infos[0].name == runs.PRETRAINED and infos[0].protected
    with pytest.raises(RunError, match="protected"):
        runs.delete_run(pre)
    assert (pre / "config.json").exists()


def test_delete_run(runs_root):
    d = runs.create_run(CFG, "busy", root=runs_root)
    with pytest.raises(RunError):  # queued by this (live) process
        runs.delete_run(d)
    assert d.exists()
    runs.set_status(d, "stopped", pid=None)
    runs.delete_run(d)
    assert not d.exists()


def test_stop_request_file(runs_root):
    d = runs.create_run(CFG, "stoppable", root=runs_root)
    assert not runs.stop_requested(d)
    runs.request_stop(d)
    assert runs.stop_requested(d)


# --- training slots ---------------------------------------------------------------------------------
def _hold(run_dir, entered: threading.Event, release: threading.Event, log: list, poll_s: float = 0.05,
          waited: threading.Event | None = None):
    def on_wait(pos):
        log.append(("wait", pos))
        if waited is not None and len([e for e in log if e[0] == "wait"]) >= 3:
            waited.set()  # it has looked for a slot three times and not got one

    with scheduler.training_slot(run_dir, poll_s=poll_s, on_wait=on_wait) as i:
        runs.set_status(run_dir, "running")
        log.append(("in", run_dir.name, i, time.monotonic()))
        entered.set()
        release.wait(10)
        runs.set_status(run_dir, "finished", pid=None)
        log.append(("out", run_dir.name, time.monotonic()))


def test_one_slot_makes_the_second_training_wait(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    a = runs.create_run(CFG, "a", root=runs_root)
    time.sleep(0.01)
    b = runs.create_run(CFG, "b", root=runs_root)
    assert scheduler.queue_position(a) == 0 and scheduler.queue_position(b) == 1
    log_a: list = []
    log_b: list = []
    in_a, in_b, rel_a, rel_b, b_waited = (threading.Event() for _ in range(5))
    ta = threading.Thread(target=_hold, args=(a, in_a, rel_a, log_a))
    ta.start()
    assert in_a.wait(5)
    tb = threading.Thread(target=_hold, args=(b, in_b, rel_b, log_b), kwargs={"waited": b_waited})
    tb.start()
    assert b_waited.wait(10), "b never looked for a slot"
    assert not in_b.is_set(), "b got a slot while a held the only one"
    assert ("wait", 0) in log_b  # first in the queue, waiting for the lock (flock conflict)
    rel_a.set()
    ta.join(5)
    assert in_b.wait(5)
    rel_b.set()
    tb.join(5)
    assert log_b[-2][0] == "in" and log_b[-2][3] >= log_a[-1][2]  # b started after a ended
    assert runs.read_status(b)["state"] == "finished"


def test_two_slots_run_together(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "2")
    a = runs.create_run(CFG, "a", root=runs_root)
    time.sleep(0.01)
    b = runs.create_run(CFG, "b", root=runs_root)
    logs: list[list] = [[], []]
    ins = [threading.Event(), threading.Event()]
    release = threading.Event()
    ts = [threading.Thread(target=_hold, args=(d, ins[k], release, logs[k])) for k, d in enumerate((a, b))]
    for t in ts:
        t.start()
    try:
        assert ins[0].wait(5) and ins[1].wait(5), "two slots, but the trainings did not run together"
        assert {logs[0][-1][2], logs[1][-1][2]} == {0, 1}
    finally:
        release.set()
        for t in ts:
            t.join(5)


def test_stop_while_queued(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    a = runs.create_run(CFG, "a", root=runs_root)
    time.sleep(0.01)
    b = runs.create_run(CFG, "b", root=runs_root)
    runs.request_stop(b)
    with pytest.raises(KeyboardInterrupt):
        with scheduler.training_slot(b, poll_s=0.01):
            pass
    assert scheduler.queue_position(a) == 0


def test_slot_freed_when_the_holder_is_killed(runs_root, monkeypatch):
    """Cross-process: a trainer holding the slot is killed -9; the OS releases the flock."""
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    a = runs.create_run(CFG, "a", root=runs_root)
    time.sleep(0.01)
    b = runs.create_run(CFG, "b", root=runs_root)
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; "
            "from mnist_core import runs, scheduler; "
            f"d = Path({str(a)!r}); runs.set_status(d, 'queued')\n"
            "with scheduler.training_slot(d, poll_s=0.05):\n"
            "    runs.set_status(d, 'running'); print('in', flush=True); time.sleep(60)\n")
    env = {**os.environ, "MNIST_MAX_TRAININGS": "1"}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "in"
        assert runs.read_status(a)["state"] == "running"
        got: list = []
        polls: list = []
        waited = threading.Event()

        def on_wait(pos):
            polls.append(pos)
            if len(polls) >= 3:
                waited.set()

        t = threading.Thread(target=lambda: got.append(
            scheduler.training_slot(b, poll_s=0.05, on_wait=on_wait).__enter__()))
        t.start()
        assert waited.wait(10), "b never looked for a slot"
        assert not got, "b got the slot held by another process"
        p.kill()
        p.wait()
        t.join(5)
        assert got == [0]
        assert runs.read_status(a)["state"] == "failed"  # the killed trainer is not 'running' forever
    finally:
        p.kill()
        p.wait()


def test_a_trainer_killed_after_saving_its_model_leaves_a_usable_run(runs_root, small_model):
    """Killed between model.keras and metrics.json: shown failed, but its model can still be used."""
    d = runs.create_run(CFG, "saved-then-killed", root=runs_root)
    runs.save_model_atomic(small_model, d)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    runs.set_status(d, "running", pid=p.pid)  # the trainer is gone
    [info] = runs.list_runs(runs_root)
    assert info.state == "failed" and info.has_model and info.usable and not info.metrics
