"""The Train page in real Chromium: start a small run from the form, watch the live chart gain points,
reload mid-run and find the same run still training, let it finish, and make it the current model."""

from __future__ import annotations

import re
import shutil
import time

from mnist_core import runs
from ui.train_form import DEMO

from .conftest import no_exception, open_page, screenshot, wait_idle

RUN = "e2e-live"
# Points in the first chart of the page (the live panel sits at the top while a run is watched).
POINTS_JS = """() => {
  const el = document.querySelector("[data-testid='stMain'] [data-testid='stPlotlyChart'] .js-plotly-plot");
  if (!el || !el.data) return 0;
  return el.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}"""
# The live panel's top is in the upper half of the window, clear of Streamlit's header bar.
PANEL_IN_VIEW_JS = """() => {
  const el = document.querySelector(".st-key-tr_live");
  if (!el) return false;
  const top = el.getBoundingClientRect().top;
  return top >= 40 && top < innerHeight / 2;
}"""


def panel_heading(page) -> str:
    h = page.locator("[data-testid='stMain'] h4").first
    return h.inner_text() if h.count() else ""


def wait_until(page, pred, limit_s: float, what: str):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        page.wait_for_timeout(300)
    raise AssertionError(f"timed out after {limit_s:.0f} s waiting for {what}; panel: {panel_heading(page)!r}")


EPOCHS = 5


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def test_train_live_reload_finish_and_use(page, app_server, e2e_runs_root):
    open_page(page, app_server)
    open_page(page, app_server, "train")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("93,322").wait_for()  # the classic network's size, before any training
    no_exception(page)

    # The classroom-demo button sets a subset and a few epochs. Ask for 2,000 images and 5 epochs of
    # single-image batches: long enough (~20 s on two idle cores) to watch the curves grow and to reload.
    main.get_by_role("button", name=re.compile("Classroom demo")).click()
    wait_idle(page)
    assert page.get_by_label("Subset size (images)", exact=True).input_value() == str(DEMO["limit"])
    set_number(page, "Subset size (images)", 2000)
    set_number(page, "Epochs", EPOCHS)
    set_number(page, "Batch size", 1)
    name_box = page.get_by_label("Run name", exact=True)
    name_box.fill(RUN)
    name_box.press("Enter")
    wait_idle(page)
    page.mouse.wheel(0, 5000)  # down at the form's end, as a user pressing Start is
    main.get_by_role("button", name=re.compile("Start training")).click()
    wait_until(page, lambda: RUN in panel_heading(page), 30, "the run's panel")
    # The panel appears above the form, out of sight: Start scrolls it into view.
    wait_until(page, lambda: page.evaluate(PANEL_IN_VIEW_JS), 15, "the live panel to scroll into view")
    no_exception(page)

    # The live chart appears and gains points while the run trains (the curves' poll: every few seconds).
    first = wait_until(page, lambda: page.evaluate(POINTS_JS), 90, "the first chart points")
    wait_until(page, lambda: page.evaluate(POINTS_JS) > first, 60, "the chart to gain points")
    status = runs.read_status(e2e_runs_root / RUN)
    assert status["state"] == "running", status

    # Reload mid-run: a fresh session reattaches to the same run, which keeps training.
    epoch_before = runs.read_progress(e2e_runs_root / RUN).get("epoch", 0)
    page.reload()
    wait_idle(page)
    wait_until(page, lambda: RUN in panel_heading(page), 30, "the reattached run's panel")
    assert any(s in panel_heading(page) for s in ("running", "finished")), panel_heading(page)
    if "running" in panel_heading(page):
        main.get_by_text(re.compile(r"Overall: \d+%")).wait_for()

    wait_until(page, lambda: "finished" in panel_heading(page), 120, "the run to finish")
    wait_idle(page)
    no_exception(page)
    prog = runs.read_progress(e2e_runs_root / RUN)
    assert prog["epoch"] == EPOCHS and prog["epoch"] >= epoch_before  # the same run went on to its end
    text = main.inner_text()
    for label in ("Test accuracy", "Test loss", "Training time", "Images / s"):
        assert label in text, label
    assert page.evaluate(POINTS_JS) >= 2 * EPOCHS  # train + validation, one point per epoch each, at least

    # Another usable model is current in the sidebar; "Use as current model" switches it to this run.
    picker = page.locator("[data-testid='stSidebar']").get_by_role("combobox", name="Current model")
    if not (e2e_runs_root / runs.PRETRAINED / "model.keras").exists():
        shutil.copytree(e2e_runs_root / RUN, e2e_runs_root / "e2e-other")
        page.reload()
        wait_idle(page)
        picker.click()
        page.get_by_role("option", name=re.compile("^e2e-other")).click()
        wait_idle(page)
    before = picker.input_value()
    assert not before.startswith(RUN), before
    main.get_by_role("button", name="Use as current model").click()
    wait_idle(page)
    wait_until(page, lambda: picker.input_value().startswith(RUN), 10, "the sidebar to show the new model")
    main.get_by_role("button", name=re.compile("Current model")).wait_for()
    no_exception(page)
    page.wait_for_timeout(800)  # let the charts finish drawing for the screenshot
    screenshot(page, "train")
    assert not page.console_errors, page.console_errors
