"""Cached loaders: data and models load once per server process and are shared read-only by sessions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from mnist_core import runs
from mnist_core.data import Dataset, DataSource, describe_source, load_mnist


def data_dir_setting() -> str | None:
    return os.environ.get("MNIST_DATA_DIR") or None


@st.cache_resource(show_spinner="Loading MNIST…")
def _dataset(data_dir: str | None) -> Dataset:
    return load_mnist(data_dir)


def dataset() -> Dataset:
    """The MNIST arrays for the configured source (numpy only; no TensorFlow)."""
    return _dataset(data_dir_setting())


@st.cache_data(ttl=30, show_spinner=False)
def _source(data_dir: str | None) -> DataSource:
    return describe_source(data_dir)


def data_source() -> DataSource:
    """Which data source is in use and its counts, from file headers only (fast)."""
    return _source(data_dir_setting())


@st.cache_resource(max_entries=6, show_spinner=False)
def _model(path: str, stamp: int) -> Any:
    from mnist_core.inference import load_model

    return load_model(path)


def model(run_dir: Path) -> Any:
    """The run's Keras model, loaded once per file version (TensorFlow is imported on first use).
    Raises OSError when the model file has gone."""
    run = runs.folder(run_dir)
    stamp = run.model_stamp()
    if not stamp:
        raise FileNotFoundError(f"{run.name} has no model file")
    with st.spinner("Loading the model (TensorFlow starts on first use)…"):
        return _model(str(run.model), stamp)
