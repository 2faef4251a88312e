"""Session-state keys, the runs listing of this script run, and the current-model choice.

The router (`app.py`) lists the runs folder once per full script run (`refresh`) and every page and
the sidebar read that listing (`listing`): reading every run folder is the costly part of a rerun. A
fragment rerunning on its own (a live chart, a stroke on Draw) sees the listing of the last full run
and lists again only when it needs fresh states (`refresh`)."""

from __future__ import annotations

import streamlit as st

from mnist_core import runs, scheduler

CURRENT_RUN = "current_run"  # the sidebar selectbox's key: the run Evaluate and Draw use
LISTING = "_runs_listing"
RUN_ID = "_script_run"  # counts full script runs of this session (fragment reruns excluded)


def refresh() -> list[runs.RunInfo]:
    """List the runs folder now and keep the result for this script run. A queued run nobody has
    started yet (its starter died, or it was queued on another server) is started from here."""
    infos = runs.list_runs()
    st.session_state[LISTING] = infos
    st.session_state[RUN_ID] = st.session_state.get(RUN_ID, 0) + 1
    if any(r.state == "queued" and r.status.get("pid") is None for r in infos):
        scheduler.dispatch()
    return infos


def run_id() -> int:
    """Which full script run of this session this is (see `refresh`)."""
    return int(st.session_state.get(RUN_ID, 0))


def listing() -> list[runs.RunInfo]:
    """The runs as listed in this script run (listed now if nothing has listed them yet)."""
    infos = st.session_state.get(LISTING)
    return refresh() if infos is None else infos


def usable_runs() -> list[runs.RunInfo]:
    """Runs with a saved model a page can use (finished, stopped, imported, or failed after saving)."""
    return [r for r in listing() if r.usable]


def current_run() -> runs.RunInfo | None:
    """The chosen run if it still has a model; else the pretrained one; else any usable run."""
    usable = usable_runs()
    by_name = {r.name: r for r in usable}
    chosen = st.session_state.get(CURRENT_RUN)
    if chosen in by_name:
        return by_name[chosen]
    if runs.PRETRAINED in by_name:
        return by_name[runs.PRETRAINED]
    return usable[0] if usable else None


def _install_pretrained() -> None:
    try:
        runs.install_pretrained()
        st.session_state.pop("_pretrained_err", None)
    except (runs.RunError, OSError) as e:
        st.session_state["_pretrained_err"] = str(e)


def offer_pretrained() -> None:
    """When the runs folder lacks the bundled pretrained model (a custom MNIST_RUNS_DIR starts empty),
    say so and offer to copy it in."""
    if runs.bundled_pretrained() is None or (runs.runs_root() / runs.PRETRAINED).exists():
        return
    st.info(f"The app ships with a pretrained model, but this runs folder (`{runs.runs_root()}`, from "
            "`MNIST_RUNS_DIR`) does not hold it.", icon=":material/info:")
    st.button("Add the pretrained model to this runs folder", key="add_pretrained", on_click=_install_pretrained,
              icon=":material/download:")
    if "_pretrained_err" in st.session_state:
        st.error(st.session_state["_pretrained_err"])


def require_current_run(message: str) -> runs.RunInfo:
    """The current run, or (when no model exists yet) a warning with a link to Train, and stop."""
    run = current_run()
    if run is None:
        st.warning(message)
        offer_pretrained()
        pages = st.session_state.get("_pages", {})
        if "train" in pages:
            st.page_link(pages["train"], label="Go to Train", icon=pages["train"].icon)
        st.stop()
    return run


def set_current_run(name: str) -> None:
    """Use as a widget callback (on_click): it runs before the sidebar picker is drawn."""
    st.session_state[CURRENT_RUN] = name
