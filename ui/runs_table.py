"""The Train page's list of runs: the table, the curve overlay to compare runs, and deletion.

Everything is drawn from the listing of this script run (`state.listing()`); while something trains
the table alone refreshes itself every 5 s. A damaged run folder is a row like any other, with the
reason in its status column, and can be deleted.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from mnist_core import identity, manage, plots, runs

from . import fmt, session, state, train_live

ss = st.session_state
MSG = train_live.MSG


def _table(infos: list[runs.RunInfo]) -> None:
    rows = [{
        "name": r.name, "status": f"damaged: {r.damaged}" if r.damaged else r.state, "owner": r.owner or "shared",
        "preset": r.preset,
        "params": r.params, "epochs": f"{r.epochs_done}/{r.epochs}" if r.epochs else "–",
        "val acc": f"{r.val_accuracy:.2%}" if r.val_accuracy is not None else "–",
        "test acc": f"{r.test_accuracy:.2%}" if r.test_accuracy is not None else "–",
        "training time": fmt.seconds(r.train_seconds) if r.train_seconds is not None else "",
        "date": dt.datetime.fromtimestamp(r.created),
    } for r in infos]
    st.dataframe(pd.DataFrame(rows), key="tr_runs_table", hide_index=True, width="stretch", column_config={
        "params": st.column_config.NumberColumn("parameters", format="localized"),
        "val acc": st.column_config.TextColumn("final val acc"),
        "test acc": st.column_config.TextColumn("test acc"),
        "date": st.column_config.DatetimeColumn("date", format="YYYY-MM-DD HH:mm"),
    })


def _live_table() -> None:
    infos = state.refresh()
    _table(infos)
    if not any(r.active for r in infos):
        st.rerun()  # all done: one full rerun draws the static page (and stops this polling)


def _compare(infos: list[runs.RunInfo]) -> None:
    with_curves = {r.name: r for r in infos if r.epochs_done > 0}
    if not with_curves:
        return
    if "tr_compare" not in ss:
        ss["tr_compare"] = list(with_curves)[:3]
    ss["tr_compare"] = [n for n in ss["tr_compare"] if n in with_curves]  # deleted runs drop out
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Overlay the curves of", list(with_curves), key="tr_compare",
                            placeholder="Choose runs to compare")
    metric = c2.selectbox("Metric", ["val_accuracy", "val_loss", "accuracy", "loss"], key="tr_compare_metric",
                          format_func=lambda m: m.replace("val_", "validation ").replace("_", " "))
    if chosen:
        st.plotly_chart(plots.overlay_curves({n: with_curves[n].history for n in chosen}, metric),
                        key="tr_compare_chart")


def _delete(name: str) -> None:
    ss.pop("tr_del_confirm", None)
    try:
        manage.delete(session.actor(), runs.runs_root() / name)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Could not delete {name}: {e}")
        return
    if ss.get(train_live.WATCH) == name:
        train_live.watch(None)
    ss[MSG] = ("success", f"Deleted run {name}.")


def _rename() -> None:
    old, new = ss.get("tr_ren_pick"), ss.get("tr_ren_name", "")
    try:
        dest = manage.rename(session.actor(), runs.runs_root() / old, new)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Could not rename {old}: {e}")
        return
    if ss.get(train_live.WATCH) == old:
        train_live.watch(dest.name)
    if ss.get(state.CURRENT_RUN) == old:
        state.set_current_run(dest.name)
    ss["tr_ren_name"] = ""
    ss[MSG] = ("success", f"Renamed {old} to {dest.name}.")


def _rename_ui(mine: list[str]) -> None:
    if not mine:
        return
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    c1.selectbox("Rename a run", mine, key="tr_ren_pick")
    c2.text_input("New name", key="tr_ren_name", max_chars=runs.MAX_NAME)
    c3.button("Rename", key="tr_ren_go", on_click=_rename, disabled=not ss.get("tr_ren_name"))


def _delete_ui(infos: list[runs.RunInfo]) -> None:
    actor = session.actor()
    deletable = [r.name for r in infos if not r.protected and not r.active and identity.may_manage(actor, r)]
    pending = ss.get("tr_del_confirm")
    if pending:
        st.warning(f"Delete run **{pending}** with its model and curves? This cannot be undone.")
        c = st.columns([1, 1, 4])
        c[0].button("Yes, delete", key="tr_del_yes", type="primary", on_click=_delete, args=(pending,))
        c[1].button("Cancel", key="tr_del_no", on_click=lambda: ss.pop("tr_del_confirm", None))
        return
    if not deletable:
        st.caption("Nothing to delete (the pretrained model is protected; stop a run before deleting it"
                   + ("; in a class you manage your own runs only)." if not actor.local else ")."))
        return
    _rename_ui([n for n in deletable if not next(r for r in infos if r.name == n).damaged])
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Delete a run", deletable, key="tr_del_pick",
                        help="The pretrained model is protected; queued or running runs must be stopped first.")
    c2.button("Delete…", key="tr_del_ask", on_click=lambda: ss.update(tr_del_confirm=pick))


def render(infos: list[runs.RunInfo]) -> None:
    st.subheader("All runs")
    if not infos:
        st.info("No runs yet. Start one above.")
        return
    for r in infos:
        if r.damaged:
            st.warning(f"**{r.name}** cannot be read: {r.damaged}")
    if any(r.active for r in infos):
        # Statuses and epochs change while something trains: refresh the table (every 5 s).
        st.fragment(_live_table, run_every=5)()
    else:
        _table(infos)
    st.download_button("Download all runs as CSV", data=runs.summary_csv(infos), file_name="runs.csv",
                       mime="text/csv", key="tr_runs_csv", icon=":material/download:", on_click="ignore",
                       help="Each run's settings and final figures, one row each (also: python -m mnist_core "
                            "runs --csv).")
    _compare(infos)
    _delete_ui(infos)
