"""The Dataset page under AppTest: it renders on every kind of data source (bundled sample, the shared
IDX directory, a full-size Keras-style mnist.npz), the digit/split/sample/page controls change which
images the grid shows, and TensorFlow is never imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core import data as mdata
from tests.conftest import ROOT

PAGE = str(ROOT / "app_pages" / "dataset.py")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No Keras cache, offline, and empty Streamlit caches: each test sees only the source it sets."""
    monkeypatch.setattr(mdata, "KERAS_CACHE", tmp_path / "no-keras" / "mnist.npz")
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def grid_table(at: AppTest):
    table = at.dataframe[0].value  # the grid's table comes first (the class counts table is further down)
    assert list(table.columns) == ["row", "column", "image #", "label"]
    return table


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def check_page(at: AppTest, source: str, n_train: int, n_test: int) -> None:
    assert metrics(at) == {"Data source": source, "Training images": f"{n_train:,}",
                           "Test images": f"{n_test:,}", "Image size": "28 × 28 pixels"}
    table = grid_table(at)
    assert len(table) == 100 and table["image #"].between(0, n_train - 1).all()
    assert f"Images 1–100 of {n_train:,} (all digits, training set" in " ".join(c.value for c in at.caption)
    # every chart is drawn: grid, enlarged image, class bars, mean digits, pixel histogram, PCA map
    assert len(at.get("plotly_chart")) == 6
    assert at.button(key="ds_tsne_go").label == "Compute t-SNE"


def test_bundled_sample(fresh):
    at = run_page()
    n_tr, n_te = len(np.load(mdata.SAMPLE_PATH)["y_train"]), len(np.load(mdata.SAMPLE_PATH)["y_test"])
    check_page(at, "Bundled sample", n_tr, n_te)
    assert "mnist_sample.npz" in at.caption[0].value


def test_shared_data_directory(fresh, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    at = run_page()
    check_page(at, "Local MNIST copy", 22_699, 10_000)
    assert str(data_dir) in at.caption[0].value


def test_full_size_npz(fresh, mnist, tmp_path, monkeypatch):
    """A Keras-style mnist.npz with the official sizes (60,000 / 10,000): the shared images, repeated."""
    d = tmp_path / "full"
    d.mkdir()
    reps = -(-60_000 // len(mnist.y_train))
    np.savez(d / "mnist.npz", x_train=np.tile(mnist.x_train, (reps, 1, 1))[:60_000],
             y_train=np.tile(mnist.y_train, reps)[:60_000].astype(np.uint8),
             x_test=mnist.x_test, y_test=mnist.y_test.astype(np.uint8))
    monkeypatch.setenv("MNIST_DATA_DIR", str(d))
    at = run_page()
    check_page(at, "Local MNIST copy", 60_000, 10_000)


def test_bad_data_directory_is_a_clear_error(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "missing"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "does not exist" in at.error[0].value
    assert not at.get("plotly_chart")


def test_controls_change_the_images_shown(fresh, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    y_train, y_test = mdata.load_mnist(data_dir).y_train, mdata.load_mnist(data_dir).y_test
    at = run_page()
    first = grid_table(at)
    assert first["label"].nunique() == 10  # a shuffled grid of all digits shows every digit
    assert (first["label"].to_numpy() == y_train[first["image #"]]).all()  # labels are the data's own

    at.pills(key="ds_digits").set_value([3]).run()
    threes = grid_table(at)
    assert set(threes["label"]) == {3} and (y_train[threes["image #"]] == 3).all()
    assert at.number_input(key="ds_index").value == threes["image #"].iloc[0]  # first tile enlarged
    assert any("label 3" in str(c.proto) for c in at.get("plotly_chart"))

    at.pills(key="ds_digits").set_value([0, 7]).run()
    assert set(grid_table(at)["label"]) == {0, 7}

    at.number_input(key="ds_page").set_value(2).run()  # the next 100 images, none repeated
    page2 = grid_table(at)
    at.number_input(key="ds_page").set_value(1).run()
    assert not set(page2["image #"]) & set(grid_table(at)["image #"])

    before = set(grid_table(at)["image #"])
    at.button(key="ds_new").click().run()  # a new random sample (seed + 1)
    assert at.number_input(key="ds_seed").value == 1
    assert set(grid_table(at)["image #"]) != before

    at.segmented_control(key="ds_split").set_value("test").run()
    test_grid = grid_table(at)
    assert (y_test[test_grid["image #"]] == test_grid["label"].to_numpy()).all()
    assert test_grid["image #"].max() < 10_000
    assert "test set" in " ".join(c.value for c in at.caption)

    at.toggle(key="ds_shuffle").set_value(False).run()  # file order
    assert list(grid_table(at)["image #"]) == list(np.flatnonzero(np.isin(y_test, [0, 7]))[:100])
    assert not at.exception


# Runs in a fresh interpreter: AppTest shares this process, where other tests may have imported TF.
_NO_TF = r"""
import json, sys
sys.path.insert(0, {root!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({page!r}, default_timeout=120).run()
at.pills(key="ds_digits").set_value([5]).run()
print(json.dumps({{"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "exceptions": [e.value for e in at.exception], "charts": len(at.get("plotly_chart"))}}))
"""


def test_page_never_imports_tensorflow(tmp_path):
    env = {**os.environ, "MNIST_OFFLINE": "1", "HOME": str(tmp_path)}  # no Keras cache: the bundled sample
    env.pop("MNIST_DATA_DIR", None)
    out = subprocess.run([sys.executable, "-c", _NO_TF.format(root=str(ROOT), page=PAGE)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"tf": False, "keras": False, "exceptions": [], "charts": 6}
