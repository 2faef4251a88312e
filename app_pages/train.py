"""Train: configure a network, queue its training, watch it live, compare runs.

The page never trains and never imports TensorFlow: Start submits the run to the scheduler (a
separate trainer process, see mnist_core/scheduler.py) and everything below the form is read back from
run folders. Which run this session watches is in session state; a fresh session (reload, second tab)
reattaches to what is training. The form is ui/train_form.py, the live panel ui/train_live.py, the
runs table ui/runs_table.py.
"""

from __future__ import annotations

import streamlit as st

from mnist_core import manage, runs
from mnist_core.data import DataError
from ui import loaders, model_import, runs_table, session, state, train_form, train_live

ss = st.session_state


def _on_start() -> None:
    """Start button callback: validate again (never trust the button's disabled state), then submit."""
    try:
        n_train = loaders.data_source().n_train
    except DataError as e:
        ss[runs_table.MSG] = ("error", f"The training data cannot be read: {e}")
        return
    cfg, err = train_form.validated(n_train)
    if err:
        ss[runs_table.MSG] = ("error", err)
        return
    try:
        name = runs.check_new_name(ss[train_form.NAME])
    except runs.RunError as e:
        ss[runs_table.MSG] = ("error", f"Run name: {e}")
        return
    try:
        run_dir = manage.submit(session.actor(), cfg, name, data_dir=loaders.data_dir_setting(), n_train=n_train)
    except runs.RunError as e:  # taken a moment ago by someone else, or the queue is full
        ss[runs_table.MSG] = ("error", f"Not started: {e}")
        return
    except OSError as e:
        ss[runs_table.MSG] = ("error", f"Training could not start: {e}")
        return
    train_live.watch(run_dir.name)
    train_form.started()


st.title("Train")
st.caption("Configure a network, train it in its own process and watch it learn. Training keeps going if you "
           "leave the page or close the browser; come back and it is shown again.")

train_form.init()
if runs_table.MSG in ss:
    kind, text = ss.pop(runs_table.MSG)
    getattr(st, kind)(text)

infos = state.listing()
watching = train_live.pick_watch(infos)
if watching:
    train_live.render(watching)
train_live.other_active(infos, watching)

st.subheader("New training run")
with st.container(border=True):
    try:
        n_train = loaders.data_source().n_train
    except DataError as e:
        st.error(f"The training data cannot be read: {e}")
        st.stop()
    cfg, err = train_form.render(n_train)
    c = st.columns([3, 1, 1], vertical_alignment="bottom")
    c[0].text_input("Run name", key=train_form.NAME, max_chars=runs.MAX_NAME,
                    help="Letters, digits, - and _. It names the run's folder.")
    c[1].button("Classroom demo", key="tr_demo", on_click=train_form.on_demo, icon=":material/school:",
                width="stretch", help=train_form.demo_help())
    c[2].button("Start training", key="tr_start", type="primary", icon=":material/play_arrow:",
                on_click=_on_start, disabled=cfg is None, width="stretch")
    if err:
        st.error(err)
train_form.save()

runs_table.render(infos)
model_import.render()
