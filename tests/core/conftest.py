"""Core-test fixtures: one tiny classic run trained once per session and shared by the training,
evaluation and inference tests (training is the expensive part on 2 shared cores)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mnist_core import runs
from mnist_core.config import preset_config


@pytest.fixture(scope="session")
def trained(tiny, tmp_path_factory):
    """classic, 1 epoch on 600 real training images (540 fit + 60 validation), evaluated on 300."""
    from mnist_core.training import train

    root = tmp_path_factory.mktemp("runs")
    cfg = preset_config("classic", epochs=1, limit=600)
    run_dir = runs.create_run(cfg, "tiny-classic", root=root)
    batches: list[dict] = []
    epochs: list[dict] = []
    metrics = train(cfg, run_dir, tiny, on_batch=batches.append, on_epoch=epochs.append)
    return SimpleNamespace(run_dir=run_dir, root=root, cfg=cfg, metrics=metrics, model=metrics["model"],
                           batches=batches, epochs=epochs, data=tiny)
