"""Run folders: the contract between the trainer process and everything that reads its results.

A run lives in `<runs root>/<name>/`: `config.json`, `status.json` (queued | running | finished |
stopped | failed), `history.csv` (one row per epoch), `progress.json` (batch-level, overwritten),
`model.keras`, `metrics.json`, and `evaluation/` (cached predictions). The trainer is the only writer of
a run's training files, and every write goes to a temporary name first and is then renamed, so a crash
never leaves a half-written file under a real name. Readers check that a `running` or `queued` run's
process is still alive and report it as `failed` if not, so nothing is stuck "running" forever.
The runs root is `MNIST_RUNS_DIR`, or `models/` beside this package. Training slots (a server-wide limit
on simultaneous trainings) are `flock`ed files in `<root>/.slots/`, released by the OS if a trainer dies.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig

PRETRAINED = "pretrained"
STATES = ("queued", "running", "finished", "stopped", "failed")
HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
STOP_FILE = "stop.request"
IMPORTED_FILE = "imported.json"  # marks a run made by model_import (no config.json)
MAX_NAME = 64


class RunError(ValueError):
    """A problem with a run folder or a run name, explained for the user."""


def runs_root() -> Path:
    root = os.environ.get("MNIST_RUNS_DIR")
    return Path(root).expanduser() if root else Path(__file__).resolve().parent.parent / "models"


# --- names --------------------------------------------------------------------------------------
def safe_run_name(name: str) -> str:
    """A run name that is safe as a single folder name: letters, digits, `-`, `_`, `.`; no path
    separators, no `..`, at most 64 characters. Raises RunError when nothing usable is left."""
    if not isinstance(name, str) or not name.strip():
        raise RunError("run name is empty")
    if len(name) > 200:
        raise RunError(f"run name is too long ({len(name)} characters; at most {MAX_NAME})")
    # A name that looks like a path is refused, not quietly rewritten: "../x" silently becoming "x"
    # would hide a mistake (or an attempt to write outside the runs folder) from the user.
    bad = [s for s in ("/", "\\", "..", "\0") if s in name]
    if bad:
        raise RunError(f"run name {name[:80]!r} contains {' and '.join(repr(s) for s in bad)}: "
                       "a run name is a single folder name (letters, digits, - or _)")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip())
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".-_")
    if not cleaned:
        raise RunError(f"run name {name!r} has no usable characters (use letters, digits, - or _)")
    if len(cleaned) > MAX_NAME:
        raise RunError(f"run name is too long ({len(cleaned)} characters; at most {MAX_NAME})")
    return cleaned


def default_run_name(preset: str) -> str:
    return f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


# --- atomic files -------------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are meant to be shared readers' files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{Path(path).name} in {Path(path).parent.name} is corrupt ({e.msg})") from e


def save_model_atomic(model: Any, run_dir: Path) -> Path:
    """Save a Keras model as `model.keras` through a temporary file and a rename."""
    final = Path(run_dir) / "model.keras"
    tmp = Path(run_dir) / f".model.{os.getpid()}.tmp.keras"  # Keras insists on the .keras suffix
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


# --- creating runs and their status -------------------------------------------------------------
def create_run(config: TrainConfig, name: str, root: Path | None = None, data_dir: str | None = None) -> Path:
    """Make a new run folder holding `config.json` and a `queued` status. Refuses an existing name."""
    root = Path(root) if root else runs_root()
    safe = safe_run_name(name)
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / safe
    try:
        run_dir.mkdir()  # atomic: two requests for one name cannot both succeed
    except FileExistsError:
        raise RunError(f"a run named {safe!r} already exists; choose another name") from None
    try:
        atomic_write_json(run_dir / "config.json", config.to_dict())
        set_status(run_dir, "queued", data_dir=data_dir)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def set_status(run_dir: Path, state: str, **extra: Any) -> dict[str, Any]:
    if state not in STATES:
        raise ValueError(f"unknown state {state}")
    run_dir = Path(run_dir)
    old: dict[str, Any] = {}
    if (run_dir / "status.json").exists():
        try:
            old = read_json(run_dir / "status.json")
        except RunError:
            old = {}
    status = {**old, **extra, "state": state, "updated": time.time(), "host": socket.gethostname()}
    status.setdefault("created", time.time())
    if state in ("queued", "running"):
        status["pid"] = extra.get("pid", os.getpid())
    atomic_write_json(run_dir / "status.json", status)
    return status


def _pid_alive(pid: int, run_dir: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Guard against a recycled pid: on Linux the process must be our trainer for this run.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if "mnist_core" not in text and str(os.getpid()) != str(pid):
            return False
        # A zombie (killed, not yet reaped) is dead for our purposes.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            pass
    return True


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status, with a dead trainer reported as `failed` (the file is left as it is)."""
    run_dir = Path(run_dir)
    p = run_dir / "status.json"
    if not p.exists():
        # A run folder without a status: finished if it has a model (e.g. an imported one).
        return {"state": "finished" if (run_dir / "model.keras").exists() else "failed",
                "error": None if (run_dir / "model.keras").exists() else "status.json is missing"}
    status = read_json(p)
    if status.get("state") in ("queued", "running"):
        pid = status.get("pid")
        same_host = status.get("host") in (None, socket.gethostname())
        if same_host and (not isinstance(pid, int) or not _pid_alive(pid, run_dir)):
            status = {**status, "state": "failed",
                      "error": "the trainer process ended without finishing (killed or crashed)"}
    return status


def request_stop(run_dir: Path) -> None:
    """Ask the trainer to stop after its current batch (it polls for this file)."""
    (Path(run_dir) / STOP_FILE).touch()


def stop_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


# --- history and progress -----------------------------------------------------------------------
def append_history(run_dir: Path, row: dict[str, Any]) -> None:
    """Rewrite history.csv with one more row (atomically; the file is tiny)."""
    rows = read_history(run_dir) + [row]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in HISTORY_FIELDS})
    atomic_write_bytes(Path(run_dir) / "history.csv", buf.getvalue().encode())


def read_history(run_dir: Path) -> list[dict[str, float]]:
    p = Path(run_dir) / "history.csv"
    if not p.exists():
        return []
    rows = []
    for r in csv.DictReader(io.StringIO(p.read_text())):
        rows.append({k: (float(v) if v not in ("", None) else None) for k, v in r.items()})
    for r in rows:
        r["epoch"] = int(r["epoch"])
    return rows


def read_progress(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / "progress.json"
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except (json.JSONDecodeError, OSError):
        return {}  # being replaced right now; the next poll will see it


# --- listing ------------------------------------------------------------------------------------
@dataclass
class RunInfo:
    name: str
    path: Path
    state: str
    preset: str = ""
    params: int | None = None
    epochs: int | None = None
    epochs_done: int = 0
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    train_seconds: float | None = None
    created: float = 0.0
    error: str | None = None
    has_model: bool = False
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def protected(self) -> bool:
        return self.name == PRETRAINED


def load_config(run_dir: Path) -> TrainConfig:
    p = Path(run_dir) / "config.json"
    if not p.exists():
        raise RunError(f"run {Path(run_dir).name} has no config.json")
    try:
        return TrainConfig.from_json(p.read_text())
    except ConfigError as e:
        raise RunError(f"config.json of {Path(run_dir).name} is invalid: {e}") from e


def run_info(run_dir: Path) -> RunInfo:
    """Everything the runs table shows about one run; raises RunError for a broken folder."""
    from .architectures import param_count

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() and (run_dir / IMPORTED_FILE).exists():
        return _imported_info(run_dir)
    cfg = load_config(run_dir)
    status = read_status(run_dir)
    _check_model_file(run_dir, status)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    hist = read_history(run_dir)
    return RunInfo(
        name=run_dir.name, path=run_dir, state=status.get("state", "failed"), preset=cfg.arch.preset,
        # The count saved at training time describes the model actually trained, even if a preset's
        # architecture has been retuned since (the config only names the preset).
        params=int(metrics.get("params") or param_count(cfg.arch)), epochs=cfg.epochs, epochs_done=len(hist),
        val_accuracy=hist[-1].get("val_accuracy") if hist else None,
        test_accuracy=metrics.get("test_accuracy"), train_seconds=metrics.get("train_seconds"),
        created=status.get("created", run_dir.stat().st_mtime), error=status.get("error"),
        has_model=(run_dir / "model.keras").exists(), status=status,
    )


def _check_model_file(run_dir: Path, status: dict[str, Any]) -> None:
    """A finished run must hold a model (a stopped one may not: cancelled while queued); a file that is
    not even a zip archive is corrupt. Cheap (reads the zip's end record only), so the runs table can
    flag it instead of a page failing when it loads the model."""
    model = run_dir / "model.keras"
    if not model.exists():
        if status.get("state") == "finished":
            raise RunError(f"run {run_dir.name} is finished but its model.keras is missing")
        return
    if not zipfile.is_zipfile(model):
        raise RunError(f"model.keras of {run_dir.name} is corrupt (not a Keras zip archive)")


def _imported_info(run_dir: Path) -> RunInfo:
    """An imported model has no training config (see model_import.py): describe it from imported.json."""
    meta = read_json(run_dir / IMPORTED_FILE)
    if not isinstance(meta, dict):
        raise RunError(f"{IMPORTED_FILE} in {run_dir.name} is corrupt (not a JSON object)")
    status = read_status(run_dir)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    has_model = (run_dir / "model.keras").exists()
    if has_model:
        _check_model_file(run_dir, status)
    return RunInfo(
        name=run_dir.name, path=run_dir, state=status.get("state", "failed") if has_model else "failed",
        preset="imported", params=meta.get("params"), epochs=None, epochs_done=0,
        test_accuracy=metrics.get("test_accuracy"), created=status.get("created", run_dir.stat().st_mtime),
        error=status.get("error") if has_model else "model.keras is missing", has_model=has_model,
        status=status,
    )


def list_runs(root: Path | None = None) -> tuple[list[RunInfo], list[tuple[str, str]]]:
    """All runs, newest first, and the (name, problem) of each folder that could not be read."""
    root = Path(root) if root else runs_root()
    runs, broken = [], []
    if not root.is_dir():
        return runs, broken
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            runs.append(run_info(d))
        except (RunError, OSError, ValueError, KeyError) as e:
            broken.append((d.name, str(e)))
    runs.sort(key=lambda r: (r.name != PRETRAINED, -r.created))
    return runs, broken


def delete_run(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    if run_dir.name == PRETRAINED:
        raise RunError("the pretrained model is protected and cannot be deleted")
    if read_status(run_dir).get("state") in ("queued", "running"):
        raise RunError(f"run {run_dir.name} is still {read_status(run_dir)['state']}; stop it first")
    shutil.rmtree(run_dir)


# --- training slots -----------------------------------------------------------------------------
def max_trainings() -> int:
    try:
        return max(1, int(os.environ.get("MNIST_MAX_TRAININGS", "1")))
    except ValueError:
        return 1


def queue_position(run_dir: Path, root: Path | None = None) -> int:
    """0 for the oldest queued run, 1 for the next, ...; -1 if this run is not queued."""
    root = Path(root) if root else Path(run_dir).parent
    queued = []
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_dir() and (d / "status.json").exists():
            try:
                st = read_status(d)
            except RunError:
                continue
            if st.get("state") == "queued":
                queued.append((st.get("created", 0), d.name))
    queued.sort()
    names = [n for _, n in queued]
    return names.index(Path(run_dir).name) if Path(run_dir).name in names else -1


@contextmanager
def training_slot(run_dir: Path, poll_s: float = 0.5, on_wait: Any = None) -> Iterator[int]:
    """Hold one of `max_trainings()` slots for the duration; wait in FIFO order for one.
    The slot is an flock, so the OS frees it even if the process is killed."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process limit, train at once
        yield 0
        return
    slots = Path(run_dir).parent / ".slots"
    slots.mkdir(exist_ok=True)
    while True:
        if stop_requested(run_dir):
            raise KeyboardInterrupt("stopped while queued")
        n = max_trainings()
        pos = queue_position(run_dir)
        if pos < n:
            for i in range(n):
                f = open(slots / f"slot{i}.lock", "w")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                    continue
                try:
                    yield i
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
                    f.close()
                return
        if on_wait:
            on_wait(pos)
        time.sleep(poll_s)
