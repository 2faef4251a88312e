"""Small text formats shared by the pages: durations, counted nouns, and which test set a recorded
accuracy is from (every accuracy on a page says what data it was measured on)."""

from __future__ import annotations

from typing import Any

from mnist_core.data import SOURCE_LABELS


def seconds(s: float | None) -> str:
    """A duration as a person reads it: 42 s, 3 min 05 s, 1 h 02 min; "–" when unknown."""
    if s is None:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """"1 test image", "2,000 test images": the number with its noun in the right form."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def test_set(metrics: dict[str, Any]) -> str:
    """The test set a run's recorded test figures (`metrics.json`) were measured on, for a sentence:
    "the 10,000 test images of MNIST from a data directory"."""
    label = SOURCE_LABELS.get(metrics.get("data_source") or "", "its data")
    n = metrics.get("n_test")
    return f"the {count(int(n), 'test image')} of {label}" if n else f"the test images of {label}"
