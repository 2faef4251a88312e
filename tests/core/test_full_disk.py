"""A really full disk (a 1 MB tmpfs as the runs folder), with the real trainer processes: a training
queued from the app that runs out of space ends `failed` with the disk's own error (not "killed or
crashed"), and the CLI's `train` says so in one line, without a traceback. Needs root to mount the
tmpfs; skipped elsewhere unless MNIST_REQUIRE_MOUNT=1 (CI runs as root and sets it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_core import runs, scheduler
from mnist_core.config import preset_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        if os.environ.get("MNIST_REQUIRE_MOUNT") == "1":
            pytest.fail(f"cannot mount a tmpfs: {r.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_queued_training_that_fills_the_disk_reports_the_disk_error(tiny_disk, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tiny_disk))
    run = scheduler.submit(preset_config("classic", epochs=2, limit=300), "big-on-small", root=tiny_disk,
                           data_dir=str(data_dir))
    deadline = time.monotonic() + 240
    while runs.read_status(run)["state"] in runs.ACTIVE:
        assert time.monotonic() < deadline, runs.log_tail(run)
        time.sleep(0.2)
    st = runs.read_status(run)
    assert st["state"] == "failed", st
    assert "No space left on device" in st["error"], st  # the reason, not "killed or crashed"
    assert not runs.RunFolder(run).model.exists() and not list(Path(run).glob(".*tmp*"))


def test_the_cli_says_the_disk_is_full_in_one_line(tiny_disk, data_dir):
    env = {**os.environ, "MNIST_RUNS_DIR": str(tiny_disk), "TF_CPP_MIN_LOG_LEVEL": "2"}
    p = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--epochs", "1", "--limit", "300",
                        "--data-dir", str(data_dir), "--name", "cli-full"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "No space left on device" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert runs.read_status(tiny_disk / "cli-full")["state"] == "failed"
