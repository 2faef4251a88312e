"""Hyperparameter sweeps: the typed `sweep.json`, its trials, and ASHA's rule for stopping poor ones.

A `SweepConfig` is a base `TrainConfig`, a search space over a few of its fields (`SPACE`: learning
rate, batch size, the custom preset's per-block filters, dropout, augmentation, schedule, epochs), a
method (`random`: `trials` draws from the space with `seed`; `grid`: every combination of the choices)
and an early-stopping rule (`asha` or `none`). Like `config.py` it is a frozen dataclass validated once,
on construction: every value a trial could take is checked by building the `TrainConfig` it would give,
so a sweep that loads can only produce valid trials, and an error names the field (`space.batch_size`,
`base.limit`, `asha.grace_period`). `trial_configs` turns a sweep into its list of trial configs, the
same list for the same sweep on any engine. `asha_should_stop` is the rung rule of asynchronous
successive halving (Li et al. 2018, "A System for Massively Parallel Hyperparameter Tuning"), written to
decide exactly as Ray Tune's `ASHAScheduler` does, so the embedded engine (which runs trials through the
training slots and stops poor ones itself) and the Ray engine stop the same trials. No Ray, TensorFlow
or Streamlit here: engines import this module, not the other way round.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig, _check, _is_int, _is_num, json_object, refuse_unknown
from .presets import CUSTOM

METHODS = ("random", "grid")
EARLY_STOPPING = ("asha", "none")
# Metrics ASHA can rank trials by (columns of a run's history.csv), and which way is better.
METRICS = {"val_accuracy": "max", "val_loss": "min", "accuracy": "max", "loss": "min"}
# The most trials one sweep may ask for: a class's lesson is ~30 trainings, and the embedded engine's
# queue holds 50 runs by default (scheduler.py, MNIST_MAX_QUEUED).
MAX_TRIALS = 50
MAX_CONCURRENT = 64


@dataclass(frozen=True)
class _Field:
    """A searchable setting: where it lives in a TrainConfig dict and which ranges it accepts."""

    path: tuple[str, ...]
    ranges: tuple[str, ...] = ()  # beyond fixed values and choices: "loguniform", "uniform"
    custom_only: bool = False  # an ArchConfig knob, which only the custom preset's builder reads


# The one table of what a sweep can search, in the order trials are drawn and grids are enumerated.
SPACE: dict[str, _Field] = {
    "learning_rate": _Field(("learning_rate",), ranges=("loguniform",)),
    "batch_size": _Field(("batch_size",)),
    "filters": _Field(("arch", "filters"), custom_only=True),  # one number per conv block
    "dropout": _Field(("arch", "dropout"), ranges=("uniform",), custom_only=True),
    "augment": _Field(("augment",)),
    "lr_schedule": _Field(("lr_schedule",)),
    "epochs": _Field(("epochs",)),
}
DIMENSION_KINDS = ("fixed", "choices", "loguniform", "uniform")


@dataclass(frozen=True)
class Dimension:
    """One searched setting. `values` holds the one value (fixed), the choices, or (low, high)."""

    name: str
    kind: str
    values: tuple[Any, ...]

    @classmethod
    def from_json(cls, name: str, spec: Any) -> Dimension:
        """`spec` is a plain value (fixed), {"choices": [...]}, {"loguniform": [lo, hi]} or
        {"uniform": [lo, hi]}. Lists of filters become tuples (a fixed filters value is a list)."""
        where = f"space.{name}"
        _check(name in SPACE, where, f"cannot be searched (searchable: {', '.join(SPACE)})")
        if not isinstance(spec, dict):
            # A list is a value only for filters (one number per block); a list of lists, or a list for
            # any other setting, is almost certainly meant as choices.
            meant_choices = isinstance(spec, list) and (name != "filters" or any(isinstance(v, list) for v in spec))
            _check(not meant_choices, where, f"a list is not one value; for choices write {{\"choices\": "
                   f"{json.dumps(spec)}}}")
            return cls(name, "fixed", (_normalise(name, spec),))
        _check(len(spec) == 1, where, "needs exactly one of choices, loguniform, uniform")
        (kind, vals), = spec.items()
        _check(kind in DIMENSION_KINDS[1:], where, f"unknown kind {kind!r} (use choices, loguniform or uniform)")
        _check(isinstance(vals, list), where, f"{kind} must be a list")
        return cls(name, kind, tuple(_normalise(name, v) for v in vals))

    def to_json(self) -> Any:
        vals = [list(v) if isinstance(v, tuple) else v for v in self.values]
        return vals[0] if self.kind == "fixed" else {self.kind: vals}

    def sample(self, rng: random.Random) -> Any:
        if self.kind in ("fixed", "choices"):
            return rng.choice(self.values)
        lo, hi = self.values
        if self.kind == "loguniform":
            v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            v = rng.uniform(lo, hi)
        # Three significant digits read well in tables and plots and change nothing that matters;
        # clamping keeps a rounded draw inside the range that was validated.
        return min(max(float(f"{v:.3g}"), lo), hi)


def _normalise(name: str, v: Any) -> Any:
    return tuple(v) if name == "filters" and isinstance(v, list) else v


def _validate_dimension(d: Dimension, method: str) -> None:
    where = f"space.{d.name}"
    _check(d.name in SPACE, where, f"cannot be searched (searchable: {', '.join(SPACE)})")
    _check(d.kind in DIMENSION_KINDS, where, f"unknown kind {d.kind!r} (use {', '.join(DIMENSION_KINDS)})")
    if d.kind == "choices":
        _check(len(d.values) >= 1, where, "needs at least one choice")
        _check(len(set(map(repr, d.values))) == len(d.values), where, "lists a choice twice")
    elif d.kind != "fixed":
        _check(d.kind in SPACE[d.name].ranges, where, f"cannot take a {d.kind} range"
               + (f" (it takes {', '.join(SPACE[d.name].ranges)} or choices)" if SPACE[d.name].ranges
                  else " (give choices)"))
        _check(method != "grid", where, "a grid needs choices, not a range (or use method \"random\")")
        _check(len(d.values) == 2 and all(_is_num(v) for v in d.values), where, f"{d.kind} needs [low, high]")
        lo, hi = d.values
        _check(lo < hi, where, f"low ({lo:g}) must be below high ({hi:g})")
        _check(d.kind != "loguniform" or lo > 0, where, "a loguniform range needs low above 0")


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of `base` (a TrainConfig dict) with searched settings replaced."""
    d = json.loads(json.dumps(base))  # a deep copy of plain JSON data
    for name, value in overrides.items():
        *parents, key = SPACE[name].path
        target = d
        for p in parents:
            target = target.setdefault(p, {})
        target[key] = list(value) if isinstance(value, tuple) else value
        if name == "filters":  # the filters list is the blocks: one conv block per number
            target["conv_blocks"] = len(value)
    return TrainConfig.from_dict(d)


@dataclass(frozen=True)
class AshaConfig:
    """ASHA's settings. Its `max_t` is the sweep's largest epochs; `mode` follows from the metric."""

    metric: str = "val_accuracy"
    grace_period: int = 1
    reduction_factor: int = 2

    def __post_init__(self) -> None:
        _check(self.metric in METRICS, "asha.metric", f"must be one of {', '.join(METRICS)}")
        _check(_is_int(self.grace_period) and self.grace_period >= 1, "asha.grace_period",
               "must be a whole number of epochs, at least 1")
        _check(_is_int(self.reduction_factor) and 2 <= self.reduction_factor <= 10, "asha.reduction_factor",
               "must be a whole number from 2 to 10 (each rung keeps the best 1/reduction_factor)")

    @property
    def mode(self) -> str:
        return METRICS[self.metric]


@dataclass(frozen=True)
class SweepConfig:
    """A search: base training settings, the searched dimensions, the method and early stopping."""

    base: TrainConfig = field(default_factory=TrainConfig)
    space: tuple[Dimension, ...] = ()
    method: str = "random"
    trials: int | None = None  # random only: how many draws
    seed: int = 0
    early_stopping: str = "asha"
    asha: AshaConfig = field(default_factory=AshaConfig)
    max_concurrent: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.base, TrainConfig), "base", "must be a TrainConfig")
        _check(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)} (got {self.method!r})")
        _check(isinstance(self.space, tuple) and all(isinstance(d, Dimension) for d in self.space), "space",
               "must be a list of dimensions")
        names = [d.name for d in self.space]
        _check(len(set(names)) == len(names), "space", "names a setting twice")
        searched = [d for d in self.space if d.kind != "fixed"]
        _check(bool(searched), "space", f"searches nothing: give choices or a range for at least one of "
               f"{', '.join(SPACE)}")
        base = self.base.to_dict()
        for d in self.space:
            _validate_dimension(d, self.method)
            if SPACE[d.name].custom_only:
                _check(self.base.arch.preset == CUSTOM, f"space.{d.name}",
                       f"is a setting of the {CUSTOM} preset's builder; set base.arch.preset to "
                       f"\"{CUSTOM}\" (it is {self.base.arch.preset!r}, whose layers are fixed)")
            # Every value a trial can take, checked by the config it would give (ranges: both ends).
            for v in d.values:
                try:
                    _apply(base, {d.name: v})
                except ConfigError as e:
                    raise ConfigError(f"space.{d.name}", f"{_show(v)}: {e.field} {e.reason}") from e
        _check(_is_int(self.seed) and 0 <= self.seed < 2**31, "seed", "must be a whole number from 0 to 2^31-1")
        if self.method == "random":
            _check(_is_int(self.trials) and 1 <= self.trials <= MAX_TRIALS, "trials",
                   f"must be a whole number from 1 to {MAX_TRIALS} for a random search")
        else:
            _check(self.trials is None, "trials", f"a grid runs every combination ({self.grid_size}); "
                   "leave trials out")
            _check(self.grid_size <= MAX_TRIALS, "space",
                   f"the grid has {self.grid_size} combinations, more than the {MAX_TRIALS} trials a sweep "
                   "may run: give fewer choices, or use method \"random\" with a trial count")
        _check(self.early_stopping in EARLY_STOPPING, "early_stopping",
               f"must be one of {', '.join(EARLY_STOPPING)} (got {self.early_stopping!r})")
        _check(isinstance(self.asha, AshaConfig), "asha", "must be an AshaConfig")
        if self.early_stopping == "asha":
            _check(self.asha.grace_period < self.max_epochs, "asha.grace_period",
                   f"must be below the largest epochs ({self.max_epochs}), or ASHA can never stop a trial")
            _check(not self.asha.metric.startswith("val_") or self.base.validation_split > 0, "asha.metric",
                   f"{self.asha.metric} needs base.validation_split above 0")
        _check(_is_int(self.max_concurrent) and 1 <= self.max_concurrent <= MAX_CONCURRENT, "max_concurrent",
               f"must be a whole number from 1 to {MAX_CONCURRENT}")

    # Facts derived from the sweep ------------------------------------------------------------------
    def dimension(self, name: str) -> Dimension | None:
        return next((d for d in self.space if d.name == name), None)

    @property
    def grid_size(self) -> int:
        return math.prod(len(d.values) for d in self.space)

    @property
    def n_trials(self) -> int:
        return self.grid_size if self.method == "grid" else int(self.trials or 0)

    @property
    def max_epochs(self) -> int:
        """The longest trial: ASHA's max_t."""
        d = self.dimension("epochs")
        return max(d.values) if d is not None else self.base.epochs

    def scheduler_settings(self) -> dict[str, Any] | None:
        """Keyword arguments for Ray Tune's `ASHAScheduler` that decide as `asha_should_stop` does
        (None when early stopping is off). Epochs are Tune's training iterations: report once per epoch."""
        if self.early_stopping != "asha":
            return None
        return {"time_attr": "training_iteration", "metric": self.asha.metric, "mode": self.asha.mode,
                "max_t": self.max_epochs, "grace_period": self.asha.grace_period,
                "reduction_factor": self.asha.reduction_factor}

    def should_stop(self, history: Sequence[float], others: Iterable[Sequence[float]]) -> bool:
        """`asha_should_stop` with this sweep's settings (always False without early stopping)."""
        if self.early_stopping != "asha":
            return False
        return asha_should_stop(history, others, max_t=self.max_epochs, grace_period=self.asha.grace_period,
                                reduction_factor=self.asha.reduction_factor, mode=self.asha.mode)

    # JSON round-trip ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "base": self.base.to_dict(), "space": {dim.name: dim.to_json() for dim in self.space},
            "method": self.method, "seed": self.seed, "early_stopping": self.early_stopping,
            "asha": {"metric": self.asha.metric, "grace_period": self.asha.grace_period,
                     "reduction_factor": self.asha.reduction_factor},
            "max_concurrent": self.max_concurrent,
        }
        if self.trials is not None:
            d["trials"] = self.trials
        return d

    @classmethod
    def from_dict(cls, d: Any) -> SweepConfig:
        _check(isinstance(d, dict), "sweep.json", "must hold a JSON object")
        refuse_unknown(cls, d, "", f"is not a sweep setting (settings: {', '.join(cls.__dataclass_fields__)})")
        d = dict(d)
        base = d.pop("base", {})
        _check(isinstance(base, dict), "base", "must be an object of training settings")
        try:
            base_cfg = TrainConfig.from_dict(base)
        except ConfigError as e:
            raise ConfigError(f"base.{e.field}", e.reason) from e
        space = d.pop("space", {})
        _check(isinstance(space, dict), "space", "must be an object: setting -> value, choices or range")
        asha = d.pop("asha", {})
        refuse_unknown(AshaConfig, asha, "asha.", f"is not an ASHA setting ({', '.join(AshaConfig.__dataclass_fields__)})")
        dims = tuple(Dimension.from_json(name, spec) for name, spec in space.items())
        return cls(base=base_cfg, space=dims, asha=AshaConfig(**asha), **d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SweepConfig:
        return cls.from_dict(json_object(text, "sweep.json"))


def _show(v: Any) -> str:
    return json.dumps(list(v) if isinstance(v, tuple) else v)


def load_sweep(path: str | Path) -> SweepConfig:
    """The sweep in a `sweep.json` file; `ConfigError` (field "sweep.json") if it cannot be read."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError("sweep.json", f"cannot be read ({e.strerror}: {path})") from e
    return SweepConfig.from_json(text)


def trial_settings(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The searched settings of each trial, in order: {setting: value} for every dimension. Grid: the
    cartesian product of the choices, in `SPACE` order (the last setting varies fastest). Random:
    `trials` draws, dimension by dimension in `SPACE` order, from a generator seeded with `seed`."""
    dims = sorted(sweep.space, key=lambda d: list(SPACE).index(d.name))
    if sweep.method == "grid":
        return [dict(zip([d.name for d in dims], combo, strict=True))
                for combo in itertools.product(*(d.values for d in dims))]
    rng = random.Random(sweep.seed)
    return [{d.name: d.sample(rng) for d in dims} for _ in range(sweep.n_trials)]


def trial_configs(sweep: SweepConfig) -> list[TrainConfig]:
    """The TrainConfig of every trial (see `trial_settings`), deterministic for a given sweep. All
    trials keep the base's seed, so two trials differ by their hyperparameters, not their initial
    weights or data order."""
    base = sweep.base.to_dict()
    return [_apply(base, s) for s in trial_settings(sweep)]


def asha_rungs(max_t: int, grace_period: int = 1, reduction_factor: int = 2) -> tuple[int, ...]:
    """The epochs at which ASHA may stop a trial: grace_period x reduction_factor^k, below max_t (a
    trial that reaches max_t has finished; Ray's scheduler also has a rung at max_t, where it stops
    every trial as complete)."""
    rungs, m = [], grace_period
    while m < max_t:
        rungs.append(m)
        m *= reduction_factor
    return tuple(rungs)


def asha_should_stop(history: Sequence[float], others: Iterable[Sequence[float]], *, max_t: int,
                     grace_period: int = 1, reduction_factor: int = 2, mode: str = "max") -> bool:
    """Whether a trial should stop now, having just finished epoch `len(history)` (`history[i]` is its
    metric after epoch i+1). `others` are the histories of the sweep's other trials as they stand now
    (finished, stopped or still running). At a rung (`asha_rungs`), the trial is compared with every
    other trial that has reached that rung, by their metric there: it stops when it falls below the
    (1 - 1/reduction_factor) quantile of theirs (below their median for a reduction factor of 2), so
    about the best 1/reduction_factor go on. The first trial to reach a rung always goes on; a metric
    that is NaN never stops a trial and is ignored in others. This is Ray Tune's `ASHAScheduler` rule
    (one bracket, `training_iteration` = epochs), including its quantile (NumPy's linear interpolation)."""
    import numpy as np  # local: keeps this module light for the CLI's argument parsing

    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    t = len(history)
    if t not in asha_rungs(max_t, grace_period, reduction_factor):
        return False
    reached = [float(h[t - 1]) for h in others if len(h) >= t and not math.isnan(float(h[t - 1]))]
    if not reached:
        return False
    sign = 1.0 if mode == "max" else -1.0  # Ray ranks -metric for "min"
    cutoff = np.nanpercentile([sign * v for v in reached], (1 - 1 / reduction_factor) * 100)
    return bool(sign * float(history[-1]) < cutoff)
