"""ui/after_run.py: Streamlit's Keras reset is replaced; after a big import, the objects then alive are frozen (out of every later
collection's sight) once, a moment after the script run, and nothing happens on the runs after it."""

from __future__ import annotations

import gc
import time

import pytest

from ui import after_run


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(after_run, "_state", {"modules": 0, "pending": False})
    monkeypatch.setattr(after_run, "DELAY_S", 0.01)
    gc.unfreeze()
    yield
    gc.unfreeze()


def wait_for(pred, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_freezes_once_after_a_big_import(fresh):
    assert gc.get_freeze_count() == 0
    after_run.schedule_freeze()  # this process has far more than NEW_MODULES modules since "the last freeze"
    wait_for(lambda: gc.get_freeze_count() > 0 and not after_run._state["pending"])
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the module objects of numpy, pytest, ...
    gc.unfreeze()
    after_run.schedule_freeze()  # no new big import: nothing is scheduled
    time.sleep(0.1)
    assert gc.get_freeze_count() == 0 and not after_run._state["pending"]


def test_streamlit_no_longer_resets_keras(monkeypatch):
    """The hook Streamlit calls after each run (a private function) is found and no longer clears the
    Keras session (which would drop TensorFlow's compiled kernels), so a model's graph survives a run."""
    from streamlit.runtime.scriptrunner import script_runner

    # Streamlit's own hook (an earlier AppTest run in this process may have replaced it already).
    own = after_run._replaced.get("hook", script_runner._clean_problem_modules)
    monkeypatch.setattr(script_runner, "_clean_problem_modules", own)
    monkeypatch.setattr(after_run, "_replaced", {})
    import keras

    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    script_runner._clean_problem_modules()
    assert calls, "Streamlit's own hook resets Keras: without the patch a run clears the session"
    calls.clear()
    assert after_run.keep_keras_session()
    script_runner._clean_problem_modules()
    assert not calls
