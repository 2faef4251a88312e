"""Typed, frozen configuration for a model and its training, validated in one place.

`ArchConfig` describes the network (a named preset, or the custom builder's knobs) and `TrainConfig`
everything else a run needs (epochs, optimiser, schedule, augmentation, subset, seed). Both are frozen
dataclasses whose `__post_init__` calls `validate`, so an impossible value can never exist as a config:
it raises `ConfigError` naming the field and the reason. `to_dict`/`from_dict` round-trip through the
`config.json` saved in every run folder, which is all that is needed to rebuild and retrain a model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

PRESETS = ("classic", "batchnorm", "mlp", "fast", "custom")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "onecycle")


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


@dataclass(frozen=True)
class ArchConfig:
    """The network. For presets the other fields are ignored by the builder (see architectures.py);
    they describe the custom builder: `conv_blocks` blocks of Conv(k x k) [+BN] + ReLU + MaxPool
    [+Dropout], then Dense(`dense_units`) + Dropout(`dropout`) + Dense(10, softmax)."""

    preset: str = "classic"
    conv_blocks: int = 3
    filters: tuple[int, ...] = (32, 64, 64)
    kernel_size: int = 3
    batch_norm: bool = False
    dropout: float = 0.5
    dense_units: int = 64

    def __post_init__(self) -> None:
        # Accept lists from JSON and normalise to a tuple so the config stays hashable.
        if isinstance(self.filters, list):
            object.__setattr__(self, "filters", tuple(self.filters))
        self.validate()

    def validate(self) -> None:
        _check(self.preset in PRESETS, "preset", f"must be one of {', '.join(PRESETS)} (got {self.preset!r})")
        _check(_is_int(self.conv_blocks) and 0 <= self.conv_blocks <= 4, "conv_blocks",
               "must be a whole number from 0 to 4 (each block halves the 28x28 image)")
        _check(isinstance(self.filters, tuple) and all(_is_int(f) for f in self.filters), "filters",
               "must be a list of whole numbers, one per conv block")
        _check(len(self.filters) == self.conv_blocks, "filters",
               f"needs one value per conv block ({self.conv_blocks}), got {len(self.filters)}")
        _check(all(1 <= f <= 512 for f in self.filters), "filters", "each block needs 1 to 512 filters")
        _check(_is_int(self.kernel_size) and self.kernel_size in (1, 3, 5, 7), "kernel_size",
               "must be 1, 3, 5 or 7 (odd sizes keep the feature maps centred)")
        _check(isinstance(self.batch_norm, bool), "batch_norm", "must be true or false")
        _check(_is_num(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout",
               "must be at least 0 and below 1 (1 would drop every unit)")
        _check(_is_int(self.dense_units) and 1 <= self.dense_units <= 4096, "dense_units",
               "must be a whole number from 1 to 4096")


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

    def __post_init__(self) -> None:
        if isinstance(self.arch, dict):
            object.__setattr__(self, "arch", ArchConfig(**self.arch))
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.arch, ArchConfig), "arch", "must be an ArchConfig")
        _check(_is_int(self.epochs) and 1 <= self.epochs <= 500, "epochs", "must be a whole number from 1 to 500")
        _check(_is_int(self.batch_size) and 1 <= self.batch_size <= 8192, "batch_size",
               "must be a whole number from 1 to 8192")
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        _check(_is_num(self.learning_rate) and 0 < self.learning_rate <= 10, "learning_rate",
               "must be above 0 and at most 10")
        _check(self.lr_schedule in SCHEDULES, "lr_schedule", f"must be one of {', '.join(SCHEDULES)}")
        _check(_is_num(self.validation_split) and 0 <= self.validation_split <= 0.5, "validation_split",
               "must be from 0 to 0.5 (a fraction of the training images)")
        _check(isinstance(self.early_stopping, bool), "early_stopping", "must be true or false")
        _check(_is_int(self.patience) and 1 <= self.patience <= 100, "patience", "must be from 1 to 100 epochs")
        _check(not self.early_stopping or self.validation_split > 0, "early_stopping",
               "needs a validation split above 0 to watch val_loss")
        _check(isinstance(self.augment, bool), "augment", "must be true or false")
        _check(_is_num(self.rotation_deg) and 0 <= self.rotation_deg <= 45, "rotation_deg",
               "must be from 0 to 45 degrees")
        _check(_is_num(self.shift_frac) and 0 <= self.shift_frac <= 0.3, "shift_frac", "must be from 0 to 0.3")
        _check(_is_num(self.zoom_frac) and 0 <= self.zoom_frac <= 0.3, "zoom_frac", "must be from 0 to 0.3")
        _check(self.limit is None or (_is_int(self.limit) and self.limit >= 10), "limit",
               "must be empty (all images) or at least 10 images")
        _check(_is_int(self.seed) and 0 <= self.seed < 2**31, "seed", "must be a whole number from 0 to 2^31-1")
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
        d = dataclasses.asdict(self)
        d["arch"]["filters"] = list(self.arch.filters)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(sorted(unknown)[0], "is not a training setting")
        d = dict(d)
        arch = d.pop("arch", {})
        if isinstance(arch, dict):
            arch_known = {f.name for f in dataclasses.fields(ArchConfig)}
            bad = set(arch) - arch_known
            if bad:
                raise ConfigError(f"arch.{sorted(bad)[0]}", "is not an architecture setting")
            arch = ArchConfig(**arch)
        return cls(arch=arch, **d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError("config.json", f"is not valid JSON ({e.msg} at line {e.lineno})") from e
        if not isinstance(d, dict):
            raise ConfigError("config.json", "must hold a JSON object")
        return cls.from_dict(d)


def preset_config(preset: str, **overrides: Any) -> TrainConfig:
    """The recommended training config for a preset (its architecture fields filled in so a form
    can show them), with any field overridden."""
    from .architectures import PRESET_DEFAULTS  # local: architectures imports this module

    if preset not in PRESET_DEFAULTS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESET_DEFAULTS)} (got {preset!r})")
    arch_kw, train_kw = PRESET_DEFAULTS[preset]
    arch_over = overrides.pop("arch", None)
    arch = arch_over if isinstance(arch_over, ArchConfig) else ArchConfig(preset=preset, **arch_kw)
    return TrainConfig(arch=arch, **{**train_kw, **overrides})
