"""The Import model control (ui/model_import.py) through AppTest, on the page script
tests/app/import_page_script.py. Every refused file must leave the runs folder untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_core import model_import, runs
from tests.keras_files import model_files, tree

SCRIPT = Path(__file__).with_name("import_page_script.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return model_files(tmp_path_factory.mktemp("models"))


# --- the Streamlit control ---------------------------------------------------------------------------
def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SCRIPT), default_timeout=90)
    at.run()
    assert not at.exception
    return at


def test_control_imports_a_good_model(runs_root, models):
    model_import.import_model(models["good"], runs.PRETRAINED)  # the default current model
    at = _app()
    up = at.file_uploader(key="import_model_file_0")
    assert up.allowed_type == [".keras"]
    assert up.proto.max_upload_size_mb == model_import.MAX_IMPORT_BYTES // 2**20
    assert at.button(key="import_model_go").disabled  # nothing chosen yet
    up.set_value(("digits-net.keras", models["good"].read_bytes(), "application/octet-stream")).run()
    assert not at.button(key="import_model_go").disabled
    assert at.text_input(key="import_model_name").placeholder == "digits-net"
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert [s.value for s in at.success] and "digits-net" in at.success[0].value
    assert not at.error
    assert (runs_root / "digits-net" / "model.keras").is_file()
    # The page reran: the list drawn above the control and the sidebar's picker both have the run.
    assert "digits-net (imported, finished)" in at.markdown[-1].value
    assert at.sidebar.selectbox(key="current_run").options == ["pretrained (imported)", "digits-net (imported)"]
    assert at.sidebar.selectbox(key="current_run").value == "pretrained"  # not switched behind the user's back
    # The uploader is fresh again (a new key), ready for the next file.
    assert at.file_uploader(key="import_model_file_1").value is None
    at.button(key="import_model_use").click().run()
    assert not at.exception
    assert at.session_state["current_run"] == "digits-net"
    assert at.sidebar.selectbox(key="current_run").value == "digits-net"
    assert not at.success  # the message was shown once


def test_control_refuses_lambda_and_shows_why(runs_root, models):
    at = _app()
    before = tree(runs_root)
    at.file_uploader(key="import_model_file_0").set_value(
        ("evil.keras", models["lambda"].read_bytes(), "application/octet-stream")).run()
    at.text_input(key="import_model_name").input("evil").run()
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert at.error and "Not imported" in at.error[0].value and "Lambda" in at.error[0].value
    assert not at.success
    assert tree(runs_root) == before


def test_control_refuses_a_huge_declared_model_and_names_the_figures(runs_root, models):
    at = _app()
    before = tree(runs_root)
    at.file_uploader(key="import_model_file_0").set_value(
        ("huge.keras", models["huge_layer"].read_bytes(), "application/octet-stream")).run()
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("Not imported: huge.keras declares 1.2 billion parameters")
    assert not at.success
    assert tree(runs_root) == before


def test_control_refuses_a_taken_name(runs_root, models):
    model_import.import_model(models["good"], "taken")
    before = tree(runs_root)
    at = _app()
    at.file_uploader(key="import_model_file_0").set_value(
        ("taken.keras", models["good"].read_bytes(), "application/octet-stream")).run()
    at.button(key="import_model_go").click().run()  # empty name: defaults to the file's stem, "taken"
    assert at.error and "already exists" in at.error[0].value
    assert tree(runs_root) == before


def test_suggested_name():
    from ui.model_import import suggested_name

    assert suggested_name("My Model (v2).keras") == "My-Model-v2"
    assert suggested_name("../../etc/passwd.keras") == "passwd"
    assert suggested_name("....keras") == "imported"
    assert np.all([len(suggested_name("a" * 500 + ".keras")) <= runs.MAX_NAME])
