"""Typed, frozen configuration for a model and its training, validated in one place.

`ArchConfig` describes the network: a named preset (its fixed layers, from `presets.py`) or the custom
builder's knobs, resolved in both cases to the layer specs it builds (`layers`). `TrainConfig` holds
everything else a run needs (epochs, optimiser, schedule, augmentation, subset, seed). Both are frozen
dataclasses whose `__post_init__` calls `validate`, so an impossible value can never exist as a config:
it raises `ConfigError` naming the field and the reason. `RANGES` is the one table of numeric bounds,
read by the validation and by the Train form. `to_dict`/`from_dict` round-trip through the
`config.json` saved in every run folder, layers included, which is all that is needed to rebuild and
retrain a model.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .architectures import KINDS, Spec, custom_layers, param_count
from .limits import MAX_PARAMS, count
from .presets import CUSTOM, PRESETS

PRESET_NAMES = tuple(PRESETS)
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "onecycle")
DATA_CHOICES = ("mnist", "mnist+class", "class")  # what a training learns from (classset.training_data)
DATA_TITLES = {"mnist": "MNIST", "mnist+class": "MNIST + our class set", "class": "Our class set only"}
KERNELS = (1, 3, 5, 7)  # odd sizes keep the feature maps centred
MAX_BLOCKS = 4  # each block halves the image: 28 -> 14 -> 7 -> 3 -> 1
# (lowest, highest) of every numeric setting: the validation below and the Train form both read it.
RANGES: dict[str, tuple[float, float]] = {
    "conv_blocks": (0, MAX_BLOCKS), "filters": (1, 512), "dense_units": (1, 4096), "dropout": (0.0, 0.95),
    "epochs": (1, 500), "batch_size": (1, 8192), "learning_rate": (1e-6, 10.0), "validation_split": (0.0, 0.5),
    "patience": (1, 100), "rotation_deg": (0.0, 45.0), "shift_frac": (0.0, 0.3), "zoom_frac": (0.0, 0.3),
    "limit": (10, 10_000_000), "seed": (0, 2**31 - 1),
}


class ConfigError(ValueError):
    """An impossible configuration value; `field` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


def _check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ConfigError(field_name, message)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _in_range(name: str, v: Any, whole: bool = False) -> bool:
    lo, hi = RANGES[name]
    return (_is_int(v) if whole else _is_num(v)) and lo <= v <= hi


def _range_text(name: str) -> str:
    lo, hi = RANGES[name]
    return f"from {lo:g} to {hi:g}"


def refuse_unknown(cls: type, d: dict[str, Any], prefix: str, reason: str) -> None:
    """A key that is not a field of the dataclass `cls` is a mistake (a typo would silently do nothing)."""
    _check(isinstance(d, dict), prefix.rstrip(".") or "config", "must be an object")
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"{prefix}{sorted(unknown)[0]}", reason)


def json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object in `text` (the file `what`), or a ConfigError saying what is wrong with it."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(what, f"is not valid JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(d, dict):
        raise ConfigError(what, "must hold a JSON object")
    return d


_SPEC_FIELDS = {f.name for f in dataclasses.fields(Spec)}


def _spec(d: Any, i: int) -> Spec:
    """One layer spec from config.json, checked (it is rebuilt into a real network)."""
    where = f"arch.layers[{i}]"
    _check(isinstance(d, dict), where, "must be an object")
    unknown = set(d) - _SPEC_FIELDS
    _check(not unknown, where, f"unknown field {sorted(unknown)[0]!r}" if unknown else "")
    try:
        s = Spec(**d)
    except TypeError as e:
        raise ConfigError(where, str(e)) from e
    _check(s.kind in KINDS, where, f"kind must be one of {', '.join(KINDS)}")
    _check(isinstance(s.name, str) and s.name.replace("_", "").isalnum(), where, "needs a name of letters, "
           "digits and _")
    _check(_is_int(s.units) and 0 <= s.units <= RANGES["dense_units"][1], where, "units out of range")
    _check(s.kind not in ("conv", "dense") or s.units >= 1, where, "needs at least 1 unit")
    _check(_is_int(s.kernel) and (s.kind != "conv" or 1 <= s.kernel <= 7), where, "kernel must be 1 to 7")
    _check(_is_int(s.stride) and 1 <= s.stride <= 4, where, "stride must be 1 to 4")
    _check(s.padding in ("valid", "same"), where, "padding must be valid or same")
    _check(s.activation in (None, "relu", "softmax"), where, "activation must be relu, softmax or none")
    _check(_is_num(s.rate) and 0 <= s.rate < 1, where, "rate must be at least 0 and below 1")
    _check(_is_num(s.momentum) and 0 < s.momentum < 1, where, "momentum must be between 0 and 1")
    return s


_BUILDER = PRESETS[CUSTOM].builder


@dataclass(frozen=True)
class ArchConfig:
    """The network: a preset's fixed layers, or the custom builder's knobs (`conv_blocks` blocks of
    Conv(k x k) [+BN] + ReLU + MaxPool, then Dense(`dense_units`) [+BN] + ReLU + Dropout(`dropout`),
    then Dense(10, softmax)). The knobs are read for "custom" only. `layers` is the resolved network,
    filled in from the preset or the knobs when not given. A preset's layers read back from a run's
    config.json are kept as they are: the network that run really trained, even if the preset has been
    retuned since. For "custom" the knobs stay the truth (`from_dict`), so `custom_layers` must keep
    building the same network for the same knobs."""

    preset: str = "classic"
    conv_blocks: int = _BUILDER["conv_blocks"]
    filters: tuple[int, ...] = _BUILDER["filters"]
    kernel_size: int = _BUILDER["kernel_size"]
    batch_norm: bool = _BUILDER["batch_norm"]
    dropout: float = _BUILDER["dropout"]
    dense_units: int = _BUILDER["dense_units"]
    layers: tuple[Spec, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from JSON and normalise to tuples so the config stays hashable.
        if isinstance(self.filters, list):
            object.__setattr__(self, "filters", tuple(self.filters))
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        self.validate()
        if not self.layers:
            object.__setattr__(self, "layers", self.resolved_layers())
        try:
            params = param_count(self)
        except ValueError:
            return  # the image shrinks away: the form and the trainer report that (summary_rows)
        _check(params <= MAX_PARAMS, "arch", f"declares {count(params)} parameters; this app trains and loads at "
               f"most {count(MAX_PARAMS)} (use fewer filters, a smaller kernel or fewer dense units)")

    @property
    def is_custom(self) -> bool:
        return self.preset == CUSTOM

    def resolved_layers(self) -> tuple[Spec, ...]:
        """The network this preset or these knobs describe today."""
        if self.is_custom:
            return custom_layers(self.conv_blocks, self.filters, self.kernel_size, self.batch_norm, self.dropout,
                                 self.dense_units)
        return PRESETS[self.preset].layers

    def validate(self) -> None:
        _check(self.preset in PRESET_NAMES, "preset",
               f"must be one of {', '.join(PRESET_NAMES)} (got {self.preset!r})")
        _check(_in_range("conv_blocks", self.conv_blocks, whole=True), "conv_blocks",
               f"must be a whole number {_range_text('conv_blocks')} (each block halves the 28x28 image)")
        _check(isinstance(self.filters, tuple) and all(_is_int(f) for f in self.filters), "filters",
               "must be a list of whole numbers, one per conv block")
        _check(len(self.filters) == self.conv_blocks, "filters",
               f"needs one value per conv block ({self.conv_blocks}), got {len(self.filters)}")
        _check(all(_in_range("filters", f, whole=True) for f in self.filters), "filters",
               f"each block needs {_range_text('filters')} filters")
        _check(_is_int(self.kernel_size) and self.kernel_size in KERNELS, "kernel_size",
               f"must be {', '.join(map(str, KERNELS[:-1]))} or {KERNELS[-1]} (odd sizes keep the feature "
               "maps centred)")
        _check(isinstance(self.batch_norm, bool), "batch_norm", "must be true or false")
        _check(_is_num(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout",
               "must be at least 0 and below 1 (1 would drop every unit)")
        _check(_in_range("dense_units", self.dense_units, whole=True), "dense_units",
               f"must be a whole number {_range_text('dense_units')}")
        _check(isinstance(self.layers, tuple) and all(isinstance(s, Spec) for s in self.layers), "layers",
               "must be a list of layer specs")
        if self.layers:
            last = self.layers[-1]
            _check(last.kind == "dense" and last.units == 10 and last.activation == "softmax", "layers",
                   "must end with the 10-way softmax output layer")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"preset": self.preset, "layers": [s.to_dict() for s in self.layers]}
        if self.is_custom:  # a preset's knobs mean nothing: leave them out of config.json
            d.update(conv_blocks=self.conv_blocks, filters=list(self.filters), kernel_size=self.kernel_size,
                     batch_norm=self.batch_norm, dropout=self.dropout, dense_units=self.dense_units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchConfig:
        refuse_unknown(cls, d, "arch.", "is not an architecture setting")
        d = dict(d)
        layers = d.pop("layers", None) or ()
        _check(isinstance(layers, (list, tuple)), "arch.layers", "must be a list")
        if d.get("preset", "classic") == CUSTOM:
            # For "custom" the knobs are the truth (a hand-edited or generated config changes them, not
            # the layer list); the stored layers are only the record of what they built.
            return cls(**d)
        # Older config.json files hold the builder's knobs for presets too; they never meant anything.
        return cls(preset=d.get("preset", "classic"), layers=tuple(_spec(s, i) for i, s in enumerate(layers)))


@dataclass(frozen=True)
class TrainConfig:
    """Everything about one training run besides the data location."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    validation_split: float = 0.1
    early_stopping: bool = False
    patience: int = 3
    augment: bool = False
    rotation_deg: float = 10.0
    shift_frac: float = 0.1
    zoom_frac: float = 0.1
    limit: int | None = None
    seed: int = 42
    init_from: str | None = None  # a run whose weights this one starts from ("continue" / fine-tune)
    data: str = "mnist"  # one of DATA_CHOICES: MNIST, MNIST plus the class's own drawings, or those alone

    def __post_init__(self) -> None:
        if isinstance(self.arch, dict):
            object.__setattr__(self, "arch", ArchConfig.from_dict(self.arch))
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.arch, ArchConfig), "arch", "must be an ArchConfig")
        _check(_in_range("epochs", self.epochs, whole=True), "epochs", f"must be a whole number {_range_text('epochs')}")
        _check(_in_range("batch_size", self.batch_size, whole=True), "batch_size",
               f"must be a whole number {_range_text('batch_size')}")
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        _check(_is_num(self.learning_rate) and 0 < self.learning_rate <= RANGES["learning_rate"][1], "learning_rate",
               f"must be above 0 and at most {RANGES['learning_rate'][1]:g}")
        _check(self.lr_schedule in SCHEDULES, "lr_schedule", f"must be one of {', '.join(SCHEDULES)}")
        _check(_in_range("validation_split", self.validation_split), "validation_split",
               f"must be {_range_text('validation_split')} (a fraction of the training images)")
        _check(isinstance(self.early_stopping, bool), "early_stopping", "must be true or false")
        _check(_in_range("patience", self.patience, whole=True), "patience", f"must be {_range_text('patience')} epochs")
        _check(not self.early_stopping or self.validation_split > 0, "early_stopping",
               "needs a validation split above 0 to watch val_loss")
        _check(isinstance(self.augment, bool), "augment", "must be true or false")
        _check(_in_range("rotation_deg", self.rotation_deg), "rotation_deg",
               f"must be {_range_text('rotation_deg')} degrees")
        _check(_in_range("shift_frac", self.shift_frac), "shift_frac", f"must be {_range_text('shift_frac')}")
        _check(_in_range("zoom_frac", self.zoom_frac), "zoom_frac", f"must be {_range_text('zoom_frac')}")
        _check(self.limit is None or _in_range("limit", self.limit, whole=True), "limit",
               f"must be empty (all images) or at least {RANGES['limit'][0]:g} images")
        _check(_in_range("seed", self.seed, whole=True), "seed", "must be a whole number from 0 to 2^31-1")
        _check(self.init_from is None or (isinstance(self.init_from, str) and 0 < len(self.init_from) <= 64
                                          and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.init_from)
                                          is not None and ".." not in self.init_from),
               "init_from", "must be the name of an existing run (letters, digits, . - _)")
        _check(self.data in DATA_CHOICES, "data", f"must be one of {', '.join(DATA_CHOICES)}")
        if self.limit is not None:
            n_fit = self.limit - int(self.limit * self.validation_split)
            _check(self.batch_size <= n_fit, "batch_size",
                   f"is larger than the {n_fit} training images left after the validation split")

    def check_against_data(self, n_train_available: int) -> None:
        """Validation that needs the data's size: called once the data source is known."""
        n = min(self.limit or n_train_available, n_train_available)
        n_fit = n - int(n * self.validation_split)
        _check(n_fit >= 1, "limit", f"leaves no training images (data has {n_train_available})")
        _check(self.batch_size <= n_fit, "batch_size",
               f"is larger than the {n_fit} training images available after the validation split")

    # JSON round-trip -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["arch"] = self.arch.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        refuse_unknown(cls, d, "", "is not a training setting")
        d = dict(d)
        arch = d.pop("arch", {})
        _check(isinstance(arch, (dict, ArchConfig)), "arch", "must be an object")
        return cls(arch=ArchConfig.from_dict(arch) if isinstance(arch, dict) else arch, **d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json_object(text, "config.json"))


def preset_config(preset: str, **overrides: Any) -> TrainConfig:
    """The recommended training config for a preset (see presets.py), with any field overridden
    (`arch=` replaces the network)."""
    if preset not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESET_NAMES)} (got {preset!r})")
    p = PRESETS[preset]
    arch = overrides.pop("arch", None) or ArchConfig(preset=preset, **p.builder)
    return TrainConfig(arch=arch, **{**p.train, **overrides})
