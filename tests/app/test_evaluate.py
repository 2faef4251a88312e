"""AppTest of the Evaluate page on a known test set: 300 real MNIST test images written as IDX files to a
temporary data directory, a tiny run trained here, and (when bundled) a copy of the pretrained model.
Everything shown is checked against scikit-learn on the predictions the page stored in the run folder."""

from __future__ import annotations

import base64
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

from mnist_core import runs
from mnist_core.data import IDX_NAMES, load_mnist, write_idx

from ..conftest import ROOT, take

PRETRAINED = ROOT / "models" / runs.PRETRAINED
APP = str(ROOT / "app.py")
PER_PAGE = int(re.search(r"^PER_PAGE = (\d+)", (ROOT / "app_pages" / "evaluate.py").read_text(), re.M)[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory, mnist):
    """A data directory with 600 train / 300 test real MNIST images, and a runs folder holding a tiny
    freshly trained run (its cached evaluation removed, so the page has to compute it)."""
    base = tmp_path_factory.mktemp("evaluate")
    data = base / "data"
    data.mkdir()
    small = take(mnist, 600, 300)
    for key, arr in (("train_images", small.x_train), ("train_labels", small.y_train.astype(np.uint8)),
                     ("test_images", small.x_test), ("test_labels", small.y_test.astype(np.uint8))):
        write_idx(data / IDX_NAMES[key], arr)
    ds = load_mnist(data, "data_dir")
    root = base / "runs"
    from mnist_core.config import preset_config
    from mnist_core.training import train

    cfg = preset_config("classic", epochs=1, limit=600)
    run_dir = runs.create_run(cfg, "tiny", root=root)
    train(cfg, run_dir, ds)
    shutil.rmtree(run_dir / "evaluation")
    return {"data": data, "runs": root, "ds": ds}


@pytest.fixture(autouse=True)
def _environment(env, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(env["data"]))
    monkeypatch.setenv("MNIST_RUNS_DIR", str(env["runs"]))


def open_evaluate(current: str | None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=180)
    if current is not None:
        at.session_state["current_run"] = current
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception, at.exception[0].value
    return at


def stored_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    files = list((run_dir / "evaluation").glob("*.npz"))
    assert len(files) == 1, files
    with np.load(files[0]) as z:
        return z["y_true"].astype(int), z["proba"]


def chart_traces(at, key: str) -> list[dict]:
    """The traces a keyed chart sent to the browser, as JSON."""
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)["data"]


def array(v) -> np.ndarray:
    """A Plotly JSON array: a plain list, or plotly's typed buffer {dtype, bdata (base64), shape}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]).newbyteorder("<"))
        shape = [int(n) for n in str(v.get("shape", len(a))).split(",")]
        return a.reshape(shape)
    return np.asarray(v)


def shown_matrix(at) -> np.ndarray:
    heat = next(t for t in chart_traces(at, "ev_cm_chart") if t["type"] == "heatmap")
    return array(heat["z"]).astype(float)


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def check_against_sklearn(at, run_dir: Path, ds) -> tuple[np.ndarray, np.ndarray]:
    y, proba = stored_predictions(run_dir)
    np.testing.assert_array_equal(y, ds.y_test)  # predictions of exactly the test set in use
    pred = proba.argmax(1)
    assert metric(at, "Test accuracy") == f"{accuracy_score(y, pred):.2%}"
    assert metric(at, "Test loss") == f"{log_loss(y, np.clip(proba, 1e-7, 1), labels=range(10)):.4f}"
    assert metric(at, "Mistakes of 300") == f"{int((pred != y).sum()):,}"
    cm = shown_matrix(at)
    np.testing.assert_array_equal(cm, confusion_matrix(y, pred, labels=range(10)))
    assert cm.sum() == len(ds.y_test) == 300
    table = next(d.value for d in at.dataframe if "precision" in d.value.columns)
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=range(10), zero_division=0)
    np.testing.assert_allclose(table["precision"], prec, atol=1e-9)
    np.testing.assert_allclose(table["recall"], rec, atol=1e-9)
    np.testing.assert_allclose(table["f1"], f1, atol=1e-9)
    np.testing.assert_array_equal(table["support"], sup)
    return y, proba


def test_tiny_run_computes_caches_and_agrees_with_sklearn(env):
    at = open_evaluate("tiny")
    assert not at.error
    run_dir = env["runs"] / "tiny"
    check_against_sklearn(at, run_dir, env["ds"])
    assert "bundled" not in metric(at, "Data source")
    # The stored evaluation is reused: a second session gets the same numbers without a new file.
    before = sorted(p.name for p in (run_dir / "evaluation").iterdir())
    at2 = open_evaluate("tiny")
    assert metric(at2, "Test accuracy") == metric(at, "Test accuracy")
    assert sorted(p.name for p in (run_dir / "evaluation").iterdir()) == before


def test_choosing_a_cell_lists_exactly_its_images(env):
    at = open_evaluate("tiny")
    y, proba = stored_predictions(env["runs"] / "tiny")
    pred = proba.argmax(1)
    cm = confusion_matrix(y, pred, labels=range(10))
    off = cm.copy()
    np.fill_diagonal(off, 0)
    cells = [tuple(int(v) for v in np.unravel_index(off.argmax(), off.shape)),  # a frequent mistake
             (int(np.argmax(np.diag(cm))), int(np.argmax(np.diag(cm))))]        # correct ones
    for t, p in cells:
        at.selectbox(key="ev_true").set_value(t)
        at.selectbox(key="ev_pred").set_value(p)
        at.run()
        assert not at.exception
        want = np.flatnonzero((y == t) & (pred == p))
        want = want[np.argsort(-proba[want, p], kind="stable")]
        assert len(want) > 0
        assert any(f"{len(want):,} test image{'' if len(want) == 1 else 's'} of a {t}" in m.value for m in at.markdown)
        gallery = at.image[0].captions
        assert gallery == [f"#{i} · {proba[i, p]:.1%}" for i in want[:PER_PAGE]]
        table = next(d.value for d in at.dataframe if "p_predicted" in d.value.columns)
        assert list(table["index"]) == list(want)
        assert set(table["true"]) == {t} and set(table["predicted"]) == {p}
        np.testing.assert_array_equal(y[table["index"]], t)
        np.testing.assert_array_equal(pred[table["index"]], p)

    # "Least confident first" reverses the order; a confused pair's Open button chooses that cell.
    at.toggle(key="ev_least_first").set_value(True).run()
    t, p = cells[-1]
    want = np.flatnonzero((y == t) & (pred == p))
    want = want[np.argsort(-proba[want, p], kind="stable")][::-1]
    assert at.image[0].captions == [f"#{i} · {proba[i, p]:.1%}" for i in want[:PER_PAGE]]
    at.button(key="ev_pair_0").click().run()
    t0, p0 = cells[0]
    assert (at.selectbox(key="ev_true").value, at.selectbox(key="ev_pred").value) == (t0, p0)
    # ... and brings the gallery, far above the button, into view: once, not on every rerun.
    assert any("st-key-ev_gallery" in h.proto.body and "scrollIntoView" in h.proto.body for h in at.get("html"))
    at.run()
    assert not any("st-key-ev_gallery" in h.proto.body for h in at.get("html"))


def test_percent_toggle_normalises_rows(env):
    at = open_evaluate("tiny")
    at.button_group(key="ev_norm").set_value("row %").run()
    z = shown_matrix(at)
    rows = z.sum(axis=1)
    np.testing.assert_allclose(rows[rows > 0], 100.0, atol=1e-6)


def test_pretrained_model(env):
    if not (PRETRAINED / "model.keras").exists():
        pytest.skip("models/pretrained/model.keras is not in the repository yet")
    dst = env["runs"] / runs.PRETRAINED
    if not dst.exists():
        shutil.copytree(PRETRAINED, dst, ignore=shutil.ignore_patterns("evaluation"))
    at = open_evaluate(runs.PRETRAINED)
    assert not at.error
    y, proba = check_against_sklearn(at, dst, env["ds"])
    assert accuracy_score(y, proba.argmax(1)) > 0.9  # the bundled model really is a good one

    # Compare it with the tiny run: both accuracies and the difference of the confusion matrices.
    at.selectbox(key="ev_compare").set_value("tiny").run()
    assert not at.exception and not at.error
    yb, pb = stored_predictions(env["runs"] / "tiny")
    assert metric(at, "tiny") == f"{accuracy_score(yb, pb.argmax(1)):.2%}"
    # Colour (z): better for the second run everywhere (the diagonal's gain, the mistakes' drop); the
    # numbers written in: the change in each count.
    heat = chart_traces(at, "ev_compare_diff")[0]
    diff = confusion_matrix(yb, pb.argmax(1), labels=range(10)) - confusion_matrix(y, proba.argmax(1), labels=range(10))
    np.testing.assert_array_equal(array(heat["z"]), np.where(np.eye(10, dtype=bool), diff, -diff))
    assert heat["text"] == [[f"{v:+d}" if v else "0" for v in row] for row in diff]


def test_corrupt_model_gets_a_clear_message_and_nothing_written(env):
    bad = env["runs"] / "broken"
    shutil.copytree(env["runs"] / "tiny", bad, ignore=shutil.ignore_patterns("evaluation"))
    (bad / "model.keras").unlink()
    with zipfile.ZipFile(bad / "model.keras", "w") as z:  # a zip, so it is listed, but no real model
        z.writestr("config.json", '{"class_name": "Nonsense", "config": {}}')
    try:
        at = open_evaluate("broken")
        assert at.error, "no error shown for a corrupt model"
        assert "broken" in at.error[0].value and "cannot be evaluated" in at.error[0].value
        assert not (bad / "evaluation").exists()
        assert not at.get("plotly_chart")
    finally:
        shutil.rmtree(bad)


def test_no_model_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path))
    at = open_evaluate(None)
    assert any("No trained model" in w.value for w in at.warning)
    assert not at.get("plotly_chart")
