"""A real Ray for the tests here, never a mock: `MNIST_RAY_ADDRESS` when it names a cluster, else a
local head started once per session (`ray_engine.LocalHead`: `ray start --head --block`, 2 CPUs, no
dashboard, token auth off) and stopped at the end with everything it started.

These tests must not silently disappear where Ray is meant to be: if Ray is not installed they fail
when MNIST_REQUIRE_RAY=1 (CI sets it) and are skipped otherwise."""

from __future__ import annotations

import os

import pytest


def need_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.tune  # noqa: F401
    except ImportError as e:
        reason = f"Ray is not installed ({e}); pip install 'ray[tune]'"
        if os.environ.get("MNIST_REQUIRE_RAY") == "1":
            pytest.fail(f"Ray tests cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def ray_head():
    """The address of a real Ray head (host:port)."""
    need_ray()
    from mnist_core.ray_engine import LocalHead

    given = os.environ.get("MNIST_RAY_ADDRESS")
    if given and given != "local":
        yield given
        return
    head = LocalHead(num_cpus=2)
    head.start()
    try:
        yield head.address
    finally:
        head.stop()


@pytest.fixture
def on_ray(ray_head, runs_root, monkeypatch):
    """A fresh runs folder whose sweeps go to the Ray head (MNIST_RAY_ADDRESS, inherited by every
    process the scheduler starts). Leaves nothing running."""
    from mnist_core import runs, scheduler, sweeps

    monkeypatch.setenv("MNIST_RAY_ADDRESS", ray_head)
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    yield runs_root
    for s in sweeps.list_sweeps(runs_root):
        if s.active:
            sweeps.stop_sweep(s.folder)
    for r in runs.list_runs(runs_root):
        if r.active:
            scheduler.cancel(r.path)
    from tests.core.test_scheduler import wait_for

    wait_for(lambda: not any(r.active for r in runs.list_runs(runs_root))
             and not any(s.active for s in sweeps.list_sweeps(runs_root)), 180, "every Ray run to end")
