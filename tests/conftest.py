"""Shared fixtures: the data directory, tiny slices of real MNIST, and an isolated runs folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MNIST_OFFLINE", "1")  # tests never try the network

from mnist_core.data import IDX_NAMES, Dataset, DataSource, load_mnist, write_idx  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Real MNIST in IDX format: MNIST_DATA_DIR, else ../shared/data/mnist."""
    d = Path(os.environ.get("MNIST_DATA_DIR") or SHARED).resolve()
    if not d.is_dir():
        pytest.skip(f"no MNIST data directory at {d}")
    return d


@pytest.fixture(scope="session")
def mnist(data_dir) -> Dataset:
    return load_mnist(data_dir, "data_dir")


def take(ds: Dataset, n_train: int, n_test: int) -> Dataset:
    """The first n images of each split (real MNIST, tiny)."""
    src = DataSource(ds.source.name, ds.source.path + f"[:{n_train}/{n_test}]", n_train, n_test)
    return Dataset(ds.x_train[:n_train], ds.y_train[:n_train], ds.x_test[:n_test], ds.y_test[:n_test], src)


def write_idx_folder(ds: Dataset, folder: Path) -> Path:
    """`ds` written as a data directory of the four uncompressed IDX files (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": ds.x_train, "train_labels": ds.y_train, "test_images": ds.x_test,
              "test_labels": ds.y_test}
    for key, stem in IDX_NAMES.items():
        write_idx(folder / stem, arrays[key].astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def tiny(mnist) -> Dataset:
    """600 training and 300 test images of real MNIST."""
    return take(mnist, 600, 300)


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, set as MNIST_RUNS_DIR for the test (and for subprocesses it starts)."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    return root


def digit_to_canvas(img28: np.ndarray, size: int = 280) -> np.ndarray:
    """Render a 28x28 MNIST digit the way the Draw page's canvas returns a drawing: RGBA, white
    strokes on a transparent background, `size` x `size`."""
    from PIL import Image

    a = Image.fromarray(img28.astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    alpha = np.asarray(a)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = alpha
    return rgba
