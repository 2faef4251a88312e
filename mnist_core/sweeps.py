"""Running sweeps: a `SweepConfig` (sweep.py) becomes a group of ordinary run folders, one per trial.

A sweep lives in `<runs root>/.sweeps/<name>/` (a dot folder, so `list_runs` never takes it for a run):
`sweep.json` (the SweepConfig), `status.json` (engine, trial names, data dir, owner, and for the Ray
engine its driver's pid, host, state and error), `stop.request` (stop the whole sweep), `driver.log`,
and for Ray `tune/` (Tune's own records). Trial i is the run `<name>-tNN`, created with
`runs.create_run` like any training (claimed atomically, config.json, a queued status) and marked with
`sweep` and `trial` in its status, so every page, the runs table and export work on it.

Engines. `embedded` (the default, nothing to install): the trials are queued records that the
scheduler's supervisors train in turn in the ordinary training slots. At each epoch end the trainer
asks whether to stop (`epoch_hook`, installed by the trainer process): ASHA's rule (`sweep.should_stop`)
on its own history against the history.csv of its sibling trials as they stand now. A trial stopped so
ends `stopped` with the reason "early-stopped by ASHA at epoch N", its model saved and evaluated.
`ray` (`MNIST_RAY_ADDRESS` set): a driver process, `python -m mnist_core sweep-driver DIR`, runs the
same trial list on Ray Tune with Ray's ASHAScheduler (ray_tune.py); these trials have `engine: "ray"`,
so the local queue leaves them to Tune, and the app only reads their folders.

A sweep's state comes from its trials (`read_sweep`): queued until one starts, running while any is
queued or running (or its Ray driver is still finishing), then finished, or stopped when a stop was
requested, or failed when its driver failed. `stop_sweep` requests the stop and cancels every trial in
progress as the Stop button does; `scheduler.cancel` stops a single trial.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runs, scheduler
from .config import ConfigError
from .ray_engine import ray_address
from .runs import RunError, RunFolder, RunInfo
from .sweep import METRICS, SweepConfig, load_sweep, trial_configs, trial_settings

SWEEPS_DIR = ".sweeps"
ENGINES = ("embedded", "ray")
TRIAL_DIGITS = 2  # sweep.MAX_TRIALS is 50: two digits number every trial
MAX_SWEEP_NAME = runs.MAX_NAME - len("-t") - TRIAL_DIGITS
CANCELLED = "cancelled before training started"  # the reason the scheduler gives a cancelled queued run
SWEEP_STOPPED = "stopped with its sweep"


def asha_reason(epoch: int) -> str:
    """The status reason of a trial that ASHA stopped after `epoch` (both engines write this)."""
    return f"early-stopped by ASHA at epoch {epoch}"


def engine_setting() -> str:
    """The engine a new sweep runs on: "ray" when MNIST_RAY_ADDRESS is set, else "embedded"."""
    return "ray" if ray_address() else "embedded"


def trial_name(sweep_name: str, i: int) -> str:
    return f"{sweep_name}-t{i:0{TRIAL_DIGITS}d}"


def default_sweep_name() -> str:
    return f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"


# --- the folder ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepFolder:
    """The paths of one sweep folder. Nothing outside this class spells a sweep file's name."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        """The runs root that holds the sweep's trials."""
        return self.path.parent.parent

    config = property(lambda self: self.path / "sweep.json")
    status = property(lambda self: self.path / "status.json")
    stop = property(lambda self: self.path / "stop.request")
    log = property(lambda self: self.path / "driver.log")
    tune = property(lambda self: self.path / "tune")  # Ray Tune's storage_path (experiment state)

    def trial(self, name: str) -> RunFolder:
        return RunFolder(self.root / name)


def sweeps_dir(root: Path | None = None) -> Path:
    return (Path(root) if root else runs.runs_root()) / SWEEPS_DIR


def sweep_of(run_dir: Path | RunFolder, status: dict[str, Any]) -> SweepFolder | None:
    """The sweep a run belongs to (from its status), or None for a plain run."""
    name = status.get("sweep")
    return SweepFolder(runs.folder(run_dir).path.parent / SWEEPS_DIR / name) if isinstance(name, str) else None


# --- status ----------------------------------------------------------------------------------------
_STATUS_NUMBERS, _STATUS_INTS = ("created", "started", "finished"), ("pid",)
_STATUS_STRINGS = ("state", "engine", "data_dir", "owner", "host", "error", "address")


def read_sweep_status(folder: SweepFolder) -> dict[str, Any]:
    """The sweep's status.json, checked (RunError naming the field)."""
    where = f"status.json of sweep {folder.name}"
    doc = runs.check_fields(runs.read_json(folder.status), where, _STATUS_NUMBERS, _STATUS_STRINGS, _STATUS_INTS)
    if doc.get("state") not in runs.STATES:
        raise RunError(f"{where}: unknown state {doc.get('state')!r}")
    if doc.get("engine") not in ENGINES:
        raise RunError(f"{where}: unknown engine {doc.get('engine')!r}")
    trials = doc.get("trials")
    if not isinstance(trials, list) or not trials or not all(isinstance(t, str) for t in trials):
        raise RunError(f"{where}: 'trials' must be a list of run names")
    return doc


def write_sweep_status(folder: SweepFolder, **fields: Any) -> dict[str, Any]:
    """Update the sweep's status.json with `fields` (atomically)."""
    old = read_sweep_status(folder) if folder.status.exists() else {}
    doc = {**old, **fields, "updated": time.time()}
    runs.atomic_write_json(folder.status, doc)
    return doc


# --- starting --------------------------------------------------------------------------------------
def check_new_sweep(name: str, n_trials: int, root: Path | None = None) -> str:
    """The cleaned sweep name, or RunError when it is unusable, or it or one of its trial names is taken."""
    root = Path(root) if root else runs.runs_root()
    safe = runs.safe_run_name(name)
    if len(safe) > MAX_SWEEP_NAME:
        raise RunError(f"sweep name is too long ({len(safe)} characters; at most {MAX_SWEEP_NAME}, so that "
                       f"its trials' names fit)")
    if (sweeps_dir(root) / safe).exists():
        raise RunError(f"a sweep named {safe!r} already exists; choose another name")
    taken = [trial_name(safe, i) for i in range(n_trials) if (root / trial_name(safe, i)).exists()]
    if taken:
        raise RunError(f"a run named {taken[0]!r} already exists (the sweep's trials are named "
                       f"{trial_name(safe, 0)}, ...); choose another sweep name")
    return safe


def _check_room(n: int, root: Path) -> None:
    active = len(scheduler._active(root)) if root.is_dir() else 0
    if active + n > scheduler.max_queued():
        raise RunError(f"the training queue has room for {max(scheduler.max_queued() - active, 0)} more trainings "
                       f"(at most {scheduler.max_queued()}, MNIST_MAX_QUEUED; {active} waiting or running) and "
                       f"this sweep has {n} trials: wait, or use fewer trials")


def start_sweep(sweep: SweepConfig, name: str, root: Path | None = None, data_dir: str | None = None,
                engine: str | None = None, owner: str | None = None, n_train: int | None = None) -> SweepFolder:
    """Create the sweep and its trials' run folders and start it on `engine` (default:
    `engine_setting()`). Raises RunError (a taken or bad name, a full queue, a trial that does not fit
    the data or the memory) before anything is written."""
    root = Path(root) if root else runs.runs_root()
    engine = engine or engine_setting()
    if engine not in ENGINES:
        raise RunError(f"unknown sweep engine {engine!r} (use {', '.join(ENGINES)})")
    configs = trial_configs(sweep)
    safe = check_new_sweep(name, len(configs), root)
    names = [trial_name(safe, i) for i in range(len(configs))]
    for i, cfg in enumerate(configs):
        try:
            if n_train is not None:
                cfg.check_against_data(n_train)
        except ConfigError as e:
            raise RunError(f"trial {names[i]}: {e}") from None
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise RunError("sweeps on Ray need Ray on this server: pip install 'ray[tune]' (docs/sweeps.md), or "
                       "unset MNIST_RAY_ADDRESS to run the sweep here")
    if engine == "embedded":  # the trials train on this server: its queue and memory must hold them
        _check_room(len(configs), root)
        scheduler.check_memory(max(configs, key=lambda c: scheduler.training_memory(c, n_train).total),
                               n_train)
    folder = SweepFolder(sweeps_dir(root) / safe)
    folder.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.path.mkdir()  # the atomic claim: of two sweeps asking for one name, one gets it
    except FileExistsError:
        raise RunError(f"a sweep named {safe!r} already exists; choose another name") from None
    made: list[Path] = []
    try:
        runs.atomic_write_json(folder.config, sweep.to_dict())
        write_sweep_status(folder, state="queued", engine=engine, trials=names, data_dir=data_dir, owner=owner,
                           created=time.time(), host=socket.gethostname(),
                           **({"address": ray_address()} if engine == "ray" else {}))
        extra = {"engine": "ray"} if engine == "ray" else {}
        for i, (cfg, trial) in enumerate(zip(configs, names, strict=True)):
            made.append(runs.create_run(cfg, trial, root=root, data_dir=data_dir, owner=owner, pid=None,
                                        sweep=safe, trial=i, **extra))
        if engine == "ray":
            _start_driver(folder, names)
    except BaseException:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(folder.path, ignore_errors=True)
        raise
    if engine == "embedded":
        scheduler.dispatch(root)
    return folder


def _start_driver(folder: SweepFolder, names: list[str]) -> None:
    """Start the Ray driver (`python -m mnist_core sweep-driver DIR`) in its own session, name it in
    each trial's status as the process answering for it, and last of all in the sweep's status: the
    driver waits for that before it touches a trial."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "MNIST_RUNS_DIR": str(folder.root)}
    with open(folder.log, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mnist_core", "sweep-driver", str(folder.path)],
                                cwd=scheduler.REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=proc.wait, name=f"reap-{folder.name}", daemon=True).start()
    host = socket.gethostname()
    for name in names:
        runs.set_status(folder.trial(name), "queued", pid=None, supervisor=proc.pid, driver_host=host)
    write_sweep_status(folder, pid=proc.pid, host=host)


def wait_for_handover(folder: SweepFolder, timeout: float = 60.0) -> dict[str, Any]:
    """In the driver: the sweep's status once `start_sweep` has named this process in it."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_sweep_status(folder)
        if status.get("pid") == os.getpid():
            return status
        if time.monotonic() > deadline:
            raise RunError(f"sweep {folder.name} was not handed to this driver (pid {os.getpid()})")
        time.sleep(0.1)


# --- stopping --------------------------------------------------------------------------------------
def stop_sweep(folder: SweepFolder) -> None:
    """Stop the whole sweep: queued trials leave the queue, running ones stop after their batch (their
    model saved), and the Ray driver ends the Tune run."""
    folder.stop.touch()
    for name in read_sweep_status(folder)["trials"]:
        trial = folder.trial(name)
        try:
            if trial.status.exists() and runs.read_status(trial)["state"] in runs.ACTIVE:
                scheduler.cancel(trial)
        except (RunError, OSError):
            continue  # a damaged or deleted trial has nothing to stop


def stop_requested(folder: SweepFolder) -> bool:
    return folder.stop.exists()


# --- ASHA in the embedded engine -------------------------------------------------------------------
def metric_history(run_dir: Path | RunFolder, metric: str) -> list[float]:
    """A run's `metric` after each epoch (NaN where the epoch did not record it)."""
    out = []
    for row in runs.read_history(run_dir):
        v = row.get(metric)
        out.append(float(v) if v is not None else math.nan)
    return out


def should_stop(run_dir: Path | RunFolder, epoch: int, epochs: int, sweep: SweepConfig,
                others: list[RunFolder]) -> str | None:
    """ASHA's decision for a trial that has just finished `epoch` of its `epochs`: the reason to stop
    (`asha_reason`), or None to go on. A trial's last epoch is never cut (it has finished)."""
    if epoch >= epochs or sweep.early_stopping != "asha":
        return None
    mine = metric_history(run_dir, sweep.asha.metric)[:epoch]
    theirs = []
    for other in others:
        try:
            theirs.append(metric_history(other, sweep.asha.metric))
        except (RunError, OSError):
            continue  # a damaged or deleted sibling just does not count
    return asha_reason(epoch) if sweep.should_stop(mine, theirs) else None


def epoch_hook(run_dir: Path | RunFolder, on_epoch: Callable[[dict[str, Any]], Any] | None = None
               ) -> Callable[[dict[str, Any]], str | None] | None:
    """The trainer's `on_epoch` for `run_dir`: `on_epoch` itself, and for a trial of an embedded sweep
    with ASHA also the question "should I stop?" (it returns the reason, which `train` records)."""
    run = runs.folder(run_dir)
    try:
        status = runs.read_status(run)
        folder = sweep_of(run, status)
        if folder is None or status.get("engine") == "ray" or status.get("resume"):
            return on_epoch  # not an embedded trial, or one resumed by hand: it trains to its end
        sweep = load_sweep(folder.config)
        names = read_sweep_status(folder)["trials"]
        epochs = runs.load_config(run).epochs
    except (RunError, ConfigError, OSError):
        return on_epoch  # a damaged sweep record: the trial trains to the end like a plain run
    if sweep.early_stopping != "asha":
        return on_epoch
    others = [folder.trial(n) for n in names if n != run.name]

    def hook(row: dict[str, Any]) -> str | None:
        if on_epoch:
            on_epoch(row)
        return should_stop(run, int(row["epoch"]), epochs, sweep, others)

    return hook


# --- reading ---------------------------------------------------------------------------------------
@dataclass
class SweepInfo:
    """Everything the Sweep page and `sweep --list` show about one sweep, from one read."""

    name: str
    path: Path
    state: str
    engine: str = "embedded"
    config: SweepConfig | None = None
    status: dict[str, Any] = field(default_factory=dict)
    trials: list[RunInfo] = field(default_factory=list)
    settings: list[dict[str, Any]] = field(default_factory=list)  # trial i's searched settings
    error: str | None = None
    created: float = 0.0
    damaged: str | None = None

    @property
    def folder(self) -> SweepFolder:
        return SweepFolder(self.path)

    @property
    def active(self) -> bool:
        return self.state in runs.ACTIVE

    @property
    def metric(self) -> str:
        return self.config.asha.metric if self.config else "val_accuracy"

    @property
    def n_ended(self) -> int:
        return sum(not t.active for t in self.trials)

    def score(self, trial: RunInfo) -> float | None:
        """The trial's last value of the sweep's metric (None before its first epoch)."""
        vals = [float(r[self.metric]) for r in trial.history if r.get(self.metric) is not None
                and not math.isnan(r[self.metric])]
        return vals[-1] if vals else None

    def ranked(self) -> list[tuple[RunInfo, dict[str, Any]]]:
        """(trial, its searched settings), best first by the metric; trials without a value last."""
        sign = -1.0 if METRICS.get(self.metric, "max") == "max" else 1.0
        pairs = list(zip(self.trials, self.settings or [{}] * len(self.trials), strict=False))

        def key(p: tuple[RunInfo, dict[str, Any]]) -> tuple[int, float, str]:
            s = self.score(p[0])
            return (s is None, sign * s if s is not None else 0.0, p[0].name)

        return sorted(pairs, key=key)

    @property
    def best(self) -> RunInfo | None:
        """The best trial with a usable model (a page can load it)."""
        return next((t for t, _ in self.ranked() if t.usable and self.score(t) is not None), None)

    def rows(self) -> list[dict[str, Any]]:
        """One row per trial, best first: outcome and searched settings (the trials table, the CLI)."""
        out = []
        for t, s in self.ranked():
            score = self.score(t)
            out.append({"trial": t.name, "state": f"damaged: {t.damaged}" if t.damaged else t.state,
                        **{k: _show(v) for k, v in s.items()}, "epochs": f"{t.epochs_done}/{t.epochs or '?'}",
                        self.metric: score, "test_accuracy": t.test_accuracy,
                        "note": t.error if t.state != "finished" and t.error else ""})
        return out


def _show(v: Any) -> Any:
    return "-".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def _trial_info(folder: SweepFolder, name: str) -> RunInfo:
    trial = folder.trial(name)
    if not trial.path.is_dir():
        return runs.damaged_info(trial, "the trial's run folder was deleted")
    try:
        return runs.run_info(trial)
    except (RunError, OSError, ValueError, TypeError, KeyError) as e:
        return runs.damaged_info(trial, str(e) or type(e).__name__)


def _driver_gone(status: dict[str, Any], name: str) -> bool:
    pid = status.get("pid")
    return (status.get("engine") == "ray" and pid is not None and status.get("host") == socket.gethostname()
            and not runs.pid_alive(pid, needle=name))


def _state(status: dict[str, Any], trials: list[RunInfo], stopped: bool, name: str) -> tuple[str, str | None]:
    """The sweep's state and error, from its driver's status and its trials."""
    if status.get("state") == "failed":
        return "failed", status.get("error")
    driver_active = status.get("engine") == "ray" and status.get("state") in runs.ACTIVE
    if driver_active and _driver_gone(status, name):
        return "failed", "the sweep's Ray driver ended without finishing (see driver.log)"
    if any(t.active for t in trials) or driver_active:
        started = any(t.state != "queued" for t in trials) or status.get("state") == "running"
        return ("running" if started else "queued"), None
    return ("stopped" if stopped else "finished"), status.get("error")


def read_sweep(folder: SweepFolder | Path) -> SweepInfo:
    """One checked read of a sweep folder and its trials; RunError for a damaged sweep record."""
    folder = folder if isinstance(folder, SweepFolder) else SweepFolder(folder)
    status = read_sweep_status(folder)
    try:
        config = load_sweep(folder.config)
    except ConfigError as e:
        raise RunError(f"sweep.json of {folder.name} is invalid: {e}") from e
    trials = [_trial_info(folder, n) for n in status["trials"]]
    settings = trial_settings(config)
    if len(settings) != len(trials):
        raise RunError(f"sweep {folder.name} lists {len(trials)} trials but its sweep.json gives {len(settings)}")
    state, error = _state(status, trials, stop_requested(folder), folder.name)
    return SweepInfo(name=folder.name, path=folder.path, state=state, engine=status["engine"], config=config,
                     status=status, trials=trials, settings=settings, error=error,
                     created=status.get("created") or folder.path.stat().st_mtime)


def list_sweeps(root: Path | None = None) -> list[SweepInfo]:
    """Every sweep, newest first; one that cannot be read is listed as damaged with the reason."""
    d = sweeps_dir(root)
    out = []
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            out.append(read_sweep(SweepFolder(p)))
        except (RunError, OSError, ValueError, TypeError, KeyError) as e:
            try:
                created = p.stat().st_mtime
            except OSError:
                created = 0.0
            out.append(SweepInfo(name=p.name, path=p, state="failed", error=str(e), damaged=str(e), created=created))
    out.sort(key=lambda s: -s.created)
    return out


