"""mnist_core.evaluation: every metric equals scikit-learn computed independently on the same
predictions; confusion cells, confused pairs, misclassified list; evaluate_run caching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from mnist_core import evaluation
from mnist_core.evaluation import evaluate_predictions, evaluate_run, predict_proba


def _random_predictions(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a mediocre classifier: right ~60 % of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    logits = rng.normal(0, 1.5, (n, 10))
    logits[np.arange(n), y] += 2.0
    p = np.exp(logits)
    return y, (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _check_against_sklearn(y: np.ndarray, proba: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warnings either (zero_division, sums...)
        res = evaluate_predictions(y, proba)
        pred = proba.argmax(axis=1)
        assert res.accuracy == pytest.approx(skm.accuracy_score(y, pred))
        p64 = proba.astype(np.float64)
        p64 /= p64.sum(axis=1, keepdims=True)  # float32 rows sum to 1 only within float32 precision
        assert res.loss == pytest.approx(skm.log_loss(y, p64, labels=list(range(10))), rel=1e-5)
        np.testing.assert_array_equal(res.confusion, skm.confusion_matrix(y, pred, labels=list(range(10))))
        prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=list(range(10)),
                                                                 zero_division=0)
        pc = res.per_class()
        assert [r["digit"] for r in pc] == list(range(10))
        np.testing.assert_allclose([r["precision"] for r in pc], prec)
        np.testing.assert_allclose([r["recall"] for r in pc], rec)
        np.testing.assert_allclose([r["f1"] for r in pc], f1)
        assert [r["support"] for r in pc] == sup.tolist()
        assert res.n_mistakes == int((pred != y).sum())


def test_metrics_equal_sklearn_on_synthetic_predictions():
    y, proba = _random_predictions()
    _check_against_sklearn(y, proba)


def test_metrics_equal_sklearn_with_missing_classes():
    """A test subset without some digits (precision/recall of an absent class are 0, no warning)."""
    y, proba = _random_predictions(200, seed=3)
    keep = y < 7
    _check_against_sklearn(y[keep], proba[keep])


@pytest.mark.slow
def test_metrics_equal_sklearn_on_a_trained_model(trained):
    proba = predict_proba(trained.model, trained.data.x_test)
    assert proba.shape == (300, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    # The same probabilities as Keras's own predict
    ref = trained.model.predict(trained.data.x_test[..., None].astype(np.float32) / 255.0, verbose=0)
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    _check_against_sklearn(trained.data.y_test, proba)
    res = evaluate_predictions(trained.data.y_test, proba)
    assert res.accuracy == pytest.approx(trained.metrics["test_accuracy"])
    assert res.loss == pytest.approx(trained.metrics["test_loss"], rel=1e-5)


def test_cell_lists_exactly_those_images_by_confidence():
    y, proba = _random_predictions()
    res = evaluate_predictions(y, proba)
    pred = proba.argmax(axis=1)
    for t, p in [(3, 3), (3, 5), (0, 9), (7, 1)]:
        idx = res.cell(t, p)
        assert sorted(idx.tolist()) == np.flatnonzero((y == t) & (pred == p)).tolist()
        conf = proba[idx, p]
        assert np.all(np.diff(conf) <= 0)  # most confident first
        assert len(idx) == res.confusion[t, p]


def test_misclassified_and_confused_pairs():
    y, proba = _random_predictions()
    res = evaluate_predictions(y, proba)
    pred = proba.argmax(axis=1)
    mis = res.misclassified()
    assert sorted(mis["index"].tolist()) == np.flatnonzero(pred != y).tolist()
    np.testing.assert_array_equal(mis["true"], y[mis["index"]])
    np.testing.assert_array_equal(mis["pred"], pred[mis["index"]])
    np.testing.assert_allclose(mis["confidence"], proba[mis["index"]].max(axis=1))
    assert np.all(np.diff(mis["confidence"]) <= 0)

    cm = skm.confusion_matrix(y, pred, labels=list(range(10)))
    np.fill_diagonal(cm, 0)
    pairs = res.confused_pairs(5)
    assert len(pairs) == 5
    counts = [c for _, _, c in pairs]
    assert counts == sorted(cm.ravel(), reverse=True)[:5]
    for t, p, c in pairs:
        assert t != p and cm[t, p] == c
    # A perfect classifier has no confused pairs and no mistakes
    perfect = evaluate_predictions(y, np.eye(10, dtype=np.float32)[y])
    assert perfect.confused_pairs() == [] and perfect.n_mistakes == 0 and perfect.accuracy == 1.0


def test_calibration_bins_match_sklearn():
    from sklearn.calibration import calibration_curve

    y, proba = _random_predictions()
    res = evaluate_predictions(y, proba)
    mean_conf, frac = res.calibration(10)
    correct = (proba.argmax(axis=1) == y).astype(int)
    ref_frac, ref_conf = calibration_curve(correct, proba.max(axis=1), n_bins=10)
    np.testing.assert_allclose(frac, ref_frac)
    np.testing.assert_allclose(mean_conf, ref_conf, rtol=1e-6)


def test_bad_shapes_refused():
    with pytest.raises(ValueError):
        evaluate_predictions(np.zeros(5, int), np.zeros((5, 9), np.float32))
    with pytest.raises(ValueError):
        evaluate_predictions(np.zeros(5, int), np.zeros((4, 10), np.float32))


@pytest.mark.slow
def test_evaluate_run_caches(trained, tmp_path, monkeypatch):
    import shutil

    from mnist_core import inference

    run = tmp_path / "copy"
    shutil.copytree(trained.run_dir, run)
    shutil.rmtree(run / "evaluation", ignore_errors=True)
    calls = {"n": 0}
    real = inference.load_model

    def counting(path):
        calls["n"] += 1
        return real(path)

    monkeypatch.setattr(inference, "load_model", counting)
    first = evaluate_run(run, trained.data)
    assert calls["n"] == 1
    assert list((run / "evaluation").glob("*.npz")), "no cache written"

    def forbidden(path):
        raise AssertionError("the second evaluation loaded the model")

    monkeypatch.setattr(inference, "load_model", forbidden)
    second = evaluate_run(run, trained.data)
    np.testing.assert_array_equal(second.proba, first.proba)
    assert second.accuracy == first.accuracy
    # Another data source is another cache entry: it needs the model again.
    from mnist_core.data import Dataset, DataSource

    other = Dataset(trained.data.x_train, trained.data.y_train, trained.data.x_test[:100],
                    trained.data.y_test[:100], DataSource("data_dir", "elsewhere", 600, 100))
    with pytest.raises(AssertionError, match="loaded the model"):
        evaluate_run(run, other)
    # A damaged cache is recomputed, not trusted.
    for p in (run / "evaluation").glob("*.npz"):
        p.write_bytes(b"garbage")
    monkeypatch.setattr(inference, "load_model", real)
    third = evaluate_run(run, trained.data)
    np.testing.assert_allclose(third.proba, first.proba, atol=1e-6)


@pytest.mark.slow
def test_training_wrote_the_evaluation_cache(trained, monkeypatch):
    """train() caches its own test predictions, so opening a fresh run needs no inference."""
    from mnist_core import inference

    monkeypatch.setattr(inference, "load_model", lambda p: (_ for _ in ()).throw(AssertionError("loaded")))
    res = evaluate_run(trained.run_dir, trained.data)
    assert res.accuracy == pytest.approx(trained.metrics["test_accuracy"])
    assert evaluation.load_cached_evaluation(trained.run_dir, trained.data.source) is not None
