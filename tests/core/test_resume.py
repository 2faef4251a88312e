"""Checkpoints, resume, continued training and TensorBoard events, with the real trainer process.

A run killed with SIGKILL in the middle of epoch 2 resumes from its epoch-1 checkpoint
(`train --resume`) and ends with the same history and bit-for-bit the same weights as the same run
left alone (op determinism is on, same machine). Every run writes TensorBoard scalars per epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_core import checkpoints, runs, scheduler
from mnist_core.config import preset_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
ARGS = ["--preset", "classic", "--epochs", "2", "--limit", "3000", "--batch-size", "32"]


def cli(*args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mnist_core", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the trainer exited ({proc.returncode}) before {what}: {proc.stdout.read()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def env(runs_root, data_dir):
    return {**os.environ, "MNIST_RUNS_DIR": str(runs_root), "MNIST_DATA_DIR": str(data_dir),
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(runs.RunFolder(run_dir).model).get_weights()


def test_killed_mid_epoch_2_resumes_to_the_uninterrupted_run(env, runs_root):
    full = cli("train", *ARGS, "--name", "whole", env=env)
    assert full.wait(timeout=300) == 0, full.stdout.read()[-2000:]

    cut = runs_root / "cut"
    p = cli("train", *ARGS, "--name", "cut", env=env)
    try:
        wait_for(lambda: runs.read_progress(cut).get("epoch") == 2 and runs.read_progress(cut)["batch"] >= 5,
                 300, "the middle of epoch 2", p)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert runs.read_status(cut)["state"] == "failed"
    assert checkpoints.read_state(cut).epoch == 1 and not runs.RunFolder(cut).model.exists()
    assert scheduler.resumable(cut) is None

    r = cli("train", "--resume", cut, env=env)
    out = r.communicate(timeout=300)[0]
    assert r.returncode == 0, out[-2000:]
    assert "epoch 2:" in out and "epoch 1:" not in out  # it went on from the checkpoint
    st = runs.read_status(cut)
    assert st["state"] == "finished", st
    keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
    assert [{k: h[k] for k in keys} for h in runs.read_history(cut)] == \
        [{k: h[k] for k in keys} for h in runs.read_history(runs_root / "whole")]
    for a, b in zip(weights(cut), weights(runs_root / "whole"), strict=True):
        np.testing.assert_array_equal(a, b)
    batches = runs.read_batches(cut)
    assert sorted({b["epoch"] for b in batches}) == [1, 2]
    assert all(a["x"] < b["x"] for a, b in zip(batches, batches[1:], strict=False))  # the killed epoch's points went
    assert json.loads(runs.RunFolder(cut).metrics.read_text())["epochs_done"] == 2
    assert scheduler.resumable(cut) is not None  # finished: nothing to resume


def test_tensorboard_sees_each_epochs_scalars(env, runs_root):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = cli("train", *ARGS, "--name", "tb", env=env)
    assert p.wait(timeout=300) == 0, p.stdout.read()[-2000:]
    logdir = runs.RunFolder(runs_root / "tb").tensorboard
    for split, tag in (("train", "epoch_loss"), ("train", "epoch_accuracy"), ("validation", "epoch_loss")):
        acc = EventAccumulator(str(logdir / split), size_guidance={"tensors": 0, "scalars": 0})
        acc.Reload()
        tags = acc.Tags()
        events = acc.Tensors(tag) if tag in tags["tensors"] else acc.Scalars(tag)
        assert [e.step for e in events] == [0, 1], (split, tag, tags)
    hist = runs.read_history(runs_root / "tb")
    acc = EventAccumulator(str(logdir / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    logged = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch_loss")]
    np.testing.assert_allclose(logged, [h["loss"] for h in hist], rtol=1e-6)  # the same figures as the app's


def test_continue_training_starts_from_the_parents_weights(runs_root, tiny):
    from mnist_core.training import train

    parent_cfg = preset_config("classic", epochs=1, limit=300)
    parent = runs.create_run(parent_cfg, "parent", root=runs_root)
    m = train(parent_cfg, parent, tiny)
    child_cfg = preset_config("classic", epochs=1, limit=300, init_from="parent", learning_rate=1e-9)
    child = runs.create_run(child_cfg, "child", root=runs_root)
    c = train(child_cfg, child, tiny)
    # With a learning rate of ~0 the child is its parent: the weights it started from are the parent's.
    assert abs(c["test_accuracy"] - m["test_accuracy"]) < 0.02
    for a, b in zip(weights(parent), weights(child), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    bad = runs.create_run(preset_config("mlp", epochs=1, limit=300, init_from="parent"), "misfit", root=runs_root)
    with pytest.raises(runs.RunError, match="do not fit"):
        train(preset_config("mlp", epochs=1, limit=300, init_from="parent"), bad, tiny)


def test_a_failed_checkpoint_write_keeps_the_previous_one(runs_root, tiny, monkeypatch):
    from mnist_core.architectures import build_model

    run = runs.RunFolder(runs.create_run(preset_config("mlp"), "ck", root=runs_root))
    model = build_model(preset_config("mlp").arch)
    model.compile("adam", "sparse_categorical_crossentropy")
    checkpoints.save(model, run, epoch=1, step=10)
    before = run.checkpoint.read_bytes()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        checkpoints.save(model, run, epoch=2, step=20)
    monkeypatch.undo()
    assert run.checkpoint.read_bytes() == before and checkpoints.read_state(run).epoch == 1
    assert not [p for p in run.path.iterdir() if "tmp" in p.name]
