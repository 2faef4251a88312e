"""The Train page's glue: launching trainer processes and reading run folders for the live view.

Training never runs inside Streamlit: `launch` starts `python -m mnist_core train ... --run-dir ...` as
its own process group (it outlives the browser and even a server restart), and everything the page
shows comes from the run folder the trainer writes. The only per-session state is which run a session
is watching and the per-batch points it has collected for the running curve (`BatchPoints`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_core import runs
from mnist_core.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
WATCH = "train_watch"  # session_state key: the name of the run this session is watching
POINTS = "train_points"  # session_state key: BatchPoints for the watched run
ACTIVE = ("queued", "running")
MAX_POINTS = 3000  # per-batch points kept for the running curve (older ones thinned)

# Trainer processes started by this server, by run name. Kept so finished children are reaped
# (no zombies) and so a trainer that dies before creating its folder can still be reported.
_PROCS: dict[str, subprocess.Popen] = {}
_DIRS: dict[str, Path] = {}


class LaunchError(RuntimeError):
    """The trainer could not be started or exited at once; the message carries its log tail."""


def logs_dir(root: Path | None = None) -> Path:
    # Beside the run folders, not inside them: the trainer creates its run folder itself (atomically,
    # refusing duplicates) and the log must exist before that.
    return (Path(root) if root else runs.runs_root()) / ".logs"


def log_path(name: str, root: Path | None = None) -> Path:
    return logs_dir(root) / f"{name}.log"


def log_tail(name: str, root: Path | None = None, n_chars: int = 2500) -> str:
    p = log_path(name, root)
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return ""
    return text[-n_chars:].strip()


def _reap() -> None:
    """Collect exited trainers (no zombies). One that exited without creating its run folder is kept,
    so the page can still say why (its folder holds no status to report it)."""
    for name, proc in list(_PROCS.items()):
        if proc.poll() is not None and (_DIRS.get(name, Path("/nonexistent")) / "status.json").exists():
            _PROCS.pop(name, None)
            _DIRS.pop(name, None)


def check_name(name: str, root: Path | None = None) -> str:
    """The cleaned run name, or RunError if it is unusable or already taken."""
    root = Path(root) if root else runs.runs_root()
    safe = runs.safe_run_name(name)
    if (root / safe).exists():
        raise runs.RunError(f"a run named {safe!r} already exists; choose another name")
    return safe


def launch(config: TrainConfig, name: str, root: Path | None = None, data_dir: str | None = None,
           wait_s: float = 3.0) -> Path:
    """Start a trainer process for `config` as run `name`; return its run folder.

    Waits up to `wait_s` for the trainer to create the folder; raises LaunchError (with the log tail)
    if it exits before that. A trainer that is merely slow to start is returned as launched: the page
    shows it as starting until its folder appears."""
    _reap()
    root = Path(root) if root else runs.runs_root()
    safe = check_name(name, root)
    run_dir = root / safe
    logs_dir(root).mkdir(parents=True, exist_ok=True)
    # The config goes in a file: long JSON text on the command line is fragile (and clutters `ps`).
    cfg_path = logs_dir(root) / f"{safe}.config.json"
    runs.atomic_write_bytes(cfg_path, config.to_json().encode())
    cmd = [sys.executable, "-m", "mnist_core", "train", "--config", str(cfg_path), "--run-dir", str(run_dir)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "MNIST_RUNS_DIR": str(root)}
    with open(log_path(safe, root), "wb") as log:
        # Own session: the trainer survives the page, the browser and Ctrl-C in the server's terminal.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _PROCS[safe] = proc
    _DIRS[safe] = run_dir
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (run_dir / "status.json").exists():
            return run_dir
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None and not (run_dir / "status.json").exists():
        tail = log_tail(safe, root) or "(no output)"
        raise LaunchError(f"the trainer exited at once (code {proc.returncode}):\n{tail}")
    return run_dir


def starting(name: str) -> bool:
    """True while a trainer this server launched is alive but has not created its folder yet."""
    proc = _PROCS.get(name)
    return proc is not None and proc.poll() is None


def launch_failed(name: str) -> int | None:
    """The exit code of a trainer this server launched that ended without creating its folder."""
    proc = _PROCS.get(name)
    if proc is None or proc.poll() is None:
        return None
    return proc.returncode


def active_runs(infos: list[runs.RunInfo]) -> list[runs.RunInfo]:
    """Queued or running runs, running first, newest first within each."""
    act = [r for r in infos if r.state in ACTIVE]
    return sorted(act, key=lambda r: (r.state != "running", -r.created))


def pick_watch(current: str | None, infos: list[runs.RunInfo], root: Path | None = None) -> str | None:
    """Which run a session should show: the one it watches if that still exists (or is still being
    launched), else the newest running run, else the newest queued one (a reload or a second tab
    reattaches to what is training)."""
    root = Path(root) if root else runs.runs_root()
    _reap()
    if current and ((root / current).is_dir() or current in _PROCS):
        return current
    act = active_runs(infos)
    return act[0].name if act else None


@dataclass
class QueueInfo:
    position: int  # 1-based place among runs waiting for a slot; 0 = a slot is free for it (starting)
    running: int
    slots: int


def queue_info(run_dir: Path) -> QueueInfo:
    """Where a queued run stands: slots are FIFO by creation time (mnist_core.runs.training_slot)."""
    run_dir = Path(run_dir)
    pos = runs.queue_position(run_dir)
    running = 0
    for d in run_dir.parent.iterdir():
        if d.is_dir() and not d.name.startswith(".") and (d / "status.json").exists():
            try:
                if runs.read_status(d).get("state") == "running":
                    running += 1
            except runs.RunError:
                continue
    slots = runs.max_trainings()
    free = max(slots - running, 0)
    return QueueInfo(position=0 if pos < free else pos - free + 1, running=running, slots=slots)


@dataclass
class RunView:
    """One read of a run folder: everything the live panel draws."""

    name: str
    run_dir: Path
    status: dict[str, Any]
    history: list[dict[str, Any]]
    progress: dict[str, Any]
    metrics: dict[str, Any]
    config: TrainConfig | None
    problem: str | None = None

    @property
    def state(self) -> str:
        return self.status.get("state", "failed")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def fractions(self) -> tuple[float, float]:
        """(fraction of the current epoch done, fraction of all training done), from progress.json."""
        p = self.progress
        bpe = max(int(p.get("batches_per_epoch") or 0), 1)
        epochs = max(int(p.get("epochs") or (self.config.epochs if self.config else 1)), 1)
        if not p:
            return 0.0, min(len(self.history) / epochs, 1.0)
        ep, batch = int(p.get("epoch", 1)), int(p.get("batch", 0))
        epoch_frac = min(batch / bpe, 1.0)
        return epoch_frac, min(((ep - 1) + epoch_frac) / epochs, 1.0)

    def elapsed_eta(self, now: float | None = None) -> tuple[float | None, float | None]:
        """Seconds since training started and the estimated seconds left (None when unknown)."""
        now = time.time() if now is None else now
        started = self.status.get("started")
        if not started:
            return None, None
        end = self.status.get("finished") if not self.active else None
        elapsed = (end or now) - started
        _, total_frac = self.fractions()
        train_elapsed = self.progress.get("elapsed_s")
        if not self.active or not train_elapsed or total_frac <= 0:
            return elapsed, None
        # Extrapolate the trainer's own clock (excludes TF start-up) from the last progress write.
        since = max(now - float(self.progress.get("updated", now)), 0.0)
        eta = float(train_elapsed) * (1 - total_frac) / total_frac - since
        return elapsed, max(eta, 0.0)


def read_view(run_dir: Path) -> RunView:
    run_dir = Path(run_dir)
    problem = None
    try:
        status = runs.read_status(run_dir)
    except runs.RunError as e:
        status, problem = {"state": "failed", "error": str(e)}, str(e)
    try:
        history = runs.read_history(run_dir)
    except (ValueError, KeyError, OSError) as e:
        history, problem = [], f"history.csv is unreadable: {e}"
    metrics: dict[str, Any] = {}
    if (run_dir / "metrics.json").exists():
        try:
            metrics = runs.read_json(run_dir / "metrics.json")
        except runs.RunError as e:
            problem = str(e)
    try:
        config = runs.load_config(run_dir)
    except runs.RunError:
        config = None
    return RunView(run_dir.name, run_dir, status, history, runs.read_progress(run_dir), metrics, config, problem)


@dataclass
class BatchPoints:
    """The running (per-batch) training values of one run, gathered from successive progress.json
    reads. Each read adds at most one point, so the cost stays flat however long the run is."""

    run: str
    points: list[dict[str, float]] = field(default_factory=list)
    last: tuple[int, int] = (0, 0)

    def add(self, progress: dict[str, Any]) -> bool:
        if not progress or "batch" not in progress:
            return False
        key = (int(progress["epoch"]), int(progress["batch"]))
        if key <= self.last:
            return False
        self.last = key
        bpe = max(int(progress.get("batches_per_epoch") or 1), 1)
        self.points.append({"x": key[0] - 1 + key[1] / bpe, "loss": float(progress.get("loss", float("nan"))),
                            "accuracy": float(progress.get("accuracy", float("nan")))})
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
        return True


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def forget_logs(name: str, root: Path | None = None) -> None:
    """Remove a deleted run's trainer log and config copy."""
    log_path(name, root).unlink(missing_ok=True)
    (logs_dir(root) / f"{name}.config.json").unlink(missing_ok=True)
