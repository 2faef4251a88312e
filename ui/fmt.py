"""Small text formats shared by the pages (durations)."""

from __future__ import annotations


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
