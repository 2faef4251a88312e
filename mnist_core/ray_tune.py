"""The Ray engine of sweeps: `python -m mnist_core sweep-driver DIR` runs a sweep's trials on Ray Tune.

The driver is its own process (sweeps.start_sweep starts it; never the Streamlit server) and the app
only reads the folders it and its trials write. Each Tune trial is one of the sweep's trial run
folders, the same list on every engine (`sweep.trial_configs`; Tune's search space is just the trial
index), trained by `training.train` in a thread of a class-based Trainable, `TrialRun`. A class, not a
function: when Tune stops a function trainable (ASHA, or its last epoch) the next `tune.report`
raises SystemExit in the training thread and the actor exits at once, so the run folder never gets
its model, metrics or final status. Here `step()` returns one epoch's metrics; at each epoch end the
training thread waits for Tune's decision (`step` called again: go on; `cleanup` called: stop), and
`cleanup` lets the training end properly (model saved and evaluated, status `stopped` with the reason
"early-stopped by ASHA at epoch N") before the actor goes. ASHA is Ray's own `ASHAScheduler` with the
settings that make it decide as `sweep.asha_should_stop` does. A stop of the whole sweep is a file
(`FileStopper`: it must pickle, and any process can create a file); trials Tune never started are
marked by the driver at the end, as are trials whose worker died (from Tune's error for them).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # a trial cancelled before it trained reports none

from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402

from . import ray_engine, runs, sweeps  # noqa: E402
from .config import ConfigError  # noqa: E402
from .data import DataError, Dataset, load_mnist  # noqa: E402
from .sweep import SweepConfig, load_sweep  # noqa: E402

REPORTED = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
_END = object()


class TrialRun(tune.Trainable):
    """One trial = one run folder, trained by `training.train` in a thread of this actor."""

    def setup(self, config: dict[str, Any], data: Dataset | None = None, run_dirs: list[str] | None = None,
              sweep_stop: str = "") -> None:
        assert run_dirs is not None
        self.run = runs.folder(run_dirs[config["trial"]])
        self.cfg = runs.load_config(self.run)
        self.sweep_stop = sweep_stop
        self.rows: queue.Queue = queue.Queue()  # training thread -> step(): epoch rows, then _END or an error
        self.go: queue.Queue = queue.Queue()  # step()/cleanup() -> training thread: None (go on) or a reason
        self.waiting_after: int | None = None  # the epoch after which the thread waits for Tune's decision
        self.reported = 0
        self.thread: threading.Thread | None = None
        if runs.stop_requested(self.run) or runs.read_status(self.run)["state"] != "queued":
            return  # cancelled while Tune was still placing it (scheduler.cancel has recorded that)
        self.thread = threading.Thread(target=self._train, args=(data,), name="trial-training", daemon=True)
        self.thread.start()

    def _train(self, data: Dataset) -> None:
        from .training import train

        try:
            train(self.cfg, self.run.path, data, on_epoch=self._at_epoch_end)
            self.rows.put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to step(), which raises it for Tune
            self.rows.put(e)

    def _at_epoch_end(self, row: dict[str, Any]) -> str | None:
        """In the training thread, after each epoch's history row is written: hand the row to Tune and
        wait for its decision (the last epoch, or one cut short by a Stop, needs none)."""
        self.rows.put(row)
        if int(row["epoch"]) >= self.cfg.epochs or runs.stop_requested(self.run):
            return None
        self.waiting_after = int(row["epoch"])
        try:
            return self.go.get()
        finally:
            self.waiting_after = None

    def step(self) -> dict[str, Any]:
        if self.thread is None:
            return {"done": True}
        if self.reported:
            self.go.put(None)  # Tune called step again: it decided to go on
        item = self.rows.get()
        if isinstance(item, BaseException):
            raise item
        if item is _END:  # the run stopped by itself (its Stop) before its last epoch
            return {"done": True}
        self.reported += 1
        metrics = {k: item[k] for k in REPORTED if item.get(k) is not None}
        return {**metrics, "done": int(item["epoch"]) >= self.cfg.epochs}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        return None  # the run folder is the record (checkpoint.keras, model.keras); Tune keeps none

    def load_checkpoint(self, checkpoint: Any) -> None:
        pass

    def cleanup(self) -> None:
        """Tune is done with this trial (finished, ASHA, the sweep's stop, an error): let the training
        end here, so its run folder gets its model, metrics and final status."""
        if self.thread is None or not self.thread.is_alive():
            return
        at = self.waiting_after
        if at is not None and not os.path.exists(self.sweep_stop):
            self.go.put(sweeps.asha_reason(at))  # stopped at an epoch boundary while the sweep goes on: ASHA
        else:
            runs.request_stop(self.run)  # mid-epoch: after the batch in progress
            self.go.put(sweeps.SWEEP_STOPPED)
        self.thread.join()


class FileStopper(tune.Stopper):
    """Ends the whole sweep once `path` exists (a file: Tune pickles its stopper, and the app or the
    CLI, in other processes, create it through sweeps.stop_sweep)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return os.path.exists(self.path)


def _dataset(data_dir: str | None, sweep: SweepConfig, root: Path) -> Dataset:
    """The data every trial trains on, loaded once here and shipped to the workers by Ray."""
    ds = load_mnist(data_dir)
    how = getattr(sweep.base, "data", "mnist")
    if how != "mnist":  # the class's own drawings (classset.py), as the trainer process does
        from .classset import training_data

        ds = training_data(ds, how, root)
    return ds


def _tuner(folder: sweeps.SweepFolder, sweep: SweepConfig, names: list[str], data: Dataset) -> Any:
    asha = sweep.scheduler_settings()
    scheduler = ASHAScheduler(**{k: v for k, v in asha.items() if k not in ("metric", "mode")}) if asha \
        else FIFOScheduler()
    trainable = tune.with_parameters(TrialRun, data=data, run_dirs=[str(folder.trial(n).path) for n in names],
                                     sweep_stop=str(folder.stop))
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(list(range(len(names))))},
        tune_config=tune.TuneConfig(metric=sweep.asha.metric, mode=sweep.asha.mode, scheduler=scheduler,
                                    max_concurrent_trials=sweep.max_concurrent,
                                    trial_dirname_creator=lambda t: names[t.config["trial"]]),
        run_config=tune.RunConfig(name=folder.name, storage_path=str(folder.tune), verbose=0,
                                  stop=FileStopper(str(folder.stop)),
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )


def _finish_trials(folder: sweeps.SweepFolder, names: list[str], errors: dict[str, str], why: str | None) -> None:
    """Record an end for every trial Tune left without one: never started, or lost with its worker."""
    for name in names:
        trial = folder.trial(name)
        try:
            state = runs.read_json(trial.status).get("state")
        except (runs.RunError, OSError):
            continue
        if state not in runs.ACTIVE:
            continue
        if state == "queued" and (sweeps.stop_requested(folder) or runs.stop_requested(trial)):
            runs.set_status(trial, "stopped", error=sweeps.CANCELLED, pid=None, finished=time.time())
        else:
            runs.set_status(trial, "failed", pid=None, finished=time.time(),
                            error=errors.get(name) or why or "the trial ended on Ray without recording how")


def drive(sweep_dir: Path) -> int:
    """The driver's main: run the sweep on Ray Tune, then record how it ended. Returns an exit code."""
    folder = sweeps.SweepFolder(Path(sweep_dir).resolve())
    try:
        status = sweeps.wait_for_handover(folder)
        sweep = load_sweep(folder.config)
    except (runs.RunError, ConfigError, OSError) as e:
        print(f"error: {e}", flush=True)
        return 2
    names = status["trials"]
    sweeps.write_sweep_status(folder, state="running", started=time.time())
    ray = None
    try:
        address = status.get("address") or ray_engine.ray_address() or ray_engine.LOCAL
        ray = ray_engine.connect(address, folder.root)
        ray_engine.check_shared_storage(folder.root)
        data = _dataset(status.get("data_dir"), sweep, folder.root)
        print(f"sweep {folder.name}: {len(names)} trials on Ray at {address}", flush=True)
        grid = _tuner(folder, sweep, names, data).fit()
        errors = {Path(r.path).name: ray_engine.describe_failure(r.error) for r in grid if r.error is not None}
    except (ray_engine.EngineError, DataError, runs.RunError, OSError) as e:
        _finish_trials(folder, names, {}, str(e))
        sweeps.write_sweep_status(folder, state="failed", error=str(e), finished=time.time())
        print(f"error: {e}", flush=True)
        return 1
    except BaseException as e:
        why = f"the sweep driver failed: {type(e).__name__}: {e}"
        _finish_trials(folder, names, {}, why)
        sweeps.write_sweep_status(folder, state="failed", error=why, finished=time.time())
        raise
    finally:
        if ray is not None:
            ray.shutdown()
    _finish_trials(folder, names, errors, None)
    stopped = sweeps.stop_requested(folder)
    summary = f"{len(errors)} of {len(names)} trials failed on Ray" if errors else None
    sweeps.write_sweep_status(folder, state="stopped" if stopped else "finished", finished=time.time(),
                              error=summary)
    print(f"sweep {folder.name} {'stopped' if stopped else 'finished'}" + (f": {summary}" if summary else ""),
          flush=True)
    return 0
