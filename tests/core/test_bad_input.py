"""The bad-input catalogue: everything a user (or a broken disk) can hand the app, one case each.

Every case builds its bad input in a private workspace (a small real-MNIST IDX data folder, a runs folder,
an uploads folder), snapshots the workspace's file tree with sizes and mtimes, performs the bad action
through the real core functions or the CLI, and asserts two things: the message the user gets names
what is wrong, and nothing on disk changed (no run folder, no temp file, no rewritten data file).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_core import data, inference, preprocess, runs
from mnist_core.config import ArchConfig, ConfigError, TrainConfig, preset_config
from tests.core.test_uploads import bmp_header, gif_header, png_header, tiff_header, tiff_pages, webp_header

ROOT = Path(__file__).resolve().parents[2]


# --- workspace ---------------------------------------------------------------------------------------
@dataclass
class WS:
    root: Path
    data: Path
    runs: Path
    uploads: Path
    model_file: Path | None = None  # a real (untrained) classic model, for cases that need one


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from mnist_core.architectures import build_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(ArchConfig()).save(path)
    return path


def write_mnist(d: Path, ds, n_train: int = 200, n_test: int = 100) -> None:
    d.mkdir(parents=True, exist_ok=True)
    data.write_idx(d / "train-images-idx3-ubyte", ds.x_train[:n_train])
    data.write_idx(d / "train-labels-idx1-ubyte", ds.y_train[:n_train].astype(np.uint8))
    data.write_idx(d / "t10k-images-idx3-ubyte", ds.x_test[:n_test])
    data.write_idx(d / "t10k-labels-idx1-ubyte", ds.y_test[:n_test].astype(np.uint8))


def message(exc: type[BaseException], fn: Callable[[], object]) -> str:
    """The message of the exception `fn` must raise."""
    with pytest.raises(exc) as e:
        fn()
    return str(e.value)


def cli(ws: WS, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `python -m mnist_core ...`; it must fail; return what it printed (stderr, then stdout)."""
    full_env = {**os.environ, "MNIST_RUNS_DIR": str(ws.runs), "MNIST_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    full_env.pop("MNIST_DATA_DIR", None)  # only what the case sets
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "mnist_core", *args], cwd=ROOT, env=full_env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr  # a message, not a crash
    return p.stderr + p.stdout


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def load_upload(ws: WS, name: str) -> Callable[[], object]:
    return lambda: preprocess.load_image((ws.uploads / name).read_bytes(), name)


def blank_note(ws: WS, name: str) -> str:
    """The Draw/upload path on a blank picture: it must be reported blank, never classified."""
    pre = preprocess.preprocess(preprocess.load_image((ws.uploads / name).read_bytes(), name))
    assert pre.blank and not pre.image.any()
    return "blank image: no digit found"  # what the CLI and the Draw page say for pre.blank


def make_run(ws: WS, name: str, state: str = "finished", model: bytes | None = None,
             config: str | None = None) -> Path:
    d = ws.runs / name
    d.mkdir()
    (d / "config.json").write_text(preset_config("classic", epochs=1).to_json() if config is None else config)
    runs.set_status(d, state, pid=None)
    if model is not None:
        (d / "model.keras").write_bytes(model)
    return d


def broken_message(ws: WS, name: str) -> str:
    """A damaged run is still listed, marked damaged with the reason (the listing itself never fails)."""
    damaged = {r.name: r.damaged for r in runs.list_runs(ws.runs)}
    assert damaged.get(name), f"{name} is not listed as damaged"
    return damaged[name]


# --- the cases ---------------------------------------------------------------------------------------
# Each case: (id, setup(ws) -> action, substrings the message must contain). The action runs after the
# snapshot and returns the message the user would see.
Setup = Callable[[WS], Callable[[], str]]
CASES: list[tuple[str, Setup, tuple[str, ...]]] = []


def case(case_id: str, *expect: str, needs_model: bool = False):
    def deco(fn: Setup) -> Setup:
        fn.needs_model = needs_model
        CASES.append((case_id, fn, expect))
        return fn
    return deco


# Data files -------------------------------------------------------------------------------------------
@case("idx-truncated", "train-images-idx3-ubyte", "truncated")
def _(ws):
    p = ws.data / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-500])
    return lambda: message(data.DataError, lambda: data.load_mnist(ws.data, "data_dir"))


@case("idx-header-truncated", "t10k-labels-idx1-ubyte", "truncated")
def _(ws):
    (ws.data / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    return lambda: message(data.DataError, lambda: data.read_idx(ws.data / "t10k-labels-idx1-ubyte"))


@case("idx-wrong-magic", "train-labels-idx1-ubyte", "wrong magic number")
def _(ws):
    p = ws.data / "train-labels-idx1-ubyte"
    p.write_bytes(b"\x50\x4b\x03\x04" + p.read_bytes()[4:])  # a zip header where the IDX magic goes
    return lambda: message(data.DataError, lambda: data.load_mnist(ws.data, "data_dir"))


@case("idx-wrong-dimensions", "train-images-idx3-ubyte", "28 x 28", "20x20")
def _(ws):
    data.write_idx(ws.data / "train-images-idx3-ubyte", np.zeros((200, 20, 20), np.uint8))
    return lambda: message(data.DataError, lambda: data.load_mnist(ws.data, "data_dir"))


@case("idx-count-mismatch", "150 labels for 200 images")
def _(ws):
    y = data.read_idx(ws.data / "train-labels-idx1-ubyte")
    data.write_idx(ws.data / "train-labels-idx1-ubyte", y[:150])
    return lambda: message(data.DataError, lambda: data.load_mnist(ws.data, "data_dir"))


@case("idx-labels-not-digits", "labels must be digits 0-9")
def _(ws):
    y = data.read_idx(ws.data / "t10k-labels-idx1-ubyte").copy()
    y[3] = 12
    data.write_idx(ws.data / "t10k-labels-idx1-ubyte", y)
    return lambda: message(data.DataError, lambda: data.load_mnist(ws.data, "data_dir"))


@case("data-dir-empty", "lacks", "train-images-idx3-ubyte")
def _(ws):
    empty = ws.root / "empty"
    empty.mkdir()
    return lambda: message(data.DataError, lambda: data.load_mnist(empty, "data_dir"))


@case("MNIST_DATA_DIR-nowhere", "/no/such/mnist", "does not exist")
def _(ws):
    # Through the CLI, as a teacher would start it: the training is refused before a run folder exists.
    return lambda: cli(ws, "train", "--epochs", "1", "--name", "x", env={"MNIST_DATA_DIR": "/no/such/mnist"})


@case("data-dir-nowhere-info", "/no/such/mnist", "does not exist")
def _(ws):
    return lambda: cli(ws, "info", "--data-dir", "/no/such/mnist")


# Uploads ----------------------------------------------------------------------------------------------
@case("upload-not-an-image", "notes.png", "not an image")
def _(ws):
    (ws.uploads / "notes.png").write_text("this is a text file with a .png name\n")
    return lambda: message(preprocess.ImageError, load_upload(ws, "notes.png"))


@case("upload-zero-bytes", "empty.png", "empty (0 bytes)")
def _(ws):
    (ws.uploads / "empty.png").write_bytes(b"")
    return lambda: message(preprocess.ImageError, load_upload(ws, "empty.png"))


@case("upload-6000x6000", "huge.png", "6000x6000", "megapixels")
def _(ws):
    (ws.uploads / "huge.png").write_bytes(png(np.zeros((6000, 6000), np.uint8)))  # small file, huge image
    return lambda: message(preprocess.ImageError, load_upload(ws, "huge.png"))


@case("upload-over-byte-limit", "noise.png", "the limit is 5 MB")
def _(ws):
    noise = np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)  # incompressible
    (ws.uploads / "noise.png").write_bytes(png(noise))
    return lambda: message(preprocess.ImageError, load_upload(ws, "noise.png"))


@case("upload-animated-gif", "spin.gif", "animated", "3 frames")
def _(ws):
    frames = [Image.fromarray(np.full((40, 40), v, np.uint8)) for v in (0, 120, 255)]
    frames[0].save(ws.uploads / "spin.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return lambda: message(preprocess.ImageError, load_upload(ws, "spin.gif"))


@case("upload-1x1", "dot.png", "1x1", "at least 8x8")
def _(ws):
    (ws.uploads / "dot.png").write_bytes(png(np.zeros((1, 1), np.uint8)))
    return lambda: message(preprocess.ImageError, load_upload(ws, "dot.png"))


@case("upload-damaged-png", "cut.png", "damaged")
def _(ws):
    img = np.random.default_rng(1).integers(0, 256, (200, 200), dtype=np.uint8)
    (ws.uploads / "cut.png").write_bytes(png(img)[:3000])  # header fine, pixel data cut off
    return lambda: message(preprocess.ImageError, load_upload(ws, "cut.png"))


@case("upload-bomb-png", "bomb.png declares 256,000,000 pixels", "the limit is 25 megapixels")
def _(ws):
    (ws.uploads / "bomb.png").write_bytes(png_header(16000, 16000))  # 74 bytes; PIL raises its own bomb error
    return lambda: message(preprocess.ImageError, load_upload(ws, "bomb.png"))


@case("upload-bomb-png-warned", "warned.png is 12000x12000 pixels", "megapixels")
def _(ws):
    (ws.uploads / "warned.png").write_bytes(png_header(12000, 12000))  # between PIL's warning and its error
    return lambda: message(preprocess.ImageError, load_upload(ws, "warned.png"))


@case("upload-bomb-gif", "bomb.gif declares 256,000,000 pixels", "megapixels")
def _(ws):
    (ws.uploads / "bomb.gif").write_bytes(gif_header(16000, 16000))
    return lambda: message(preprocess.ImageError, load_upload(ws, "bomb.gif"))


@case("upload-bomb-bmp", "bomb.bmp declares 256,000,000 pixels", "megapixels")
def _(ws):
    (ws.uploads / "bomb.bmp").write_bytes(bmp_header(16000, 16000))
    return lambda: message(preprocess.ImageError, load_upload(ws, "bomb.bmp"))


@case("upload-bomb-tiff", "bomb.tiff declares 256,000,000 pixels", "megapixels")
def _(ws):
    (ws.uploads / "bomb.tiff").write_bytes(tiff_header(16000, 16000))
    return lambda: message(preprocess.ImageError, load_upload(ws, "bomb.tiff"))


@case("upload-bomb-webp", "bomb.webp is 16383x16383 pixels", "megapixels")
def _(ws):
    (ws.uploads / "bomb.webp").write_bytes(webp_header(16383, 16383, "lossless"))  # refused before PIL opens it
    return lambda: message(preprocess.ImageError, load_upload(ws, "bomb.webp"))


@case("upload-aspect-wide", "strip.png is 20000x9 pixels", "2222 times as wide as it is tall")
def _(ws):
    (ws.uploads / "strip.png").write_bytes(png(np.zeros((9, 20000), np.uint8)))
    return lambda: message(preprocess.ImageError, load_upload(ws, "strip.png"))


@case("upload-aspect-tall", "pole.png is 9x20000 pixels", "times as tall as it is wide")
def _(ws):
    (ws.uploads / "pole.png").write_bytes(png(np.zeros((20000, 9), np.uint8)))
    return lambda: message(preprocess.ImageError, load_upload(ws, "pole.png"))


@case("upload-multipage-tiff", "scan.tiff", "several pages (3 frames)")
def _(ws):
    (ws.uploads / "scan.tiff").write_bytes(tiff_pages(np.zeros((40, 40), np.uint8), 3))
    return lambda: message(preprocess.ImageError, load_upload(ws, "scan.tiff"))


@case("upload-16bit-uniform", "blank image")
def _(ws):
    # A flat 16-bit field with sensor noise (30000..30010 of 65535): blank, not noise stretched to 0..255.
    noise = np.random.default_rng(2).integers(30000, 30011, (120, 120)).astype(np.uint16)
    (ws.uploads / "flat16.png").write_bytes(png(noise))
    return lambda: blank_note(ws, "flat16.png")


@case("upload-all-white", "blank image")
def _(ws):
    (ws.uploads / "white.png").write_bytes(png(np.full((200, 200), 255, np.uint8)))
    return lambda: blank_note(ws, "white.png")


@case("upload-all-black", "blank image")
def _(ws):
    (ws.uploads / "black.png").write_bytes(png(np.zeros((200, 200), np.uint8)))
    return lambda: blank_note(ws, "black.png")


@case("canvas-blank", "blank image")
def _(ws):
    # What the Draw page's canvas returns before anything is drawn: 280x280 RGBA, fully transparent.
    (ws.uploads / "canvas.png").write_bytes(png(np.zeros((280, 280, 4), np.uint8)))
    return lambda: blank_note(ws, "canvas.png")


@case("cli-predict-blank-images", "white.png: blank image", "black.png: blank image", "canvas.png: blank image",
      needs_model=True)
def _(ws):
    (ws.uploads / "white.png").write_bytes(png(np.full((100, 100), 255, np.uint8)))
    (ws.uploads / "black.png").write_bytes(png(np.zeros((100, 100), np.uint8)))
    (ws.uploads / "canvas.png").write_bytes(png(np.zeros((280, 280, 4), np.uint8)))
    (ws.uploads / "notes.png").write_text("not a picture")  # makes the CLI exit non-zero, see cli()
    d = make_run(ws, "m", model=ws.model_file.read_bytes())
    files = [str(ws.uploads / n) for n in ("white.png", "black.png", "canvas.png", "notes.png")]
    return lambda: cli(ws, "predict", str(d), *files).replace(str(ws.uploads) + "/", "")


# Training settings ------------------------------------------------------------------------------------
def config_error(field: str, build: Callable[[], object]) -> Callable[[WS], Callable[[], str]]:
    def setup(ws):
        def act():
            with pytest.raises(ConfigError) as e:
                build()
            assert e.value.field == field
            return str(e.value)
        return act
    return setup


for cid, fld, build, expect in [
    ("config-epochs-0", "epochs", lambda: TrainConfig(epochs=0), "from 1 to 500"),
    ("config-lr-negative", "learning_rate", lambda: TrainConfig(learning_rate=-0.01), "above 0"),
    ("config-batch-over-limit", "batch_size", lambda: TrainConfig(limit=100, batch_size=500), "larger than the 90"),
    ("config-batch-over-data", "batch_size",
     lambda: TrainConfig(batch_size=1000).check_against_data(600), "larger than the 540"),
    ("config-dropout-1", "dropout", lambda: ArchConfig(dropout=1.0), "below 1"),
    ("config-zero-filters", "filters", lambda: ArchConfig(preset="custom", conv_blocks=2, filters=(0, 64)),
     "1 to 512 filters"),
    ("config-kernel-99", "kernel_size", lambda: ArchConfig(kernel_size=99), "1, 3, 5 or 7"),
    ("config-too-many-blocks", "conv_blocks",
     lambda: ArchConfig(conv_blocks=9, filters=(8,) * 9), "from 0 to 4"),
    ("config-val-split-0.9", "validation_split", lambda: TrainConfig(validation_split=0.9), "0 to 0.5"),
    ("config-limit-5", "limit", lambda: TrainConfig(limit=5), "at least 10"),
    ("config-json-unknown-field", "epochz", lambda: TrainConfig.from_json('{"epochz": 3}'), "not a training"),
]:
    CASES.append((cid, config_error(fld, build), (fld, expect)))


@case("cli-epochs-0", "invalid setting epochs")
def _(ws):
    return lambda: cli(ws, "train", "--epochs", "0", "--name", "zero", "--data-dir", str(ws.data))


@case("cli-lr-negative", "invalid setting learning_rate")
def _(ws):
    return lambda: cli(ws, "train", "--lr", "-0.5", "--name", "neg", "--data-dir", str(ws.data))


@case("cli-batch-larger-than-data", "invalid setting batch_size", "larger than the 180")
def _(ws):
    # The data folder holds 200 training images (180 after the 10 % validation split).
    return lambda: cli(ws, "train", "--epochs", "1", "--batch-size", "1000", "--name", "big",
                       "--data-dir", str(ws.data))


# Run names --------------------------------------------------------------------------------------------
@case("name-with-slash", "'/'", "single folder name")
def _(ws):
    return lambda: message(runs.RunError, lambda: runs.create_run(TrainConfig(), "a/b", root=ws.runs))


@case("name-with-dotdot", "'..'", "single folder name")
def _(ws):
    return lambda: message(runs.RunError, lambda: runs.create_run(TrainConfig(), "../../escape", root=ws.runs))


@case("name-300-chars", "too long", "300 characters")
def _(ws):
    return lambda: message(runs.RunError, lambda: runs.create_run(TrainConfig(), "r" * 300, root=ws.runs))


@case("name-nothing-usable", "no usable characters")
def _(ws):
    return lambda: message(runs.RunError, lambda: runs.safe_run_name("***"))


@case("cli-name-dotdot", "error:", "'..'")
def _(ws):
    return lambda: cli(ws, "train", "--epochs", "1", "--name", "../outside", "--data-dir", str(ws.data))


@case("name-taken", "already exists")
def _(ws):
    runs.create_run(TrainConfig(), "mine", root=ws.runs)
    return lambda: message(runs.RunError, lambda: runs.create_run(preset_config("mlp"), "mine", root=ws.runs))


@case("name-taken-after-cleaning", "'my-run' already exists")
def _(ws):
    runs.create_run(TrainConfig(), "my run", root=ws.runs)
    return lambda: message(runs.RunError, lambda: runs.create_run(TrainConfig(), "my-run", root=ws.runs))


# Broken run folders -----------------------------------------------------------------------------------
@case("run-model-missing", "finished but its model.keras is missing", "model.keras does not exist")
def _(ws):
    d = make_run(ws, "nomodel")
    return lambda: broken_message(ws, "nomodel") + " | " + message(
        inference.ModelError, lambda: inference.load_model(d / "model.keras"))


@case("run-model-garbage", "model.keras of junk is corrupt", "not a Keras model")
def _(ws):
    d = make_run(ws, "junk", model=b"\x00garbage" * 1000)
    return lambda: broken_message(ws, "junk") + " | " + message(
        inference.ModelError, lambda: inference.load_model(d / "model.keras"))


@case("run-model-truncated", "model.keras of cut is corrupt", "not a Keras model", needs_model=True)
def _(ws):
    good = ws.model_file.read_bytes()
    d = make_run(ws, "cut", model=good[: len(good) // 2])  # a crash mid-copy, before atomic saves
    return lambda: broken_message(ws, "cut") + " | " + message(
        inference.ModelError, lambda: inference.load_model(d / "model.keras"))


@case("run-model-empty", "model.keras is empty")
def _(ws):
    make_run(ws, "zero", model=b"")
    return lambda: message(inference.ModelError, lambda: inference.load_model(ws.runs / "zero" / "model.keras"))


@case("run-config-corrupt", "config.json", "not valid JSON")
def _(ws):
    make_run(ws, "badjson", config='{"epochs": 3,,,')
    return lambda: broken_message(ws, "badjson")


@case("run-config-invalid-value", "config.json of badval is invalid", "epochs")
def _(ws):
    make_run(ws, "badval", config=json.dumps({**TrainConfig().to_dict(), "epochs": -4}))
    return lambda: broken_message(ws, "badval")


@case("run-config-missing", "no config.json")
def _(ws):
    d = make_run(ws, "noconf")
    (d / "config.json").unlink()
    return lambda: broken_message(ws, "noconf")


@case("run-status-corrupt", "status.json in stat is corrupt")
def _(ws):
    d = make_run(ws, "stat")
    (d / "status.json").write_text("{not json")
    return lambda: broken_message(ws, "stat")


# --- the test ----------------------------------------------------------------------------------------
def test_catalogue_is_complete():
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, then we refuse
@pytest.mark.parametrize("case_id,setup,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, setup, expect, tmp_path, mnist, monkeypatch, request):
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    ws = WS(tmp_path, tmp_path / "data", tmp_path / "runs", tmp_path / "uploads")
    write_mnist(ws.data, mnist)
    ws.runs.mkdir()
    ws.uploads.mkdir()
    monkeypatch.setenv("MNIST_RUNS_DIR", str(ws.runs))
    if getattr(setup, "needs_model", False):
        ws.model_file = request.getfixturevalue("model_file")
    act = setup(ws)
    before = snapshot(tmp_path)
    msg = act()
    for part in expect:
        assert part in msg, f"{case_id}: {part!r} not in message {msg!r}"
    assert snapshot(tmp_path) == before, f"{case_id} changed files on disk"
