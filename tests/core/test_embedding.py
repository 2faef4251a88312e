"""Dataset statistics and maps: browsing order, samples, per-class statistics, PCA and t-SNE (with its
progress reports and cancellation). Real MNIST, a few hundred images at most."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core import dataset_stats as S
from mnist_core import embedding as E
from tests.conftest import take


@pytest.fixture(scope="module")
def small(mnist):
    return take(mnist, 600, 100)


def test_browse_indices_filters_shuffles_and_pages_through_everything(small):
    y = small.y_train
    every = S.browse_indices(y, (), seed=None)
    assert np.array_equal(every, np.arange(len(y)))  # no seed: file order
    threes = S.browse_indices(y, (3,), seed=0)
    assert set(y[threes]) == {3} and len(threes) == (y == 3).sum()
    assert sorted(threes) == list(np.flatnonzero(y == 3))  # each 3 exactly once
    assert not np.array_equal(threes, np.sort(threes))  # shuffled
    assert np.array_equal(threes, S.browse_indices(y, (3,), seed=0))  # reproducible
    assert not np.array_equal(threes, S.browse_indices(y, (3,), seed=1))
    mixed = S.browse_indices(y, (0, 7), seed=5)
    assert set(y[mixed]) == {0, 7}


def test_sample_and_statistics(small):
    x, y = small.x_train, small.y_train
    s = S.sample_indices(y, 100, seed=0)
    assert len(s) == 100 and len(set(s)) == 100 and np.all(np.diff(s) > 0)
    assert np.array_equal(S.sample_indices(y, 10_000, seed=0), np.arange(len(y)))
    counts = S.class_counts(y)
    assert counts.sum() == len(y) and counts[1] == (y == 1).sum()
    means = S.mean_images(x, y)
    assert means.shape == (10, 28, 28)
    assert np.allclose(means[4], x[y == 4].mean(axis=0))
    hist = S.pixel_histogram(x)
    assert hist.shape == (256,) and hist.sum() == x.size and hist[0] == (x == 0).sum()
    assert hist[0] > hist[1:].sum()  # MNIST is mostly background


def test_pca_2d_orders_components(small):
    coords, ratio = E.pca_2d(small.x_train[:300])
    assert coords.shape == (300, 2) and ratio.shape == (2,)
    assert 0 < ratio[1] <= ratio[0] < 1
    assert coords[:, 0].var() >= coords[:, 1].var()


def test_tsne_2d_reports_progress_and_groups_digits(small):
    x, y = small.x_train[:120], small.y_train[:120]
    seen = []
    # 250 iterations are all "early exaggeration"; the map only spreads into clusters after that.
    coords = E.tsne_2d(x, seed=0, perplexity=15, max_iter=350, progress=lambda *a: seen.append(a))
    assert coords.shape == (120, 2) and np.isfinite(coords).all()
    stages = [s for s, _, _ in seen]
    assert stages[:2] == ["pca", "neighbours"] and stages[-1] == "optimise"
    its = [d for s, d, _ in seen if s == "optimise"]
    assert its[0] == 1 and its[-1] == 350 and all(b >= a for a, b in zip(its, its[1:], strict=False))
    assert len(its) > 50  # one report per gradient-descent iteration, not just start and end
    # Images of the same digit end up nearer each other than images of different digits.
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    same = y[:, None] == y[None]
    off_diag = ~np.eye(len(y), dtype=bool)
    assert d[same & off_diag].mean() < 0.7 * d[~same].mean()
    assert E._progress.__dict__.get("callback") is None  # the hook is cleared after the run


class Stop(Exception):
    pass


def test_tsne_2d_can_be_cancelled(small):
    def stop_at_5(stage, done, total):
        if done >= 5:
            raise Stop()

    with pytest.raises(Stop):
        E.tsne_2d(small.x_train[:80], max_iter=250, progress=stop_at_5)
    assert E._progress.__dict__.get("callback") is None
    with pytest.raises(ValueError, match="at least 5"):
        E.tsne_2d(small.x_train[:3])
