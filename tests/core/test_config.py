"""mnist_core.config: every impossible value raises ConfigError naming its field; JSON round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mnist_core.config import ArchConfig, ConfigError, TrainConfig, preset_config

BAD_TRAIN = [
    ("epochs", dict(epochs=0)),
    ("epochs", dict(epochs=-3)),
    ("epochs", dict(epochs=2.5)),
    ("epochs", dict(epochs=True)),
    ("batch_size", dict(batch_size=0)),
    ("batch_size", dict(batch_size=200, limit=100)),  # larger than the subset
    ("batch_size", dict(batch_size=95, limit=100, validation_split=0.1)),  # larger than what is left to fit
    ("learning_rate", dict(learning_rate=-0.001)),
    ("learning_rate", dict(learning_rate=0)),
    ("learning_rate", dict(learning_rate="fast")),
    ("optimizer", dict(optimizer="adagrad")),
    ("lr_schedule", dict(lr_schedule="exponential")),
    ("validation_split", dict(validation_split=0.9)),
    ("validation_split", dict(validation_split=-0.1)),
    ("early_stopping", dict(early_stopping=True, validation_split=0.0)),
    ("patience", dict(patience=0)),
    ("rotation_deg", dict(rotation_deg=90)),
    ("shift_frac", dict(shift_frac=0.5)),
    ("zoom_frac", dict(zoom_frac=-0.1)),
    ("limit", dict(limit=5)),
    ("limit", dict(limit=0)),
    ("seed", dict(seed=-1)),
    ("seed", dict(seed=2**31)),
    ("augment", dict(augment="yes")),
]

BAD_ARCH = [
    ("preset", dict(preset="resnet")),
    ("dropout", dict(dropout=1.0)),
    ("dropout", dict(dropout=1.5)),
    ("dropout", dict(dropout=-0.1)),
    ("filters", dict(conv_blocks=2, filters=(0, 32))),
    ("filters", dict(conv_blocks=2, filters=(32, 64, 64))),  # filters/blocks mismatch
    ("filters", dict(conv_blocks=3, filters=(32,))),
    ("filters", dict(conv_blocks=1, filters=(1000,))),
    ("filters", dict(conv_blocks=1, filters=(3.5,))),
    ("kernel_size", dict(kernel_size=9)),
    ("kernel_size", dict(kernel_size=4)),
    ("conv_blocks", dict(conv_blocks=5, filters=(8,) * 5)),
    ("conv_blocks", dict(conv_blocks=-1, filters=())),
    ("dense_units", dict(dense_units=0)),
    ("batch_norm", dict(batch_norm="no")),
]


@pytest.mark.parametrize("field,kw", BAD_TRAIN, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_TRAIN)])
def test_bad_training_values(field, kw):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert e.value.field == field
    assert str(e.value).startswith(field + ":") and e.value.reason


@pytest.mark.parametrize("field,kw", BAD_ARCH, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_ARCH)])
def test_bad_architecture_values(field, kw):
    with pytest.raises(ConfigError) as e:
        ArchConfig(**{"preset": "custom", **kw})
    assert e.value.field == field and field in str(e.value)
    # The same through a dict (what config.json or a form gives)
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict({"arch": {"preset": "custom", **{k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in kw.items()}}})
    assert e.value.field == field


def test_batch_larger_than_the_data():
    cfg = TrainConfig(batch_size=512)
    with pytest.raises(ConfigError) as e:
        cfg.check_against_data(300)  # 270 left after the 10 % validation split
    assert e.value.field == "batch_size" and "270" in str(e.value)
    cfg.check_against_data(600)
    with pytest.raises(ConfigError) as e:
        TrainConfig(limit=10, batch_size=1, validation_split=0.5).check_against_data(0)
    assert e.value.field == "limit"


def test_unknown_preset_and_optimizer_via_helpers():
    with pytest.raises(ConfigError) as e:
        preset_config("vgg")
    assert e.value.field == "preset"
    with pytest.raises(ConfigError) as e:
        preset_config("classic", optimizer="lbfgs")
    assert e.value.field == "optimizer"


def test_valid_presets_and_overrides():
    for p in ("classic", "batchnorm", "mlp", "fast", "custom"):
        cfg = preset_config(p, epochs=1, limit=500)
        assert cfg.arch.preset == p and cfg.epochs == 1 and cfg.limit == 500
    cfg = TrainConfig(early_stopping=True, validation_split=0.2, limit=10, batch_size=8)
    assert cfg.early_stopping


def test_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("preset", ["classic", "batchnorm", "mlp", "fast", "custom"])
def test_json_round_trip(preset):
    cfg = preset_config(preset, epochs=3, learning_rate=0.01, lr_schedule="cosine", augment=True,
                        limit=1234, seed=7, optimizer="sgd", early_stopping=True, patience=2)
    text = cfg.to_json()
    d = json.loads(text)  # plain JSON: lists, not tuples; the network recorded layer by layer
    assert isinstance(d["arch"]["layers"], list) and d["arch"]["layers"][-1]["name"] == "output"
    assert ("filters" in d["arch"]) == (preset == "custom")  # a preset's builder knobs mean nothing
    back = TrainConfig.from_json(text)
    assert back == cfg and hash(back) == hash(cfg)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_refused():
    d = TrainConfig().to_dict()
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict({**d, "epochz": 3})
    assert e.value.field == "epochz"
    d["arch"]["kernel"] = 3
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(d)
    assert e.value.field == "arch.kernel"


@pytest.mark.parametrize("layer,why", [
    ({"kind": "conv", "name": "c", "units": 8, "kernel": 99}, "kernel"),
    ({"kind": "lstm", "name": "x"}, "kind"),
    ({"kind": "dense", "name": "d", "units": 10**9}, "units"),
    ({"kind": "dense", "name": "d", "units": 0}, "unit"),
    ({"kind": "dropout", "name": "d", "rate": 1.0}, "rate"),
    ({"kind": "relu", "name": "../x"}, "name"),
    ({"kind": "relu", "name": "r", "eval": "1"}, "unknown"),
    ("conv", "object"),
])
def test_bad_layer_records_refused(layer, why):
    """config.json's layer list is rebuilt into a network: every value is checked first."""
    d = preset_config("fast").to_dict()
    d["arch"]["layers"] = [layer] + d["arch"]["layers"]
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(d)
    assert e.value.field == "arch.layers[0]" and why in e.value.reason


def test_layers_must_end_in_the_classifier():
    d = preset_config("classic").to_dict()
    d["arch"]["layers"] = d["arch"]["layers"][:-1]
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(d)
    assert e.value.field == "layers" and "softmax" in e.value.reason


def test_bad_json():
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_json("{not json")
    assert e.value.field == "config.json"
    with pytest.raises(ConfigError):
        TrainConfig.from_json("[1, 2]")
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_json(json.dumps({"epochs": 0}))
    assert e.value.field == "epochs"


def test_a_network_over_the_parameter_cap_is_refused_with_the_figure():
    """The form allows each value, but not their product: 4 blocks of 512 7x7 filters is 40 million
    parameters, past what the app trains and loads (limits.MAX_PARAMS)."""
    with pytest.raises(ConfigError) as e:
        ArchConfig(preset="custom", conv_blocks=4, filters=(512,) * 4, kernel_size=7, dense_units=4096)
    assert e.value.field == "arch" and "40.7 million parameters" in e.value.reason and "10.0 million" in e.value.reason
    ArchConfig(preset="custom", conv_blocks=4, filters=(32, 64, 128, 256), kernel_size=3, dense_units=512)
