"""mnist_core.scheduler: queued trainings are records on disk until their turn, two requests for one
name cannot both win, cancelling, the queue caps, and no finished process left as a zombie.

The processes are the real ones (`python -m mnist_core supervise`); training slot 0 is held by the test
(an flock, as a running trainer holds it), so nothing here trains."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest

from mnist_core import limits, runs, scheduler
from mnist_core.config import preset_config

CFG = preset_config("classic", epochs=1, limit=300)


def hold_slot(root: Path):
    (root / scheduler.SLOTS_DIR).mkdir(parents=True, exist_ok=True)
    f = open(root / scheduler.SLOTS_DIR / "slot0.lock", "w")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def processes_of(root: Path) -> dict[int, int]:
    """pid -> RSS bytes of every live process whose command line names something under `root`."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (d / "stat").read_text()
            if str(root) in cmd and stat.split(")")[-1].split()[0] != "Z":
                rss = next(int(ln.split()[1]) for ln in (d / "status").read_text().splitlines()
                           if ln.startswith("VmRSS:"))
                out[int(d.name)] = rss * 1024
        except (OSError, StopIteration, ValueError):
            continue
    return out


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def root(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    yield runs_root
    for r in runs.list_runs(runs_root):  # leave nothing behind
        if r.active:
            scheduler.cancel(r.path)
    wait_for(lambda: not processes_of(runs_root), 30, "every supervisor to exit")


def test_forty_queued_trainings_cost_less_than_one_running_trainer(root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_QUEUED", "60")
    slot = hold_slot(root)
    try:
        for i in range(40):
            scheduler.submit(CFG, f"q{i:02d}", root=root)
        queue = scheduler.queued(root)
        assert [r.name for r in queue] == [f"q{i:02d}" for i in range(40)]  # first come, first served
        # One supervisor waits for the slot (the first in line); the other 39 are records, no process.
        wait_for(lambda: len(processes_of(root)) == 1, 30, "the first in line's supervisor")
        procs = processes_of(root)
        st = runs.read_status(root / "q00")
        assert list(procs) == [st["pid"]] == [st["supervisor"]]
        assert all(runs.read_status(root / f"q{i:02d}")["pid"] is None for i in range(1, 40))
        total = sum(procs.values())
        print(f"40 queued trainings: {len(procs)} process, {total / 2**20:.0f} MB RSS "
              f"(a running trainer: ~{limits.RUNTIME_BYTES / 2**20:.0f} MB)")
        assert total < limits.RUNTIME_BYTES / 4  # a trainer's TensorFlow runtime alone is ~715 MB
        info = scheduler.queue_info(root / "q05")
        assert (info.position, info.slots) == (5, 1)  # q00 is starting; q01 is first in line
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()
        for r in scheduler.queued(root):
            scheduler.cancel(r)


def test_cancelling_a_queued_record_ends_it_at_once(root):
    slot = hold_slot(root)
    try:
        a = scheduler.submit(CFG, "first", root=root)
        b = scheduler.submit(CFG, "second", root=root, owner="ann")
        scheduler.cancel(b)  # nobody waits on it: stopped now, no process needed
        st = runs.read_status(b)
        assert st["state"] == "stopped" and st["error"] == "cancelled before training started"
        assert st["owner"] == "ann"
        scheduler.cancel(a)  # its supervisor is waiting for the slot: it leaves the queue itself
        wait_for(lambda: runs.read_status(a)["state"] == "stopped", 30, "the supervisor to give up")
        assert runs.read_status(a)["error"] == "cancelled before training started"
        assert not runs.RunFolder(a).model.exists()
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()


def test_two_requests_for_one_name_one_wins_and_keeps_its_config(root):
    slot = hold_slot(root)
    configs = [preset_config("classic", epochs=1, limit=300, seed=s) for s in range(8)]
    results: list = [None] * 8
    go = threading.Barrier(8)

    def request(i: int) -> None:
        go.wait()
        try:
            results[i] = scheduler.submit(configs[i], "same-name", root=root)
        except runs.RunError as e:
            results[i] = e

    try:
        threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        wins = [i for i, r in enumerate(results) if isinstance(r, Path)]
        assert len(wins) == 1, results
        assert all("already exists" in str(results[i]) for i in range(8) if i not in wins)
        assert runs.load_config(root / "same-name") == configs[wins[0]]  # the winner trains its own config
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()


def test_queue_caps(root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_QUEUED", "3")
    monkeypatch.setenv("MNIST_MAX_QUEUED_PER_USER", "2")
    slot = hold_slot(root)
    try:
        scheduler.submit(CFG, "a1", root=root, owner="ann")
        scheduler.submit(CFG, "a2", root=root, owner="ann")
        with pytest.raises(runs.RunError, match="you already have 2 trainings"):
            scheduler.submit(CFG, "a3", root=root, owner="ann")
        scheduler.submit(CFG, "b1", root=root, owner="bob")
        with pytest.raises(runs.RunError, match="queue is full"):
            scheduler.submit(CFG, "b2", root=root, owner="bob")
        assert not (root / "a3").exists() and not (root / "b2").exists()  # refused before anything is written
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()
        for r in scheduler.queued(root):
            scheduler.cancel(r)


def test_a_training_too_big_for_the_free_memory_is_refused_before_it_starts(root, monkeypatch):
    monkeypatch.setattr(limits, "memory_available_bytes", lambda: 300 * 2**20)
    with pytest.raises(runs.RunError, match=r"this server has 300 MB available; this training needs about"):
        scheduler.submit(CFG, "too-big", root=root)
    assert not (root / "too-big").exists()


def test_no_zombies_after_a_supervisor_ends(root):
    """The app reaps what it starts as soon as it ends, not when someone opens a page."""
    slot = hold_slot(root)
    try:
        a = scheduler.submit(CFG, "short", root=root)
        pid = runs.read_status(a)["pid"]
        scheduler.cancel(a)
        wait_for(lambda: runs.read_status(a)["state"] == "stopped", 30, "the cancel")
    finally:
        fcntl.flock(slot, fcntl.LOCK_UN)
        slot.close()

    # A zombie keeps its /proc entry until its parent (this process) waits for it.
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, f"the supervisor {pid} to be reaped")
