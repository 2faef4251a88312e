"""Network architectures: the presets and the custom builder, from an `ArchConfig`.

Every architecture is first written as a plain list of layer specs (`layer_specs`), and only then
turned into Keras layers (`build_model`). The spec list is the single source of truth: it gives the
parameter count and a layer table (`summary_rows`) without importing TensorFlow, so the Train page can
show a model's size instantly, and a test checks that count against Keras's own `count_params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ArchConfig

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


@dataclass(frozen=True)
class Spec:
    kind: str  # conv | bn | relu | pool | dropout | flatten | gap | dense
    units: int = 0  # filters for conv, units for dense
    kernel: int = 0
    stride: int = 1  # conv only
    padding: str = "valid"
    activation: str | None = None  # activation fused into conv/dense
    rate: float = 0.0
    name: str = ""
    momentum: float = 0.99  # bn only: moving-statistics momentum (Keras default)


def _classic() -> list[Spec]:
    # The "mnist-cnn-colab" README network, layer for layer (93,322 parameters).
    return [
        Spec("conv", 32, 3, activation="relu", name="conv1"),
        Spec("pool", name="pool1"),
        Spec("conv", 64, 3, activation="relu", name="conv2"),
        Spec("pool", name="pool2"),
        Spec("conv", 64, 3, activation="relu", name="conv3"),
        Spec("flatten", name="flatten"),
        Spec("dense", 64, activation="relu", name="dense1"),
        Spec("dropout", rate=0.5, name="dropout1"),
    ]


def _batchnorm() -> list[Spec]:
    # The second reference CNN: four conv stages, each Conv+ReLU (+MaxPool) then Dropout and BN.
    layers: list[Spec] = []
    for i, (f, pool) in enumerate([(32, False), (64, True), (64, True), (128, True)], start=1):
        layers.append(Spec("conv", f, 3, activation="relu", name=f"conv{i}"))
        if pool:
            layers.append(Spec("pool", name=f"pool{i}"))
        layers += [Spec("dropout", rate=0.2, name=f"dropout{i}"), Spec("bn", name=f"bn{i}")]
    layers += [
        Spec("flatten", name="flatten"),
        Spec("dense", 32, activation="relu", name="dense1"),
        Spec("dropout", rate=0.3, name="dropout_dense"),
        Spec("bn", name="bn_dense"),
    ]
    return layers


def _mlp() -> list[Spec]:
    return [
        Spec("flatten", name="flatten"),
        Spec("dense", 256, activation="relu", name="dense1"),
        Spec("dropout", rate=0.2, name="dropout1"),
        Spec("dense", 128, activation="relu", name="dense2"),
        Spec("dropout", rate=0.2, name="dropout2"),
    ]


def _fast() -> list[Spec]:
    # Chosen by measurement (benchmarks/README.md, time_to_accuracy.py). On 2 CPU cores an epoch's cost
    # is mostly per-element work on the big early feature maps, not multiply-adds: so the first
    # convolution reads 5x5 windows with stride 2 (28x28 -> 12x12, no pooling, no BatchNorm there;
    # ~1.3x the images/s of a 3x3 conv + pool at 26x26), then "valid" 3x3 convolutions (10x10, pool,
    # 3x3) with BatchNorm (momentum 0.9, so its moving statistics keep up with a high learning rate),
    # and a 1,152-wide flatten straight into the classifier instead of a hidden dense layer.
    bn_momentum = 0.9
    return [
        Spec("conv", 32, 5, stride=2, activation="relu", name="conv1"),
        Spec("conv", 64, 3, name="conv2"),
        Spec("bn", name="bn2", momentum=bn_momentum),
        Spec("relu", name="relu2"),
        Spec("pool", name="pool2"),
        Spec("conv", 128, 3, name="conv3"),
        Spec("bn", name="bn3", momentum=bn_momentum),
        Spec("relu", name="relu3"),
        Spec("flatten", name="flatten"),
        Spec("dropout", rate=0.3, name="dropout1"),
    ]


def _custom(arch: ArchConfig) -> list[Spec]:
    layers: list[Spec] = []
    for i, f in enumerate(arch.filters, start=1):
        layers.append(Spec("conv", f, arch.kernel_size, padding="same", name=f"conv{i}"))
        if arch.batch_norm:
            layers.append(Spec("bn", name=f"bn{i}"))
        layers += [Spec("relu", name=f"relu{i}"), Spec("pool", name=f"pool{i}")]
    layers += [Spec("flatten", name="flatten"), Spec("dense", arch.dense_units, name="dense1")]
    if arch.batch_norm:
        layers.append(Spec("bn", name="bn_dense"))
    layers.append(Spec("relu", name="relu_dense"))
    if arch.dropout > 0:
        layers.append(Spec("dropout", rate=arch.dropout, name="dropout1"))
    return layers


# (architecture fields shown in forms, recommended training settings) for each preset.
PRESET_DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "classic": (dict(conv_blocks=3, filters=(32, 64, 64), kernel_size=3, batch_norm=False, dropout=0.5,
                     dense_units=64), dict(epochs=5, batch_size=32, learning_rate=1e-3)),
    "batchnorm": (dict(conv_blocks=4, filters=(32, 64, 64, 128), kernel_size=3, batch_norm=True, dropout=0.3,
                       dense_units=32), dict(epochs=10, batch_size=64, learning_rate=1e-3)),
    "mlp": (dict(conv_blocks=0, filters=(), kernel_size=3, batch_norm=False, dropout=0.2, dense_units=256),
            dict(epochs=10, batch_size=128, learning_rate=1e-3)),
    "fast": (dict(conv_blocks=3, filters=(32, 64, 128), kernel_size=3, batch_norm=True, dropout=0.3,
                  dense_units=128),
             dict(epochs=8, batch_size=64, learning_rate=2e-3, lr_schedule="cosine", augment=True,
                  rotation_deg=8.0, shift_frac=0.08, zoom_frac=0.08)),
    "custom": (dict(conv_blocks=2, filters=(32, 64), kernel_size=3, batch_norm=True, dropout=0.3,
                    dense_units=128), dict(epochs=5, batch_size=64, learning_rate=1e-3)),
}

PRESET_DESCRIPTIONS = {
    "classic": "The seed CNN: 3 conv layers (32-64-64), Dense 64, Dropout 0.5.",
    "batchnorm": "4 conv stages with ReLU, Dropout and BatchNorm, then Dense 32.",
    "mlp": "No convolutions: a dense baseline (256-128).",
    "fast": "Lean CNN (strided 5x5 conv, then 64-128 with BatchNorm), cosine learning rate, augmentation: "
            "about 99.2–99.3 % test accuracy in under a minute on 2 CPU cores.",
    "custom": "Your own: conv blocks, filters, kernel, batch-norm, dropout, dense units.",
}


def layer_specs(arch: ArchConfig) -> list[Spec]:
    """The layers of the network, input to output (the 10-way softmax included)."""
    body = {"classic": _classic, "batchnorm": _batchnorm, "mlp": _mlp, "fast": _fast}.get(arch.preset)
    layers = body() if body else _custom(arch)
    return layers + [Spec("dense", NUM_CLASSES, activation="softmax", name="output")]


def summary_rows(arch: ArchConfig) -> list[dict[str, Any]]:
    """One row per layer: name, kind, output shape and parameter count, computed without Keras."""
    h, w, c = INPUT_SHAPE
    flat: int | None = None  # set once the tensor is a vector
    rows = []
    for s in layer_specs(arch):
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
    for s in layer_specs(arch):
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
        else:  # pragma: no cover - specs are produced above
            raise ValueError(f"unknown layer kind {s.kind}")
        out = layer(out)
    return keras.Model(inp, out, name=f"mnist_{arch.preset}")
