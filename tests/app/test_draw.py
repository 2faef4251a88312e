"""Draw page (AppTest): a drawing put into the pad's widget state (a real MNIST test digit rendered the
way the pad returns strokes) is read correctly and explained; an update sent while the stroke is still
being drawn is answered without recomputing the explanations; the drawing is kept through a visit to
another page; a blank pad shows a prompt; a bad upload shows the ImageError message; a dense-only model
says it has no feature maps."""

from __future__ import annotations

import base64
import io
import json
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
from ui.draw_view import PAD_KEY, SAVED, WHY_CACHE

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
STROKES = [{"w": 20, "p": [[100, 60], [120, 200]]}]  # what the pad sends along; the picture is what counts


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


def _open_draw(root: Path):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(trained, monkeypatch):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(trained[0]))
    return _open_draw(trained[0])


def png_data_url(rgba: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def inject(at, rgba: np.ndarray | None, final: bool = True, seq: int = 1) -> None:
    """Put a drawing into the pad's widget state, as the browser component sends it."""
    at.session_state[PAD_KEY] = {"drawing": {"strokes": STROKES if rgba is not None else [],
                                             "data": png_data_url(rgba) if rgba is not None else None,
                                             "final": final, "seq": seq}}


def _attr(at, name: str) -> str | None:
    for md in at.markdown:
        m = re.search(rf'{name}="([^"]*)"', md.value)
        if m:
            return m.group(1)
    return None


def shown_digit(at) -> int | None:
    d = _attr(at, "data-digit")
    return None if d is None else int(d)


def texts(at) -> str:
    parts = [e.value for e in (*at.info, *at.error, *at.warning, *at.markdown, *at.caption)]
    return "\n".join(str(p) for p in parts)


def captions(at) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


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


def test_drawn_digits_are_read_and_explained(app, cases):
    assert len(cases) == 3
    for label, canvas in cases:
        inject(app, canvas)
        app.run()
        assert not app.exception, app.exception
        assert shown_digit(app) == label, texts(app)
        assert _attr(app, "data-final") == "1"
        assert "Top 3" in texts(app) and "All ten digits" in texts(app)
        assert [h.value for h in app.subheader] == ["What the model sees", "Why"]
        # The explanations shown are those of the drawing predicted.
        assert _attr(app, "data-why-input") == _attr(app, "data-input")
        body = texts(app)
        assert "conv1" in body and "conv2" in body  # the first two conv layers' feature maps
        assert "Grad-CAM" in body and "cyan line is the outline" in body
        assert any(c.startswith("Grad-CAM (conv3) for") for c in captions(app))
        assert any(c.startswith("centred in 28×28") for c in captions(app))


def test_update_while_drawing_keeps_the_last_explanations(app, cases):
    (_, canvas), (second, other) = cases[0], cases[1]
    inject(app, canvas, seq=1)
    app.run()
    explained = app.session_state[WHY_CACHE]
    key = _attr(app, "data-why-input")
    inject(app, other, final=False, seq=2)  # the next stroke, still being drawn
    app.run()
    assert not app.exception
    assert shown_digit(app) == second and _attr(app, "data-final") == "0"
    assert "reading as you draw" in texts(app)
    # Not recomputed for an unfinished stroke: still those of the last finished drawing.
    assert app.session_state[WHY_CACHE] is explained and _attr(app, "data-why-input") == key
    inject(app, other, final=True, seq=3)  # the stroke ends
    app.run()
    assert _attr(app, "data-why-input") == _attr(app, "data-input") != key


def test_same_drawing_is_explained_once(app, cases):
    inject(app, cases[0][1])
    app.run()
    explained = app.session_state[WHY_CACHE]
    app.slider(key="draw_stroke").set_value(30).run()  # a rerun that does not change the drawing
    assert not app.exception
    assert app.session_state[WHY_CACHE] is explained


def test_drawing_survives_a_visit_to_another_page(app, cases):
    label, canvas = cases[0]
    inject(app, canvas)
    app.run()
    assert shown_digit(app) == label
    app.switch_page("app_pages/home.py").run()
    assert not app.exception
    assert PAD_KEY not in app.session_state  # the pad's own state went with the page
    app.switch_page("app_pages/draw.py").run()
    assert not app.exception
    assert shown_digit(app) == label  # read from the kept drawing, without a new stroke
    assert app.session_state[SAVED]["strokes"] == STROKES
    pad = app.get("bidi_component")[0]
    assert json.loads(pad.proto.json)["initial"] == STROKES  # the remounted pad redraws the strokes


def test_blank_canvas_shows_prompt(app):
    inject(app, np.zeros((280, 280, 4), np.uint8))
    app.run()
    assert not app.exception
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)
    assert not app.subheader


def test_pad_state_that_is_not_the_pads_picture_is_ignored(app):
    """The widget state comes from the browser: a picture of another size is not decoded as a drawing."""
    inject(app, np.full((2000, 2000, 4), 255, np.uint8))
    app.run()
    assert not app.exception
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)


def test_nothing_drawn_yet_shows_prompt(app):
    app.run()
    assert not app.exception
    assert shown_digit(app) is None
    assert any("Draw a digit" in i.value for i in app.info)


def test_cleared_pad_shows_prompt_and_no_explanations(app, cases):
    inject(app, cases[0][1])
    app.run()
    assert shown_digit(app) is not None
    inject(app, None, seq=2)  # what the pad's Clear sends
    app.run()
    assert not app.exception
    assert shown_digit(app) is None and not app.subheader
    assert any("Draw a digit" in i.value for i in app.info)
    inject(app, cases[1][1], final=False, seq=3)  # the next stroke, still being drawn
    app.run()
    assert shown_digit(app) == cases[1][0]
    assert not app.subheader  # the cleared drawing's explanations do not come back


def test_naive_toggle_changes_the_input(app, cases):
    label, canvas = cases[0]
    inject(app, canvas)
    app.run()
    assert "With a naive resize of the whole picture the model would say" in texts(app)
    app.segmented_control(key="draw_method").set_value("Naive resize").run()
    assert not app.exception
    assert any(c.startswith("squashed to 28×28") for c in captions(app))
    assert "With MNIST-style preprocessing the model would say" in texts(app)


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
    assert any("900×700 px" in c for c in captions(app))  # the true size, not the thumbnail's


def test_mlp_model_says_it_has_no_feature_maps(trained, mnist, monkeypatch, tmp_path):
    root = tmp_path / "runs"
    _train(root, "mlp-small", "mlp", take(mnist, 1000, 100))
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    at = _open_draw(root)
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


def test_a_drawing_is_added_to_the_class_set_with_the_digit_meant(app, cases, trained):
    """Draw -> "Add to the class set as digit N": stored once, with the label chosen (not the prediction)
    and the original drawing; the Dataset page and Evaluate then read it."""
    from mnist_core import classset

    label, canvas = cases[0]
    inject(app, canvas)
    app.run()
    assert app.selectbox(key="draw_cs_label").value == label  # the prediction, by default
    meant = (label + 1) % 10
    app.selectbox(key="draw_cs_label").set_value(meant).run()
    app.button(key="draw_cs_add").click().run()
    assert not app.exception
    assert any(f"as a {meant}" in s.value for s in app.success)
    cs = classset.load(trained[0])
    assert len(cs) == 1 and cs.labels.tolist() == [meant] and cs.contributors == ("",)
    expected = np.round(preprocess(canvas).image * 255).astype(np.uint8)
    assert np.abs(cs.images[0].astype(int) - expected.astype(int)).max() <= 1
    png = classset.drawing(cs.ids[0], trained[0])
    assert Image.open(io.BytesIO(png)).size == canvas.shape[1::-1]  # the original 280x280 drawing
