"""The Draw page in real Chromium with the bundled pretrained model. Strokes drawn with the mouse, and
with touch events, on the pad (a Components-v2 element in an open shadow root, which Playwright's CSS
locators pierce) are read as the digits drawn. Behaviour, not time: a stroke reruns only the page's two
fragments (the websocket shows no full run), the prediction arrives before the explanations, a
prediction shows while the stroke is still being drawn, and the drawing survives a visit to Home."""

from __future__ import annotations

import math

import pytest

from .conftest import ROOT, no_exception, open_page, screenshot, wait_idle

CANVAS = "canvas.mp-canvas"  # the drawing pad's canvas (ui/draw_view.py)


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


def one(x0: float, y0: float) -> list[tuple[float, float]]:
    return [(x0 + 140, y0 + 45 + 10 * i) for i in range(20)]


def zero(x0: float, y0: float) -> list[tuple[float, float]]:
    return [(x0 + 140 + 55 * math.sin(2 * math.pi * t / 36), y0 + 140 - 85 * math.cos(2 * math.pi * t / 36))
            for t in range(38)]


def settled(page) -> None:
    """Wait for the answer to the finished stroke and its explanations, and the script idle."""
    page.wait_for_function(
        """() => { const d = document.querySelector('[data-digit]');
                   const w = document.querySelector('[data-why-input]');
                   return d && d.dataset.final === '1' && w && w.dataset.whyInput === d.dataset.input; }""",
        timeout=60_000)
    wait_idle(page)


def predicted(page) -> int:
    """Wait for the script runs the stroke triggered, then read the big predicted digit."""
    try:
        page.locator("[data-digit][data-final='1']").wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "draw-failed")
        raise
    wait_idle(page)
    return int(page.locator("[data-digit]").get_attribute("data-digit"))


def ink(page) -> int:
    """How many pixels of the pad are not black (read from the canvas itself)."""
    return page.locator(CANVAS).evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] > 40) n++; return n; }")


class Websocket:
    """The Streamlit messages of a page, parsed: BackMsgs sent, ForwardMsgs received, in order."""

    def __init__(self, page):
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.sent: list = []
        self.received: list = []

        def parse(cls, payload):
            m = cls()
            m.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
            return m

        def on_ws(ws):
            if "/_stcore/stream" in ws.url:
                ws.on("framesent", lambda p: self.sent.append(parse(BackMsg, p)))
                ws.on("framereceived", lambda p: self.received.append(parse(ForwardMsg, p)))

        page.on("websocket", on_ws)

    def mark(self) -> tuple[int, int]:
        return len(self.sent), len(self.received)


def test_draw_one_then_zero(page, app_server):
    open_page(page, app_server, "draw")
    page.locator(CANVAS).wait_for(timeout=90_000)  # the model loads on the first visit
    wait_idle(page)
    assert page.get_by_text("Draw a digit in the black box").is_visible()
    assert page.locator("[data-digit]").count() == 0
    # A drawing pad's tools, and no others.
    assert page.locator(".mp-bar button").all_inner_texts() == ["Undo", "Clear"]

    x0, y0 = canvas_origin(page)
    stroke(page, one(x0, y0))
    assert predicted(page) == 1
    no_exception(page)

    page.get_by_role("button", name="Clear", exact=True).click()
    page.get_by_text("Draw a digit in the black box").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator("[data-digit]").count() == 0 and page.locator("[data-why-input]").count() == 0
    assert ink(page) == 0

    x0, y0 = canvas_origin(page)
    stroke(page, zero(x0, y0))
    assert predicted(page) == 0
    settled(page)
    no_exception(page)
    for heading in ("What the model sees", "Why"):
        page.get_by_role("heading", name=heading).wait_for()
    assert page.get_by_text("Feature maps of the first conv layers").is_visible()

    # The Streamlit main area scrolls inside the viewport: make it tall enough to capture the page.
    page.set_viewport_size({"width": 1400, "height": 2300})
    page.wait_for_timeout(1500)
    screenshot(page, "draw")
    assert not page.console_errors, page.console_errors


def test_a_stroke_reruns_only_the_fragments_prediction_first(page, app_server):
    ws = Websocket(page)
    open_page(page, app_server, "draw")
    page.locator(CANVAS).wait_for(timeout=90_000)
    wait_idle(page)
    sent0, received0 = ws.mark()
    x0, y0 = canvas_origin(page)
    stroke(page, zero(x0, y0))
    assert predicted(page) == 0
    settled(page)

    reruns = [m.rerun_script for m in ws.sent[sent0:] if m.WhichOneof("type") == "rerun_script"]
    assert reruns and all(r.fragment_id for r in reruns), "a stroke asked for a full run"
    runs = [m.metadata.run for m in ws.received[received0:] if m.WhichOneof("type") == "new_session"]
    assert runs and all(r.fragment_ids for r in runs), "the whole page ran again for a stroke"
    bodies = [m.delta.new_element.markdown.body for m in ws.received[received0:]
              if m.WhichOneof("type") == "delta" and m.delta.new_element.WhichOneof("type") == "markdown"]
    final = [i for i, b in enumerate(bodies) if 'data-final="1"' in b]
    why = [i for i, b in enumerate(bodies) if "data-why-input" in b]
    assert final and why and final[-1] < why[-1], "the explanations did not come after the prediction"


def test_prediction_shows_while_drawing(page, app_server):
    open_page(page, app_server, "draw")
    page.locator(CANVAS).wait_for(timeout=90_000)
    wait_idle(page)
    x0, y0 = canvas_origin(page)
    points = one(x0, y0)
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:10]:
        page.mouse.move(*p, steps=3)
    # The pointer is still down: the pad has sent what is drawn so far, and the page answered it.
    page.locator("[data-digit][data-final='0']").wait_for(timeout=60_000)
    for p in points[10:]:
        page.mouse.move(*p, steps=3)
    page.mouse.up()
    assert predicted(page) == 1


def test_drawing_survives_a_visit_to_home(page, app_server):
    open_page(page, app_server, "draw")
    page.locator(CANVAS).wait_for(timeout=90_000)
    wait_idle(page)
    x0, y0 = canvas_origin(page)
    stroke(page, zero(x0, y0))
    assert predicted(page) == 0
    settled(page)
    drawn = ink(page)
    assert drawn > 1000

    nav = page.locator("[data-testid='stSidebarNav']")
    nav.get_by_role("link", name="Home").click()
    page.get_by_role("heading", name="mnist-studio").wait_for(timeout=30_000)
    wait_idle(page)
    nav.get_by_role("link", name="Draw").click()
    page.locator(CANVAS).wait_for(timeout=30_000)
    settled(page)  # the prediction and explanations of the kept drawing, without a new stroke
    assert int(page.locator("[data-digit]").get_attribute("data-digit")) == 0
    assert ink(page) == drawn
    # The kept strokes are the pad's own again: Undo takes the only one back.
    page.get_by_role("button", name="Undo", exact=True).click()
    page.get_by_text("Draw a digit in the black box").wait_for(timeout=30_000)
    assert ink(page) == 0
    no_exception(page)


def test_touch_stroke_gives_a_prediction(browser, app_server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    try:
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        open_page(page, app_server, "draw")
        page.locator(CANVAS).wait_for(timeout=90_000)
        wait_idle(page)
        page.locator(CANVAS).scroll_into_view_if_needed()
        box = page.locator(CANVAS).bounding_box()
        k = box["width"] / 280  # the pad shrinks to fit a narrow screen
        cdp = ctx.new_cdp_session(page)
        points = [(box["x"] + 140 * k, box["y"] + (45 + 10 * i) * k) for i in range(20)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0],
                                                                                     "y": points[0][1]}]})
        for x, y in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        assert predicted(page) == 1
        assert ink(page) > 500
        no_exception(page)
    finally:
        ctx.close()
