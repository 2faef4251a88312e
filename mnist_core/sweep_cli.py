"""The command line of sweeps: `python -m mnist_core sweep --config sweep.json [--name N] [--data-dir D]`,
`sweep --list`, and the internal `sweep-driver DIR` (the Ray engine's driver process, see ray_tune.py).

`sweep` starts the sweep through the same core function as the Sweep page (sweeps.start_sweep, on the
engine MNIST_RAY_ADDRESS selects), then watches its run folders and prints each trial's progress as it
happens (started, each epoch's metric, how it ended and why) and at the end a table of the trials,
best first. Ctrl-C or SIGTERM stops the sweep (running trials stop after their batch, their models
saved) and waits for it to end; a second Ctrl-C leaves without waiting.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import runs, sweeps
from .config import ConfigError
from .data import DataError, describe_source
from .sweep import load_sweep


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"
    return str(v)


def print_table(info: sweeps.SweepInfo, out: Any = None) -> None:
    """The trials, best first, as a plain-text table."""
    out = out or sys.stdout
    rows = info.rows()
    if not rows:
        return
    cols = list(rows[0])
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
    best = info.best
    if best is not None:
        print(f"best: {best.name} ({info.metric} {_fmt(info.score(best))})", file=out)


class _Progress:
    """Prints what changed in the sweep's trials since the last look: one line per event."""

    def __init__(self, metric: str):
        self.metric = metric
        self.seen: dict[str, tuple[str, int]] = {}

    def update(self, info: sweeps.SweepInfo) -> None:
        for t in info.trials:
            state, epochs = self.seen.get(t.name, ("", 0))
            if t.state != state and t.state == "running":
                print(f"{t.name}: running", flush=True)
            for row in t.history[epochs:]:
                v = row.get(self.metric)
                print(f"{t.name}: epoch {row['epoch']}/{t.epochs}  {self.metric} {_fmt(v)}", flush=True)
            if t.state != state and not t.active:
                why = f" ({t.error})" if t.error else ""
                acc = f", test accuracy {t.test_accuracy:.4f}" if t.test_accuracy is not None else ""
                print(f"{t.name}: {t.state}{why}{acc}", flush=True)
            self.seen[t.name] = (t.state, len(t.history))


def cmd_sweep(a: argparse.Namespace) -> int:
    root = runs.runs_root()
    if a.list:
        return cmd_list(root)
    if not a.config:
        print("error: give --config sweep.json (or --list)", file=sys.stderr)
        return 2
    try:
        sweep = load_sweep(a.config)
        n_train = describe_source(a.data_dir).n_train
        folder = sweeps.start_sweep(sweep, a.name or sweeps.default_sweep_name(), root=root,
                                    data_dir=a.data_dir, n_train=n_train)
    except ConfigError as e:
        print(f"error: invalid sweep: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except runs.RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = sweeps.read_sweep(folder)
    print(f"sweep {folder.name}: {len(info.trials)} trials ({sweep.method}, early stopping {sweep.early_stopping}) "
          f"on the {info.engine} engine; trials {info.trials[0].name} ... {info.trials[-1].name}", flush=True)
    return _watch(folder, info.metric)


def _watch(folder: sweeps.SweepFolder, metric: str, poll_s: float = 1.0) -> int:
    interrupts = []

    def on_signal(signum: int, frame: Any) -> None:
        interrupts.append(signum)
        if len(interrupts) == 1:
            print("stopping the sweep (Ctrl-C again to leave without waiting)", file=sys.stderr, flush=True)
            sweeps.stop_sweep(folder)
        else:
            raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    progress = _Progress(metric)
    try:
        while True:
            info = sweeps.read_sweep(folder)
            progress.update(info)
            if not info.active:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        print("left the sweep stopping by itself", file=sys.stderr)
        return 130
    print(f"\nsweep {info.name} {info.state}" + (f": {info.error}" if info.error else "")
          + f" ({info.n_ended}/{len(info.trials)} trials ended)")
    print_table(info)
    return 0 if info.state in ("finished", "stopped") else 1


def cmd_list(root: Path) -> int:
    listed = sweeps.list_sweeps(root)
    if not listed:
        print(f"no sweeps in {sweeps.sweeps_dir(root)}")
        return 0
    print(f"{'name':<32} {'state':<9} {'engine':<9} {'trials':>7}  best")
    for s in listed:
        if s.damaged:
            print(f"{s.name:<32} damaged: {s.damaged}")
            continue
        best = s.best
        b = f"{best.name} ({s.metric} {_fmt(s.score(best))})" if best else "-"
        print(f"{s.name:<32} {s.state:<9} {s.engine:<9} {s.n_ended:>3}/{len(s.trials):<3}  {b}")
    return 0


def cmd_sweep_driver(a: argparse.Namespace) -> int:
    from .ray_tune import drive

    return drive(Path(a.sweep_dir))


def add_commands(sub: Any) -> None:
    """Add `sweep` and the internal `sweep-driver` to the CLI's subcommands."""
    s = sub.add_parser("sweep", help="a hyperparameter sweep: every trial a run folder (docs/sweeps.md)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--config", help="the sweep.json to run")
    g.add_argument("--list", action="store_true", help="list the sweeps and their best trials")
    s.add_argument("--name", help="the sweep's name (its trials are NAME-t00, NAME-t01, ...)")
    s.add_argument("--data-dir", help="folder with MNIST IDX files or mnist.npz (default: MNIST_DATA_DIR)")
    s.set_defaults(fn=cmd_sweep)
    d = sub.add_parser("sweep-driver", help=argparse.SUPPRESS)
    d.add_argument("sweep_dir")
    d.set_defaults(fn=cmd_sweep_driver)
