"""mnist_core.preprocess: any picture of a digit becomes an MNIST-like 28x28 input (20x20 box, centre of
mass at (14, 14)); real MNIST digits pass nearly unchanged; blanks are blank; uploads are checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnist_core.preprocess import ImageError, center_of_mass, load_image, preprocess, to_ink
from tests.conftest import digit_to_canvas


def _assert_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and out.max() > 0.9
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert rows[-1] - rows[0] + 1 <= 20 and cols[-1] - cols[0] + 1 <= 20, (rows, cols)


def _canvas_with(draw) -> np.ndarray:
    """A 280x280 RGBA canvas like the Draw page's: transparent, white opaque strokes."""
    c = np.zeros((280, 280, 4), np.uint8)
    c[..., :3] = 255
    draw(c[..., 3])
    return c


def test_thick_bar_in_a_canvas_corner():
    def bar(a):
        a[10:50, 5:200] = 255  # a thick horizontal bar in the top-left corner

    pre = preprocess(_canvas_with(bar))
    assert not pre.blank and pre.method == "mnist"
    _assert_mnist_like(pre.image)
    # aspect ratio kept: 195 x 40 becomes about 20 x 4, not a 20 x 20 square
    ink_rows = np.flatnonzero(pre.image.max(axis=1) > 0.5)
    ink_cols = np.flatnonzero(pre.image.max(axis=0) > 0.5)
    assert 3 <= len(ink_rows) <= 6 and 18 <= len(ink_cols) <= 20
    assert pre.center_of_mass is not None and abs(pre.center_of_mass[0] - 14) <= 1


def test_off_centre_seven_shape_in_a_canvas():
    def seven(a):
        a[180:200, 150:270] = 255  # top stroke, bottom-right corner region
        for i in range(0, 75):  # a slanted down stroke
            a[200 + i, 250 - i:270 - i] = 255

    pre = preprocess(_canvas_with(seven))
    _assert_mnist_like(pre.image)


def test_dark_on_light_grayscale_of_another_size():
    img = np.full((150, 100), 235, np.uint8)  # light paper, 150 tall x 100 wide
    yy, xx = np.mgrid[:150, :100]
    ring = np.abs(np.hypot(yy - 40, xx - 70) - 18) < 5  # a dark "0", off centre (top right)
    img[ring] = 25
    pre = preprocess(img)
    assert not pre.blank
    _assert_mnist_like(pre.image)
    # the ring's hole stays a hole (it is ink that was found, not the paper)
    assert pre.image[14, 14] < 0.2


def test_dark_ink_on_white_rgb():
    img = np.full((64, 90, 3), 255, np.uint8)
    img[5:40, 60:66] = (20, 30, 160)  # a blue vertical "1" near the right edge
    pre = preprocess(img)
    _assert_mnist_like(pre.image)


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:40], mnist.y_test[:40]


def test_real_mnist_digit_unchanged(digits):
    """MNIST digits already follow the recipe: preprocessing must leave them (almost) alone."""
    for x in digits[0]:
        ref = x.astype(np.float32) / 255.0
        ref /= ref.max()
        pre = preprocess(x)
        assert np.abs(pre.image - ref).mean() < 0.01
        cy, cx = pre.center_of_mass
        ry, rx = center_of_mass(ref)
        assert abs(cy - ry) <= 1 and abs(cx - rx) <= 1


def test_real_mnist_digit_drawn_on_the_canvas(digits):
    """The same digit drawn 10x larger on a transparent canvas comes back close to the original."""
    diffs = []
    for x in digits[0][:20]:
        ref = x.astype(np.float32) / 255.0
        pre = preprocess(digit_to_canvas(x))
        _assert_mnist_like(pre.image)
        diffs.append(np.abs(pre.image - ref / ref.max()).mean())
    assert np.mean(diffs) < 0.05 and max(diffs) < 0.12, diffs


def test_polarity_does_not_matter(digits):
    x = digits[0][0]
    up = np.asarray(Image.fromarray(x).resize((112, 112), Image.Resampling.BILINEAR))
    white_on_black = preprocess(up).image
    black_on_white = preprocess(255 - up).image
    assert np.abs(white_on_black - black_on_white).max() < 0.02


@pytest.mark.slow
def test_model_agrees_on_preprocessed_canvas_digits(trained, digits):
    """Predictions on canvas renderings match those on the originals (the tiny model's own view)."""
    from mnist_core.inference import predict_one

    x, _ = digits
    same = [int(predict_one(trained.model, preprocess(digit_to_canvas(d)).image).argmax())
            == int(predict_one(trained.model, d / 255.0).argmax()) for d in x]
    assert np.mean(same) >= 0.85, np.mean(same)


@pytest.mark.parametrize("img", [
    np.zeros((28, 28), np.uint8),
    np.full((200, 300), 255, np.uint8),
    np.zeros((280, 280, 4), np.uint8),  # untouched canvas: fully transparent
    np.dstack([np.zeros((50, 50, 3), np.uint8), np.full((50, 50), 255, np.uint8)]),  # opaque black
    np.full((40, 40, 3), 255, np.uint8),  # white RGB
    np.full((40, 40), 128, np.uint8),  # uniform grey
    (np.random.default_rng(0).integers(0, 12, (60, 60))).astype(np.uint8),  # faint sensor noise
], ids=["black", "white", "transparent", "opaque-black", "white-rgb", "grey", "faint-noise"])
def test_blank_images_are_blank(img):
    pre = preprocess(img)
    assert pre.blank
    assert pre.image.shape == (28, 28) and not pre.image.any()
    assert pre.center_of_mass is None


def test_naive_method_differs():
    def bar(a):
        a[10:50, 5:200] = 255

    canvas = _canvas_with(bar)
    naive = preprocess(canvas, method="naive")
    good = preprocess(canvas)
    assert naive.method == "naive" and not naive.blank
    cy, cx = center_of_mass(naive.image)
    assert abs(cy - 14) > 5  # the naive result keeps the bar in the top corner
    assert np.abs(naive.image - good.image).mean() > 0.05
    with pytest.raises(ValueError):
        preprocess(canvas, method="magic")


def test_steps_are_returned_in_order():
    def bar(a):
        a[100:140, 60:220] = 255

    pre = preprocess(_canvas_with(bar))
    names = list(pre.steps)
    assert names[0] == "ink" and names[-1] == "centred 28x28" and len(names) >= 3
    np.testing.assert_array_equal(pre.steps["centred 28x28"], pre.image)
    assert pre.steps["ink"].shape == (280, 280)
    for a in pre.steps.values():
        assert a.ndim == 2 and np.isfinite(a).all()


def test_to_ink_both_polarities():
    light = np.full((10, 10), 255, np.uint8)
    light[4:6, 4:6] = 0
    dark = 255 - light
    np.testing.assert_allclose(to_ink(light), to_ink(dark))
    assert to_ink(light)[5, 5] == pytest.approx(1.0) and to_ink(light)[0, 0] == 0


# --- upload checks ------------------------------------------------------------------------------
def _png(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_load_image_valid():
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[5:10, 5:10] = 255
    a = load_image(_png(rgba), "a.png")
    assert a.shape == (30, 40, 4)
    np.testing.assert_array_equal(a, rgba)
    g = load_image(_png(np.full((30, 40), 7, np.uint8)))
    assert g.shape == (30, 40)
    buf = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(buf, format="JPEG")
    assert load_image(buf.getvalue()).shape == (30, 40)


@pytest.mark.parametrize("case", ["not-an-image", "empty", "too-large", "1x1", "animated", "truncated",
                                  "too-many-pixels"])
def test_load_image_errors(case):
    name = f"{case}.png"
    if case == "not-an-image":
        data = b"this is plain text, not a picture at all" * 10
    elif case == "empty":
        data = b""
    elif case == "too-large":
        data = b"\x89PNG" + b"\0" * (5 * 1024 * 1024 + 10)
    elif case == "1x1":
        data = _png(np.zeros((1, 1), np.uint8))
    elif case == "animated":
        name = "anim.gif"
        frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 255, 128)]
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        data = buf.getvalue()
    elif case == "truncated":
        data = _png((np.random.default_rng(1).integers(0, 255, (64, 64))).astype(np.uint8))[:300]
    else:  # a small file that decodes to a huge picture (decompression bomb)
        buf = io.BytesIO()
        Image.new("1", (6000, 5000)).save(buf, format="PNG")
        data = buf.getvalue()
        assert len(data) < 5 * 1024 * 1024
    with pytest.raises(ImageError) as e:
        load_image(data, name)
    assert name in str(e.value)
