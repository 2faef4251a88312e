"""Evaluation of a model on the test set, every metric through scikit-learn.

`predict_proba` runs a model over uint8 images in batches through one compiled call. The resulting
probabilities go to `evaluate_predictions`, which gives an `EvalResult`: accuracy and log loss, the
confusion matrix, the per-class report, the misclassified examples with their confidence, the images of
any confusion-matrix cell, the most confused pairs and calibration data. `evaluate_run` caches the
predictions in the run folder (`evaluation/<data key>-<model stamp>.npz`, keyed on the data source
and the model file's version, `RunFolder.model_stamp`) so reopening an evaluation costs no inference and needs no TensorFlow.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss

from . import runs
from .data import Dataset, DataSource
from .limits import SERVE_BATCH

LABELS = list(range(10))


def predict_proba(model: Any, images: np.ndarray, batch_size: int = SERVE_BATCH,
                  progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Class probabilities `(N, 10)` for uint8 `(N, 28, 28)` images."""
    from .inference import compiled_call

    call = compiled_call(model)
    out = []
    for i in range(0, len(images), batch_size):
        xb = images[i:i + batch_size].astype(np.float32)[..., None] / 255.0
        out.append(call(xb))
        if progress:
            progress(min(1.0, (i + batch_size) / len(images)))
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


@dataclass
class EvalResult:
    y_true: np.ndarray
    proba: np.ndarray

    def __post_init__(self) -> None:
        self.y_pred = self.proba.argmax(axis=1)
        self.confidence = self.proba.max(axis=1)
        self.correct = self.y_pred == self.y_true

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.y_true, self.y_pred))

    @property
    def loss(self) -> float:
        return float(log_loss(self.y_true, np.clip(self.proba, 1e-7, 1), labels=LABELS))

    @property
    def n_mistakes(self) -> int:
        return int((~self.correct).sum())

    @property
    def confusion(self) -> np.ndarray:
        """Rows: true digit, columns: predicted digit."""
        return confusion_matrix(self.y_true, self.y_pred, labels=LABELS)

    def report(self) -> dict[str, Any]:
        return classification_report(self.y_true, self.y_pred, labels=LABELS, output_dict=True,
                                     zero_division=0)

    def per_class(self) -> list[dict[str, Any]]:
        """precision, recall, f1 and support for each digit (from the scikit-learn report)."""
        rep = self.report()
        return [{"digit": d, "precision": rep[str(d)]["precision"], "recall": rep[str(d)]["recall"],
                 "f1": rep[str(d)]["f1-score"], "support": int(rep[str(d)]["support"])} for d in LABELS]

    def cell(self, true: int, pred: int) -> np.ndarray:
        """Indices of test images with this true and predicted digit, most confident first."""
        idx = np.flatnonzero((self.y_true == true) & (self.y_pred == pred))
        return idx[np.argsort(-self.proba[idx, pred], kind="stable")]

    def misclassified(self) -> dict[str, np.ndarray]:
        idx = np.flatnonzero(~self.correct)
        idx = idx[np.argsort(-self.confidence[idx], kind="stable")]
        return {"index": idx, "true": self.y_true[idx], "pred": self.y_pred[idx],
                "confidence": self.confidence[idx]}

    def confused_pairs(self, k: int = 5) -> list[tuple[int, int, int]]:
        """The k most frequent (true, predicted, count) mistakes."""
        cm = self.confusion.copy()
        np.fill_diagonal(cm, 0)
        order = np.argsort(-cm, axis=None, kind="stable")[:k]
        return [(int(i // 10), int(i % 10), int(cm.flat[i])) for i in order if cm.flat[i] > 0]

    def calibration(self, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(mean confidence, fraction correct) per confidence bin, for a reliability diagram."""
        frac, mean_conf = calibration_curve(self.correct.astype(int), self.confidence, n_bins=n_bins,
                                            strategy="uniform")
        return mean_conf, frac

    def ece(self, n_bins: int = 10) -> float:
        """Expected calibration error: the gap between confidence and accuracy, averaged over the same
        uniform confidence bins as `calibration`, weighted by how many answers fall in each."""
        bins = np.minimum((self.confidence * n_bins).astype(int), n_bins - 1)
        gap = 0.0
        for b in np.unique(bins):
            m = bins == b
            gap += m.sum() * abs(float(self.correct[m].mean()) - float(self.confidence[m].mean()))
        return gap / max(len(self.confidence), 1)


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray) -> EvalResult:
    y_true = np.asarray(y_true).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float32)
    if proba.shape != (len(y_true), 10):
        raise ValueError(f"probabilities must be ({len(y_true)}, 10), got {proba.shape}")
    return EvalResult(y_true, proba)


def _cache_path(run_dir: Path, source: DataSource) -> Path:
    run = runs.folder(run_dir)
    return run.evaluation / f"{source.key}-{run.model_stamp()}.npz"


def save_evaluation(run_dir: Path, source: DataSource, y_true: np.ndarray, proba: np.ndarray) -> Path:
    path = _cache_path(run_dir, source)
    path.parent.mkdir(exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, y_true=y_true.astype(np.uint8), proba=proba.astype(np.float32))
    runs.atomic_write_bytes(path, buf.getvalue())
    return path


def load_cached_evaluation(run_dir: Path, source: DataSource) -> EvalResult | None:
    path = _cache_path(run_dir, source)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return evaluate_predictions(z["y_true"], z["proba"])
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is recomputed


def evaluate_run(run_dir: Path, dataset: Dataset, progress: Callable[[float], None] | None = None,
                 model: Any = None) -> EvalResult:
    """The evaluation of a run's model on the dataset's test split, computed once and cached."""
    cached = load_cached_evaluation(run_dir, dataset.source)
    if cached is not None and len(cached.y_true) == len(dataset.y_test):
        return cached
    if model is None:
        from .inference import load_model

        model = load_model(runs.folder(run_dir).model)
    proba = predict_proba(model, dataset.x_test, progress=progress)
    try:
        save_evaluation(run_dir, dataset.source, dataset.y_test, proba)
    except OSError:
        pass  # a read-only run folder still gets its evaluation, just not cached
    return evaluate_predictions(dataset.y_test, proba)
