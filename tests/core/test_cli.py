"""`python -m mnist_core` end to end, as subprocesses, on the shared MNIST data."""

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
from PIL import Image

from tests.conftest import digit_to_canvas

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MNIST_DATA_DIR", "MNIST_MAX_TRAININGS")}
    env.update(MNIST_RUNS_DIR=str(root), MNIST_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", HOME=str(home),
               PYTHONPATH=str(ROOT))
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_core", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    base = tmp_path_factory.mktemp("cli")
    root, home = base / "runs", base / "home"
    root.mkdir()
    home.mkdir()
    env = _env(root, home)
    run = root / "cli-classic"
    t0 = time.perf_counter()
    r = cli("train", "--preset", "classic", "--epochs", "1", "--limit", "500", "--data-dir", data_dir,
            "--run-dir", run, env=env)
    return {"env": env, "root": root, "run": run, "train": r, "train_s": time.perf_counter() - t0,
            "data_dir": data_dir, "base": base}


def test_train(ctx):
    r = ctx["train"]
    assert r.returncode == 0, r.stderr[-2000:]
    assert "epoch 1:" in r.stdout and "val_acc" in r.stdout and "finished: test accuracy" in r.stdout
    run = ctx["run"]
    for f in ("model.keras", "config.json", "history.csv", "metrics.json", "status.json", "progress.json"):
        assert (run / f).is_file(), f
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_train"] == 450 and m["n_val"] == 50 and m["n_test"] == 10000
    assert m["data_source"] == "data_dir" and json.loads((run / "status.json").read_text())["state"] == "finished"
    assert json.loads((run / "config.json").read_text())["limit"] == 500


def test_runs_json(ctx):
    r = cli("runs", "--json", env=ctx["env"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["broken"] == []
    (row,) = out["runs"]
    m = json.loads((ctx["run"] / "metrics.json").read_text())
    assert row["name"] == "cli-classic" and row["status"] == "finished" and row["preset"] == "classic"
    assert row["test_accuracy"] == pytest.approx(m["test_accuracy"]) and row["params"] == 93_322
    text = cli("runs", env=ctx["env"])
    assert text.returncode == 0 and "cli-classic" in text.stdout and "finished" in text.stdout


def test_evaluate_json(ctx):
    r = cli("evaluate", ctx["run"], "--data-dir", ctx["data_dir"], "--json", env=ctx["env"])
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    cm = np.array(out["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert out["accuracy"] == pytest.approx(np.trace(cm) / 10000)
    m = json.loads((ctx["run"] / "metrics.json").read_text())
    assert out["accuracy"] == pytest.approx(m["test_accuracy"]) and out["loss"] == pytest.approx(m["test_loss"])
    assert len(out["per_class"]) == 10 and sum(c["support"] for c in out["per_class"]) == 10000
    # the plain-text report
    t = cli("evaluate", ctx["run"], "--data-dir", ctx["data_dir"], env=ctx["env"])
    assert t.returncode == 0 and "confusion matrix" in t.stdout and f"{out['accuracy']:.4f}" in t.stdout


def test_predict_json(ctx, mnist):
    base = ctx["base"]
    digit = mnist.x_test[0]  # a 7
    Image.fromarray(digit_to_canvas(digit)).save(base / "img.png")
    Image.fromarray(255 - np.asarray(Image.fromarray(digit).resize((90, 90)))).save(base / "paper.png")
    Image.fromarray(np.zeros((280, 280, 4), np.uint8)).save(base / "blank.png")
    (base / "notes.png").write_text("not an image")
    files = [base / "img.png", base / "blank.png", base / "notes.png", base / "paper.png"]
    r = cli("predict", ctx["run"], *files, "--json", env=ctx["env"])
    assert r.returncode == 1, r.stderr[-2000:]  # one file was not an image
    lines = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [rec["file"] for rec in lines] == [str(f) for f in files]  # one JSON line per image, in order
    img, blank, notes, paper = lines
    assert isinstance(img["label"], int) and 0 <= img["label"] <= 9
    assert len(img["probabilities"]) == 10 and sum(img["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert img["label"] == int(np.argmax(img["probabilities"]))
    assert blank["label"] is None and blank["probabilities"] is None and "blank" in blank["note"]
    assert notes["label"] is None and "notes.png" in notes["error"]  # its own error; the others answered
    assert paper["label"] is not None
    # The CLI's answer is the model's answer on the preprocessed image, computed here independently.
    from mnist_core.inference import load_model, predict_one
    from mnist_core.preprocess import load_image, preprocess

    model = load_model(ctx["run"] / "model.keras")
    probs = predict_one(model, preprocess(load_image((base / "img.png").read_bytes())).image)
    np.testing.assert_allclose(img["probabilities"], probs, atol=1e-5)


def test_info(ctx):
    r = cli("info", "--data-dir", ctx["data_dir"], env=ctx["env"])
    assert r.returncode == 0, r.stderr
    assert "22,699 training and 10,000 test" in r.stdout and str(ctx["root"]) in r.stdout
    env = dict(ctx["env"])
    r = cli("info", env=env)  # no data dir, no Keras cache in this HOME, offline: the bundled sample
    assert r.returncode == 0 and "bundled" in r.stdout
    env["MNIST_DATA_DIR"] = str(ctx["base"] / "no-such-dir")
    r = cli("info", env=env)
    assert r.returncode == 1 and "no-such-dir" in r.stderr


def test_help_of_every_subcommand(ctx):
    for sub in ([], ["train"], ["evaluate"], ["predict"], ["runs"], ["info"]):
        r = cli(*sub, "--help", env=ctx["env"], timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("usage:"), (sub, r.stderr)
    r = cli("train", "--help", env=ctx["env"])
    for flag in ("--preset", "--epochs", "--limit", "--data-dir", "--run-dir", "--lr", "--schedule", "--augment"):
        assert flag in r.stdout
    assert cli(env=ctx["env"], timeout=60).returncode == 2  # no subcommand


@pytest.mark.parametrize("args,field", [
    (["--epochs", "0"], "epochs"),
    (["--lr", "-1"], "learning_rate"),
    (["--limit", "500", "--batch-size", "1000"], "batch_size"),
    (["--val-split", "0.9"], "validation_split"),
    (["--config", '{"arch": {"preset": "custom", "kernel_size": 9}}'], "kernel_size"),
    (["--config", '{"epochz": 3}'], "epochz"),
])
def test_bad_config_exit_2(ctx, args, field):
    run = ctx["base"] / f"bad-{field}"
    r = cli("train", *args, "--data-dir", ctx["data_dir"], "--run-dir", run, env=ctx["env"], timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-1000:])
    assert field in r.stderr
    assert not run.exists()  # nothing written for a refused config


def test_duplicate_run_dir_refused(ctx):
    before = (ctx["run"] / "config.json").read_bytes()
    r = cli("train", "--epochs", "1", "--limit", "500", "--data-dir", ctx["data_dir"], "--run-dir", ctx["run"],
            env=ctx["env"], timeout=60)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (ctx["run"] / "config.json").read_bytes() == before


def test_sigint_stops_cleanly(ctx):
    run = ctx["root"] / "interrupted"
    p = subprocess.Popen([sys.executable, "-m", "mnist_core", "train", "--preset", "classic", "--epochs", "2",
                          "--limit", "8000", "--data-dir", str(ctx["data_dir"]), "--run-dir", str(run)],
                         cwd=ROOT, env=ctx["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "progress.json").exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        assert json.loads((run / "status.json").read_text())["state"] == "running"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err[-2000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped" and status.get("pid") is None
    assert (run / "model.keras").is_file() and not list(run.glob(".*tmp*"))
    m = json.loads((run / "metrics.json").read_text())
    steps = -(-7200 // 32)
    assert m["stopped_early"] and m["epochs_done"] <= 1
    prog = json.loads((run / "progress.json").read_text())
    assert prog["epoch"] == 1 and prog["batch"] < steps  # stopped inside the first epoch
    assert "stopped" in out
    listed = json.loads(cli("runs", "--json", env=ctx["env"]).stdout)
    assert {r["name"]: r["status"] for r in listed["runs"]}["interrupted"] == "stopped"


def test_sigint_while_queued_cancels(ctx, tmp_path):
    """A training waiting for the only slot is cancelled by Ctrl-C: 'stopped', nothing trained."""
    import threading

    from mnist_core import runs, scheduler
    from mnist_core.config import preset_config

    root = tmp_path / "runs"
    env = {**_env(root, ctx["base"] / "home"), "MNIST_MAX_TRAININGS": "1"}
    holder = runs.create_run(preset_config("classic"), "holder", root=root)
    release, held = threading.Event(), threading.Event()

    def hold():
        with scheduler.training_slot(holder, poll_s=0.05):
            runs.set_status(holder, "running")
            held.set()
            release.wait(120)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(10)
    run = root / "waiting"
    p = subprocess.Popen([sys.executable, "-m", "mnist_core", "train", "--epochs", "1", "--limit", "500",
                          "--data-dir", str(ctx["data_dir"]), "--run-dir", str(run)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("queued: waiting for a training slot"):
            line = p.stdout.readline()  # blocks until the CLI says it waits in line
            assert line, p.communicate()
            lines.append(line)
        assert json.loads((run / "status.json").read_text())["state"] == "queued"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        release.set()
        t.join(10)
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err[-1000:]
    st = runs.read_status(run)
    assert st["state"] == "stopped" and "cancelled" in st["error"]
    assert not (run / "model.keras").exists() and not (run / "progress.json").exists()


def test_evaluate_and_predict_without_a_model(ctx, tmp_path):
    empty = tmp_path / "no-model"
    empty.mkdir()
    img = ctx["base"] / "img.png"
    if not img.exists():
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    r = cli("predict", empty, img, "--json", env=ctx["env"], timeout=120)
    assert r.returncode == 1 and "model.keras" in r.stderr
    r = cli("evaluate", empty, "--data-dir", ctx["data_dir"], env=ctx["env"], timeout=120)
    assert r.returncode == 1 and "model.keras" in r.stderr
