"""Leaderboard: the class's finished runs ranked by test accuracy on MNIST and on the class's own
held-out handwriting, with the teacher's challenge rule (if any) shown above the ranking."""

import pandas as pd
import streamlit as st

from mnist_core import leaderboard
from ui import classroom_view as cv
from ui import fmt, state

st.title("Leaderboard")
rule = leaderboard.challenge()
st.caption("Every finished run, best first: MNIST test accuracy, then accuracy on the class's own drawings that "
           "no training ever sees (the held-out part of the class set, added on the Draw page).")
if rule.max_params:
    st.info(f"**Challenge:** {rule.describe()}. Runs over the limit are ranked after the others.",
            icon=":material/flag:")

infos = state.listing()
ds = cv.class_dataset()
scores = cv.cached_scores(infos, ds)
job = cv.score_job([r for r in infos if scores.get(r.name) is None], ds)
if job is not None and job.succeeded:
    scores.update(job.result)
rows = leaderboard.ranking(infos, scores, rule)
if not rows:
    st.info("No finished run yet: train one on the Train page.")
    st.stop()

if job is not None and not job.done:
    @st.fragment(run_every=1.0)
    def _progress() -> None:
        if job.done:
            st.rerun()
        st.progress(job.progress, text=f"Scoring the runs on the class's drawings: {job.stage}…")

    _progress()

table = pd.DataFrame([{**r, "train_seconds": fmt.seconds(r["train_seconds"]),
                       "within_rule": "✓" if r["within_rule"] else "over the limit"} for r in rows])
st.dataframe(table, hide_index=True, key="lb_table", width="stretch", column_order=[
    "rank", "run", "owner", "test_accuracy", "class_accuracy", "params", "preset", "data", "train_seconds",
    "within_rule"], column_config={
    "test_accuracy": st.column_config.NumberColumn("MNIST test accuracy", format="percent"),
    "class_accuracy": st.column_config.NumberColumn(f"class set ({len(ds.y_test)} held out)", format="percent"),
    "params": st.column_config.NumberColumn("parameters", format="localized"),
    "train_seconds": st.column_config.TextColumn("training time"),
    "within_rule": st.column_config.TextColumn("challenge"),
})
if not len(ds.y_test):
    st.caption("The class set has no held-out drawings yet: add some on the Draw page to fill that column.")
