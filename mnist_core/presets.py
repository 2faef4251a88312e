"""The presets: each one a complete network (its layer specs) and its recommended training settings.

This table is the only place a preset is described. `config.preset_config(name)` turns an entry into a
`TrainConfig`, the Train form shows exactly `Preset.layers` (the layer table the builder builds), and the
layers are saved in every run's `config.json`. "custom" has no fixed layers: its entry holds the custom
builder's default settings (`architectures.custom_layers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .architectures import OUTPUT, Spec


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    layers: tuple[Spec, ...] = ()  # the whole network, softmax included; empty for "custom"
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields it recommends
    builder: dict[str, Any] = field(default_factory=dict)  # "custom" only: the builder's settings


def _classic() -> tuple[Spec, ...]:
    # The "mnist-cnn-colab" README network, layer for layer (93,322 parameters).
    return (
        Spec("conv", 32, 3, activation="relu", name="conv1"),
        Spec("pool", name="pool1"),
        Spec("conv", 64, 3, activation="relu", name="conv2"),
        Spec("pool", name="pool2"),
        Spec("conv", 64, 3, activation="relu", name="conv3"),
        Spec("flatten", name="flatten"),
        Spec("dense", 64, activation="relu", name="dense1"),
        Spec("dropout", rate=0.5, name="dropout1"),
        OUTPUT,
    )


def _batchnorm() -> tuple[Spec, ...]:
    # The second reference CNN: four conv stages, each Conv+ReLU (+MaxPool) then Dropout and BN.
    layers: list[Spec] = []
    for i, (f, pool) in enumerate([(32, False), (64, True), (64, True), (128, True)], start=1):
        layers.append(Spec("conv", f, 3, activation="relu", name=f"conv{i}"))
        if pool:
            layers.append(Spec("pool", name=f"pool{i}"))
        layers += [Spec("dropout", rate=0.2, name=f"dropout{i}"), Spec("bn", name=f"bn{i}")]
    return (*layers, Spec("flatten", name="flatten"), Spec("dense", 32, activation="relu", name="dense1"),
            Spec("dropout", rate=0.3, name="dropout_dense"), Spec("bn", name="bn_dense"), OUTPUT)


def _mlp() -> tuple[Spec, ...]:
    return (
        Spec("flatten", name="flatten"),
        Spec("dense", 256, activation="relu", name="dense1"),
        Spec("dropout", rate=0.2, name="dropout1"),
        Spec("dense", 128, activation="relu", name="dense2"),
        Spec("dropout", rate=0.2, name="dropout2"),
        OUTPUT,
    )


def _fast() -> tuple[Spec, ...]:
    # Chosen by measurement (benchmarks/README.md, time_to_accuracy.py). On 2 CPU cores an epoch's cost
    # is mostly per-element work on the big early feature maps, not multiply-adds: so the first
    # convolution reads 5x5 windows with stride 2 (28x28 -> 12x12, no pooling, no BatchNorm there;
    # ~1.3x the images/s of a 3x3 conv + pool at 26x26), then "valid" 3x3 convolutions (10x10, pool,
    # 3x3) with BatchNorm (momentum 0.9, so its moving statistics keep up with a high learning rate),
    # and a 1,152-wide flatten straight into the classifier instead of a hidden dense layer.
    bn_momentum = 0.9
    return (
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
        OUTPUT,
    )


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("classic", "The seed CNN: 3 conv layers (32-64-64), Dense 64, Dropout 0.5.", _classic(),
           dict(epochs=5, batch_size=32, learning_rate=1e-3)),
    Preset("batchnorm", "4 conv stages with ReLU, Dropout and BatchNorm, then Dense 32.", _batchnorm(),
           dict(epochs=10, batch_size=64, learning_rate=1e-3)),
    Preset("mlp", "No convolutions: a dense baseline (256-128).", _mlp(),
           dict(epochs=10, batch_size=128, learning_rate=1e-3)),
    Preset("fast", "Lean CNN (strided 5x5 conv, then 64-128 with BatchNorm), cosine learning rate, "
                   "augmentation: about 99.2–99.3 % test accuracy in under a minute on 2 CPU cores.", _fast(),
           dict(epochs=8, batch_size=64, learning_rate=2e-3, lr_schedule="cosine", augment=True,
                rotation_deg=8.0, shift_frac=0.08, zoom_frac=0.08)),
    Preset("custom", "Your own: conv blocks, filters, kernel, batch-norm, dropout, dense units.",
           train=dict(epochs=5, batch_size=64, learning_rate=1e-3),
           builder=dict(conv_blocks=2, filters=(32, 64), kernel_size=3, batch_norm=True, dropout=0.3,
                        dense_units=128)),
)}
CUSTOM = "custom"
