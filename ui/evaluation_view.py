"""Evaluations for the pages: computed once per model file and data source, off the script thread.

`evaluation_of(run_dir, dataset)` returns the run's `EvalResult`. In order: a finished job of this
server (a rerun after a click costs nothing), the run folder's cache (`evaluation/`, numpy only, no
TensorFlow), or a fresh inference in a background job (ui/jobs.py) while the script thread draws a
progress bar; a second session asking for the same evaluation attaches to the same job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core import evaluation, runs
from mnist_core.data import Dataset

from . import fmt, jobs, loaders

KIND = "evaluate"
KEEP = 8  # EvalResults kept in memory (10,000 x 10 float32 each: ~0.4 MB)


def _key(run_dir: Path, dataset: Dataset) -> tuple[str, str, int, int]:
    run = runs.folder(run_dir)
    return str(run.path.resolve()), dataset.source.key, run.model_stamp(), len(dataset.y_test)


def cached(run_dir: Path, dataset: Dataset) -> evaluation.EvalResult | None:
    """The evaluation if it needs no inference (a finished job or the run folder's cache), else None."""
    job = jobs.find(KIND, _key(run_dir, dataset))
    if job is not None and job.succeeded:
        return job.result
    res = evaluation.load_cached_evaluation(Path(run_dir), dataset.source)
    if res is None or len(res.y_true) != len(dataset.y_test) or not np.array_equal(res.y_true, dataset.y_test):
        return None
    return res


def evaluation_of(run_dir: Path, dataset: Dataset, label: str = "") -> evaluation.EvalResult:
    """The run's evaluation on the dataset's test split; computes it (with a progress bar) if needed.
    Raises `inference.ModelError` for an unusable model file and `OSError` for a vanished one."""
    res = cached(run_dir, dataset)
    if res is not None:
        return res
    key = _key(run_dir, dataset)
    job = jobs.find(KIND, key)
    if job is None or job.done:
        model = loaders.model(run_dir)  # loaded in the script thread: ModelError reaches the page
        job = jobs.start(KIND, key, lambda j: evaluation.evaluate_run(Path(run_dir), dataset, progress=j.report,
                                                                        model=model), keep=KEEP)
    text = (f"Computing predictions of {label or Path(run_dir).name} on {fmt.count(len(dataset.y_test), 'test image')} "
            "(once per model)…")
    bar = st.progress(0.0, text=text)
    while not job.wait(0.15):
        bar.progress(job.progress, text=text)
    bar.empty()
    if job.error is not None:
        jobs.forget(KIND, key)  # the next visit tries again
        raise job.error
    return job.result


def tiles(images: np.ndarray, scale: int = 3) -> list[np.ndarray]:
    """28x28 uint8 digits enlarged by whole pixels, so the browser shows sharp squares, not a blur."""
    return [np.kron(img, np.ones((scale, scale), np.uint8)) for img in np.asarray(images, np.uint8)]
