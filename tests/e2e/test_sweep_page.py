"""The Sweep page in real Chromium: the search form driven by the searchable-settings table, and a
finished sweep's view (progress, parallel-coordinates plot, trials table, best run). The sweep itself is
a real embedded sweep of two tiny trials, run through the core before the page is opened."""

from __future__ import annotations

import time

from mnist_core import runs, sweeps
from mnist_core.sweep import SweepConfig

from .conftest import no_exception, open_page, screenshot, wait_idle


def test_sweep_page_shows_a_finished_sweep(page, app_server, e2e_runs_root, data_dir):
    sweep = SweepConfig.from_dict({
        "base": {"arch": {"preset": "custom", "conv_blocks": 1, "filters": [8]}, "epochs": 2, "limit": 300},
        "space": {"learning_rate": {"choices": [1e-6, 3e-3]}}, "method": "grid", "early_stopping": "none"})
    folder = sweeps.start_sweep(sweep, "e2e-lr", root=e2e_runs_root, data_dir=str(data_dir))
    deadline = time.monotonic() + 300
    while sweeps.read_sweep(folder).state in runs.ACTIVE:
        assert time.monotonic() < deadline, sweeps.read_sweep(folder)
        time.sleep(0.5)
    open_page(page, app_server, "sweep")
    no_exception(page)
    page.get_by_text("e2e-lr").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()  # the parallel-coordinates plot
    wait_idle(page)
    assert page.get_by_role("button", name="Use as current model").count() + \
        page.get_by_role("button", name="Current model ✓").count() >= 1
    screenshot(page, "sweep")
    assert not page.console_errors, page.console_errors
