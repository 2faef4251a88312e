"""Network architectures as plain layer specs, and the Keras model built from them.

A network is a list of `Spec`s, input to output, the 10-way softmax included. The list is the single
source of truth: `summary_rows` gives the output shape and parameter count of every layer without
importing TensorFlow (so the Train page shows a model's size instantly, and a test checks it against
Keras's own `count_params`), `build_model` turns the same list into Keras layers, and the list is saved
in every run's `config.json`, so a run can be rebuilt even after a preset has been retuned. The presets
(fixed lists) live in `presets.py`; `custom_layers` is the builder behind the "custom" preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # config imports this module; the builder only needs `arch.layers`
    from .config import ArchConfig

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
KINDS = ("conv", "bn", "relu", "pool", "dropout", "flatten", "gap", "dense")


@dataclass(frozen=True)
class Spec:
    kind: str  # one of KINDS
    units: int = 0  # filters for conv, units for dense
    kernel: int = 0
    stride: int = 1  # conv only
    padding: str = "valid"
    activation: str | None = None  # activation fused into conv/dense
    rate: float = 0.0
    name: str = ""
    momentum: float = 0.99  # bn only: moving-statistics momentum (Keras default)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults: config.json stays readable."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in ("kind", "name") or getattr(self, f.name) != f.default}


OUTPUT = Spec("dense", NUM_CLASSES, activation="softmax", name="output")


def custom_layers(conv_blocks: int, filters: tuple[int, ...], kernel_size: int, batch_norm: bool,
                  dropout: float, dense_units: int) -> tuple[Spec, ...]:
    """The custom builder: `conv_blocks` x (Conv k x k 'same' [+BN] + ReLU + MaxPool), then
    Dense(`dense_units`) [+BN] + ReLU [+ Dropout], then the softmax."""
    layers: list[Spec] = []
    for i, f in enumerate(filters[:conv_blocks], start=1):
        layers.append(Spec("conv", f, kernel_size, padding="same", name=f"conv{i}"))
        if batch_norm:
            layers.append(Spec("bn", name=f"bn{i}"))
        layers += [Spec("relu", name=f"relu{i}"), Spec("pool", name=f"pool{i}")]
    layers += [Spec("flatten", name="flatten"), Spec("dense", dense_units, name="dense1")]
    if batch_norm:
        layers.append(Spec("bn", name="bn_dense"))
    layers.append(Spec("relu", name="relu_dense"))
    if dropout > 0:
        layers.append(Spec("dropout", rate=dropout, name="dropout1"))
    return (*layers, OUTPUT)


def summary_rows(arch: ArchConfig) -> list[dict[str, Any]]:
    """One row per layer: name, kind, output shape and parameter count, computed without Keras.
    Raises ValueError when the image shrinks away (too many blocks for 28x28)."""
    h, w, c = INPUT_SHAPE
    flat: int | None = None  # set once the tensor is a vector
    rows = []
    for s in arch.layers:
        params = 0
        if s.kind == "conv":
            params = (s.kernel * s.kernel * c + 1) * s.units
            if s.padding == "valid":
                h, w = (h - s.kernel) // s.stride + 1, (w - s.kernel) // s.stride + 1
            else:
                h, w = -(-h // s.stride), -(-w // s.stride)
            c = s.units
        elif s.kind == "pool":
            h, w = h // 2, w // 2
        elif s.kind == "bn":
            params = 4 * (flat if flat is not None else c)  # gamma, beta, moving mean, moving variance
        elif s.kind == "flatten":
            flat = h * w * c
        elif s.kind == "gap":
            flat = c
        elif s.kind == "dense":
            params = ((flat if flat is not None else h * w * c) + 1) * s.units
            flat = s.units
        if h < 1 or w < 1:
            raise ValueError(f"{s.name}: the image shrinks below 1x1; use fewer blocks or a smaller kernel")
        shape = (flat,) if flat is not None else (h, w, c)
        rows.append({"layer": s.name, "kind": s.kind, "output_shape": shape, "params": params})
    return rows


def param_count(arch: ArchConfig) -> int:
    return sum(r["params"] for r in summary_rows(arch))


def build_model(arch: ArchConfig) -> Any:
    """The uncompiled Keras model for `arch` (imports TensorFlow)."""
    import keras
    from keras import layers as L

    summary_rows(arch)  # raises a clear error before Keras would raise an obscure one
    out = inp = keras.Input(shape=INPUT_SHAPE, name="image")
    for s in arch.layers:
        if s.kind == "conv":
            layer = L.Conv2D(s.units, s.kernel, strides=s.stride, padding=s.padding, activation=s.activation,
                             name=s.name)
        elif s.kind == "bn":
            layer = L.BatchNormalization(momentum=s.momentum, name=s.name)
        elif s.kind == "relu":
            layer = L.ReLU(name=s.name)
        elif s.kind == "pool":
            layer = L.MaxPooling2D(2, name=s.name)
        elif s.kind == "dropout":
            layer = L.Dropout(s.rate, name=s.name)
        elif s.kind == "flatten":
            layer = L.Flatten(name=s.name)
        elif s.kind == "gap":
            layer = L.GlobalAveragePooling2D(name=s.name)
        elif s.kind == "dense":
            layer = L.Dense(s.units, activation=s.activation, name=s.name)
        else:  # pragma: no cover - config validation refuses unknown kinds
            raise ValueError(f"unknown layer kind {s.kind}")
        out = layer(out)
    return keras.Model(inp, out, name=f"mnist_{arch.preset}")
