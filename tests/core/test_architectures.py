"""mnist_core.architectures: every preset builds, outputs (None, 10), and the Keras-free parameter count
and layer table agree with Keras itself."""

from __future__ import annotations

import pytest

from mnist_core.architectures import build_model, param_count, summary_rows
from mnist_core.config import PRESET_NAMES, ArchConfig, TrainConfig, preset_config
from mnist_core.presets import PRESETS

CUSTOMS = [
    dict(conv_blocks=2, filters=(32, 64), kernel_size=3, batch_norm=True, dropout=0.3, dense_units=128),
    dict(conv_blocks=1, filters=(8,), kernel_size=5, batch_norm=False, dropout=0.0, dense_units=16),
    dict(conv_blocks=4, filters=(4, 8, 8, 16), kernel_size=7, batch_norm=True, dropout=0.5, dense_units=10),
    dict(conv_blocks=3, filters=(16, 16, 32), kernel_size=1, batch_norm=False, dropout=0.1, dense_units=32),
    dict(conv_blocks=0, filters=(), kernel_size=3, batch_norm=True, dropout=0.2, dense_units=64),
]
ARCHS = [preset_config(p).arch for p in ("classic", "batchnorm", "mlp", "fast", "custom")] + \
    [ArchConfig(preset="custom", **kw) for kw in CUSTOMS]
IDS = ["classic", "batchnorm", "mlp", "fast", "custom-default"] + [f"custom{i}" for i in range(len(CUSTOMS))]


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_output_shape_and_param_count(keras, arch):
    model = build_model(arch)
    assert model.output_shape == (None, 10)
    assert model.input_shape == (None, 28, 28, 1)
    assert param_count(arch) == model.count_params()
    # The Keras-free layer table matches Keras layer by layer (shapes and parameters).
    rows = summary_rows(arch)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [r["layer"] for r in rows] == [layer.name for layer in layers]
    for r, layer in zip(rows, layers, strict=True):
        assert tuple(layer.output.shape[1:]) == tuple(r["output_shape"]), r["layer"]
        assert layer.count_params() == r["params"], r["layer"]
    # The final layer is a 10-way softmax: outputs are probabilities.
    import numpy as np

    out = model(np.zeros((2, 28, 28, 1), np.float32), training=False).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_classic_is_the_reference_cnn(keras):
    arch = preset_config("classic").arch
    assert param_count(arch) == 93_322
    model = build_model(arch)
    assert model.count_params() == 93_322
    L = keras.layers
    expected = [(L.Conv2D, 32), (L.MaxPooling2D, None), (L.Conv2D, 64), (L.MaxPooling2D, None), (L.Conv2D, 64),
                (L.Flatten, None), (L.Dense, 64), (L.Dropout, None), (L.Dense, 10)]
    layers = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
    assert len(layers) == len(expected)
    for layer, (cls, units) in zip(layers, expected, strict=True):
        assert type(layer) is cls, layer
        if cls is L.Conv2D:
            assert layer.filters == units and tuple(layer.kernel_size) == (3, 3)
            assert layer.activation.__name__ == "relu" and layer.padding == "valid"
        if cls is L.MaxPooling2D:
            assert tuple(layer.pool_size) == (2, 2)
        if cls is L.Dense:
            assert layer.units == units
            assert layer.activation.__name__ == ("softmax" if units == 10 else "relu")
        if cls is L.Dropout:
            assert layer.rate == 0.5
    cfg = preset_config("classic")
    assert (cfg.epochs, cfg.batch_size) == (5, 32)


def test_batchnorm_preset_structure(keras):
    model = build_model(preset_config("batchnorm").arch)
    L = keras.layers
    convs = [layer.filters for layer in model.layers if isinstance(layer, L.Conv2D)]
    assert convs == [32, 64, 64, 128]
    assert sum(isinstance(layer, L.BatchNormalization) for layer in model.layers) == 5
    assert sum(isinstance(layer, L.MaxPooling2D) for layer in model.layers) == 3
    dense = [layer.units for layer in model.layers if isinstance(layer, L.Dense)]
    assert dense == [32, 10]


def test_mlp_has_no_convolutions(keras):
    model = build_model(preset_config("mlp").arch)
    assert not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


def test_custom_settings_change_the_network():
    base = dict(conv_blocks=2, filters=(16, 32), kernel_size=3, batch_norm=False, dropout=0.2, dense_units=64)
    p0 = param_count(ArchConfig(preset="custom", **base))
    assert param_count(ArchConfig(preset="custom", **{**base, "kernel_size": 5})) > p0
    assert param_count(ArchConfig(preset="custom", **{**base, "batch_norm": True})) > p0
    assert param_count(ArchConfig(preset="custom", **{**base, "dense_units": 128})) > p0
    kinds = [s.kind for s in ArchConfig(preset="custom", **{**base, "dropout": 0.0}).layers]
    assert "dropout" not in kinds
    kinds = [s.kind for s in ArchConfig(preset="custom", **{**base, "batch_norm": True}).layers]
    assert kinds.count("bn") == 3 and kinds.count("conv") == 2 and kinds.count("pool") == 2


def test_presets_ignore_custom_fields():
    """A preset is its fixed network whatever the form fields say."""
    a = ArchConfig(preset="classic", conv_blocks=1, filters=(8,), kernel_size=7, dense_units=5)
    assert param_count(a) == 93_322


@pytest.mark.parametrize("preset", [p for p in PRESET_NAMES if p != "custom"])
def test_a_preset_is_its_layers_in_one_place(keras, preset):
    """The layer table the Train form shows for a preset is exactly the network the builder builds,
    and config.json records it, so a run rebuilds the same network after the preset changes."""
    cfg = preset_config(preset)
    assert cfg.arch.layers == PRESETS[preset].layers
    model = build_model(cfg.arch)
    layers = [lyr for lyr in model.layers if not isinstance(lyr, keras.layers.InputLayer)]
    assert [r["layer"] for r in summary_rows(cfg.arch)] == [lyr.name for lyr in layers]
    assert param_count(cfg.arch) == model.count_params()
    back = TrainConfig.from_json(cfg.to_json())
    assert back.arch.layers == cfg.arch.layers
    # An older run's record of a retuned preset: its own layers win over today's preset.
    d = cfg.to_dict()
    d["arch"]["layers"] = d["arch"]["layers"][:1] + [{"kind": "flatten", "name": "flat_old"},
                                                   d["arch"]["layers"][-1]]
    old = TrainConfig.from_dict(d).arch
    assert [s.kind for s in old.layers][-2:] == ["flatten", "dense"] and old.layers != cfg.arch.layers
    assert build_model(old).count_params() == param_count(old)
