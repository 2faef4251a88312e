"""The Export panel (ui/export_view.py) through AppTest, on a copy of the pretrained model and 300 real
MNIST test images: formats picked, the export runs in the background with progress, then the table
(the same figures as the reports on disk) and one download per file; a second visit reuses the
exports until the model file changes; a broken model file gives an error and no file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mnist_core import export, runs
from mnist_core.data import load_mnist

from ..conftest import ROOT, take, write_idx_folder

SCRIPT = Path(__file__).with_name("export_page_script.py")
PRETRAINED = ROOT / "models" / runs.PRETRAINED / "model.keras"
pytestmark = pytest.mark.skipif(not PRETRAINED.exists(), reason="models/pretrained is not bundled")


@pytest.fixture
def env(mnist, tmp_path, monkeypatch):
    data = write_idx_folder(take(mnist, 100, 300), tmp_path / "data")
    run = tmp_path / "runs" / "digits"
    run.mkdir(parents=True)
    shutil.copy2(PRETRAINED, run / "model.keras")
    monkeypatch.setenv("MNIST_DATA_DIR", str(data))
    monkeypatch.setenv("MNIST_RUNS_DIR", str(run.parent))
    monkeypatch.setenv("EXPORT_VIEW_RUN", str(run))
    return runs.folder(run), load_mnist(data, "data_dir")


def open_panel():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SCRIPT), default_timeout=120)
    at.run()
    assert not at.exception, at.exception[0].value
    return at


def run_until(at, done, timeout: float = 240):
    """Rerun the page until `done(at)` holds (the export runs in a background thread meanwhile); an
    error shown on the way fails at once, with its message, unless `done` was waiting for it."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert not at.error, at.error[0].value
        assert time.monotonic() < deadline, "the export did not finish in time"
        time.sleep(0.25)  # poll interval, not a wait for something to happen
        at.run()
        assert not at.exception, at.exception[0].value
    return at


def test_export_shows_checked_files_side_by_side(env):
    run, ds = env
    at = open_panel()
    picker = at.multiselect(key="xp_export_formats")
    assert picker.value == list(export.FORMATS)  # every format by default
    assert not at.dataframe and not at.get("download_button")
    at.button(key="xp_export_go").click().run()
    assert at.get("progress"), "the export's progress is shown while it runs"
    assert at.button(key="xp_export_go").disabled  # no second export of the same model meanwhile
    run_until(at, lambda a: a.dataframe)

    reports = export.cached_reports(export.export_dir(run), run.model_stamp(), ds)
    assert sorted(reports) == sorted(export.FORMATS)
    table = at.dataframe[0].value
    assert list(table.columns) == list(export.TABLE_COLUMNS)
    assert table.to_dict("records") == export.table_rows(reports[n] for n in export.FORMATS)
    assert (table["test acc"] > 0.9).all() and (table["argmax agreement"] >= 0.99).all()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["digits-model.tflite", "digits-model_quant.tflite", "digits-model.onnx",
                      "digits-saved_model.zip"]
    assert at.button(key="xp_export_go").disabled  # nothing left to export for this model version
    assert not at.error

    # Next visit: read from the run folder, nothing exported again; a changed model file is exported anew.
    stamps = {p.name: p.stat().st_mtime_ns for p in export.export_dir(run).iterdir()}
    again = open_panel()
    assert again.dataframe[0].value.to_dict("records") == table.to_dict("records")
    assert {p.name: p.stat().st_mtime_ns for p in export.export_dir(run).iterdir()} == stamps
    new = run.model_stamp() + 10**9
    import os

    os.utime(run.model, ns=(new, new))
    fresh = open_panel()
    assert not fresh.dataframe and not fresh.button(key="xp_export_go").disabled


def test_picked_formats_only(env):
    run, ds = env
    at = open_panel()
    at.multiselect(key="xp_export_formats").set_value(["onnx"]).run()
    at.button(key="xp_export_go").click().run()
    run_until(at, lambda a: a.dataframe)
    assert at.dataframe[0].value["format"].tolist() == ["onnx"]
    assert sorted(p.name for p in export.export_dir(run).iterdir()) == [export.REPORT_FILE, "model.onnx"]
    at.multiselect(key="xp_export_formats").set_value(["onnx", "litert"]).run()
    assert not at.button(key="xp_export_go").disabled  # litert is still to do; onnx is kept
    assert at.dataframe[0].value["format"].tolist() == ["onnx"]


def test_a_broken_model_file_gives_an_error_and_no_file(env):
    run, _ = env
    run.model.write_bytes(b"not a model at all")
    at = open_panel()
    at.button(key="xp_export_go").click().run()
    run_until(at, lambda a: a.error)
    assert "Export failed" in at.error[0].value and "not a Keras model" in at.error[0].value
    assert not export.export_dir(run).exists() and not at.dataframe
