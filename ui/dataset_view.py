"""Streamlit glue for the Dataset page: cached statistics and embeddings, and t-SNE as a background job
(ui/jobs.py: it takes tens of seconds on a few thousand points, so it must not block the script thread).

Every cached function takes the data source key (`DataSource.key`) first, so a different data source
never reuses another's results. Nothing here imports TensorFlow."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_core import dataset_stats, embedding

from . import jobs, loaders

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
    return {"train": dataset_stats.class_counts(ds.y_train), "test": dataset_stats.class_counts(ds.y_test)}


@st.cache_data(max_entries=8, show_spinner="Averaging the images of each digit…")
def mean_images(source_key: str, split: str) -> np.ndarray:
    x, y = split_arrays(split)
    return dataset_stats.mean_images(x, y)


@st.cache_data(max_entries=4, show_spinner="Counting pixel values…")
def pixel_histograms(source_key: str) -> dict[str, np.ndarray]:
    ds = loaders.dataset()
    return {"train": dataset_stats.pixel_histogram(ds.x_train), "test": dataset_stats.pixel_histogram(ds.x_test)}


@st.cache_data(max_entries=16, show_spinner=False)
def browse_indices(source_key: str, split: str, digits: tuple[int, ...], seed: int | None) -> np.ndarray:
    _, y = split_arrays(split)
    return dataset_stats.browse_indices(y, digits, seed)


@st.cache_data(max_entries=16, show_spinner="Computing PCA…")
def pca(source_key: str, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embedding sample's indices, its 2-D PCA coordinates and the variance the two axes explain."""
    x, y = split_arrays(split)
    idx = dataset_stats.sample_indices(y, n, seed)
    coords, ratio = embedding.pca_2d(x[idx], seed)
    return idx, coords, ratio


# --- t-SNE in the background -------------------------------------------------------------------
TSNE = "tsne"
TSNE_STAGES = {"pca": "Reducing the images to 50 numbers each (PCA)",
               "neighbours": "Finding each image's nearest neighbours"}


def describe_tsne(job: jobs.Job) -> str:
    if job.stage == "optimise":
        return (f"Arranging {job.info['n']:,} points: iteration {job.info.get('iteration', 0)} of up to "
                f"{TSNE_MAX_ITER} ({job.elapsed:.0f} s)")
    return f"{TSNE_STAGES.get(job.stage, 'Starting')}… ({job.elapsed:.0f} s)"


def tsne_job(source_key: str, split: str, n: int, seed: int, perplexity: int) -> jobs.Job | None:
    return jobs.find(TSNE, (source_key, split, n, seed, perplexity))


def start_tsne(source_key: str, split: str, n: int, seed: int, perplexity: int) -> jobs.Job:
    """Start (or find) the t-SNE run for these parameters. Uses the same sample as `pca`, so both maps
    show the same images."""
    idx, _, _ = pca(source_key, split, n, seed)
    x, _ = split_arrays(split)
    images = x[idx]  # read in the script thread: the worker gets plain arrays, no streamlit calls

    def work(job: jobs.Job) -> np.ndarray:
        job.info["n"] = len(idx)

        def progress(stage: str, done: int, total: int) -> None:
            job.report(done / TSNE_MAX_ITER if stage == "optimise" else 0.0, stage, iteration=done)

        return embedding.tsne_2d(images, seed=seed, perplexity=perplexity, max_iter=TSNE_MAX_ITER,
                                 progress=progress)

    return jobs.start(TSNE, (source_key, split, n, seed, perplexity), work)
