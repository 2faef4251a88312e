"""The Draw page through AppTest: a drawing injected into the canvas widget's state (a real MNIST test
digit rendered the way the canvas returns strokes) is read correctly; a blank canvas shows a prompt;
a bad upload shows the ImageError message; a dense-only model says it has no feature maps."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_core import runs
from mnist_core.config import preset_config
from mnist_core.inference import load_model, predict_one
from mnist_core.preprocess import preprocess
from tests.conftest import digit_to_canvas, take

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def _train(root: Path, name: str, preset: str, ds) -> Path:
    from mnist_core.training import train

    cfg = preset_config(preset, epochs=1, batch_size=32, validation_split=0.1, seed=1)
    run_dir = runs.create_run(cfg, name, root=root)
    train(cfg, run_dir, ds)
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist):
    """A classic CNN trained 1 epoch on 3000 real MNIST images (~90% accurate) in its own runs folder."""
    root = tmp_path_factory.mktemp("draw_runs")
    run_dir = _train(root, "classic-small", "classic", take(mnist, 3000, 300))
    return root, run_dir


@pytest.fixture
def app(trained, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root, _ = trained
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception, at.exception
    return at


def png_data_url(rgba: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def inject(at, rgba: np.ndarray) -> None:
    """Put a drawing into the canvas widget's state, as the browser component sends it."""
    from ui.draw_view import canvas_key

    at.session_state[canvas_key(0)] = {"drawing": {"raw": {"objects": [{"type": "path"}]},
                                                   "data": png_data_url(rgba)}}


def shown_digit(at) -> int | None:
    for md in at.markdown:
        m = re.search(r'data-digit="(\d)"', md.value)
        if m:
            return int(m.group(1))
    return None


def texts(at) -> str:
    parts = [e.value for e in (*at.info, *at.error, *at.warning, *at.markdown, *at.caption)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def cases(trained, mnist) -> list[tuple[int, np.ndarray]]:
    return right_digits(trained[1], mnist)


def right_digits(run_dir: Path, mnist, n_classes: int = 3) -> list[tuple[int, np.ndarray]]:
    """Test digits (from the test split) of different classes that the model reads correctly through
    the canvas path, and a check that the canvas path is about as accurate as the model."""
    model = load_model(run_dir / "model.keras")
    picks: dict[int, np.ndarray] = {}
    correct = 0
    n = 60
    for x, y in zip(mnist.x_test[:n], mnist.y_test[:n], strict=True):
        canvas = digit_to_canvas(x)
        probs = predict_one(model, preprocess(canvas).image)
        if int(probs.argmax()) == int(y):
            correct += 1
            if int(y) not in picks and probs.max() > 0.6 and len(picks) < n_classes:
                picks[int(y)] = canvas
    assert correct / n >= 0.7, f"only {correct}/{n} test digits read correctly through the canvas path"
    return list(picks.items())


def test_drawn_digits_are_read(app, cases):
    assert len(cases) == 3
    for label, canvas in cases:
        inject(app, canvas)
        app.run()
        assert not app.exception, app.exception
        assert shown_digit(app) == label, texts(app)
        assert "Top 3" in texts(app)
        assert len(app.get("plotly_chart")) >= 4  # probabilities, steps, saliency/Grad-CAM, feature maps
        body = texts(app)
        assert "What the model sees" in [h.value for h in app.subheader]
        assert "conv1" in body and "conv2" in body  # the first two conv layers' feature maps
        assert "Grad-CAM" in body


def test_blank_canvas_shows_prompt(app):
    inject(app, np.zeros((280, 280, 4), np.uint8))
    app.run()
    assert not app.exception
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)
    assert "What the model sees" not in [h.value for h in app.subheader]


def test_nothing_drawn_yet_shows_prompt(app):
    app.run()
    assert not app.exception
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)


def test_naive_toggle_changes_the_input(app, cases):
    label, canvas = cases[0]
    inject(app, canvas)
    app.run()
    app.segmented_control(key="draw_method").set_value("Naive resize").run()
    assert not app.exception
    assert "squashed to 28×28" in str(app.get("plotly_chart")[1].proto.spec)
    assert "MNIST-style preprocessing the model would say" in texts(app)


def test_clear_gives_a_new_empty_canvas(app, cases):
    label, canvas = cases[0]
    inject(app, canvas)
    app.run()
    assert shown_digit(app) == label
    app.button(key="draw_clear").click().run()
    assert not app.exception
    assert app.session_state["draw_canvas_gen"] == 1
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)


@pytest.mark.parametrize("name,data,why", [
    ("notes.png", b"this is not an image at all", "not an image"),
    ("empty.png", b"", "empty"),
])
def test_bad_upload_shows_message(app, name, data, why):
    app.segmented_control(key="draw_source").set_value("Upload").run()
    app.file_uploader(key="draw_upload").set_value((name, data, "image/png")).run()
    assert not app.exception
    errors = " ".join(e.value for e in app.error)
    assert why in errors and name in errors, errors
    assert shown_digit(app) is None


def test_upload_dark_on_light_photo(app, cases):
    """A big, dark-on-light JPEG of a digit (like a photo of paper) is read like the drawing."""
    label, canvas = cases[0]
    ink = Image.fromarray(255 - canvas[..., 3]).resize((900, 700), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    ink.convert("RGB").save(buf, format="JPEG", quality=90)
    app.segmented_control(key="draw_source").set_value("Upload").run()
    app.file_uploader(key="draw_upload").set_value(("digit.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not app.exception
    assert not app.error
    assert shown_digit(app) == label
    assert "900×700 px" in str(app.get("plotly_chart")[1].proto.spec)  # the true size, not the thumbnail's


def test_mlp_model_says_it_has_no_feature_maps(trained, mnist, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "runs"
    _train(root, "mlp-small", "mlp", take(mnist, 1000, 100))
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/draw.py")
    inject(at, digit_to_canvas(mnist.x_test[0]))
    at.run()
    assert not at.exception
    assert shown_digit(at) is not None
    assert any("no convolution layers" in i.value for i in at.info)
    assert "Grad-CAM needs a conv layer" in texts(at)


def test_no_model_points_to_train(runs_root):
    from streamlit.testing.v1 import AppTest

    assert os.environ["MNIST_RUNS_DIR"] == str(runs_root)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception
    assert any("No trained model" in w.value for w in at.warning)
