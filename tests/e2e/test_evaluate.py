"""The Evaluate page in real Chromium: the confusion matrix renders and clicking a cell opens its images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mnist_core import runs
from mnist_core.evaluation import load_cached_evaluation

from ..conftest import take
from .conftest import no_exception, open_page, screenshot, wait_idle

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "evaluate.py"
PER_PAGE = int(re.search(r"^PER_PAGE = (\d+)", PAGE.read_text(), re.M)[1])  # the gallery's page size


@pytest.fixture(scope="module")
def evaluated_run(e2e_runs_root, mnist) -> str:
    """The run the server evaluates: the bundled pretrained model when the server has it, else a tiny
    run trained here into the server's runs folder (on a 300-image test slice, so the server still has
    to compute its own 10,000 predictions, progress bar and all)."""
    if (e2e_runs_root / runs.PRETRAINED / "model.keras").exists():
        return runs.PRETRAINED
    from mnist_core.config import preset_config
    from mnist_core.training import train

    cfg = preset_config("classic", epochs=1, limit=600)
    name = "tiny-e2e"
    if not (e2e_runs_root / name / "model.keras").exists():
        train(cfg, runs.create_run(cfg, name, root=e2e_runs_root), take(mnist, 600, 300))
    return name


def test_matrix_click_opens_gallery(page, app_server, evaluated_run, e2e_runs_root, mnist):
    # Enter through Home and the sidebar, as a user does. (Deep-linking /evaluate as the very first request
    # to a fresh server leaves that session with Streamlit's pages/-folder navigation and page ids, so
    # its reruns never reach the page: an app-shell issue, reported, not this page's.)
    open_page(page, app_server)
    page.locator("[data-testid='stSidebarNav'] a", has_text="Evaluate").click()
    page.wait_for_url("**/evaluate")
    # The first visit computes 10,000 predictions (TensorFlow starts, progress bar): allow for it.
    drag = page.locator(".st-key-ev_cm_chart .nsewdrag").first
    drag.wait_for(timeout=240_000)
    wait_idle(page)
    no_exception(page)
    main = page.locator("[data-testid='stMain']")
    assert "Test accuracy" in main.inner_text()
    # Every cell is annotated: 100 numbers drawn on the heatmap.
    assert page.locator(".st-key-ev_cm_chart text").filter(has_text=re.compile(r"^\d+$")).count() >= 100

    # What the page computed (and cached in the run folder): pick the second most confused pair, which
    # is not the cell the page opens with, so the gallery can only show it if the click worked.
    res = load_cached_evaluation(e2e_runs_root / evaluated_run, mnist.source)
    assert res is not None, "the page did not cache its evaluation in the run folder"
    t, p, count = res.confused_pairs(2)[-1]
    box = drag.bounding_box()
    page.mouse.click(box["x"] + (p + 0.5) * box["width"] / 10, box["y"] + (t + 0.5) * box["height"] / 10)
    main.get_by_text(f"{count:,} test images of a {t} predicted as {p}").wait_for(timeout=60_000)
    wait_idle(page)
    no_exception(page)
    captions = [c for c in main.locator("[data-testid='stImageCaption']").all_inner_texts() if c.startswith("#")]
    want = res.cell(t, p)[:PER_PAGE]
    assert [c.split(" ")[0] for c in captions] == [f"#{i}" for i in want]
    # The click also set the true/predicted selectors.
    assert page.locator(".st-key-ev_true input").input_value() == str(t)
    assert page.locator(".st-key-ev_pred input").input_value() == str(p)
    screenshot(page, "evaluate")
    assert not page.console_errors, page.console_errors
