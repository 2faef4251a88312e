"""The Draw page in real Chromium with the bundled pretrained model: mouse strokes on the canvas (a
Components-v2 element in an open shadow root, which Playwright's CSS locators pierce) are read as the
digits drawn."""

from __future__ import annotations

import math

import pytest

from .conftest import ROOT, no_exception, open_page, screenshot, wait_idle

CANVAS = "canvas.upper-canvas"  # fabric.js's event layer, on top of the drawing and background canvases


@pytest.fixture(autouse=True)
def needs_pretrained(e2e_runs_root):
    if not (ROOT / "models" / "pretrained" / "model.keras").exists():
        pytest.skip("models/pretrained/model.keras is not there yet: the e2e server has no model to draw for")


def stroke(page, points) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=3)
    page.mouse.up()


def canvas_origin(page) -> tuple[float, float]:
    box = page.locator(CANVAS).bounding_box()
    assert box and round(box["width"]) == 280 and round(box["height"]) == 280, box
    return box["x"], box["y"]


def predicted(page) -> int:
    """Wait for the script run the stroke triggered, then read the big predicted digit."""
    try:
        page.locator("[data-digit]").wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "draw-failed")
        raise
    wait_idle(page)
    return int(page.locator("[data-digit]").get_attribute("data-digit"))


def test_draw_one_then_zero(page, app_server):
    open_page(page, app_server, "draw")
    page.locator(CANVAS).wait_for(timeout=90_000)  # the model loads on the first visit
    wait_idle(page)
    assert page.get_by_text("Draw a digit in the black box").is_visible()
    assert page.locator("[data-digit]").count() == 0

    # A "1": one vertical stroke down the middle.
    x0, y0 = canvas_origin(page)
    stroke(page, [(x0 + 140, y0 + 45 + 10 * i) for i in range(20)])
    assert predicted(page) == 1
    no_exception(page)

    # Clear gives a new, empty canvas (a new widget key, so a new element) and the prompt again.
    page.locator(CANVAS).evaluate("el => el.setAttribute('data-old', '1')")
    page.get_by_role("button", name="Clear").click()
    page.get_by_text("Draw a digit in the black box").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator("[data-digit]").count() == 0
    page.locator(CANVAS + ":not([data-old])").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # let fabric.js attach its mouse handlers to the new canvas

    # A "0": one closed loop, taller than wide.
    x0, y0 = canvas_origin(page)
    loop = [(x0 + 140 + 55 * math.sin(2 * math.pi * t / 36), y0 + 140 - 85 * math.cos(2 * math.pi * t / 36))
            for t in range(38)]
    stroke(page, loop)
    assert predicted(page) == 0
    no_exception(page)
    for heading in ("What the model sees", "Why"):
        page.get_by_role("heading", name=heading).wait_for()
    assert page.get_by_text("Feature maps of the first conv layers").is_visible()

    # The Streamlit main area scrolls inside the viewport: make it tall enough to capture the page.
    page.set_viewport_size({"width": 1400, "height": 2900})
    page.wait_for_timeout(1500)
    screenshot(page, "draw")
    assert not page.console_errors, page.console_errors
