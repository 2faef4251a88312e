"""The Train page's list of runs: the table, the comparison of runs, renaming and deletion.

Everything is drawn from the listing of this script run (`state.listing()`). While a run other than
the one the live panel watches is in progress, the table alone refreshes itself every 10 s (the
watched run's progress is in the panel, and its end reruns the page). A damaged run folder is a row
like any other, with the reason in its status column, and can be deleted. Comparing runs overlays
their curves next to a table of only the settings that differ between them, and says so plainly when
they were not trained on the same data.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from mnist_core import identity, manage, plots, runs
from mnist_core.config import DATA_TITLES
from mnist_core.data import SOURCE_TITLES

from . import fmt, session, state, train_form, train_live

ss = st.session_state
MSG = train_live.MSG
TABLE_EVERY_S = 10.0
# The settings a comparison can show, as (summary_row key, column title): the form's own labels.
_TITLES = {**train_form.LABELS, "init_from": "Started from", "trained_on": "Trained on"}
SETTINGS = [(k, _TITLES.get(k, k)) for k in ("preset", *runs.CONFIG_COLUMNS, "trained_on")]


def trained_on(r: runs.RunInfo, counts: bool = True) -> str:
    """The data a run was trained on, short: "Local MNIST copy (22,699 + 10,000 images)" (training
    images incl. validation + test images; without `counts` the source alone)."""
    src = r.metrics.get("data_source")
    if src in SOURCE_TITLES and r.metrics.get("n_test"):
        n_train = int(r.metrics.get("n_train", 0)) + int(r.metrics.get("n_val", 0))
        return f"{SOURCE_TITLES[src]} ({n_train:,} + {int(r.metrics['n_test']):,} images)" if counts \
            else SOURCE_TITLES[src]
    described = r.metrics.get("data") or r.status.get("data")
    return str(described).split(":")[0] if described else "–"


def data_identity(r: runs.RunInfo) -> tuple[str, str]:
    """What a run's data is, to tell runs apart: the source with its counts and path, and the class-set
    choice (MNIST, MNIST + the class's drawings, the drawings alone)."""
    return str(r.metrics.get("data") or r.status.get("data") or ""), r.config.data if r.config else ""


def _show(key: str, v: object) -> str:
    if v is None:
        return "all images" if key == "limit" else "–"
    if isinstance(v, bool):
        return "on" if v else "off"
    if key == "data":
        return DATA_TITLES.get(str(v), str(v))
    return f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else str(v)


def differing_settings(infos: list[runs.RunInfo]) -> pd.DataFrame:
    """Only the settings (`SETTINGS`) that are not the same in all the runs: one row per setting, one
    column per run (so that many settings stay readable beside the chart)."""
    # The source alone: its counts are the subset row's, and the warning above names them in full.
    rows = [{**runs.summary_row(r), "trained_on": trained_on(r, counts=False)} for r in infos]
    keep = [(k, t) for k, t in SETTINGS if len({_show(k, row.get(k)) for row in rows}) > 1]
    return pd.DataFrame([{"setting": t, **{row["name"]: _show(k, row.get(k)) for row in rows}} for k, t in keep],
                        columns=["setting", *(row["name"] for row in rows)])


def _table(infos: list[runs.RunInfo]) -> None:
    rows = [{
        "name": r.name, "status": f"damaged: {r.damaged}" if r.damaged else r.state, "owner": r.owner or "shared",
        "preset": r.preset,
        "params": r.params, "epochs": f"{r.epochs_done}/{r.epochs}" if r.epochs else "–",
        "val acc": f"{r.val_accuracy:.2%}" if r.val_accuracy is not None else "–",
        "test acc": f"{r.test_accuracy:.2%}" if r.test_accuracy is not None else "–",
        "test data": trained_on(r, counts=False) if r.metrics else "–",
        "training time": fmt.seconds(r.train_seconds) if r.train_seconds is not None else "",
        "date": dt.datetime.fromtimestamp(r.created),
    } for r in infos]
    st.dataframe(pd.DataFrame(rows), key="tr_runs_table", hide_index=True, width="stretch", column_config={
        "params": st.column_config.NumberColumn("parameters", format="localized"),
        "val acc": st.column_config.TextColumn("final val acc"),
        "test acc": st.column_config.TextColumn("test acc", help="On the test set of the data the run was "
                                                "trained on (next column), measured when training ended."),
        "test data": st.column_config.TextColumn("data", help="The data the run was trained and tested on."),
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
    st.markdown("**Compare runs**")
    if "tr_compare" not in ss:
        ss["tr_compare"] = list(with_curves)[:3]
    ss["tr_compare"] = [n for n in ss["tr_compare"] if n in with_curves]  # deleted runs drop out
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Runs", list(with_curves), key="tr_compare", placeholder="Choose runs to compare")
    metric = c2.selectbox("Metric", ["val_accuracy", "val_loss", "accuracy", "loss"], key="tr_compare_metric",
                          format_func=lambda m: m.replace("val_", "validation ").replace("_", " "))
    if not chosen:
        return
    picked = [with_curves[n] for n in chosen]
    data = {data_identity(r) for r in picked}
    if len(data) > 1:
        st.warning("These runs were not trained on the same data, so their curves and accuracies do not compare "
                   "like for like: " + "; ".join(f"**{r.name}** on {trained_on(r)}"
                                                + (f" ({DATA_TITLES.get(r.config.data, r.config.data)})"
                                                   if r.config and r.config.data != "mnist" else "")
                                                for r in picked) + ".", icon=":material/warning:")
    left, right = st.columns([3, 2], gap="medium")
    left.plotly_chart(plots.overlay_curves({r.name: r.history for r in picked}, metric), key="tr_compare_chart")
    with right:
        table = differing_settings(picked)
        if len(picked) < 2:
            st.caption("Choose a second run to see the settings that differ.")
        elif table.empty:
            st.caption("These runs were trained with the same settings on the same data (only the run differs: "
                       "e.g. the same seed gives the same curves).")
        else:
            st.markdown("**What differs between them**")
            st.dataframe(table, hide_index=True, key="tr_compare_diff", width="stretch")
        outcome = pd.DataFrame([{"run": r.name, "best val acc": _best(r, "val_accuracy"),
                                 "test acc": f"{r.test_accuracy:.2%}" if r.test_accuracy is not None else "–"}
                                for r in picked])
        st.dataframe(outcome, hide_index=True, key="tr_compare_outcome", width="stretch")


def _best(r: runs.RunInfo, key: str) -> str:
    vals = [h[key] for h in r.history if h.get(key) is not None]
    return f"{max(vals):.2%}" if vals else "–"


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
        train_live.watch(dest.name, scroll_to=False)
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
    if any(r.active and r.name != ss.get(train_live.WATCH) for r in infos):
        # Another run's status and epochs change while it trains: refresh the table. (The watched run's are
        # in the live panel above, and its end reruns the whole page.)
        st.fragment(_live_table, run_every=TABLE_EVERY_S)()
    else:
        _table(infos)
    st.download_button("Download all runs as CSV", data=runs.summary_csv(infos), file_name="runs.csv",
                       mime="text/csv", key="tr_runs_csv", icon=":material/download:", on_click="ignore",
                       help="Each run's settings and final figures, one row each (also: python -m mnist_core "
                            "runs --csv).")
    _compare(infos)
    _delete_ui(infos)
