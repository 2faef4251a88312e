"""Streamlit glue for the classroom: the class set as cached arrays, and every run's score on the
class's held-out handwriting, computed in one background job (ui/jobs.py) so the Leaderboard page
never waits on TensorFlow; scores already in the run folders' evaluation caches cost no inference."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core import classset, evaluation, runs
from mnist_core.data import Dataset

from . import jobs

SCORES = "class-scores"


def class_set() -> classset.ClassSet:
    """Every class-set entry (read from disk: a few KB each)."""
    return classset.load()


def class_dataset() -> Dataset:
    """The class set as a Dataset (train part, held-out part), read from disk on each call (small)."""
    return classset.as_dataset()


def cached_scores(infos: list[runs.RunInfo], ds: Dataset) -> dict[str, float | None]:
    """Each run's accuracy on the held-out class set where the run folder already holds it."""
    out: dict[str, float | None] = {}
    for r in infos:
        res = evaluation.load_cached_evaluation(r.path, ds.source) if r.usable else None
        out[r.name] = res.accuracy if res is not None and len(res.y_true) == len(ds.y_test) else None
    return out


def score_job(infos: list[runs.RunInfo], ds: Dataset) -> jobs.Job | None:
    """The job computing the missing scores (None when nothing is missing or the held-out set is empty)."""
    todo = [r for r in infos if r.usable and r.state == "finished"]
    if not len(ds.y_test) or not todo:
        return None
    key = (ds.source.key, tuple((r.name, r.folder.model_stamp()) for r in todo))

    def work(job: jobs.Job) -> dict[str, float]:
        from mnist_core.inference import ModelError

        scores = {}
        for i, r in enumerate(todo):
            job.report(i / len(todo), f"scoring {r.name}")
            try:
                scores[r.name] = evaluation.evaluate_run(Path(r.path), ds).accuracy  # cached in the run folder
            except (ModelError, OSError, ValueError):
                continue
        return scores

    return jobs.start(SCORES, key, work, keep=2)


def _png(picture: np.ndarray | None) -> bytes | None:
    if picture is None:
        return None
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(picture, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def add_drawing_ui(image28: np.ndarray, picture: np.ndarray | None, predicted: int, key: str) -> None:
    """"Add to the class set as digit N": the label (the prediction by default) and the button; the
    original drawing is encoded and kept with the entry only when the button is pressed."""
    from . import session

    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    label = c1.selectbox("Digit", range(10), index=int(predicted), key=f"{key}_label",
                         help="What you meant to draw (the model may be wrong: that is what makes it useful).")

    def add() -> None:
        try:
            classset.add(image28, int(st.session_state[f"{key}_label"]), session.actor().name, _png(picture))
            st.session_state[f"{key}_msg"] = ("success", f"Added to the class set as a {st.session_state[f'{key}_label']}.")
        except (classset.ClassSetError, OSError) as e:
            st.session_state[f"{key}_msg"] = ("error", f"Not added: {e}")

    c2.button(f"Add to the class set as digit {label}", key=f"{key}_add", icon=":material/group_add:", on_click=add)
    msg = st.session_state.pop(f"{key}_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])
