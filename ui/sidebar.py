"""The shared sidebar: the one place to switch the current model, and the data source in use. A run's
accuracy here is the one its trainer measured on its own test set, and says which set that was."""

from __future__ import annotations

import streamlit as st

from mnist_core.data import DataError

from . import fmt, loaders, session, state


def _label(name: str, by_name: dict) -> str:
    r = by_name[name]
    acc = f" · {r.test_accuracy:.2%} test" if r.test_accuracy is not None else ""
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
            cur = by_name[st.session_state[state.CURRENT_RUN]]
            if cur.test_accuracy is not None:
                st.caption(f"{cur.test_accuracy:.2%}: its accuracy on {fmt.test_set(cur.metrics)}, measured when "
                           "it was trained.")
        else:
            st.info("No trained model yet: train one on the Train page.")
        try:
            src = loaders.data_source()
            st.caption(f"Data in use: {src.label} — {src.n_train:,} train / {src.n_test:,} test images")
        except DataError as e:
            st.error(f"Data problem: {e}")
