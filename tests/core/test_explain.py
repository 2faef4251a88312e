"""mnist_core.explain: saliency, Grad-CAM and feature maps on small real models (untrained weights are
enough for shapes and maths; one short training checks the maps point at the ink)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core import explain, plots
from mnist_core.architectures import build_model
from mnist_core.config import ArchConfig, preset_config


@pytest.fixture(scope="module")
def classic():
    import keras

    keras.utils.set_random_seed(7)  # fixed weights: the finite-difference check below is deterministic
    return build_model(ArchConfig(preset="classic"))


@pytest.fixture(scope="module")
def fast():
    """conv -> BN -> ReLU as separate layers, "same" padding (like the fast and custom presets; built
    here so the test does not depend on how a preset is tuned)."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((28, 28, 1))
    for i, f in enumerate((32, 16, 16), start=1):
        x = L.Conv2D(f, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="output")(x))


@pytest.fixture(scope="module")
def mlp():
    return build_model(preset_config("mlp").arch)


@pytest.fixture(scope="module")
def digit(mnist):
    return mnist.x_test[0].astype(np.float32) / 255.0


def test_saliency_shape_range_and_class(classic, digit):
    sal, cls = explain.saliency(classic, digit)
    assert sal.shape == (28, 28)
    assert np.isfinite(sal).all() and (sal >= 0).all()
    assert sal.max() == pytest.approx(1.0)
    probs = classic(digit.reshape(1, 28, 28, 1), training=False).numpy()[0]
    assert cls == int(probs.argmax())  # default: explain the predicted class
    other = (cls + 1) % 10
    sal_other, used = explain.saliency(classic, digit, other)
    assert used == other
    assert not np.allclose(sal, sal_other)  # a different class has a different gradient


def test_saliency_is_the_gradient_of_the_logit(classic, digit):
    """Check against a finite difference on the pre-softmax score of the explained class."""
    import keras
    import tensorflow as tf

    _, cls = explain.saliency(classic, digit)
    head = keras.Model(classic.inputs[0], classic.layers[-1].input)
    w, b = classic.layers[-1].kernel, classic.layers[-1].bias

    def logit(img):
        return float((tf.matmul(head(img.reshape(1, 28, 28, 1), training=False), w) + b)[0, cls])

    ex = explain.explainer(classic)
    raw, _ = ex.saliency_fn(tf.constant(digit.reshape(1, 28, 28, 1)), tf.constant(cls), tf.constant(0.0))
    raw = raw.numpy()
    r, c = np.unravel_index(np.argmax(raw), raw.shape)
    eps = 2e-3  # small enough to stay clear of most ReLU kinks, large enough for float32
    up, down = digit.copy(), digit.copy()
    up[r, c] += eps
    down[r, c] -= eps
    fd = (logit(up) - logit(down)) / (2 * eps)
    assert abs(fd) == pytest.approx(raw[r, c], rel=0.25, abs=1e-3)


def test_smoothgrad_is_deterministic_and_differs_from_plain(classic, digit):
    a, _ = explain.saliency(classic, digit)
    b, _ = explain.saliency(classic, digit)
    np.testing.assert_array_equal(a, b)  # fixed noise seed: one drawing, one map
    plain, _ = explain.saliency(classic, digit, smooth=0.0)
    assert plain.shape == (28, 28) and not np.allclose(a, plain)


def test_blank_input_gives_finite_maps(classic):
    sal, _ = explain.saliency(classic, np.zeros((28, 28), np.float32))
    cam = explain.grad_cam(classic, np.zeros((28, 28), np.float32))
    assert np.isfinite(sal).all() and np.isfinite(cam).all()
    assert (sal >= 0).all() and (cam >= 0).all()


def test_grad_cam(classic, fast, mlp, digit):
    for model in (classic, fast):
        cam = explain.grad_cam(model, digit)
        assert cam.shape == (28, 28)
        assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    assert explain.last_conv_name(classic) == "conv3"
    assert explain.grad_cam(mlp, digit) is None
    assert explain.last_conv_name(mlp) is None


def test_feature_maps_match_the_conv_layers(classic, fast, digit):
    fms = explain.feature_maps(classic, digit)
    convs = explain.conv_layers(classic)
    assert [f.layer for f in fms] == ["conv1", "conv2"]
    for f, layer in zip(fms, convs[:2], strict=True):
        assert f.maps.shape == tuple(layer.output.shape[1:])
        assert np.isfinite(f.maps).all()
    assert fms[0].maps.shape == (26, 26, 32) and fms[1].maps.shape == (11, 11, 64)
    assert (fms[0].maps >= 0).all()  # classic's conv has its ReLU fused
    # The first layer's maps are exactly conv1 applied to the input.
    import keras

    direct = keras.Model(classic.inputs[0], classic.get_layer("conv1").output)(digit.reshape(1, 28, 28, 1))
    np.testing.assert_allclose(fms[0].maps, direct.numpy()[0], rtol=1e-5, atol=1e-5)

    fms = explain.feature_maps(fast, digit)
    assert [(f.layer, f.shown_after) for f in fms] == [("conv1", "relu1"), ("conv2", "relu2")]
    assert fms[0].maps.shape == (28, 28, 32) and fms[1].maps.shape == (14, 14, 16)
    assert (fms[0].maps >= 0).all()  # shown after the ReLU, as the next layer receives it
    assert len(explain.feature_maps(fast, digit, max_layers=5)) == 3  # all there are


def test_mlp_has_no_feature_maps(mlp, digit):
    assert explain.feature_maps(mlp, digit) == []
    sal, _ = explain.saliency(mlp, digit)
    assert sal.shape == (28, 28) and np.isfinite(sal).all()


def test_bad_input_shape(classic):
    with pytest.raises(ValueError, match="28, 28"):
        explain.saliency(classic, np.zeros((20, 20)))


def test_explainer_is_cached_per_model(classic):
    assert explain.explainer(classic) is explain.explainer(classic)
    other = build_model(ArchConfig(preset="classic"))
    assert explain.explainer(other) is not explain.explainer(classic)


def test_trained_saliency_points_at_the_ink(tiny):
    """After a little training, Grad-CAM and saliency put more weight on the digit than on the
    empty border (an untrained net need not)."""
    from mnist_core.training import train

    cfg = preset_config("classic", epochs=1, validation_split=0.0, seed=3)
    model = train(cfg, None, tiny)["model"]
    x = tiny.x_test[:20].astype(np.float32) / 255.0
    ink_share = []
    for img in x:
        sal, _ = explain.saliency(model, img)
        near_ink = np.zeros_like(img, bool)
        ys, xs = np.nonzero(img > 0.3)
        for dy in (-2, -1, 0, 1, 2):
            for dx in (-2, -1, 0, 1, 2):
                near_ink[np.clip(ys + dy, 0, 27), np.clip(xs + dx, 0, 27)] = True
        ink_share.append(sal[near_ink].sum() / sal.sum())
    assert np.median(ink_share) > 0.6


def test_one_pass_gives_the_prediction_and_the_feature_maps(classic, fast, mlp, digit):
    from mnist_core.inference import predict_one

    for model in (classic, fast, mlp):
        probs, maps = explain.predict_with_maps(model, digit)
        np.testing.assert_allclose(probs, predict_one(model, digit), rtol=1e-5, atol=1e-6)
        assert probs.shape == (10,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
        reference = explain.feature_maps(model, digit)
        assert [(m.layer, m.shown_after) for m in maps] == [(m.layer, m.shown_after) for m in reference]
        for m, r in zip(maps, reference, strict=True):
            np.testing.assert_array_equal(m.maps, r.maps)
    assert explain.predict_with_maps(mlp, digit)[1] == []


def test_explanation_images(classic, digit):
    sal, cls = explain.saliency(classic, digit)
    imgs = plots.explanation_images(digit, {"saliency": sal, "missing": None}, scale=6)
    assert list(imgs) == ["model input", "saliency"]  # a None map is left out
    for img in imgs.values():
        assert img.shape == (168, 168, 3) and img.dtype == np.uint8
    # The input is shown as it is, one 6x6 block per pixel.
    np.testing.assert_array_equal(imgs["model input"][::6, ::6, 0], np.round(digit * 255).astype(np.uint8))
    # The map in the hot colours, except on the digit's outline, which is cyan.
    edge = plots.outline(np.repeat(np.repeat(digit > 0.5, 6, axis=0), 6, axis=1))
    heat = np.repeat(np.repeat(plots._to_uint8(plots._hot_rgb(sal)), 6, axis=0), 6, axis=1)
    np.testing.assert_array_equal(imgs["saliency"][~edge], heat[~edge])
    assert edge.any() and (imgs["saliency"][edge] == plots.OUTLINE_RGB).all()
    # The colour bar's stops are the colours the maps use.
    for p, color in plots.HOT_STOPS:
        assert "#{:02x}{:02x}{:02x}".format(*plots._to_uint8(plots._hot_rgb(p))) == color


def test_outline_is_the_boundary_of_the_mask():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 2:5] = True
    edge = plots.outline(mask)
    inner = np.zeros_like(mask)
    inner[2:5, 3:4] = True
    np.testing.assert_array_equal(edge, mask & ~inner)


def test_feature_map_mosaic(classic, digit):
    import plotly.colors

    fm = explain.feature_maps(classic, digit)[1].maps  # (11, 11, 64)
    img, channels = plots.feature_map_mosaic(fm, max_maps=32, cols=8, tile=44, gap=4, label_px=14)
    assert channels == sorted(np.argsort(fm.mean(axis=(0, 1)))[::-1][:32].tolist())  # the most active
    assert img.shape == (4 * (14 + 44 + 4), 8 * (44 + 4), 3) and img.dtype == np.uint8
    # The first tile is its channel, scaled on its own range, in Viridis (4x4 blocks of 11x11).
    m = fm[..., channels[0]]
    v = (m - m.min()) / (m.max() - m.min())
    tile = img[14:14 + 44:4, 0:44:4]
    np.testing.assert_array_equal(tile, plots._to_uint8(plots._viridis_rgb(v)))
    # Viridis here is Plotly's: its ten stops come back exactly.
    stops = np.linspace(0, 1, len(plotly.colors.sequential.Viridis))
    assert ["#{:02x}{:02x}{:02x}".format(*c) for c in plots._to_uint8(plots._viridis_rgb(stops))] == \
        [c.lower() for c in plotly.colors.sequential.Viridis]
    few, order = plots.feature_map_mosaic(fm[..., :5])
    # One row of 5 tiles; 11x11 maps in 52 px tiles are enlarged 4x (44 px), plus the 4 px gap.
    assert order == [0, 1, 2, 3, 4] and few.shape[:2] == (14 + 44 + 4, 5 * (44 + 4))
    with pytest.raises(ValueError, match="H, W, C"):
        plots.feature_map_mosaic(fm[..., 0])


def test_gray_pixels_and_probability_bars():
    small = np.linspace(0, 1, 20 * 10).reshape(20, 10)
    out = plots.gray_pixels(small, side=140)
    assert out.shape == (140, 140) and out.dtype == np.uint8
    block = out[:, 35:105]  # 20x10 enlarged 7x (140x70), centred in the square
    np.testing.assert_array_equal(block[::7, ::7], plots._to_uint8(small))
    assert (out[:, :35] == 255).all() and (out[:, 105:] == 255).all()  # padded like the page
    with pytest.raises(ValueError, match="does not fit"):
        plots.gray_pixels(np.zeros((300, 10)), side=140)
    probs = np.full(10, 0.02)
    probs[7] = 0.82
    html = plots.probability_bars_html(probs)
    assert html.count("title=\"digit ") == 10 and "digit 7: 0.820" in html
    assert html.count("#d62728") == 1  # only the most probable digit in red
