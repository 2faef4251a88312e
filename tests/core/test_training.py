"""mnist_core.training: the run folder a training writes, the progress callback, stopping,
reproducibility and the learning-rate schedules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mnist_core import runs
from mnist_core.config import TrainConfig, preset_config
from mnist_core.training import augment_batch, lr_at, make_pipeline, split_data

pytestmark = pytest.mark.slow


def test_run_folder_after_training(trained):
    d = trained.run_dir
    status = runs.read_status(d)
    assert status["state"] == "finished" and status.get("pid") is None and "error" not in status
    assert (d / "model.keras").is_file()
    assert not list(d.glob(".*.tmp*")), "temporary files left behind"
    assert TrainConfig.from_json((d / "config.json").read_text()) == trained.cfg
    m = json.loads((d / "metrics.json").read_text())
    assert m["n_train"] == 540 and m["n_val"] == 60 and m["n_test"] == 300
    assert m["params"] == 93_322 and m["devices"] == 1 and m["epochs_done"] == 1
    assert m["data_source"] == "data_dir" and not m["stopped_early"]
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["test_loss"] > 0
    assert m["mistakes"] == round((1 - m["test_accuracy"]) * 300)
    assert m["test_accuracy"] > 0.3  # 1 epoch on 540 images is far above chance (0.1)


def test_callback_fires_per_epoch_with_val_keys(trained):
    assert len(trained.epochs) == 1  # on_epoch: once per epoch
    row = trained.epochs[0]
    for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert k in row and math.isfinite(row[k]), k
    hist = runs.read_history(trained.run_dir)
    assert len(hist) == 1 and hist[0]["epoch"] == 1
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert hist[0][k] == pytest.approx(row[k], rel=1e-6)
    header = (trained.run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val_loss", "val_accuracy"} <= set(header)


def test_batch_progress(trained):
    steps = math.ceil(540 / 32)
    assert trained.batches, "on_batch never fired"
    last = trained.batches[-1]
    assert last["batch"] == last["batches_per_epoch"] == steps and last["epoch"] == last["epochs"] == 1
    assert [b["batch"] for b in trained.batches] == sorted(b["batch"] for b in trained.batches)
    prog = runs.read_progress(trained.run_dir)
    assert prog["batch"] == steps and math.isfinite(prog["loss"]) and 0 <= prog["accuracy"] <= 1


def test_reproducible(trained):
    """The same config and seed give the same history and the same test predictions."""
    from mnist_core.training import train

    rows: list[dict] = []
    m = train(trained.cfg, None, trained.data, on_epoch=rows.append)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    assert [r[k] for r in rows for k in keys] == pytest.approx([r[k] for r in trained.epochs for k in keys],
                                                               rel=1e-6, abs=1e-7)
    assert m["test_loss"] == pytest.approx(trained.metrics["test_loss"], rel=1e-6)
    assert m["test_accuracy"] == trained.metrics["test_accuracy"]


def test_stop_from_on_batch_hook(tiny, runs_root):
    """A stop requested through the run folder ends training between batches: status 'stopped',
    the model saved so far, and far fewer batches than asked for."""
    import keras

    from mnist_core.training import train

    cfg = preset_config("classic", epochs=3, limit=600, lr_schedule="onecycle")
    run_dir = runs.create_run(cfg, "stop-me", root=runs_root)
    seen = {"batches": 0}

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batches"] += 1

    def on_batch(p):
        if p["batch"] >= 1:
            runs.request_stop(run_dir)

    m = train(cfg, run_dir, tiny, on_batch=on_batch, extra_callbacks=[Count()])
    steps = math.ceil(540 / 32)
    assert 1 <= seen["batches"] < steps, seen  # stopped inside the first of 3 epochs
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped"
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert m["stopped_early"] and m["epochs_done"] <= 1
    assert not runs.stop_requested(run_dir)  # the request is consumed
    # The one-cycle schedule was really applied per batch: the last batch ran at lr_at(its step).
    total = steps * cfg.epochs
    lr = float(np.asarray(m["model"].optimizer.learning_rate))
    assert lr == pytest.approx(lr_at(cfg, seen["batches"] - 1, total), rel=1e-5)
    assert lr < cfg.learning_rate * 0.5  # still warming up


def test_split_data_is_seeded_and_disjoint(tiny):
    cfg = preset_config("classic", limit=200, validation_split=0.2, batch_size=16)
    a = split_data(tiny, cfg)
    b = split_data(tiny, cfg)
    assert [len(x) for x in a] == [160, 160, 40, 40]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    c = split_data(tiny, preset_config("classic", limit=200, validation_split=0.2, batch_size=16, seed=1))
    assert not np.array_equal(a[1], c[1])
    fit = {x.tobytes() for x in a[0]}
    assert not any(x.tobytes() in fit for x in a[2])


def test_pipeline_scales_and_augments(tiny):
    cfg = preset_config("classic", limit=64, batch_size=32, augment=True, rotation_deg=20, shift_frac=0.2)
    x, y = tiny.x_train[:64], tiny.y_train[:64]
    plain = next(iter(make_pipeline(x, y, cfg, training=False)))
    aug = next(iter(make_pipeline(x, y, cfg, training=True)))
    px, py = plain[0].numpy(), plain[1].numpy()
    assert px.shape == (32, 28, 28, 1) and px.dtype == np.float32 and px.max() <= 1.0 and px.min() >= 0
    np.testing.assert_allclose(px[..., 0], x[:32] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(py, y[:32])
    ax = aug[0].numpy()
    assert ax.shape == (32, 28, 28, 1) and ax.min() >= -1e-3 and ax.max() <= 1 + 1e-3
    # Augmented images are moved versions of the originals: never all identical to them.
    order = [int(np.flatnonzero((x == (xi * 255).round().astype(np.uint8)[..., 0]).all(axis=(1, 2)))[0])
             if ((x == (xi * 255).round().astype(np.uint8)[..., 0]).all(axis=(1, 2))).any() else -1
             for xi in ax]
    assert order.count(-1) > 16


def test_pipeline_has_no_autotune_thread(tiny):
    # tf.data's autotune model thread is joined whenever an iterator is destroyed (each epoch); on the
    # project's machines that join stalled training for 5-20 s with the CPU idle (benchmarks/README.md).
    cfg = preset_config("classic", limit=64, batch_size=32, augment=True)
    x, y = tiny.x_train[:64], tiny.y_train[:64]
    for training, passes in ((True, cfg.epochs), (False, 1)):
        ds = make_pipeline(x, y, cfg, training=training)
        assert ds.options().autotune.enabled is False
        assert sum(len(b[1]) for b in ds) == 64 * passes  # every image once per epoch


def test_training_pipeline_epochs_do_not_depend_on_where_the_run_started(tiny):
    """Epoch e of a run resumed at e is epoch e of the uninterrupted run: its own order (a permutation
    of all the images) and its own augmentation."""
    cfg = preset_config("fast", limit=96, batch_size=32, epochs=3)
    x, y = tiny.x_train[:96], tiny.y_train[:96]
    whole = [(b[0].numpy(), b[1].numpy()) for b in make_pipeline(x, y, cfg, training=True)]
    later = [(b[0].numpy(), b[1].numpy()) for b in make_pipeline(x, y, cfg, training=True, first_epoch=2)]
    assert len(whole) == 9 and len(later) == 3
    for (xa, ya), (xb, yb) in zip(whole[6:], later, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    labels = [np.concatenate([b[1] for b in whole[i:i + 3]]) for i in (0, 3, 6)]
    assert all(sorted(lab) == sorted(y) for lab in labels)  # each epoch sees every image once
    assert not np.array_equal(labels[0], labels[1])  # in a new order


def _com(batch: np.ndarray) -> np.ndarray:
    """Centre of mass (row, col) of each image of a (B, 28, 28, 1) batch."""
    w = batch[..., 0]
    r, c = np.mgrid[0:28, 0:28]
    m = w.sum(axis=(1, 2))
    return np.stack([(w * r).sum(axis=(1, 2)) / m, (w * c).sum(axis=(1, 2)) / m], axis=1)


def test_augment_batch_moves_digits_within_the_configured_ranges(tiny):
    import tensorflow as tf

    x = tf.constant(tiny.x_train[:64].astype(np.float32)[..., None] / 255.0)
    seed = tf.constant([3, 4], tf.int64)
    # No ranges: the identity, exactly.
    same = augment_batch(x, seed, 0.0, 0.0, 0.0).numpy()
    np.testing.assert_allclose(same, x.numpy(), atol=1e-6)
    # Shift only: the centre of mass moves by at most the range (2.8 px here), and does move.
    shifted = augment_batch(x, seed, 0.0, 0.1, 0.0).numpy()
    d = _com(shifted) - _com(x.numpy())
    assert np.abs(d).max() <= 0.1 * 28 + 0.6 and np.abs(d).mean() > 0.3
    np.testing.assert_allclose(shifted.sum(axis=(1, 2, 3)), x.numpy().sum(axis=(1, 2, 3)), rtol=0.1)
    # Rotation only, about the centre: the digit stays put and keeps its ink.
    rot = augment_batch(x, seed, 15.0, 0.0, 0.0).numpy()
    assert np.abs(_com(rot) - _com(x.numpy())).max() < 2.5
    assert not np.allclose(rot, x.numpy(), atol=1e-3)
    np.testing.assert_allclose(rot.sum(axis=(1, 2, 3)), x.numpy().sum(axis=(1, 2, 3)), rtol=0.1)
    # Zoom only: ink grows or shrinks with the scale, by at most the range (area ~ scale^2).
    zoom = augment_batch(x, seed, 0.0, 0.0, 0.2).numpy()
    ratio = zoom.sum(axis=(1, 2, 3)) / x.numpy().sum(axis=(1, 2, 3))
    assert ratio.min() > 1 / 1.2**2 - 0.1 and ratio.max() < 1 / 0.8**2 + 0.1 and ratio.std() > 0.02
    # Stateless: the same seed gives the same batch, another seed another.
    np.testing.assert_array_equal(augment_batch(x, seed, 8.0, 0.08, 0.08).numpy(),
                                  augment_batch(x, seed, 8.0, 0.08, 0.08).numpy())
    assert not np.allclose(augment_batch(x, seed, 8.0, 0.08, 0.08).numpy(),
                           augment_batch(x, tf.constant([5, 6], tf.int64), 8.0, 0.08, 0.08).numpy())


def test_augmented_pipeline_is_reproducible_from_the_seed(tiny):
    cfg = preset_config("fast", limit=64, batch_size=32)
    x, y = tiny.x_train[:64], tiny.y_train[:64]
    a = [b[0].numpy() for b in make_pipeline(x, y, cfg, training=True)]
    b = [b[0].numpy() for b in make_pipeline(x, y, cfg, training=True)]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


# --- learning-rate schedules (pure functions) ----------------------------------------------------
def _curve(schedule: str, total: int = 1000) -> np.ndarray:
    cfg = TrainConfig(lr_schedule=schedule, learning_rate=0.01)
    return np.array([lr_at(cfg, s, total) for s in range(total + 1)])


def test_constant():
    assert np.all(_curve("constant") == 0.01)


def test_step_halves():
    c = _curve("step")
    assert c[0] == c[499] == 0.01
    assert c[500] == c[749] == 0.005
    assert c[750] == c[1000] == 0.0025


def test_cosine():
    c = _curve("cosine")
    assert c[0] == pytest.approx(0.01) and c[500] == pytest.approx(0.005) and c[-1] == pytest.approx(0, abs=1e-12)
    assert np.all(np.diff(c) <= 1e-15)


def test_onecycle_warms_up_then_decays():
    c = _curve("onecycle")
    peak = int(c.argmax())
    assert c[0] == pytest.approx(0.001)  # starts at a tenth
    assert 240 <= peak <= 260 and c[peak] == pytest.approx(0.01)
    assert c.max() <= 0.01 + 1e-12  # never above the configured learning rate
    assert np.all(np.diff(c[:peak + 1]) >= 0) and np.all(np.diff(c[peak:]) <= 1e-15)
    assert 0 < c[-1] < 0.0001  # decays to almost nothing, not to zero


def test_lr_at_handles_zero_total():
    cfg = TrainConfig(lr_schedule="cosine")
    assert math.isfinite(lr_at(cfg, 0, 0))
