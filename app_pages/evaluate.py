"""Evaluate: how good the current model is on the test set and exactly where it goes wrong.

Headline figures, the confusion matrix (click a cell to see its images), per-class metrics, the most
confused pairs, confidence and calibration, and a comparison with a second run. Predictions are computed
once per model and data source and cached in the run folder (ui.evaluation_view). The matrix colours
the mistakes alone by default (the right answers on its diagonal would wash them out), and sits with
the gallery of the chosen cell above the fold; "Open" on a confused pair brings that gallery into view."""

import math

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.data import DataError
from ui import fmt, loaders, scroll, state

PER_PAGE = 20  # images per gallery page: 4 rows beside the matrix
CHART_KEY = "ev_cm_chart"
GALLERY = "ev_gallery"  # the gallery's container (scrolled into view by "Open")
MATRIX_PX = 470


def _set_cell(t: int, p: int, show: bool = False) -> None:
    st.session_state["ev_true"], st.session_state["ev_pred"] = t, p
    st.session_state["ev_page"] = 1
    if show:
        st.session_state["ev_scroll"] = True


def _on_cell_click() -> None:
    """The matrix's selection callback: a click on a cell's marker chooses that cell. An empty
    selection (a second click on the same cell deselects it in Plotly) keeps the current cell."""
    event = st.session_state.get(CHART_KEY) or {}
    points = (event.get("selection") or {}).get("points") or []
    for pt in reversed(points):
        # Marker i of the overlay is cell (i // 10, i % 10); x and y carry the same digits as text.
        try:
            if pt.get("x") is not None and pt.get("y") is not None:
                t, p = int(pt["y"]), int(pt["x"])
            else:
                t, p = divmod(int(pt["point_index"]), 10)
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= t <= 9 and 0 <= p <= 9:
            _set_cell(t, p)
            return


def _failed(err: Exception, name: str) -> None:
    st.error(f"The model of run **{name}** cannot be evaluated: {err}")
    st.caption("Choose another model in the sidebar, or train a new one on the Train page.")


st.title("Evaluate")

run_dir = state.require_current_run("No trained model yet: there is nothing to evaluate. Train one first.").path
name = run_dir.name
waiting = st.empty()
waiting.caption(f"Loading the test set and the predictions of **{name}**…")  # at once: a first visit takes a while

# Imported only now, so that the title and the line above show at once: on a cold server these take
# seconds (scikit-learn's metrics, plotly's figure classes).
from mnist_core import plots  # noqa: E402
from mnist_core.inference import ModelError  # noqa: E402
from ui import classroom_view as cv  # noqa: E402
from ui import evaluation_view as ev  # noqa: E402
from ui import export_view  # noqa: E402

class_ds = cv.class_dataset()
choices = ["mnist"] + (["class"] if len(class_ds.y_test) else [])
which = "mnist"
if len(choices) > 1:
    which = st.segmented_control("Evaluate on", choices, default="mnist", key="ev_data",
                                 format_func=lambda c: "MNIST test set" if c == "mnist" else
                                 f"Our handwriting ({fmt.count(len(class_ds.y_test), 'held-out class-set drawing')})",
                                 help="The class set is the class's own digits, added on the Draw page; its "
                                      "held-out part is never trained on.") or "mnist"
try:
    ds = loaders.dataset() if which == "mnist" else class_ds
except DataError as e:
    st.error(f"The test data could not be read: {e}")
    st.stop()

try:
    res = ev.evaluation_of(run_dir, ds, label=name)
except ModelError as e:
    _failed(e, name)
    st.stop()
except OSError as e:
    st.error(f"The model file of run **{name}** cannot be read ({e}). It may have been deleted or moved.")
    st.stop()
except ValueError as e:  # e.g. predictions of the wrong shape from an odd model
    _failed(e, name)
    st.stop()

n_test = len(res.y_true)
src = ds.source
waiting.caption(f"Model **{name}** (switch it in the sidebar) · evaluated now on {src.describe()}")

# --- headline ---------------------------------------------------------------------------------------
c1, c2, c3, c4 = st.columns([1.2, 1, 1, 1.4])
c1.metric(f"Test accuracy ({fmt.count(n_test, 'image')})", f"{res.accuracy:.2%}",
          help=f"On the {fmt.count(n_test, 'test image')} of {src.label}, computed now. The sidebar and the Train "
               "page show what the run measured on its own test set when it was trained.")
c2.metric("Test loss", f"{res.loss:.4f}", help="Cross-entropy (log loss) of the predicted probabilities")
c3.metric(f"Mistakes of {n_test:,}", f"{res.n_mistakes:,}",
          help=f"Test images the model got wrong, out of {fmt.count(n_test, 'test image')}")
c4.metric("Data source", src.title, help=src.describe())

# --- confusion matrix and the images of a cell ------------------------------------------------------
if "ev_true" not in st.session_state or "ev_pred" not in st.session_state:
    pairs = res.confused_pairs(1)
    _set_cell(*(pairs[0][:2] if pairs else (0, 0)))

left, right = st.columns([3, 2], gap="large")
with left:
    m1, m2 = st.columns(2)
    mode = m1.segmented_control("Confusion matrix: show", ["counts", "row %"], default="counts", key="ev_norm",
                                help="row %: each row as a share of that true digit (the diagonal is recall)")
    colour = m2.segmented_control("Colour", ["mistakes only", "all cells"], default="mistakes only",
                                  key="ev_colour", help="Mistakes only: the right answers on the diagonal are grey, "
                                                        "and the colours show the mistakes alone (which the "
                                                        "diagonal's large counts would wash out).")
    t_sel, p_sel = st.session_state["ev_true"], st.session_state["ev_pred"]
    fig = plots.confusion_matrix_clickable(res.confusion, normalize=mode == "row %", selected=(t_sel, p_sel),
                                           errors_only=colour != "all cells", height=MATRIX_PX)
    st.plotly_chart(fig, key=CHART_KEY, on_select=_on_cell_click, selection_mode="points",
                    config={"displayModeBar": False})
    st.caption("Rows: the true digit; columns: what the model predicted. **Click a cell** to see its images.")

with right, st.container(key=GALLERY):
    if st.session_state.pop("ev_scroll", False):
        scroll.into_view(GALLERY)  # "Open" on a confused pair further down: show what it opened
    s1, s2 = st.columns(2)
    t = s1.selectbox("True digit", range(10), key="ev_true")
    p = s2.selectbox("Predicted digit", range(10), key="ev_pred")
    least_first = st.session_state.get("ev_least_first", False)
    idx = res.cell(t, p)
    if least_first:
        idx = idx[::-1]
    what = "correctly recognised" if t == p else f"predicted as {p}"
    st.markdown(f"**{fmt.count(len(idx), 'test image')} of a {t} {what}**, sorted by the model's confidence "
                f"in {p}" + (" (least first)" if least_first else ""))
    if len(idx) == 0:
        st.info(f"No test image of a {t} was predicted as {p}.")
    else:
        n_pages = math.ceil(len(idx) / PER_PAGE)
        if st.session_state.get("ev_page", 1) > n_pages:
            st.session_state["ev_page"] = 1
        o1, o2 = st.columns([3, 2], vertical_alignment="center")
        o1.toggle("Least confident first", key="ev_least_first",
                  help="Most confident first shows the surest mistakes; least first the borderline ones")
        page_no = o2.number_input("Page", 1, n_pages, key="ev_page",
                                  help=f"{n_pages} pages of {PER_PAGE} images") if n_pages > 1 else 1
        shown = idx[(page_no - 1) * PER_PAGE: page_no * PER_PAGE]
        st.image(ev.tiles(ds.x_test[shown]), width=84,
                 caption=[f"#{i} · {res.proba[i, p]:.1%}" for i in shown])
        st.caption("#test-set index · probability the model gave to its answer")
        with st.expander(f"All {len(idx):,} as a table"):
            second = np.argsort(res.proba[idx], axis=1)[:, -2]
            table = pd.DataFrame({"index": idx, "true": t, "predicted": p,
                                  "p_predicted": res.proba[idx, p], "p_true": res.proba[idx, t],
                                  "second_choice": second})
            st.dataframe(table, hide_index=True, key="ev_cell_table", height=240,
                         column_config={"p_predicted": st.column_config.NumberColumn(format="%.4f"),
                                        "p_true": st.column_config.NumberColumn(format="%.4f")})
            st.download_button("Download CSV", table.to_csv(index=False), f"{name}-true{t}-pred{p}.csv",
                               mime="text/csv", key="ev_cell_csv")

# --- per-class metrics and the most confused pairs --------------------------------------------------
st.subheader("Per-class metrics")
m_left, m_right = st.columns([1, 1], gap="large")
with m_left:
    per = pd.DataFrame(res.per_class())
    imperfect = per[per["f1"] < 1.0]
    worst = set(imperfect.nsmallest(3, "f1")["digit"])

    def _highlight(row: pd.Series) -> list[str]:
        return ["background-color: rgba(214, 39, 40, 0.18)" if row["digit"] in worst else ""] * len(row)

    styled = per.style.apply(_highlight, axis=1).format({"precision": "{:.4f}", "recall": "{:.4f}",
                                                         "f1": "{:.4f}", "support": "{:,}"})
    st.dataframe(styled, hide_index=True, key="ev_per_class")
    rep = res.report()
    if worst:
        st.caption("Highlighted: the weakest digits by F1 — "
                   + ", ".join(f"{d} ({per.loc[per.digit == d, 'f1'].item():.3f})"
                               for d in sorted(worst, key=lambda d: per.loc[per.digit == d, 'f1'].item()))
                   + f". Macro F1 {rep['macro avg']['f1-score']:.4f}.")
    csv = pd.concat([per.astype({"digit": str}), pd.DataFrame([
        {"digit": k, "precision": rep[k]["precision"], "recall": rep[k]["recall"], "f1": rep[k]["f1-score"],
         "support": int(rep[k]["support"])} for k in ("macro avg", "weighted avg")])])
    st.download_button("Download CSV", csv.to_csv(index=False), f"{name}-per-class.csv", mime="text/csv",
                       key="ev_per_class_csv")

with m_right:
    st.markdown("**Most confused pairs**")
    pairs = res.confused_pairs(5)
    if not pairs:
        st.success("No mistakes at all on this test set.")
    for i, (pt, pp, count) in enumerate(pairs):
        with st.container(border=True):
            a, b = st.columns([1, 3], vertical_alignment="center")
            a.markdown(f"**{pt} → {pp}**  \n{count} image{'s' if count > 1 else ''}")
            a.button("Open", key=f"ev_pair_{i}", on_click=_set_cell, args=(pt, pp, True),
                     help=f"Show every {pt} predicted as {pp} in the gallery above (the page scrolls there)")
            ex = res.cell(pt, pp)[:5]
            b.image(ev.tiles(ds.x_test[ex], 2), width=56, caption=[f"{res.proba[j, pp]:.0%}" for j in ex])

# --- confidence and calibration ---------------------------------------------------------------------
st.subheader("Confidence and calibration")
h_left, h_right = st.columns(2, gap="large")
with h_left:
    st.plotly_chart(plots.confidence_histogram(res.confidence, res.correct), key="ev_conf_hist")
    wrong_conf = res.confidence[~res.correct]
    if len(wrong_conf):
        st.caption(f"Median confidence when right {np.median(res.confidence[res.correct]):.1%}, "
                   f"when wrong {np.median(wrong_conf):.1%}; {int((wrong_conf > 0.9).sum())} mistakes "
                   "were made with more than 90% confidence.")
with h_right:
    mean_conf, frac = res.calibration()
    st.plotly_chart(plots.reliability_diagram(mean_conf, frac, ece=res.ece()), key="ev_reliability")
    st.caption("Points below the diagonal: the model is more confident than it is right (overconfident). "
               "ECE: the average gap, weighted by the answers in each bin.")

# --- compare with a second run ----------------------------------------------------------------------
st.subheader("Compare with another run")
usable = {r.name: r.path for r in state.usable_runs() if r.name != name}
if not usable:
    st.info("There is no other finished run to compare with yet.")
else:
    if st.session_state.get("ev_compare") not in usable:
        st.session_state.pop("ev_compare", None)
    other = st.selectbox("Second run", list(usable), index=None, key="ev_compare",
                         placeholder="Choose a run to compare with")
    if other is not None:
        try:
            res_b = ev.evaluation_of(usable[other], ds, label=other)
        except (ModelError, OSError, ValueError) as e:
            st.error(f"Run **{other}** cannot be evaluated: {e}")
            res_b = None
        if res_b is not None:
            k1, k2, k3, k4 = st.columns(4)
            k1.metric(f"{name}", f"{res.accuracy:.2%}", help="test accuracy")
            k2.metric(f"{other}", f"{res_b.accuracy:.2%}", f"{(res_b.accuracy - res.accuracy) * 100:+.2f} pts",
                      help="test accuracy, and the difference from the current model")
            k3.metric(f"Right only with {other}", f"{int((res_b.correct & ~res.correct).sum()):,}")
            k4.metric(f"Right only with {name}", f"{int((res.correct & ~res_b.correct).sum()):,}")
            st.plotly_chart(plots.confusion_diff(res.confusion, res_b.confusion, name, other,
                                                 title=f"Where {other} does better (blue) or worse (red) than {name}"),
                            key="ev_compare_diff")
            st.caption(f"Blue always means better for {other}: more right answers on the diagonal, fewer of that "
                       f"mistake off it; red means worse. Each number is the count with {other} minus the count "
                       f"with {name}; hover a cell for both counts.")

# --- export -------------------------------------------------------------------------------------------
st.subheader("Take the model out")
st.caption("Export this model as LiteRT (`.tflite`, phones and microcontrollers), ONNX (onnxruntime, browsers "
           "through onnxruntime-web) or a TensorFlow SavedModel (TF Serving). Each file is loaded by its own "
           "runtime and checked on the test set before it is offered.")
export_view.render(run_dir, "ev")
