"""The class's leaderboard: finished runs ranked by test accuracy, on MNIST and on the class's own
held-out handwriting, with an optional challenge rule set by the teacher (e.g. at most 20,000
parameters). The rule is a small JSON file in the classroom folder; the ranking is a pure function of
the runs listing and the class-set scores, so the page and a test compute the same table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import runs
from .identity import Actor, IdentityError, classroom_dir


@dataclass(frozen=True)
class Challenge:
    max_params: int | None = None  # None: no limit
    note: str = ""

    def allows(self, run: runs.RunInfo) -> bool:
        return self.max_params is None or (run.params is not None and run.params <= self.max_params)

    def describe(self) -> str:
        rule = f"at most {self.max_params:,} parameters" if self.max_params else "no rule"
        return rule + (f" — {self.note}" if self.note else "")


def _path(root: Path | None) -> Path:
    return classroom_dir(root) / "challenge.json"


def challenge(root: Path | None = None) -> Challenge:
    try:
        d = json.loads(_path(root).read_text())
        mp = d.get("max_params")
        return Challenge(int(mp) if isinstance(mp, int) and mp > 0 else None, str(d.get("note", ""))[:200])
    except (OSError, ValueError, AttributeError):
        return Challenge()


def set_challenge(actor: Actor, rule: Challenge, root: Path | None = None) -> None:
    if not actor.teacher:
        raise IdentityError("only the teacher sets the challenge")
    _path(root).parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(_path(root), asdict(rule))


def ranking(infos: list[runs.RunInfo], class_scores: dict[str, float | None], rule: Challenge) -> list[dict[str, Any]]:
    """One row per finished run with a test accuracy, best first: runs within the challenge rule before
    those outside it, then by MNIST test accuracy, then by class-set accuracy."""
    rows = []
    for r in infos:
        if r.state != "finished" or r.test_accuracy is None or r.damaged:
            continue
        rows.append({"run": r.name, "owner": r.owner or "shared", "test_accuracy": r.test_accuracy,
                     "class_accuracy": class_scores.get(r.name), "params": r.params, "preset": r.preset,
                     "train_seconds": r.train_seconds, "data": (r.config.data if r.config else "mnist"),
                     "within_rule": rule.allows(r)})
    rows.sort(key=lambda d: (not d["within_rule"], -d["test_accuracy"], -(d["class_accuracy"] or 0.0), d["run"]))
    for i, d in enumerate(rows, start=1):
        d["rank"] = i
    return rows
