"""End-of-epoch checkpoints: everything needed to resume a run exactly where it stopped.

A checkpoint is one file, `checkpoint.keras` in the run folder: the Keras model with its optimizer
state (Adam's moments and step count), plus a small `mnist_studio_checkpoint.json` member added to the
same zip archive holding the epoch it ends, the optimisation step, and the state of every random seed
generator in the model (Keras does not restore a Dropout layer's generator when it loads a model, and
without it the resumed run would draw different dropout masks). One file, written to a temporary name
and renamed, so a crash leaves the previous checkpoint or the new one, never a model from one epoch with
the state of another. Together with the trainer's epoch-indexed input pipeline (`training.make_pipeline`)
this makes a resumed run bit-for-bit the uninterrupted one (tested), where op determinism holds.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runs

STATE_MEMBER = "mnist_studio_checkpoint.json"


@dataclass(frozen=True)
class CheckpointState:
    epoch: int  # epochs completed
    step: int  # optimisation steps done
    seeds: dict[str, list[int]]  # layer name -> its seed generator's state
    saved: float


def _seed_layers(model: Any) -> dict[str, Any]:
    return {lyr.name: lyr.seed_generator for lyr in model.layers if getattr(lyr, "seed_generator", None) is not None}


def save(model: Any, run_dir: Path | runs.RunFolder, epoch: int, step: int) -> Path:
    """Write the checkpoint after `epoch` epochs (atomically)."""
    run = runs.folder(run_dir)
    state = {"epoch": int(epoch), "step": int(step), "saved": time.time(),
             "seeds": {n: [int(v) for v in g.state.numpy()] for n, g in _seed_layers(model).items()}}
    runs.save_keras_atomic(model, run.checkpoint, extra={STATE_MEMBER: json.dumps(state).encode()})
    return run.checkpoint


def read_state(run_dir: Path | runs.RunFolder) -> CheckpointState | None:
    """The checkpoint's epoch and step without loading the model (None when there is no usable one)."""
    run = runs.folder(run_dir)
    try:
        with zipfile.ZipFile(run.checkpoint) as z:
            d = json.loads(z.read(STATE_MEMBER))
        return CheckpointState(int(d["epoch"]), int(d["step"]), {k: list(v) for k, v in d["seeds"].items()},
                               float(d["saved"]))
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None


def load(run_dir: Path | runs.RunFolder) -> tuple[Any, CheckpointState]:
    """The model (compiled, with its optimizer state) and the state to resume from. Raises RunError."""
    import keras

    run = runs.folder(run_dir)
    state = read_state(run)
    if state is None:
        raise runs.RunError(f"run {run.name} has no usable checkpoint to resume from")
    try:
        model = keras.models.load_model(run.checkpoint, compile=True, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad file
        raise runs.RunError(f"the checkpoint of {run.name} cannot be loaded: {str(e)[:300]}") from e
    gens = _seed_layers(model)
    for name, value in state.seeds.items():
        if name in gens:
            gens[name].state.assign(value)
    return model, state
