"""Run folders: the contract between the trainer process and everything that reads its results.

A run lives in `<runs root>/<name>/`; `RunFolder` is the one place that names its files (`config.json`,
`status.json` queued | running | finished | stopped | failed, `history.csv` one row per epoch,
`progress.json` batch progress (overwritten), `batches.csv` the per-batch curve, `model.keras`,
`metrics.json`, `evaluation/` cached predictions, `checkpoint.keras` the last epoch's state for a resume,
`tensorboard/` event files, `export/` exported models, `trainer.log`) and that stamps a model's version for
every cache. The trainer is the only writer of a run's training files, and every write goes to a
temporary name first and is then renamed, so a crash never leaves a half-written file under a real
name. Every file is read through one schema-checking reader: a file that does not hold what it should
raises `RunError` naming the file and the field, so a damaged run is listed as damaged (with the
reason) and never breaks a page. Readers check that a `running` run's process is still alive and
report it as `failed` if not, so nothing is stuck "running" forever. The runs root is
`MNIST_RUNS_DIR`, or `models/` beside this package. Training slots and the queue live in
`scheduler.py`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig

PRETRAINED = "pretrained"
BUNDLED_ROOT = Path(__file__).resolve().parent.parent / "models"  # where `pretrained` ships
STATES = ("queued", "running", "finished", "stopped", "failed")
ACTIVE = ("queued", "running")
HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
BATCH_FIELDS = ("epoch", "batch", "x", "loss", "accuracy")
MAX_NAME = 64


class RunError(ValueError):
    """A problem with a run folder or a run name, explained for the user."""


def runs_root() -> Path:
    root = os.environ.get("MNIST_RUNS_DIR")
    return Path(root).expanduser() if root else BUNDLED_ROOT


# --- the folder's layout --------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder. Nothing outside this class spells a run file's name."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / "config.json")
    status = property(lambda self: self.path / "status.json")
    history = property(lambda self: self.path / "history.csv")
    progress = property(lambda self: self.path / "progress.json")
    batches = property(lambda self: self.path / "batches.csv")
    model = property(lambda self: self.path / "model.keras")
    metrics = property(lambda self: self.path / "metrics.json")
    evaluation = property(lambda self: self.path / "evaluation")
    stop = property(lambda self: self.path / "stop.request")
    imported = property(lambda self: self.path / "imported.json")  # marks a run made by model_import
    log = property(lambda self: self.path / "trainer.log")
    checkpoint = property(lambda self: self.path / "checkpoint.keras")  # see checkpoints.py
    tensorboard = property(lambda self: self.path / "tensorboard")  # event files for TensorBoard
    export = property(lambda self: self.path / "export")  # LiteRT / ONNX / SavedModel exports (export.py)

    def model_stamp(self) -> int:
        """The model file's version for caches (its mtime in ns); 0 when there is no model. A model
        replaced under the same name (retrained, re-imported) gets a new stamp."""
        try:
            return self.model.stat().st_mtime_ns
        except OSError:
            return 0


def folder(run: Path | RunFolder | str) -> RunFolder:
    return run if isinstance(run, RunFolder) else RunFolder(Path(run))


# --- names --------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _clean(text: str) -> str:
    """Letters, digits, `.`, `-`, `_` only; no leading/trailing punctuation; no `..`."""
    cleaned = _UNSAFE.sub("-", text.strip())
    return re.sub(r"\.{2,}", ".", cleaned).strip(".-_")


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
    cleaned = _clean(name)
    if not cleaned:
        raise RunError(f"run name {name!r} has no usable characters (use letters, digits, - or _)")
    if len(cleaned) > MAX_NAME:
        raise RunError(f"run name is too long ({len(cleaned)} characters; at most {MAX_NAME})")
    return cleaned


def suggest_name(text: str, fallback: str = "run") -> str:
    """A usable run name made from any text (a file name, a label): never raises."""
    return _clean(text.replace("/", "-").replace("\\", "-"))[:MAX_NAME].strip(".-_") or fallback


def default_run_name(preset: str, root: Path | None = None) -> str:
    """A short, readable name for a new run of `preset`: `classic-3`, with the first number whose folder
    does not exist in the runs folder yet. The Train form and the CLI both propose it; the atomic claim
    of the folder (`claim_folder`) is what decides if two ask at once."""
    root = Path(root) if root else runs_root()
    base = suggest_name(preset)[: MAX_NAME - 6]
    n = 1
    while (root / f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def check_new_name(name: str, root: Path | None = None) -> str:
    """The cleaned name, or RunError if it is unusable or already taken (a quick check for forms; the
    atomic claim in `claim_folder` is what really decides)."""
    safe = safe_run_name(name)
    if ((Path(root) if root else runs_root()) / safe).exists():
        raise RunError(f"a run named {safe!r} already exists; choose another name")
    return safe


def claim_folder(name: str, root: Path | None = None) -> RunFolder:
    """Create the run folder `root/name` atomically: of two requests for one name, exactly one gets it."""
    root = Path(root) if root else runs_root()
    safe = safe_run_name(name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        (root / safe).mkdir()
    except FileExistsError:
        raise RunError(f"a run named {safe!r} already exists; choose another name") from None
    return RunFolder(root / safe)


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
    except UnicodeDecodeError as e:
        raise RunError(f"{Path(path).name} in {Path(path).parent.name} is corrupt (not text)") from e


def save_keras_atomic(model: Any, dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Save a Keras model as `dest` through a temporary file and a rename; `extra` adds members to
    the archive (Keras ignores them), so one file carries the model and what belongs with it."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.stem}.{os.getpid()}.tmp.keras"  # Keras insists on the .keras suffix
    try:
        model.save(tmp)
        if extra:
            with zipfile.ZipFile(tmp, "a") as z:
                for name, data in extra.items():
                    z.writestr(name, data)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def save_model_atomic(model: Any, run_dir: Path | RunFolder) -> Path:
    """Save a Keras model as the run's `model.keras` (atomically)."""
    return save_keras_atomic(model, folder(run_dir).model)


# --- the schema-checking reader -----------------------------------------------------------------
def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_fields(doc: Any, where: str, numbers: tuple[str, ...] = (), strings: tuple[str, ...] = (),
                  ints: tuple[str, ...] = ()) -> dict[str, Any]:
    """`doc` must be a JSON object whose listed fields, when present and not null, have their type."""
    if not isinstance(doc, dict):
        raise RunError(f"{where} does not hold a JSON object (found {type(doc).__name__})")
    for k in numbers:
        if doc.get(k) is not None and not _is_num(doc[k]):
            raise RunError(f"{where}: {k!r} must be a number (found {doc[k]!r:.40})")
    for k in ints:
        if doc.get(k) is not None and not (isinstance(doc[k], int) and not isinstance(doc[k], bool)):
            raise RunError(f"{where}: {k!r} must be a whole number (found {doc[k]!r:.40})")
    for k in strings:
        if doc.get(k) is not None and not isinstance(doc[k], str):
            raise RunError(f"{where}: {k!r} must be text (found {doc[k]!r:.40})")
    return doc


_STATUS_NUMBERS = ("created", "created_queue", "updated", "started", "finished", "exit_code")
_STATUS_INTS = ("pid", "supervisor", "trial")
_STATUS_STRINGS = ("state", "error", "host", "owner", "data_dir", "parent", "engine", "driver_host", "sweep")
METRIC_NUMBERS = ("test_accuracy", "test_loss", "train_seconds", "eval_seconds", "images_per_s",
                  "epochs_done", "n_train", "n_val", "n_test", "params", "mistakes", "devices")


def _status_doc(run: RunFolder) -> dict[str, Any]:
    doc = check_fields(read_json(run.status), f"status.json of {run.name}", _STATUS_NUMBERS,
                        _STATUS_STRINGS, _STATUS_INTS)
    if doc.get("state") not in STATES:
        raise RunError(f"status.json of {run.name}: unknown state {doc.get('state')!r}")
    return doc


def read_metrics(run_dir: Path | RunFolder) -> dict[str, Any]:
    """metrics.json checked ({} when there is none yet)."""
    run = folder(run_dir)
    if not run.metrics.exists():
        return {}
    return check_fields(read_json(run.metrics), f"metrics.json of {run.name}", METRIC_NUMBERS,
                         ("data_source", "data"))


def _float_or_none(v: str | None, where: str) -> float | None:
    if v in ("", None):
        return None
    try:
        return float(v)
    except ValueError:
        raise RunError(f"{where}: {v[:40]!r} is not a number") from None


def _read_rows(path: Path, fields: tuple[str, ...], where: str, ints: tuple[str, ...]) -> list[dict]:
    """CSV rows as numbers; the last line may be cut short by a writer appending right now."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise RunError(f"{where} is corrupt (not text)") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # an append in progress
    rows = []
    for i, r in enumerate(csv.DictReader(io.StringIO("".join(lines)))):
        row = {k: _float_or_none(r.get(k), f"{where}, row {i + 1}, {k}") for k in fields if k in r}
        for k in ints:
            if row.get(k) is None or row[k] != int(row[k]):
                raise RunError(f"{where}, row {i + 1}: {k!r} must be a whole number")
            row[k] = int(row[k])
        rows.append(row)
    return rows


# --- creating runs and their status -------------------------------------------------------------
def create_run(config: TrainConfig, name: str, root: Path | None = None, data_dir: str | None = None,
               **status: Any) -> Path:
    """Claim a new run folder and write `config.json` and a `queued` status. Refuses an existing name.
    `status` adds fields to the first status (owner, parent, pid of a waiting process...)."""
    run = claim_folder(name, root)
    try:
        atomic_write_json(run.config, config.to_dict())
        set_status(run, "queued", data_dir=data_dir, **status)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run.path


def set_status(run_dir: Path | RunFolder, state: str, **extra: Any) -> dict[str, Any]:
    """Write the run's status: the old fields, updated with `extra`. `pid` is the process responsible
    for the run now: by default the caller for an active state; pass `pid=None` for a queued record
    that waits to be started (see scheduler.py) and for an ended run."""
    if state not in STATES:
        raise ValueError(f"unknown state {state}")
    run = folder(run_dir)
    old: dict[str, Any] = {}
    if run.status.exists():
        try:
            old = _status_doc(run)
        except RunError:
            old = {}
    status = {**old, **extra, "state": state, "updated": time.time(), "host": socket.gethostname()}
    status.setdefault("created", time.time())
    if state in ACTIVE and "pid" not in extra:
        status["pid"] = os.getpid()
    atomic_write_json(run.status, status)
    return status


def pid_alive(pid: int, needle: str = "mnist_core") -> bool:
    """True while `pid` is a live mnist_core process of this machine (not a zombie, not a recycled pid:
    its command line must contain `needle`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    # Guard against a recycled pid: on Linux the process must be one of ours.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if (needle not in text or "mnist_core" not in text) and str(os.getpid()) != str(pid):
            return False
        # A zombie (killed, not yet reaped) is dead for our purposes.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            pass
    return True


def log_tail(run_dir: Path | RunFolder, n_chars: int = 2500) -> str:
    try:
        return folder(run_dir).log.read_text(errors="replace")[-n_chars:].strip()
    except OSError:
        return ""


def last_error_line(run_dir: Path | RunFolder) -> str | None:
    """The last line of the trainer's log that names an error (a dead trainer's likely reason)."""
    for line in reversed(log_tail(run_dir, 4000).splitlines()):
        if re.match(r"^(error:|[A-Za-z_.]*(Error|Exception)\b)", line.strip()):
            return line.strip()[:300]
    return None


def read_status(run_dir: Path | RunFolder) -> dict[str, Any]:
    """The run's status, checked; a run whose responsible process died is reported `failed` with the
    likeliest reason (the file is left as it is). A queued record with no process is just waiting."""
    run = folder(run_dir)
    if not run.status.exists():
        # A run folder without a status: finished if it has a model (e.g. an imported one).
        has = run.model.exists()
        return {"state": "finished" if has else "failed", "error": None if has else "status.json is missing"}
    status = _status_doc(run)
    if status["state"] in ACTIVE:
        pid = status.get("pid")
        same_host = status.get("host") in (None, socket.gethostname())
        lost = pid is None and status["state"] == "running"
        dead = lost or (pid is not None and not pid_alive(pid))
        # A trainer that just died under a live supervisor is still in hand: the supervisor is about to
        # record how it ended (a better reason than ours).
        sup = status.get("supervisor")
        if dead and sup is not None and sup != pid and pid_alive(sup, needle=run.name):
            dead = False
        if same_host and status.get("engine") != "ray" and dead:
            why = last_error_line(run)
            status = {**status, "state": "failed",
                      "error": "the trainer process ended without finishing (killed or crashed)"
                               + (f": {why}" if why else "")}
        elif status.get("engine") == "ray" and _ray_driver_gone(status, run.name):
            status = {**status, "state": "failed",
                      "error": "the Ray driver answering for this run ended without recording how it ended"}
    return status


def _ray_driver_gone(status: dict[str, Any], name: str) -> bool:
    """A Ray run's trainer is on a worker (maybe another host: its pid means nothing here); the driver
    that answers for it (its supervisor, or its sweep's driver: `supervisor`) runs on `driver_host`.
    Gone when that is this host and the process has died (ray_engine.py)."""
    sup = status.get("supervisor")
    return (sup is not None and status.get("driver_host") == socket.gethostname()
            and not pid_alive(sup, needle=status.get("sweep") or name))


def request_stop(run_dir: Path | RunFolder) -> None:
    """Ask the trainer to stop after its current batch (it polls for this file); a queued run leaves
    the queue."""
    folder(run_dir).stop.touch()


def stop_requested(run_dir: Path | RunFolder) -> bool:
    return folder(run_dir).stop.exists()


# --- history, batches and progress --------------------------------------------------------------
def _csv(rows: list[dict[str, Any]], fields: tuple[str, ...], header: bool = True) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in fields})
    return buf.getvalue().encode()


def append_history(run_dir: Path | RunFolder, row: dict[str, Any]) -> None:
    """Rewrite history.csv with one more row (atomically; the file is tiny)."""
    run = folder(run_dir)
    atomic_write_bytes(run.history, _csv(read_history(run) + [row], HISTORY_FIELDS))


def read_history(run_dir: Path | RunFolder) -> list[dict[str, Any]]:
    run = folder(run_dir)
    return _read_rows(run.history, HISTORY_FIELDS, f"history.csv of {run.name}", ints=("epoch",))


def truncate_curves(run_dir: Path | RunFolder, epochs: int) -> None:
    """Keep only the first `epochs` epochs of history.csv and batches.csv (a resumed run drops what
    the interrupted epoch had written), each rewritten atomically."""
    run = folder(run_dir)
    atomic_write_bytes(run.history, _csv([r for r in read_history(run) if r["epoch"] <= epochs], HISTORY_FIELDS))
    atomic_write_bytes(run.batches, _csv([r for r in read_batches(run) if r["epoch"] <= epochs], BATCH_FIELDS))


def append_batches(run_dir: Path | RunFolder, rows: list[dict[str, Any]]) -> None:
    """Append per-batch points to batches.csv. One small write with O_APPEND per call: a reader sees
    whole lines, or a last line cut short that it skips (see `_read_rows`)."""
    run = folder(run_dir)
    data = _csv(rows, BATCH_FIELDS, header=not run.batches.exists())
    fd = os.open(run.batches, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_batches(run_dir: Path | RunFolder) -> list[dict[str, Any]]:
    run = folder(run_dir)
    return _read_rows(run.batches, BATCH_FIELDS, f"batches.csv of {run.name}", ints=("epoch", "batch"))


def read_progress(run_dir: Path | RunFolder) -> dict[str, Any]:
    run = folder(run_dir)
    try:
        doc = json.loads(run.progress.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}  # not written yet, or being replaced right now: the next poll will see it
    try:
        return check_fields(doc, f"progress.json of {run.name}",
                             ("loss", "accuracy", "elapsed_s", "updated"), ints=("epoch", "epochs", "batch",
                                                                                "batches_per_epoch"))
    except RunError:
        return {}


def load_config(run_dir: Path | RunFolder) -> TrainConfig:
    run = folder(run_dir)
    if not run.config.exists():
        raise RunError(f"run {run.name} has no config.json")
    try:
        return TrainConfig.from_json(run.config.read_text())
    except ConfigError as e:
        raise RunError(f"config.json of {run.name} is invalid: {e}") from e
    except (TypeError, UnicodeDecodeError) as e:
        raise RunError(f"config.json of {run.name} is invalid: {e}") from e


# --- one read of a run ----------------------------------------------------------------------------
@dataclass
class RunInfo:
    """Everything the pages show about one run, from one checked read of its folder."""

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
    config: TrainConfig | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    damaged: str | None = None  # why the folder could not be read; the other fields are then defaults

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def protected(self) -> bool:
        return self.name == PRETRAINED

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def owner(self) -> str | None:
        return self.status.get("owner")

    @property
    def usable(self) -> bool:
        """A saved model a page can load: finished, stopped, or failed after its model was saved."""
        return self.has_model and self.damaged is None and self.state in ("finished", "stopped", "failed")

    @property
    def data_source(self) -> str | None:
        return self.metrics.get("data_source")


# The settings that tell runs apart, as columns (the runs table, its CSV, comparisons).
CONFIG_COLUMNS = ("epochs", "batch_size", "optimizer", "learning_rate", "lr_schedule", "validation_split",
                  "augment", "early_stopping", "limit", "seed", "init_from", "data")


def summary_row(info: RunInfo) -> dict[str, Any]:
    """One flat row per run: its outcome and the settings it was trained with (for a CSV or a table)."""
    row: dict[str, Any] = {
        "name": info.name, "status": f"damaged: {info.damaged}" if info.damaged else info.state,
        "owner": info.owner or "", "preset": info.preset, "params": info.params, "epochs_done": info.epochs_done,
        "val_accuracy": info.val_accuracy, "test_accuracy": info.test_accuracy,
        "train_seconds": info.train_seconds, "data_source": info.data_source or "",
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created)) if info.created else "",
    }
    cfg = info.config
    for k in CONFIG_COLUMNS:
        row[k] = getattr(cfg, k) if cfg is not None else None
    return row


def summary_csv(infos: list[RunInfo]) -> str:
    """Every run's summary row as CSV text."""
    rows = [summary_row(r) for r in infos]
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _check_model_file(run: RunFolder, status: dict[str, Any]) -> None:
    """A finished run must hold a model (a stopped one may not: cancelled while queued); a file that is
    not even a zip archive is corrupt. Cheap (reads the zip's end record only), so the runs table can
    flag it instead of a page failing when it loads the model."""
    if not run.model.exists():
        if status.get("state") == "finished":
            raise RunError(f"run {run.name} is finished but its model.keras is missing")
        return
    if not zipfile.is_zipfile(run.model):
        raise RunError(f"model.keras of {run.name} is corrupt (not a Keras zip archive)")


def run_info(run_dir: Path | RunFolder) -> RunInfo:
    """One checked read of a run folder; raises RunError (naming the file) for a damaged one."""
    from .architectures import param_count

    run = folder(run_dir)
    if not run.config.exists() and run.imported.exists():
        return _imported_info(run)
    cfg = load_config(run)
    status = read_status(run)
    _check_model_file(run, status)
    metrics = read_metrics(run)
    hist = read_history(run)
    return RunInfo(
        name=run.name, path=run.path, state=status["state"], preset=cfg.arch.preset,
        params=param_count(cfg.arch), epochs=cfg.epochs, epochs_done=len(hist),
        val_accuracy=hist[-1].get("val_accuracy") if hist else None,
        test_accuracy=metrics.get("test_accuracy"), train_seconds=metrics.get("train_seconds"),
        created=status.get("created") or run.path.stat().st_mtime, error=status.get("error"),
        has_model=run.model.exists(), status=status, config=cfg, history=hist, metrics=metrics,
    )


def _imported_info(run: RunFolder) -> RunInfo:
    """An imported model has no training config (see model_import.py): describe it from imported.json."""
    meta = check_fields(read_json(run.imported), f"{run.imported.name} of {run.name}", ("params",))
    status = read_status(run)
    metrics = read_metrics(run)
    has_model = run.model.exists()
    if has_model:
        _check_model_file(run, status)
    return RunInfo(
        name=run.name, path=run.path, state=status["state"] if has_model else "failed",
        preset="imported", params=meta.get("params"), epochs=None, epochs_done=0,
        test_accuracy=metrics.get("test_accuracy"), created=status.get("created") or run.path.stat().st_mtime,
        error=status.get("error") if has_model else "model.keras is missing", has_model=has_model,
        status=status, metrics=metrics,
    )


def damaged_info(run_dir: Path | RunFolder, reason: str) -> RunInfo:
    """A run folder that could not be read, listed with its reason (and its owner, if readable)."""
    run = folder(run_dir)
    status: dict[str, Any] = {}
    try:
        doc = json.loads(run.status.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("owner"), str):
            status = {"owner": doc["owner"]}
    except (OSError, ValueError):
        pass
    try:
        created = run.path.stat().st_mtime
    except OSError:
        created = 0.0
    return RunInfo(name=run.name, path=run.path, state="failed", error=reason, damaged=reason,
                   created=created, status=status)


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run, newest first (pretrained first of all); a folder that cannot be read is included as
    damaged (`RunInfo.damaged` says why) instead of breaking the listing."""
    root = Path(root) if root else runs_root()
    out: list[RunInfo] = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            out.append(run_info(d))
        except (RunError, OSError, ValueError, TypeError, KeyError) as e:
            out.append(damaged_info(d, str(e) or type(e).__name__))
    out.sort(key=lambda r: (r.name != PRETRAINED, -r.created))
    return out


def rename_run(run_dir: Path | RunFolder, new_name: str) -> Path:
    """Give an ended run a new name (its folder is renamed; the trainer of an active run writes to it)."""
    run = folder(run_dir)
    if run.name == PRETRAINED:
        raise RunError("the pretrained model is protected and cannot be renamed")
    safe = check_new_name(new_name, run.path.parent)
    try:
        state = read_status(run).get("state")
    except RunError:
        state = None
    if state in ACTIVE:
        raise RunError(f"run {run.name} is still {state}; it can be renamed once it has ended")
    dest = run.path.parent / safe
    os.rename(run.path, dest)  # atomic; the name was checked free a moment ago (check_new_name)
    return dest


def bundled_pretrained() -> Path | None:
    """The pretrained model that ships with the app, if this checkout has it."""
    d = BUNDLED_ROOT / PRETRAINED
    return d if RunFolder(d).model.is_file() else None


def install_pretrained(root: Path | None = None) -> Path:
    """Copy the bundled pretrained model into a runs folder that lacks it (a custom MNIST_RUNS_DIR
    starts empty); atomic: a copy under a hidden name, then renamed."""
    root = Path(root) if root else runs_root()
    src = bundled_pretrained()
    if src is None:
        raise RunError("this copy of the app has no bundled pretrained model (models/pretrained)")
    dest = root / PRETRAINED
    if dest.exists():
        raise RunError(f"{dest} already exists")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{PRETRAINED}.{os.getpid()}.tmp"
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("evaluation", "export", "tensorboard", ".*"))
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def delete_run(run_dir: Path | RunFolder) -> None:
    run = folder(run_dir)
    if run.name == PRETRAINED:
        raise RunError("the pretrained model is protected and cannot be deleted")
    try:
        state = read_status(run).get("state")
    except RunError:
        state = None  # a damaged status must not make a run undeletable
    if state in ACTIVE:
        raise RunError(f"run {run.name} is still {state}; stop it first")
    shutil.rmtree(run.path)
