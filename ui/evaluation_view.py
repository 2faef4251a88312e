"""Evaluations for the pages: computed once per model file and data source, off the script thread.

`evaluation(run_dir, dataset)` returns the run's `EvalResult`. In order: this process's memory (a
rerun after a click costs nothing), the run folder's cache (`evaluation/`, numpy only, no TensorFlow),
or a fresh inference. Inference runs in a worker thread while the script thread draws a progress bar
from the fraction the worker reports; a rerun or a second session asking for the same evaluation while
it runs attaches to the same job instead of starting another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from mnist_core import evaluation
from mnist_core.data import Dataset

from . import loaders

MAX_RESULTS = 8  # EvalResults kept in memory (10,000 x 10 float32 each: ~0.4 MB)


@dataclass
class _Job:
    progress: float = 0.0
    result: evaluation.EvalResult | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@st.cache_resource(show_spinner=False)
def _registry() -> dict[str, Any]:
    """Process-wide: finished results (LRU) and jobs in progress, under one lock."""
    return {"lock": threading.Lock(), "results": OrderedDict(), "jobs": {}}


def _key(run_dir: Path, dataset: Dataset) -> tuple[str, str, int, int]:
    stamp = (Path(run_dir) / "model.keras").stat().st_mtime_ns  # a retrained/replaced model is new
    return str(Path(run_dir).resolve()), dataset.source.key, stamp, len(dataset.y_test)


def _remember(reg: dict[str, Any], key: tuple, result: evaluation.EvalResult) -> None:
    reg["results"][key] = result
    reg["results"].move_to_end(key)
    while len(reg["results"]) > MAX_RESULTS:
        reg["results"].popitem(last=False)


def cached(run_dir: Path, dataset: Dataset) -> evaluation.EvalResult | None:
    """The evaluation if it needs no inference (memory or the run folder's cache), else None."""
    reg = _registry()
    key = _key(run_dir, dataset)
    with reg["lock"]:
        if key in reg["results"]:
            reg["results"].move_to_end(key)
            return reg["results"][key]
    res = evaluation.load_cached_evaluation(Path(run_dir), dataset.source)
    if res is None or len(res.y_true) != len(dataset.y_test) or not np.array_equal(res.y_true, dataset.y_test):
        return None
    with reg["lock"]:
        _remember(reg, key, res)
    return res


def evaluation_of(run_dir: Path, dataset: Dataset, label: str = "") -> evaluation.EvalResult:
    """The run's evaluation on the dataset's test split; computes it (with a progress bar) if needed.
    Raises `inference.ModelError` for an unusable model file and `OSError` for a vanished one."""
    res = cached(run_dir, dataset)
    if res is not None:
        return res
    reg = _registry()
    key = _key(run_dir, dataset)
    with reg["lock"]:
        job = reg["jobs"].get(key)
    if job is None:
        model = loaders.model(run_dir)  # ModelError propagates to the page's message
        with reg["lock"]:
            job = reg["jobs"].get(key)
            if job is None:
                job = _Job()
                reg["jobs"][key] = job
                threading.Thread(target=_work, args=(reg, key, job, Path(run_dir), dataset, model),
                                 name=f"evaluate-{Path(run_dir).name}", daemon=True).start()
    n = len(dataset.y_test)
    text = f"Computing predictions of {label or Path(run_dir).name} on {n:,} test images (once per model)…"
    bar = st.progress(0.0, text=text)
    while not job.done.wait(0.15):
        bar.progress(min(job.progress, 1.0), text=text)
    bar.empty()
    if job.error is not None:
        raise job.error
    assert job.result is not None
    return job.result


def _work(reg: dict[str, Any], key: tuple, job: _Job, run_dir: Path, dataset: Dataset, model: Any) -> None:
    # No st.* here: this is not the script thread. The result goes to the registry and the job.
    def progress(p: float) -> None:
        job.progress = p

    try:
        job.result = evaluation.evaluate_run(run_dir, dataset, progress=progress, model=model)
        with reg["lock"]:
            _remember(reg, key, job.result)
    except BaseException as e:  # re-raised in the script thread that waits for it
        job.error = e
    finally:
        with reg["lock"]:
            reg["jobs"].pop(key, None)
        job.done.set()


def tiles(images: np.ndarray, scale: int = 3) -> list[np.ndarray]:
    """28x28 uint8 digits enlarged by whole pixels, so the browser shows sharp squares, not a blur."""
    return [np.kron(img, np.ones((scale, scale), np.uint8)) for img in np.asarray(images, np.uint8)]
