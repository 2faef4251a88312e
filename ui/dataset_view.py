"""Streamlit glue for the Dataset page: cached statistics and embeddings, and t-SNE runs in background
threads (it takes tens of seconds on a few thousand points, so it must not block the script thread).

Every cached function takes the data source key (`DataSource.key`) first, so a different data source
never reuses another's results. Nothing here imports TensorFlow."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from mnist_core import embedding

from . import loaders

TSNE_MAX_ITER = 500  # enough for MNIST clusters to settle; scikit-learn's default 1000 doubles the wait


def split_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    ds = loaders.dataset()
    return (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)


def selected_indices(chart_key: str) -> list[int]:
    """Dataset indices of the points selected in a plotly chart (key `chart_key`) whose customdata rows
    start with the index. The browser sends a row of a numpy customdata array as {"0": .., "1": ..}
    (plotly ships numpy arrays as typed arrays) and a row of a plain list as a list."""
    event = st.session_state.get(chart_key) or {}
    out = []
    for p in event.get("selection", {}).get("points", []):
        cd = p.get("customdata")
        first = cd.get("0") if isinstance(cd, dict) else cd[0] if isinstance(cd, list | tuple) else cd
        if first is not None:
            out.append(int(first))
    return out


@st.cache_data(max_entries=4, show_spinner=False)
def class_counts(source_key: str) -> dict[str, np.ndarray]:
    ds = loaders.dataset()
    return {"train": embedding.class_counts(ds.y_train), "test": embedding.class_counts(ds.y_test)}


@st.cache_data(max_entries=8, show_spinner="Averaging the images of each digit…")
def mean_images(source_key: str, split: str) -> np.ndarray:
    x, y = split_arrays(split)
    return embedding.mean_images(x, y)


@st.cache_data(max_entries=4, show_spinner="Counting pixel values…")
def pixel_histograms(source_key: str) -> dict[str, np.ndarray]:
    ds = loaders.dataset()
    return {"train": embedding.pixel_histogram(ds.x_train), "test": embedding.pixel_histogram(ds.x_test)}


@st.cache_data(max_entries=16, show_spinner=False)
def browse_indices(source_key: str, split: str, digits: tuple[int, ...], seed: int | None) -> np.ndarray:
    _, y = split_arrays(split)
    return embedding.browse_indices(y, digits, seed)


@st.cache_data(max_entries=16, show_spinner="Computing PCA…")
def pca(source_key: str, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embedding sample's indices, its 2-D PCA coordinates and the variance the two axes explain."""
    x, y = split_arrays(split)
    idx = embedding.sample_indices(y, n, seed)
    coords, ratio = embedding.pca_2d(x[idx], seed)
    return idx, coords, ratio


# --- t-SNE in the background -------------------------------------------------------------------
@dataclass
class TsneJob:
    n: int
    max_iter: int
    started: float = field(default_factory=time.time)
    stage: str = "starting"
    iteration: int = 0
    finished: float | None = None
    coords: np.ndarray | None = None
    error: str | None = None
    cancel: bool = False

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def fraction(self) -> float:
        return 1.0 if self.done else min(0.99, self.iteration / self.max_iter)

    def describe(self) -> str:
        elapsed = (self.finished or time.time()) - self.started
        if self.stage == "optimise":
            return f"Arranging {self.n:,} points: iteration {self.iteration} of up to {self.max_iter} ({elapsed:.0f} s)"
        what = {"pca": "Reducing the images to 50 numbers each (PCA)",
                "neighbours": "Finding each image's nearest neighbours"}.get(self.stage, "Starting")
        return f"{what}… ({elapsed:.0f} s)"


@st.cache_resource
def _tsne_jobs() -> tuple[dict[tuple, TsneJob], threading.Lock]:
    """Process-wide: a finished map is shared by every session (the second visit is instant), and a run
    in progress keeps going if its page is left and is found again on return."""
    return {}, threading.Lock()


def tsne_job(source_key: str, split: str, n: int, seed: int, perplexity: int) -> TsneJob | None:
    jobs, lock = _tsne_jobs()
    with lock:
        return jobs.get((source_key, split, n, seed, perplexity))


def start_tsne(source_key: str, split: str, n: int, seed: int, perplexity: int) -> TsneJob:
    """Start (or find) the t-SNE run for these parameters. Uses the same sample as `pca`, so both maps
    show the same images."""
    key = (source_key, split, n, seed, perplexity)
    idx, _, _ = pca(source_key, split, n, seed)
    x, _ = split_arrays(split)
    images = x[idx]  # read in the script thread: the worker gets plain arrays, no streamlit calls
    jobs, lock = _tsne_jobs()
    with lock:
        job = jobs.get(key)
        if job is not None and not (job.done and job.coords is None):  # running or succeeded
            return job
        job = jobs[key] = TsneJob(n=len(idx), max_iter=TSNE_MAX_ITER)
        # Keep the finished maps of the last few parameter sets only.
        finished = [k for k, j in jobs.items() if j.done]
        for k in finished[:-6]:
            del jobs[k]

    def progress(stage: str, done: int, total: int) -> None:
        if job.cancel:
            raise embedding.TsneCancelled()
        job.stage, job.iteration = stage, done

    def work() -> None:
        try:
            job.coords = embedding.tsne_2d(images, seed=seed, perplexity=perplexity, max_iter=TSNE_MAX_ITER,
                                           progress=progress)
        except embedding.TsneCancelled:
            job.error = "cancelled"
        except Exception as e:  # shown on the page; the next click starts afresh
            job.error = f"{type(e).__name__}: {e}"
        finally:
            job.finished = time.time()

    threading.Thread(target=work, name=f"tsne-{split}-{n}-{seed}", daemon=True).start()
    return job
