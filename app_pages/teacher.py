"""Teacher: every run by person, the queue with Stop for any run, the names in use, the class set's
moderation, the challenge rule, and resetting the class (archived, not deleted). Each action goes
through mnist_core (manage, identity, classset, leaderboard), which refuses anyone but the teacher."""

import pandas as pd
import streamlit as st

from mnist_core import classset, identity, leaderboard, manage, plots, runs
from mnist_core.identity import IdentityError
from ui import session, state

ss = st.session_state
st.title("Teacher")
actor = session.actor()
if not actor.teacher:
    st.info("This page is the teacher's. Unlock it with the teacher password (the **Teacher** button in the "
            "sidebar).", icon=":material/lock:")
    st.stop()

msg = ss.pop("te_msg", None)
if msg:
    getattr(st, msg[0])(msg[1])


def _do(what: str, fn, *args) -> None:
    try:
        fn(*args)
        ss["te_msg"] = ("success", what)
    except (runs.RunError, IdentityError, classset.ClassSetError, OSError) as e:
        ss["te_msg"] = ("error", f"{what.split(':')[0]} failed: {e}")


infos = state.listing()

# --- the queue and every run by person ---------------------------------------------------------------
st.subheader("Trainings in progress")
active = [r for r in infos if r.active]
if not active:
    st.caption("Nothing is training or waiting.")
for r in active:
    c = st.columns([3, 2, 1], vertical_alignment="center")
    c[0].markdown(f"**{r.name}** · {r.state}")
    c[1].caption(r.owner or "shared")
    c[2].button("Stop", key=f"te_stop_{r.name}", on_click=_do, args=(f"Stopped {r.name}.", manage.stop, actor, r.path))

st.subheader("Runs by person")
by_owner = pd.DataFrame([{"person": r.owner or "shared", "run": r.name, "status": r.state,
                          "test acc": r.test_accuracy, "params": r.params} for r in infos])
if len(by_owner):
    summary = by_owner.groupby("person").agg(runs=("run", "count"), best=("test acc", "max")).reset_index()
    st.dataframe(summary, hide_index=True, key="te_summary",
                 column_config={"best": st.column_config.NumberColumn("best test acc", format="percent")})
    with st.expander("Every run"):
        st.dataframe(by_owner.sort_values(["person", "run"]), hide_index=True, key="te_runs",
                     column_config={"test acc": st.column_config.NumberColumn(format="percent")})
    deletable = [r.name for r in infos if not r.protected and not r.active]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Delete a run", deletable, key="te_del_pick", index=None, placeholder="Choose a run")
    c2.button("Delete", key="te_del_go", disabled=pick is None,
              on_click=lambda: _do(f"Deleted {pick}.", manage.delete, actor, runs.runs_root() / pick))

# --- names -------------------------------------------------------------------------------------------
st.subheader("Names in use")
taken = identity.names()
if not taken:
    st.caption("Nobody has signed in yet.")
else:
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    who = c1.selectbox("Release a name (its holder is signed out; anyone may take it again)",
                       [n["name"] for n in taken], key="te_release_pick")
    c2.button("Release", key="te_release_go",
              on_click=lambda: _do(f"Released {who}.", identity.release_name, who, actor))

# --- the class set -----------------------------------------------------------------------------------
st.subheader("The class set")
cs = classset.load()
st.caption(f"{len(cs):,} drawings from {len(set(cs.contributors))} people; {int(cs.holdout.sum())} held out for "
           "scoring. Click a drawing to select it, then remove it.")
if len(cs):
    st.plotly_chart(plots.dataset_grid(cs.images, range(len(cs)), cs.labels, cols=15, show_labels=True,
                                       height=max(140, 70 * (-(-len(cs) // 15)))),
                    key="te_classset", on_select="rerun", selection_mode="points", config={"displayModeBar": False})
    event = ss.get("te_classset") or {}
    picked = [int(p["customdata"][0] if isinstance(p.get("customdata"), list) else p["customdata"]["0"])
              for p in (event.get("selection") or {}).get("points", []) if p.get("customdata") is not None]
    if picked:
        i = picked[0]
        st.markdown(f"Selected: a **{cs.labels[i]}** by **{cs.contributors[i] or 'someone'}**.")
        st.button("Remove this drawing", key="te_cs_remove",
                  on_click=lambda: _do("Removed the drawing.", classset.remove, cs.ids[i], actor))

# --- the challenge and the reset ---------------------------------------------------------------------
st.subheader("Challenge")
rule = leaderboard.challenge()
c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
limit = c1.number_input("At most this many parameters (0: no rule)", 0, 10_000_000, value=rule.max_params or 0,
                        step=1000, key="te_rule_params")
note = c2.text_input("Note shown with the ranking", value=rule.note, key="te_rule_note", max_chars=200)
c3.button("Save the rule", key="te_rule_go", on_click=lambda: _do(
    "Saved the challenge.", leaderboard.set_challenge, actor, leaderboard.Challenge(int(limit) or None, note)))

st.subheader("Reset the class")
st.caption("Archives the lesson: every run with an owner, the class set and the names move into a dated folder in "
           "the runs folder's `.classroom/archive/`; nothing is deleted, and shared runs (such as pretrained) stay.")
if ss.get("te_reset_ask"):
    st.warning("Archive this lesson's runs, drawings and names now?")
    c = st.columns([1, 1, 4])
    c[0].button("Yes, reset", key="te_reset_yes", type="primary",
                on_click=lambda: (ss.pop("te_reset_ask", None), _do("The class was reset (archived).",
                                                                     manage.reset_class, actor)))
    c[1].button("Cancel", key="te_reset_no", on_click=lambda: ss.pop("te_reset_ask", None))
else:
    st.button("Reset the class…", key="te_reset", on_click=lambda: ss.update(te_reset_ask=True))
