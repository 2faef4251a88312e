"""Session-state keys and the current-model choice, in one place."""

from __future__ import annotations

import streamlit as st

from mnist_core import runs

CURRENT_RUN = "current_run"  # the sidebar selectbox's key: the run Evaluate and Draw use


def usable_runs() -> list[runs.RunInfo]:
    """Runs with a saved model (finished, stopped or imported), pretrained first."""
    infos, _ = runs.list_runs()
    return [r for r in infos if r.has_model and r.state in ("finished", "stopped")]


def current_run_name() -> str | None:
    """The chosen run if it still has a model; else the pretrained one; else any usable run."""
    names = [r.name for r in usable_runs()]
    chosen = st.session_state.get(CURRENT_RUN)
    if chosen in names:
        return chosen
    if runs.PRETRAINED in names:
        return runs.PRETRAINED
    return names[0] if names else None


def current_run_dir():
    name = current_run_name()
    return runs.runs_root() / name if name else None


def set_current_run(name: str) -> None:
    """Use as a widget callback (on_click): it runs before the sidebar picker is drawn."""
    st.session_state[CURRENT_RUN] = name

