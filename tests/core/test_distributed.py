"""Issue 8 item 6: training under MirroredStrategy over several devices. Logical devices must be set
before TensorFlow initialises, so the test runs in a fresh subprocess that splits the CPU in two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
devices = [d.name for d in tf.config.list_logical_devices("CPU")]

from pathlib import Path
from mnist_core import runs
from mnist_core.config import preset_config
from mnist_core.data import load_mnist
from mnist_core.inference import load_model
from mnist_core.training import train

data_dir, root = Path(sys.argv[1]), Path(sys.argv[2])
ds = load_mnist(data_dir, "data_dir")
cfg = preset_config("classic", epochs=2, limit=400, batch_size=32)
out = {"devices": devices}
for name, devs in (("mirrored", devices), ("single", None)):
    run = runs.create_run(cfg, name, root=root)
    m = train(cfg, run, ds, devices=devs)
    hist = runs.read_history(run)
    out[name] = {"devices": m["devices"], "state": runs.read_status(run)["state"], "history": hist,
                 "keys": sorted(k for k in hist[0] if hist[0][k] is not None),
                 "test_accuracy": m["test_accuracy"], "n_train": m["n_train"],
                 "reloaded_params": load_model(run / "model.keras").count_params()}
print("RESULT " + json.dumps(out))
"""


def test_mirrored_strategy_over_two_cpu_devices(tmp_path, tiny):
    d = tmp_path / "data"
    d.mkdir()
    np.savez(d / "mnist.npz", x_train=tiny.x_train[:400], y_train=tiny.y_train[:400].astype(np.uint8),
             x_test=tiny.x_test[:200], y_test=tiny.y_test[:200].astype(np.uint8))
    (tmp_path / "runs").mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(d), str(tmp_path / "runs")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert len(out["devices"]) == 2 and all("CPU" in x for x in out["devices"])
    mir, single = out["mirrored"], out["single"]
    assert mir["devices"] == 2 and single["devices"] == 1
    assert mir["state"] == single["state"] == "finished"
    assert mir["keys"] == single["keys"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(mir["keys"])
    assert len(mir["history"]) == len(single["history"]) == 2
    assert mir["n_train"] == single["n_train"] == 360
    assert mir["reloaded_params"] == single["reloaded_params"] == 93_322
    # Both learned something: the loss went down over the two epochs.
    for h in (mir["history"], single["history"]):
        assert h[1]["loss"] < h[0]["loss"]
    assert mir["test_accuracy"] > 0.2
