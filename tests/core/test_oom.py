"""An out-of-memory kill is an ordinary failure: real trainings under a real memory cgroup.

A run whose training cannot fit is queued behind the scheduler's memory check (a queued record and
`scheduler.dispatch`, as a server does for records it finds), with a normal run queued behind it. Its
supervisor is moved into a new memory cgroup whose limit the normal trainer fits in and the big one
does not, while the test holds training slot 0 (so it cannot start its trainer before it is inside).
The kernel's OOM killer then stops the big trainer: its run must end `failed` with "out of memory
(limit N MB)", the queueing process keeps working, and the run behind it starts in the same cgroup and
finishes. Needs root and a writable memory cgroup (v1 `memory.limit_in_bytes`, or v2 `memory.max`):
skipped elsewhere, and failed instead when MNIST_REQUIRE_CGROUPS=1 (CI).

`MemoryCgroup` is also what benchmarks/cloud_memory.py runs the app in.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from mnist_core import limits, runs, scheduler
from mnist_core.config import ArchConfig, TrainConfig, preset_config

MB = 2**20


# --- a memory cgroup ----------------------------------------------------------------------------
class CgroupError(RuntimeError):
    """No writable memory cgroup here (not root, a read-only cgroup filesystem, no memory controller)."""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def cgroup_name(tag: str) -> str:
    return f"mnist-{tag}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def _parent_cgroup() -> tuple[Path, bool]:
    """Where a new memory cgroup can go: under this process's own v1 memory cgroup; in v2 (which
    keeps processes out of inner nodes) under its own or its parent, whichever delegates memory."""
    found = limits._memory_cgroups()
    for cg in found:
        if not cg.v2:
            return cg.path, False
    for cg in found:
        for candidate in (cg.path, cg.path.parent):
            if "memory" in _read(candidate / "cgroup.subtree_control").split():
                return candidate, True
    raise CgroupError("no memory cgroup controller this process can delegate (v1 memory, or v2 with "
                      "memory in cgroup.subtree_control)")


class MemoryCgroup:
    """A new memory cgroup inside this process's own (so whatever limits apply to us still apply), with
    a hard limit and no swap. `add(pid)` moves a process in; `inside()` moves this process in for the
    duration (so a child it starts meanwhile begins its life in the cgroup; charges made before stay
    where they were); `close()` kills what is left in it and removes it."""

    def __init__(self, limit_bytes: int, name: str):
        self.parent, self.v2 = _parent_cgroup()
        self.path = self.parent / name
        self.limit = limit_bytes
        try:
            self.path.mkdir()
        except OSError as e:
            raise CgroupError(f"cannot create {self.path}: {e}") from e
        try:
            if self.v2:
                self._write("memory.max", limit_bytes)
                if (self.path / "memory.swap.max").exists():
                    self._write("memory.swap.max", 0)
            else:
                self._write("memory.limit_in_bytes", limit_bytes)
                if (self.path / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swapping out
                    self._write("memory.memsw.limit_in_bytes", limit_bytes)
        except OSError as e:
            with suppress(OSError):
                self.path.rmdir()
            raise CgroupError(f"cannot set a memory limit in {self.path}: {e}") from e

    def _write(self, name: str, value: int | str) -> None:
        (self.path / name).write_text(str(value))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    @contextmanager
    def inside(self) -> Iterator[None]:
        home = _own_cgroup(self.v2)
        self.add(os.getpid())
        try:
            yield
        finally:
            (home / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def holds(self, pid: int) -> bool:
        return pid in self.pids()

    @property
    def usage(self) -> int:
        return _int(self.path / ("memory.current" if self.v2 else "memory.usage_in_bytes"))

    @property
    def peak(self) -> int:
        """The most the cgroup has held since it was made, or since `reset_peak`."""
        return _int(self.path / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes"))

    def reset_peak(self) -> None:
        with suppress(OSError):  # v1: any write resets it; v2: kernels >= 6.12 take a write
            self._write("memory.peak" if self.v2 else "memory.max_usage_in_bytes", 0)

    @property
    def oom_kills(self) -> int:
        return limits._stat(self.path / ("memory.events" if self.v2 else "memory.oom_control"), "oom_kill")

    def stat(self, key: str) -> int:
        """A memory.stat figure in bytes (v1: "total_rss", "total_cache", ...; v2: "anon", "file", ...)."""
        return limits._stat(self.path / "memory.stat", key)

    def close(self, timeout: float = 30) -> None:
        """Kill what is still in the cgroup (only processes its user moved in, and their children),
        wait for it to empty, remove it."""
        deadline = time.monotonic() + timeout
        while self.path.exists() and time.monotonic() < deadline:
            left = self.pids()
            for pid in left:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not left:
                with suppress(OSError):
                    self.path.rmdir()
                    return
            time.sleep(0.1)
        if self.path.exists():
            raise CgroupError(f"{self.path} did not empty within {timeout:.0f} s: {self.pids()}")


def _own_cgroup(v2: bool) -> Path:
    return next(cg.path for cg in limits._memory_cgroups() if cg.v2 == v2)


def memory_cgroup_or_skip(limit_bytes: int, tag: str) -> MemoryCgroup:
    """A MemoryCgroup, or skip the test where none can be made (fail instead under MNIST_REQUIRE_CGROUPS=1)."""
    try:
        return MemoryCgroup(limit_bytes, cgroup_name(tag))
    except CgroupError as e:
        if os.environ.get("MNIST_REQUIRE_CGROUPS") == "1":
            pytest.fail(f"MNIST_REQUIRE_CGROUPS=1, but no memory cgroup can be made here: {e}")
        pytest.skip(f"no writable memory cgroup here (needs root): {e}")


# --- the test ------------------------------------------------------------------------------------
def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def state(run: Path) -> str:
    return runs.read_status(run)["state"]


# A normal small training, and one whose first batch alone cannot fit: 512 filters at 28x28 for a batch
# of 512 images is 800 MB per activation tensor (the estimate: several GB, against ~0.7 GB for SMALL).
SMALL = preset_config("classic", epochs=1, limit=300)
BIG = TrainConfig(arch=ArchConfig(preset="custom", conv_blocks=1, filters=(512,), kernel_size=3, batch_norm=False,
                                  dropout=0.0, dense_units=64), epochs=1, batch_size=512)


@pytest.fixture
def root(runs_root, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    yield runs_root
    for r in runs.list_runs(runs_root):  # leave nothing running
        if r.active:
            scheduler.cancel(r.path)


@pytest.mark.slow
def test_a_trainer_killed_for_memory_fails_its_run_and_the_queue_goes_on(root, tiny, tmp_path):
    from tests.conftest import write_idx_folder

    n = len(tiny.x_train)
    small, big = scheduler.training_memory(SMALL, n).total, scheduler.training_memory(BIG, n).total
    # Room for the small trainer with half its estimate to spare (the estimate is its whole RSS, and
    # some of that is library pages this machine may already hold), far too little for the big one.
    limit = int(1.5 * small) // MB * MB
    assert big > 3 * limit, (limits.mb(small), limits.mb(big), limits.mb(limit))
    data = write_idx_folder(tiny, tmp_path / "data")
    cg = memory_cgroup_or_skip(limit, "oom")
    try:
        (root / scheduler.SLOTS_DIR).mkdir(parents=True, exist_ok=True)
        with open(root / scheduler.SLOTS_DIR / "slot0.lock", "w") as slot:
            fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no trainer starts until we let go
            # Queued around the memory check (scheduler.submit would refuse BIG on a small server).
            too_big = runs.create_run(BIG, "too-big", root=root, data_dir=str(data), pid=None)
            behind = runs.create_run(SMALL, "behind-it", root=root, data_dir=str(data), pid=None)
            assert scheduler.dispatch(root) == ["too-big"]
            supervisor = runs.read_status(too_big)["pid"]
            cg.add(supervisor)
            assert cg.holds(supervisor)
        kills = cg.oom_kills

        wait_for(lambda: state(too_big) not in runs.ACTIVE, 300, "the big run to end")
        st = runs.read_status(too_big)
        assert st["state"] == "failed", st
        assert st["error"].startswith(f"out of memory (limit {limits.mb(limit)})"), st["error"]
        assert st["exit_code"] == -signal.SIGKILL
        assert cg.oom_kills > kills  # the kernel's OOM killer did it, in this cgroup

        # The run behind it starts by itself, in the same cgroup (its supervisor is the big one's
        # child), and trains to the end within the limit.
        wait_for(lambda: state(behind) != "queued", 180, "the queued run behind it to start")
        if state(behind) == "running":  # (its supervisor lives as long as its trainer)
            assert cg.holds(runs.read_status(behind)["supervisor"])
        kills = cg.oom_kills
        wait_for(lambda: state(behind) not in runs.ACTIVE, 600, "the run behind it to end")
        assert state(behind) == "finished", runs.read_status(behind)
        assert runs.read_metrics(runs.folder(behind))["test_accuracy"] > 0.2  # it learnt, on 300 images
        assert cg.oom_kills == kills  # no kill while the normal trainer ran

        # The process that queued them goes on: it lists the runs and queues (and cancels) another.
        assert {r.name: r.state for r in runs.list_runs(root)} == {"too-big": "failed", "behind-it": "finished"}
        again = scheduler.submit(SMALL, "again", root=root, data_dir=str(data), n_train=n)
        scheduler.cancel(again)
        wait_for(lambda: state(again) not in runs.ACTIVE, 60, "the cancel")
    finally:
        cg.close()  # on a failure, kills what is left of the trainings in it
