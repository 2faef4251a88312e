"""Training slots and the queue: which training runs when, on this machine.

A training is asked for with `submit`: it claims the run folder atomically (two sessions asking for one
name at the same moment cannot both get it), writes a `queued` record and calls `dispatch`. A queued
record costs nothing: no process exists for it until its turn is near. `dispatch` (called after each
submit, by every supervisor when its training ends, and by the app's pages while something is queued)
starts one small supervisor process (`python -m mnist_core supervise RUN`) for each queued record among
the first `max_trainings()` in line. The supervisor waits for a free slot in first-come order, then
starts the trainer process (`python -m mnist_core _train RUN`) and waits for it. When the trainer ends
in any way, even killed by the kernel's out-of-memory killer, the supervisor records why in the run's
status and dispatches the next run, so a queue never stalls behind a dead trainer.

Slots are `flock`ed files in `<runs root>/.slots/`, so the OS frees a slot whose holder dies, and the
limit holds across several app processes and the CLI (`python -m mnist_core train` waits for a slot in
the same queue, in the foreground). The limits: `MNIST_MAX_TRAININGS` at once (default 1),
`MNIST_MAX_QUEUED` queued or running in all (default 50), `MNIST_MAX_QUEUED_PER_USER` per owner
(default 2) and `MNIST_MAX_RUNS_PER_USER` runs kept per owner (default 20); the per-owner limits apply
to runs that have an owner (classroom identities, identity.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import limits, ray_engine, runs
from .architectures import summary_rows
from .config import TrainConfig
from .runs import RunError, RunFolder

REPO = Path(__file__).resolve().parent.parent
SLOTS_DIR = ".slots"


def _int_setting(value: str | None, default: int) -> int:
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        return default


def max_trainings() -> int:
    return _int_setting(os.environ.get("MNIST_MAX_TRAININGS"), 1)


def max_queued() -> int:
    return _int_setting(os.environ.get("MNIST_MAX_QUEUED"), 50)


def max_queued_per_user() -> int:
    return _int_setting(os.environ.get("MNIST_MAX_QUEUED_PER_USER"), 2)


def max_runs_per_user() -> int:
    return _int_setting(os.environ.get("MNIST_MAX_RUNS_PER_USER"), 20)


# --- the queue ------------------------------------------------------------------------------------
def _active(root: Path) -> list[tuple[RunFolder, dict[str, Any]]]:
    """(run, status) of every queued or running run under `root`, oldest first."""
    out = []
    for d in root.iterdir() if root.is_dir() else []:
        run = RunFolder(d)
        if not d.is_dir() or d.name.startswith(".") or not run.status.exists():
            continue
        try:
            st = runs.read_status(run)
        except RunError:
            continue
        # A trial of a sweep on Ray Tune is Tune's to start and to count (ray_tune.py), not this queue's.
        if st["state"] in runs.ACTIVE and not (st.get("engine") == "ray" and st.get("sweep")):
            out.append((run, st))
    # Place in line: when the run was queued (a resumed run queues again at the back).
    out.sort(key=lambda t: (t[1].get("created_queue") or t[1].get("created") or 0, t[0].name))
    return out


def queued(root: Path | None = None) -> list[RunFolder]:
    """The queued runs, first in line first."""
    root = Path(root) if root else runs.runs_root()
    return [r for r, st in _active(root) if st["state"] == "queued"]


def queue_position(run_dir: Path | RunFolder, root: Path | None = None) -> int:
    """0 for the oldest queued run, 1 for the next, ...; -1 if this run is not queued."""
    run = runs.folder(run_dir)
    names = [r.name for r in queued(Path(root) if root else run.path.parent)]
    return names.index(run.name) if run.name in names else -1


@dataclass(frozen=True)
class QueueInfo:
    position: int  # 1-based place among the runs waiting for a slot; 0 = a slot is free for it (starting)
    running: int
    slots: int


def queue_info(run_dir: Path | RunFolder) -> QueueInfo:
    """Where a queued run stands, by the same first-come rule as `training_slot`."""
    run = runs.folder(run_dir)
    active = _active(run.path.parent)
    waiting = [r.name for r, st in active if st["state"] == "queued"]
    running = sum(st["state"] == "running" for _, st in active)
    pos = waiting.index(run.name) if run.name in waiting else -1
    slots = max_trainings()
    free = max(slots - running, 0)
    return QueueInfo(position=0 if pos < free else pos - free + 1, running=running, slots=slots)


# --- slots ----------------------------------------------------------------------------------------
def _try_slot(root: Path) -> tuple[int, IO[str]] | None:
    import fcntl

    slots = root / SLOTS_DIR
    slots.mkdir(exist_ok=True)
    for i in range(max_trainings()):
        f = open(slots / f"slot{i}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        return i, f
    return None


@contextmanager
def _slot_file(run_dir: Path | RunFolder, poll_s: float = 0.5, on_wait: Any = None) -> Iterator[tuple[int, IO]]:
    run = runs.folder(run_dir)
    while True:
        if runs.stop_requested(run):
            raise KeyboardInterrupt("stopped while queued")
        if queue_position(run) < max_trainings():
            got = _try_slot(run.path.parent)
            if got is not None:
                i, f = got
                try:
                    yield i, f
                finally:
                    f.close()  # closing the last descriptor releases the flock
                return
        if on_wait:
            on_wait(queue_position(run))
        time.sleep(poll_s)


@contextmanager
def training_slot(run_dir: Path | RunFolder, poll_s: float = 0.5, on_wait: Any = None) -> Iterator[int]:
    """Hold one of `max_trainings()` slots for the duration, waiting in first-come order for one.
    Raises KeyboardInterrupt if a stop is requested while waiting."""
    with _slot_file(run_dir, poll_s, on_wait) as (i, _):
        yield i


# --- submitting and starting --------------------------------------------------------------------
def check_limits(owner: str | None, root: Path) -> None:
    """RunError when the server's queue, or this owner's share of it, is full."""
    active = _active(root)
    if len(active) >= max_queued():
        raise RunError(f"the training queue is full: {len(active)} trainings are waiting or running "
                       f"(at most {max_queued()} on this server, MNIST_MAX_QUEUED); try again when some finish")
    if owner is not None:
        mine = sum(st.get("owner") == owner for _, st in active)
        if mine >= max_queued_per_user():
            raise RunError(f"you already have {mine} trainings waiting or running (at most "
                           f"{max_queued_per_user()} each, MNIST_MAX_QUEUED_PER_USER); stop one or wait for it")
        kept = sum(r.owner == owner for r in runs.list_runs(root))
        if kept >= max_runs_per_user():
            raise RunError(f"you already keep {kept} runs (at most {max_runs_per_user()} each, "
                           "MNIST_MAX_RUNS_PER_USER); delete some you no longer need")


def training_memory(config: TrainConfig, n_train: int | None = None) -> limits.TrainingEstimate:
    """The trainer's estimated peak memory for `config` on `n_train` images (default: all of MNIST)."""
    n = min(config.limit or n_train or 60_000, n_train or 60_000)
    # The trainer shares TensorFlow's library pages with this process if it has loaded them (a server
    # that has shown a model): they are already in the memory this process's cgroup counts.
    return limits.estimate_training_bytes(summary_rows(config.arch), config.batch_size, config.optimizer, n,
                                          libraries_loaded="tensorflow" in sys.modules)


def check_memory(config: TrainConfig, n_train: int | None = None) -> None:
    """RunError, saying the figures, when the training would not fit in the memory this server has
    free (its cgroup's limit and usage): refused before it starts rather than killed half-way."""
    est = training_memory(config, n_train)
    if not est.fits():
        raise RunError(f"not enough memory: {est.message()}")


def submit(config: TrainConfig, name: str, root: Path | None = None, data_dir: str | None = None,
           owner: str | None = None, n_train: int | None = None, **status: Any) -> Path:
    """Queue a training as run `name` and start what can start; returns the run folder.
    Raises RunError (bad or taken name, full queue, not enough memory) before anything is written."""
    root = Path(root) if root else runs.runs_root()
    runs.safe_run_name(name)
    check_limits(owner, root)
    check_memory(config, n_train)
    run_dir = runs.create_run(config, name, root=root, data_dir=data_dir, owner=owner, pid=None, **status)
    dispatch(root)
    return run_dir


def resumable(run_dir: Path | RunFolder) -> str | None:
    """None if the run can be resumed from its checkpoint, else why not."""
    from . import checkpoints

    run = runs.folder(run_dir)
    st = runs.read_status(run)
    if st["state"] not in ("stopped", "failed"):
        return f"run {run.name} is {st['state']}: only a stopped or failed run can be resumed"
    ck = checkpoints.read_state(run)
    if ck is None:
        return f"run {run.name} has no checkpoint (it ended before its first epoch did)"
    epochs = runs.load_config(run).epochs
    if ck.epoch >= epochs and run.metrics.exists():
        return f"run {run.name} had finished all {epochs} epochs; use Continue training for more"
    return None  # (all epochs done but killed before the model was evaluated: the resume finishes that)


def requeue_for_resume(run_dir: Path | RunFolder, pid: int | None = None) -> None:
    """Put a stopped or failed run back in the queue, to continue from its last checkpoint. `pid`:
    the process that will wait for the slot itself (the CLI); None: the scheduler starts it."""
    run = runs.folder(run_dir)
    why = resumable(run)
    if why:
        raise RunError(why)
    check_limits(runs.read_status(run).get("owner"), run.path.parent)
    run.stop.unlink(missing_ok=True)
    # Last in line again: a resumed run does not jump the queue. It is an ordinary queued record now,
    # even if a Ray driver trained it before (a trial of a Ray sweep, a Ray task): this queue starts it.
    runs.set_status(run, "queued", pid=pid, resume=True, error=None, exit_code=None, finished=None,
                    created_queue=time.time(), engine=None, supervisor=None, driver_host=None)


def resume(run_dir: Path | RunFolder) -> None:
    """Queue a stopped or failed run to continue from its last checkpoint, and start what can start."""
    run = runs.folder(run_dir)
    requeue_for_resume(run)
    dispatch(run.path.parent)


@contextmanager
def _dispatch_lock(root: Path) -> Iterator[None]:
    import fcntl

    (root / SLOTS_DIR).mkdir(parents=True, exist_ok=True)
    with open(root / SLOTS_DIR / "dispatch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # held for milliseconds: reading statuses and forking
        yield


def cancel(run_dir: Path | RunFolder) -> None:
    """Stop a run: a training stops after its current batch; a queued one leaves the queue at once."""
    run = runs.folder(run_dir)
    runs.request_stop(run)
    with _dispatch_lock(run.path.parent):
        st = runs.read_status(run)
        if st["state"] == "queued" and st.get("pid") is None:  # nobody is waiting on it: end it here
            runs.set_status(run, "stopped", error="cancelled before training started", pid=None,
                            finished=time.time())


def dispatch(root: Path | None = None) -> list[str]:
    """Start a supervisor for each queued record that is near enough the front of the queue to train
    soon (the first `max_trainings()`) and that nobody waits on yet. Returns the names started."""
    root = Path(root) if root else runs.runs_root()
    started = []
    with _dispatch_lock(root):
        for run in queued(root)[:max_trainings()]:
            st = runs.read_status(run)
            if st.get("pid") is not None or runs.stop_requested(run):
                continue  # a supervisor (or a CLI `train`) is already on it, or it is being cancelled
            proc = _spawn([sys.executable, "-m", "mnist_core", "supervise", str(run.path)], run)
            runs.set_status(run, "queued", pid=proc.pid, supervisor=proc.pid)
            started.append(run.name)
    return started


def _spawn(cmd: list[str], run: RunFolder) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
           "MNIST_RUNS_DIR": str(run.path.parent)}
    with open(run.log, "ab") as log:
        # Own session: the process outlives the page, the browser and Ctrl-C in the server's terminal.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    # Reap it when it ends, so no finished process stays a zombie of the app server.
    threading.Thread(target=proc.wait, name=f"reap-{run.name}", daemon=True).start()
    return proc


# --- the supervisor -------------------------------------------------------------------------------
def _exit_reason(code: int, oom_before: int | None, run: RunFolder) -> str:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        oom_after = limits.oom_kill_count()
        if code == -signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before:
            return (f"out of memory (limit {limits.mb(limits.memory_limit_bytes())}): the kernel stopped the "
                    "trainer")
        if code == -signal.SIGKILL:
            return "the trainer was killed (SIGKILL; on a small server the usual cause is running out of memory)"
        return f"the trainer was killed by {sig}"
    why = runs.last_error_line(run)
    return f"the trainer exited with code {code}" + (f": {why}" if why else "")


def supervise(run_dir: Path | RunFolder) -> int:
    """The supervisor's main (`python -m mnist_core supervise RUN`): wait for a slot, run the trainer,
    record how it ended, start the next queued run. Returns the trainer's exit code."""
    run = runs.folder(run_dir)
    code = 0
    try:
        with _slot_file(run, on_wait=lambda pos: None) as (_, slot):
            if runs.stop_requested(run):
                raise KeyboardInterrupt
            oom_before = limits.oom_kill_count()
            if ray_engine.train_engine() == "ray":  # MNIST_TRAIN_ENGINE=ray: the trainer is a Ray task
                code = ray_engine.run_trainer(run)
            else:
                # The trainer inherits the slot's descriptor: the slot stays held while either process lives.
                child = subprocess.Popen([sys.executable, "-m", "mnist_core", "_train", str(run.path)], cwd=REPO,
                                         pass_fds=(slot.fileno(),))
                code = _wait_forwarding_signals(child)
            if runs.read_json(run.status).get("state") in runs.ACTIVE:  # the trainer recorded no end: say why
                runs.set_status(run, "failed", error=_exit_reason(code, oom_before, run), pid=None,
                                exit_code=code, finished=time.time())
    except KeyboardInterrupt:
        if runs.read_status(run)["state"] == "queued":
            runs.set_status(run, "stopped", error="cancelled before training started", pid=None,
                            finished=time.time())
    except BaseException as e:  # the supervisor itself failed: the run must not look queued forever
        runs.set_status(run, "failed", error=f"supervisor: {type(e).__name__}: {e}", pid=None)
        raise
    finally:
        try:
            dispatch(run.path.parent)
        except OSError:
            pass  # a full disk: the next page view dispatches again
    return code


def _wait_forwarding_signals(child: subprocess.Popen) -> int:
    """Wait for the trainer; SIGTERM/SIGINT to the supervisor ask the trainer to stop cleanly."""
    def forward(signum: int, frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, forward)
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
            continue
