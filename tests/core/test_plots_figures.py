"""The figures of issue 20 compute what they show: the smoothed batch curve is TensorBoard's debiased
EMA (checked against pandas), thinning keeps the ends, the comparison matrix colours "better for the
second run" the same way on and off the diagonal, the errors-only matrix keeps the whole matrix as z,
the enlarged image zooms to its ink, and default run names are short and take the first free number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_core import plots, runs
from mnist_core.config import preset_config


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.9, 0.99])
def test_ema_smooth_is_the_debiased_ema(weight):
    v = np.random.default_rng(0).normal(1.0, 0.3, 200)
    want = pd.Series(v).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()  # the debiased EMA
    np.testing.assert_allclose(plots.ema_smooth(v, weight), want, rtol=1e-12)
    gap = plots.ema_smooth([2.0, float("nan"), 4.0], 0.5)  # a missing value stays missing and does not count
    assert np.isnan(gap[1]) and gap[2] == pytest.approx((0.5 * 2.0 * 0.5 + 0.5 * 4.0) / (1 - 0.25))
    with pytest.raises(ValueError):
        plots.ema_smooth(v, 1.0)


def test_thin_keeps_the_ends_and_the_count():
    assert list(plots.thin(5, 10)) == [0, 1, 2, 3, 4]
    idx = plots.thin(10_001, 250)
    assert idx[0] == 0 and idx[-1] == 10_000 and len(idx) <= 250 and np.all(np.diff(idx) > 0)


def test_training_curves_draw_raw_smoothed_and_epoch_points():
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.9}
               for e in (1, 2)]
    loss = np.random.default_rng(1).random(1000)
    batches = [{"epoch": 1 + i // 500, "batch": i % 500 + 1, "x": (i + 1) / 500, "loss": float(v),
                "accuracy": float(1 - v)} for i, v in enumerate(loss)]
    fig = plots.training_curves(history, batches, smoothing=0.8, max_points=200)
    by_name = {(t.name, t.xaxis): t for t in fig.data}
    raw, smooth = by_name[("per batch", "x")], by_name[("smoothed (0.80)", "x")]
    keep = plots.thin(1000, 200)
    np.testing.assert_allclose(raw.y, loss[keep])
    np.testing.assert_allclose(smooth.y, np.asarray(plots.ema_smooth(loss, 0.8))[keep])  # smoothed before thinning
    assert list(by_name[("validation", "x2")].y) == [0.9, 0.9]
    assert list(by_name[("train (epoch mean)", "x")].x) == [1, 2]
    no_smoothing = plots.training_curves(history, batches, smoothing=0)
    assert [t.name for t in no_smoothing.data if t.xaxis == "x"] == ["per batch", "train (epoch mean)", "validation"]
    assert [t.name for t in plots.training_curves(history).data if t.xaxis == "x"] == ["train", "validation"]
    live = plots.training_curves(history, batches, epochs=5)  # while training: the whole run's x axis
    assert list(live.layout.xaxis.range) == list(live.layout.xaxis2.range) == [0, 5.1]


def test_comparison_matrix_blue_means_better_for_the_second_run():
    a = np.array([[50, 5], [3, 40]])
    b = np.array([[53, 2], [6, 37]])  # b: more right 0s, fewer 0->1 mistakes; more 1->0, fewer right 1s
    fig = plots.confusion_diff(a, b, "a", "b")
    heat = fig.data[0]
    np.testing.assert_array_equal(heat.z, [[3, 3], [-3, -3]])  # > 0 (blue in RdBu): better for b
    assert heat.text[0] == ["+3", "-3"] and heat.text[1] == ["+3", "-3"]  # the counts' change, b - a
    assert heat.zmin == -heat.zmax and heat.colorscale[-1][1].lower() in ("rgb(5,48,97)", "#053061")


def test_errors_only_matrix_keeps_z_and_greys_the_diagonal():
    cm = np.diag([900] * 10) + np.eye(10, k=1, dtype=int) * 7
    fig = plots.confusion_matrix_clickable(cm, errors_only=True)
    heats = [t for t in fig.data if t.type == "heatmap"]
    np.testing.assert_array_equal(heats[0].z, cm)  # the whole matrix, as before
    assert heats[0].zmax == 7 and heats[0].text[0][0] == "" and heats[0].text[0][1] == "7"
    diag = np.asarray(heats[1].z, float)
    assert np.array_equal(np.diag(diag), np.diag(cm)) and np.isnan(diag[0, 1]) and heats[1].text[3][3] == "900"
    full = plots.confusion_matrix(cm)
    assert len(full.data) == 1 and full.data[0].text[0][0] == "900"


def test_image_zooms_to_the_ink_with_its_own_coordinates():
    img = np.zeros((28, 28), np.uint8)
    img[6:20, 12:15] = 200
    rows, cols = plots.ink_box(img)
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (5, 20, 11, 15)
    fig = plots.image(img, "x", show_values=True, height=520, zoom_to_ink=True)
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (16, 5) and list(heat.x) == list(range(11, 16))
    assert heat.text[0][0] == "" and heat.text[1][1] == "200"  # background blank, ink written
    assert heat.textfont.size >= 11  # readable: ~30 px cells here
    assert plots.image(np.zeros((28, 28)), zoom_to_ink=True).data[0].z.shape == (28, 28)


def test_default_run_names_are_short_and_take_the_first_free_number(tmp_path):
    assert runs.default_run_name("classic", tmp_path) == "classic-1"
    cfg = preset_config("classic", epochs=1)
    runs.create_run(cfg, "classic-1", root=tmp_path)
    runs.create_run(cfg, "classic-3", root=tmp_path)
    assert runs.default_run_name("classic", tmp_path) == "classic-2"
    runs.create_run(cfg, "classic-2", root=tmp_path)
    assert runs.default_run_name("classic", tmp_path) == "classic-4"
    assert runs.default_run_name("fast", tmp_path) == "fast-1"
