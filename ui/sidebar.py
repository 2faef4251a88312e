"""The shared sidebar: the one place to switch the current model, and the data source in use."""

from __future__ import annotations

import streamlit as st

from mnist_core.data import DataError

from . import loaders, session, state


def _label(name: str, by_name: dict) -> str:
    r = by_name[name]
    acc = f" · {r.test_accuracy:.2%}" if r.test_accuracy is not None else ""
    return f"{name} ({r.preset}{acc})"


def render() -> None:
    with st.sidebar:
        session.sidebar()
        usable = state.usable_runs()
        by_name = {r.name: r for r in usable}
        if usable:
            st.session_state[state.CURRENT_RUN] = state.current_run().name  # keep the widget's value valid
            st.selectbox("Current model", list(by_name), key=state.CURRENT_RUN,
                         format_func=lambda n: _label(n, by_name),
                         help="Evaluate and Draw use this model. Finished runs appear here.")
        else:
            st.info("No trained model yet: train one on the Train page.")
        try:
            src = loaders.data_source()
            st.caption(f"Data: {src.label} — {src.n_train:,} train / {src.n_test:,} test images")
        except DataError as e:
            st.error(f"Data problem: {e}")
