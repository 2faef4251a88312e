"""Session-state keys and the current-model choice, in one place."""

from __future__ import annotations

import streamlit as st

from mnist_core import runs

CURRENT_RUN = "current_run"  # the sidebar selectbox's key: the run Evaluate and Draw use


def usable_runs() -> list[runs.RunInfo]:
    """Runs with a saved model (finished, stopped or imported), pretrained first."""
    infos, _ = runs.list_runs()
    return [r for r in infos if r.has_model and r.state in ("finished", "stopped")]


def current_run(usable: list[runs.RunInfo] | None = None) -> runs.RunInfo | None:
    """The chosen run if it still has a model; else the pretrained one; else any usable run.
    Pass `usable` when the caller has already listed the runs (each listing reads every run folder)."""
    usable = usable_runs() if usable is None else usable
    by_name = {r.name: r for r in usable}
    chosen = st.session_state.get(CURRENT_RUN)
    if chosen in by_name:
        return by_name[chosen]
    if runs.PRETRAINED in by_name:
        return by_name[runs.PRETRAINED]
    return usable[0] if usable else None


def current_run_name() -> str | None:
    run = current_run()
    return run.name if run else None


def current_run_dir():
    run = current_run()
    return run.path if run else None


def require_current_run(message: str) -> runs.RunInfo:
    """The current run, or (when no model exists yet) a warning with a link to Train, and stop."""
    run = current_run()
    if run is None:
        st.warning(message)
        pages = st.session_state.get("_pages", {})
        if "train" in pages:
            st.page_link(pages["train"], label="Go to Train", icon=pages["train"].icon)
        st.stop()
    return run


def set_current_run(name: str) -> None:
    """Use as a widget callback (on_click): it runs before the sidebar picker is drawn."""
    st.session_state[CURRENT_RUN] = name

