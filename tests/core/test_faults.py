"""Faults: a trainer killed mid-epoch, a trainer that fails, a server restarted under a run, a full disk.

The trainer is the real `python -m mnist_core train` process (what the Train page starts), on the shared
MNIST data with a small `--limit`. A "restarted server" is simply a fresh process reading the runs folder
(`python -m mnist_core runs --json`): the server keeps no state about runs besides the folder itself.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_core import data, runs, scheduler
from mnist_core.config import preset_config
from tests.conftest import take, write_idx_folder

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def trainer(runs_root: Path, data_dir: Path, name: str, log: Path, *, limit: int = 300,
            epochs: int = 1) -> subprocess.Popen:
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs_root), "MNIST_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "mnist_core", "train", "--preset", "classic", "--epochs", str(epochs),
           "--limit", str(limit), "--name", name, "--data-dir", str(data_dir)]
    # Own session, like the scheduler's processes: the trainer is not a child the server could take down.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None and not pred():
            pytest.fail(f"trainer exited ({proc.returncode}) before {what}: "
                        + (log.read_text()[-2000:] if log else ""))
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}" + (": " + log.read_text()[-2000:] if log else ""))


def fresh_process_view(runs_root: Path) -> dict[str, dict]:
    """What a just-restarted server sees: a new process listing the runs folder."""
    out = subprocess.run([sys.executable, "-m", "mnist_core", "runs", "--json", "--root", str(runs_root)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    doc = json.loads(out)
    assert doc["broken"] == []
    return {r["name"]: r for r in doc["runs"]}


def model_like_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if ".keras" in p.name or p.name.endswith(".tmp"))


def finish_normally(runs_root: Path, data_dir: Path, name: str, tmp_path: Path) -> None:
    """The next training starts (its slot is free) and finishes, with a model."""
    log = tmp_path / f"{name}.log"
    p = trainer(runs_root, data_dir, name, log)
    try:
        rc = p.wait(timeout=240)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the next training never finished (slot not freed?): " + log.read_text()[-2000:])
    assert rc == 0, log.read_text()[-2000:]
    st = runs.read_status(runs_root / name)
    assert st["state"] == "finished"
    assert (runs_root / name / "model.keras").is_file()


def hold_slot(runs_root: Path):
    """Take training slot 0 the way a running trainer does (flock), so new trainings queue."""
    (runs_root / ".slots").mkdir(exist_ok=True)
    f = open(runs_root / ".slots" / "slot0.lock", "w")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


# --- SIGKILL mid-epoch -------------------------------------------------------------------------------
def test_sigkill_mid_epoch(runs_root, data_dir, tmp_path):
    log = tmp_path / "victim.log"
    p = trainer(runs_root, data_dir, "victim", log, limit=12000, epochs=2)
    run_dir = runs_root / "victim"
    try:
        prog = wait_for(lambda: runs.read_progress(run_dir), 180, "the first batch", p, log)
        assert runs.read_status(run_dir)["state"] == "running"
        assert fresh_process_view(runs_root)["victim"]["status"] == "running"  # shown as it really is
        os.kill(p.pid, signal.SIGKILL)
        # Killed but not yet reaped by its parent (a zombie): already reported as failed.
        wait_for(lambda: runs.read_status(run_dir)["state"] == "failed", 10, "the kill to be seen")
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert prog["epoch"] == 1 and prog["batch"] < prog["batches_per_epoch"]  # it really was mid-epoch
    assert runs.read_history(run_dir) == []

    st = runs.read_status(run_dir)
    assert st["state"] == "failed" and "killed or crashed" in st["error"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"  # the file is untouched
    assert model_like_files(run_dir) == []  # no model.keras, no half-written temp model
    view = fresh_process_view(runs_root)["victim"]
    assert view["status"] == "failed" and "killed" in view["error"]
    runs.delete_run(run_dir)  # a dead run can be cleaned up (a running one cannot)
    finish_normally(runs_root, data_dir, "after-kill", tmp_path)


# --- the trainer fails -------------------------------------------------------------------------------
def test_data_broken_while_queued_fails_the_run_and_frees_the_slot(runs_root, mnist, tmp_path):
    """The data folder is fine when the training is queued and found corrupt when its turn comes:
    a real failure inside the trainer, reported in the run's status."""
    small = take(mnist, 600, 200)
    d = write_idx_folder(small, tmp_path / "mnist")
    log = tmp_path / "queued.log"
    slot = hold_slot(runs_root)
    p = trainer(runs_root, d, "queued", log)
    run_dir = runs_root / "queued"
    try:
        wait_for(lambda: run_dir.exists() and runs.read_status(run_dir).get("state") == "queued", 60,
                 "the run to be queued", p, log)
        assert fresh_process_view(runs_root)["queued"]["status"] == "queued"
        images = d / "train-images-idx3-ubyte"
        images.write_bytes(images.read_bytes()[:-1000])  # e.g. an interrupted copy of the data
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()
    rc = p.wait(timeout=120)
    out = log.read_text()
    assert rc == 1, out
    assert "error: train-images-idx3-ubyte: truncated" in out and "Traceback" not in out
    st = runs.read_status(run_dir)
    assert st["state"] == "failed" and "train-images-idx3-ubyte: truncated" in st["error"]
    assert st.get("pid") is None
    assert model_like_files(run_dir) == []
    # Repair the data: the slot the failed trainer held is free again and the next training runs.
    data.write_idx(d / "train-images-idx3-ubyte", small.x_train)
    finish_normally(runs_root, d, "after-failure", tmp_path)


# --- server restarted while a run is queued or running -----------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("state", ["queued", "running"])
def test_restart_with_dead_trainer_shows_failed(runs_root, state):
    run_dir = runs.create_run(preset_config("classic", epochs=1), f"was-{state}")
    runs.set_status(run_dir, state, pid=_dead_pid())  # the trainer died with the machine
    assert fresh_process_view(runs_root)[f"was-{state}"]["status"] == "failed"
    st = runs.read_status(run_dir)
    assert st["state"] == "failed" and "ended without finishing" in st["error"]
    assert scheduler.queue_position(run_dir) == -1  # a dead queued run does not block the queue


def test_restart_with_recycled_pid_shows_failed(runs_root):
    """After a reboot the recorded pid may belong to an unrelated process: that is not our trainer."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        run_dir = runs.create_run(preset_config("classic", epochs=1), "recycled")
        runs.set_status(run_dir, "running", pid=other.pid)
        assert runs.read_status(run_dir)["state"] == "failed"
    finally:
        other.kill()
        other.wait()


def test_restart_with_live_queued_trainer_shows_queued_then_it_runs(runs_root, data_dir, tmp_path):
    """The trainer outlives the server (own session): a restarted server shows it queued, and when the
    slot frees it runs to the end; if it is killed while queued it is shown failed."""
    slot = hold_slot(runs_root)
    log1, log2 = tmp_path / "q1.log", tmp_path / "q2.log"
    p1 = trainer(runs_root, data_dir, "q1", log1)
    p2 = trainer(runs_root, data_dir, "q2", log2)
    try:
        for name, p, log in (("q1", p1, log1), ("q2", p2, log2)):
            wait_for(lambda n=name: (runs_root / n / "status.json").exists()
                     and runs.read_status(runs_root / n)["state"] == "queued", 60, f"{name} queued", p, log)
        view = fresh_process_view(runs_root)
        assert view["q1"]["status"] == view["q2"]["status"] == "queued"
        os.kill(p2.pid, signal.SIGKILL)
        p2.wait(timeout=30)
        assert fresh_process_view(runs_root)["q2"]["status"] == "failed"
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()
        if p2.poll() is None:
            p2.kill()
    assert p1.wait(timeout=240) == 0, log1.read_text()[-2000:]
    assert fresh_process_view(runs_root)["q1"]["status"] == "finished"


# --- disk full while saving --------------------------------------------------------------------------
def test_disk_full_while_saving_model(runs_root, mnist, monkeypatch):
    """model.save runs out of space half-way: the run is failed with a clear error and no model (not
    even a partial temp file) is left. In-process through mnist_core.training.train."""
    import keras

    from mnist_core.training import train

    def save_until_full(self, filepath, *a, **k):
        Path(filepath).write_bytes(b"PK\x03\x04" + b"\0" * 4096)  # what had been written when space ran out
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(keras.Model, "save", save_until_full)
    cfg = preset_config("classic", epochs=1, limit=200, batch_size=32)
    run_dir = runs.create_run(cfg, "full-disk")
    with pytest.raises(OSError) as e:
        train(cfg, run_dir, take(mnist, 300, 100))
    assert e.value.errno == errno.ENOSPC
    st = runs.read_status(run_dir)
    assert st["state"] == "failed" and "No space left on device" in st["error"]
    assert model_like_files(run_dir) == []
    assert not (run_dir / "metrics.json").exists()
    assert [(r.name, r.state, r.has_model) for r in runs.list_runs()] == [("full-disk", "failed", False)]


def test_disk_full_while_writing_a_run_file_keeps_the_old_one(runs_root, monkeypatch):
    run_dir = runs.create_run(preset_config("classic", epochs=1), "status-full")
    before = (run_dir / "status.json").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        runs.set_status(run_dir, "running", pid=os.getpid())
    monkeypatch.undo()
    assert (run_dir / "status.json").read_bytes() == before  # the old status, whole
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "status.json"]  # no temp left
