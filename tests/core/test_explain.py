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


def test_figures(classic, digit):
    sal, _ = explain.saliency(classic, digit)
    fig = plots.explanation_maps(digit, {"saliency": sal, "missing": None})
    assert len(fig.data) == 2  # the input and the one map given
    fm = explain.feature_maps(classic, digit)[1].maps
    assert len(plots.feature_map_grid(fm, max_maps=32).data) == 32
    assert len(plots.feature_map_grid(fm[..., :5]).data) == 5
    steps = {"a": np.ones((280, 280)), "b": np.ones((20, 20))}
    assert len(plots.image_steps(steps).data) == 2
