"""2-D maps of a sample of the images: PCA, and t-SNE with progress reports.

Only numpy and scikit-learn: the Dataset page uses this and must never start TensorFlow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

TSNE_PCA_DIMS = 50  # t-SNE on 784 raw pixels is slow and noisy; 50 principal components keep the structure


def _flat(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0


def pca_2d(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Project images onto their first two principal components. Returns the (N, 2) coordinates and the
    fraction of the pixel variance each of the two components explains."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(_flat(images))
    return coords.astype(np.float32), pca.explained_variance_ratio_.astype(np.float64)


# scikit-learn's TSNE has no progress callback. Its optimiser calls the module-level objective
# `_kl_divergence_bh` once per iteration, looked up at call time, so we wrap it once per process. The
# wrapper only reports to a callback registered by the *calling thread* (thread-local), so concurrent
# t-SNE runs in other sessions are unaffected; if scikit-learn ever renames the function, t-SNE still
# runs and only the iteration count is missing.
_progress = threading.local()
_hook_lock = threading.Lock()


def _install_progress_hook() -> bool:
    with _hook_lock:
        from sklearn.manifold import _t_sne

        fn = getattr(_t_sne, "_kl_divergence_bh", None)
        if fn is None:
            return False
        if getattr(fn, "_mnist_studio_progress", False):
            return True

        def with_progress(*args, **kwargs):
            cb = getattr(_progress, "callback", None)
            if cb is not None:
                cb()
            return fn(*args, **kwargs)

        with_progress._mnist_studio_progress = True  # type: ignore[attr-defined]
        _t_sne._kl_divergence_bh = with_progress
        return True


def tsne_2d(images: np.ndarray, seed: int = 0, perplexity: float = 30.0, max_iter: int = 500,
            progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """t-SNE map of images (first reduced to 50 dimensions with PCA), shape (N, 2).

    `progress(stage, done, total)` is called with stage "pca", "neighbours" and then "optimise" once per
    gradient-descent iteration (done out of `max_iter`; t-SNE may stop early when it has converged). It
    may raise any exception to stop the run; the exception propagates."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(images)
    if n < 5:
        raise ValueError(f"t-SNE needs at least 5 images, got {n}")
    report = progress or (lambda stage, done, total: None)
    report("pca", 0, max_iter)
    x = _flat(images)
    dims = min(TSNE_PCA_DIMS, n, x.shape[1])
    x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    report("neighbours", 0, max_iter)
    hooked = progress is not None and _install_progress_hook()
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        report("optimise", done, max_iter)

    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", learning_rate="auto",
                max_iter=max_iter, random_state=seed)
    if hooked:
        _progress.callback = step
    try:
        coords = tsne.fit_transform(x)
    finally:
        if hooked:
            _progress.callback = None
    report("optimise", max_iter, max_iter)
    return coords.astype(np.float32)
