"""Home through AppTest: with a custom, empty runs folder the bundled pretrained model is offered, and
one click copies it in (it was silently missing: Home and Draw said no model exists)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import runs

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_an_empty_runs_folder_offers_the_bundled_model(runs_root, data_dir, monkeypatch):
    if runs.bundled_pretrained() is None:
        pytest.skip("this checkout has no models/pretrained")
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any("No trained model" in w.value for w in at.warning)
    assert any("does not hold it" in i.value for i in at.info)
    at.button(key="add_pretrained").click().run()
    assert not at.exception
    assert runs.RunFolder(runs_root / runs.PRETRAINED).model.is_file()
    assert any(m.label == f"Current model: {runs.PRETRAINED}" for m in at.metric)
    assert not [b for b in at.button if b.key == "add_pretrained"]
    assert not list(runs_root.glob(".pretrained*"))  # no temporary copy left behind
