"""What a student feels on the Draw page: mouse-up -> predicted digit on screen, and -> page settled.

A fresh `streamlit run app.py` (own runs folder holding the pretrained model) and real Chromium
(Playwright). Strokes are drawn with the mouse on the Draw canvas at a human pace (a move every
~16 ms): digits 0, 1, 7, 4, 2, 3 in turn, cleared between digits. A script installed in every page
timestamps, with the page's own clock:

- mouse-up -> prediction: the first DOM change after the `pointerup` that shows a new prediction (the
  `[data-digit]` element or its text changed, or, for the same answer again, its container went stale
  and fresh: re-sent by a new run; when the element carries `data-final`, only the answer to the
  finished stroke counts, not a prediction sent while drawing);
- mouse-up -> settled: the last DOM change (outside the header) before 300 ms without any, once the
  script is idle (`data-test-script-state="notRunning"`, the same attribute tests/e2e waits for) and,
  where the page marks it, the explanations shown are those of the predicted input;
- browser main-thread time: the long tasks (> 50 ms) after mouse-up, summed per stroke;
- live updates: how often the prediction changed while the stroke was still being drawn.

Phases: one session (>= 20 strokes; `--quick` 8), ten sessions drawing at once (one browser, ten
contexts), the server alone, and thirty raw websockets. The websocket phases replay a recorded stroke:
the BackMsg that the real session's browser sent for one finished stroke (captured from its websocket),
re-sent on /_stcore/stream by fresh sessions, each copy with the drawing rotated by a random few
degrees (so each is a new drawing and no cache answers it); the time to the ForwardMsg carrying the new
prediction is measured. "The server alone" is one such websocket sending strokes one at a time
(the server's share of a stroke, no browser: to the prediction, and to the end of the script runs it
caused); "thirty websockets" is 30 of them each sending a stroke every 2-4 s. Errors: exception
elements, closed connections, timeouts. The 1-minute load average is recorded at the end of each phase
and printed next to its figures (the machine may be shared: compare with it).

    python benchmarks/draw_latency.py [--quick] [--json] [--phases one,ten,server,ws]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

from tests.e2e.test_draw import CANVAS  # noqa: E402  (the canvas selector, one place)

QUICK = dict(strokes=8, sessions=10, session_strokes=2, ws_clients=30, ws_strokes=3)
FULL = dict(strokes=24, sessions=10, session_strokes=4, ws_clients=30, ws_strokes=6)
TARGETS = {"draw_stroke_to_prediction_p50_ms": "<= 150", "draw_stroke_to_prediction_p95_ms": "<= 300",
           "draw_stroke_to_settled_p50_ms": "<= 600", "draw_10_sessions_stroke_to_prediction_p95_ms": "<= 500",
           "draw_10_sessions_errors": "0", "draw_30_ws_stroke_to_prediction_p95_ms": "<= 1500",
           "draw_30_ws_errors": "0"}
QUIET_MS = 300  # no DOM change for this long (script idle) = settled
MOVE_S = 1 / 60  # one pointer move per display frame, like a real mouse
TIMEOUT_MS = 120_000


def _loop(cx: float, cy: float, rx: float, ry: float, n: int = 40, start: float = 0.0, turns: float = 1.0):
    return [(cx + rx * math.sin(start + 2 * math.pi * turns * t / n), cy - ry * math.cos(start + 2 * math.pi * turns * t / n))
            for t in range(n + 1)]


def _line(a: tuple[float, float], b: tuple[float, float], n: int = 16):
    return [(a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n) for t in range(n + 1)]


# Digits as strokes in canvas pixels (280 x 280), each drawn from pointer-down to pointer-up.
DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_loop(140, 140, 55, 85, n=44)],
    1: [_line((140, 45), (140, 235), 22)],
    7: [_line((80, 60), (200, 60), 14), _line((200, 60), (120, 235), 20)],
    4: [_line((170, 45), (80, 165), 16) + _line((80, 165), (210, 165), 14)[1:], _line((170, 100), (170, 240), 16)],
    2: [_loop(140, 100, 55, 50, n=20, start=-math.pi / 2, turns=0.6) + _line((175, 140), (85, 230), 12)[1:]
        + _line((85, 230), (205, 230), 12)[1:]],
    3: [_loop(135, 95, 50, 45, n=18, start=-math.pi / 2, turns=0.75) + _loop(135, 185, 55, 50, n=20, start=0.0,
                                                                            turns=0.75)[1:]],
}
ORDER = [0, 1, 7, 4, 2, 3]

PROBE_JS = """
(() => {
  if (window.__db) return;
  const S = window.__db = {down: null, up: null, sig0: null, pred: null, live: 0, liveSig: '', lastMut: 0,
                           longtask: 0};
  const digitEl = () => document.querySelector('[data-digit]');
  S.sig = () => {
    const d = digitEl();
    if (!d) return '';
    const block = d.closest('[data-testid="stVerticalBlock"]');
    return d.outerHTML + '|' + (block ? block.textContent : '');
  };
  const finalOk = () => {
    const d = digitEl();
    return !!d && (!d.hasAttribute('data-final') || d.getAttribute('data-final') === '1');
  };
  const outside = (n) => {
    const el = n && (n.nodeType === 1 ? n : n.parentElement);
    return !el || !!el.closest('header, [data-testid="stHeader"], [data-testid="stStatusWidget"]');
  };
  new MutationObserver((muts) => {
    const now = performance.now();
    if (muts.some((m) => !outside(m.target))) S.lastMut = now;
    if (S.down !== null && S.up === null) {
      const s = S.sig();
      if (s && s !== S.liveSig) { S.liveSig = s; S.live += 1; }
    }
    if (S.up !== null && S.pred === null) {
      // A new answer: the element changed, or (the same answer again) it was re-sent by a new script
      // run: its container went stale when the run started and fresh when the element arrived.
      const d = digitEl(), c = d && d.closest('[data-testid="stElementContainer"]');
      const stale = c ? c.getAttribute('data-stale') : null;
      if (stale === 'true') S.staleSeen = true;
      if ((S.sig() !== S.sig0 || (S.staleSeen && stale === 'false')) && finalOk()) S.pred = now;
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  addEventListener('pointerdown', () => {
    S.down = performance.now(); S.up = null; S.pred = null; S.live = 0; S.liveSig = S.sig(); S.longtask = 0;
  }, true);
  addEventListener('pointerup', () => { S.up = performance.now(); S.sig0 = S.sig(); S.staleSeen = false; }, true);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (S.up !== null && e.startTime >= S.up) S.longtask += e.duration;
    }).observe({type: 'longtask'});
  } catch (e) { /* no long-task timing in this browser */ }
  S.settled = (quiet) => {
    if (S.up === null || S.pred === null) return null;
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return null;
    const d = digitEl(), why = document.querySelector('[data-why-input]');
    if (why && d && d.dataset.input && why.getAttribute('data-why-input') !== d.dataset.input) return null;
    if (performance.now() - S.lastMut < quiet) return null;
    return {pred: S.pred - S.up, settled: Math.max(S.lastMut, S.pred) - S.up, live: S.live,
            stroke: S.up - S.down, longtask: S.longtask};
  };
})();
"""


# --- one browser session -------------------------------------------------------------------------
async def _idle(page: Any) -> None:
    """The script has drawn the page and is not running (as tests/e2e's wait_idle, without its pause)."""
    await page.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']", timeout=TIMEOUT_MS)
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=TIMEOUT_MS)


async def _open_draw(ctx: Any, url: str, frames: list[bytes] | None = None) -> Any:
    """A Draw page in `ctx`, drawn and idle; with `frames`, its websocket's sent frames are recorded there."""
    page = await ctx.new_page()
    if frames is not None:
        _recorder(page, frames)
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    await page.add_init_script(PROBE_JS)
    await page.goto(f"{url}/draw")
    await page.locator(CANVAS).wait_for()
    await _idle(page)
    return page


async def _origin(page: Any) -> tuple[float, float, float]:
    box = await page.locator(CANVAS).bounding_box()
    return box["x"], box["y"], box["width"] / 280.0


async def _stroke(page: Any, points: list[tuple[float, float]]) -> dict[str, float]:
    """Draw one stroke at a human pace and wait until the page has settled; the page's own timings."""
    x0, y0, k = await _origin(page)
    pts = [(x0 + x * k, y0 + y * k) for x, y in points]
    await page.mouse.move(*pts[0])
    await page.mouse.down()
    for p in pts[1:]:
        await page.mouse.move(*p)
        await asyncio.sleep(MOVE_S)  # pacing the input like a hand, not waiting for the page
    await page.mouse.up()
    handle = await page.wait_for_function(f"() => window.__db.settled({QUIET_MS})", polling=50,
                                          timeout=TIMEOUT_MS)
    return await handle.json_value()


async def _clear(page: Any) -> None:
    """Empty the canvas with the page's Clear button and wait for the empty prompt."""
    canvas = page.locator(CANVAS)
    await canvas.evaluate("el => el.setAttribute('data-old', '1')")
    await page.get_by_role("button", name="Clear", exact=True).first.click()
    await page.locator("[data-digit]").wait_for(state="detached")
    await _idle(page)
    if await page.locator(CANVAS + "[data-old]").count() == 0:  # a canvas that is replaced on Clear
        await page.locator(CANVAS + ":not([data-old])").wait_for()
        await page.wait_for_timeout(1000)  # let its drawing library attach its handlers


async def _draw_digits(page: Any, n_strokes: int, start: int = 0, think: tuple[float, float] = (0.0, 0.0),
                       rng: random.Random | None = None) -> list[dict[str, float]]:
    """Draw whole digits (cleared in between) until n_strokes strokes have been timed."""
    out: list[dict[str, float]] = []
    i = start
    while len(out) < n_strokes:
        digit = ORDER[i % len(ORDER)]
        if out:
            await _clear(page)
        for k, s in enumerate(DIGITS[digit]):
            if len(out) >= n_strokes:
                break
            if rng and think[1] > 0:
                await asyncio.sleep(rng.uniform(*think))
            r = await _stroke(page, s)
            r["digit"] = digit
            r["complete"] = k == len(DIGITS[digit]) - 1  # the digit's last stroke: the whole digit is drawn
            r["shown"] = await page.locator("[data-digit]").get_attribute("data-digit")
            out.append(r)
        i += 1
    return out


# --- the recorded stroke, replayed over raw websockets ------------------------------------------------
def _recorder(page: Any, frames: list[bytes]) -> None:
    def on_ws(ws: Any) -> None:
        if "/_stcore/stream" in ws.url:
            ws.on("framesent", lambda payload: frames.append(payload if isinstance(payload, bytes)
                                                             else payload.encode()))
    page.on("websocket", on_ws)


def _json_values(m: Any) -> list[Any]:
    return [json.loads(w.json_value) for w in m.rerun_script.widget_states.widgets
            if w.WhichOneof("value") == "json_value" and w.json_value]


def _finds(v: Any, pred: Any) -> bool:
    """Whether pred holds for v or anything nested in it (dicts and lists)."""
    if pred(v):
        return True
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    return any(_finds(x, pred) for _, x in items)


def _pick_frames(frames: list[bytes]) -> tuple[bytes, bytes]:
    """(the first page-run request, the first request for a finished stroke) of a recorded session; a
    request sent while the stroke was still being drawn (`"final": false`) is not a finished stroke."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    init = None
    for raw in frames:
        m = BackMsg()
        m.ParseFromString(raw)
        if m.WhichOneof("type") != "rerun_script":
            continue
        values = _json_values(m)
        drawing = _finds(values, lambda v: isinstance(v, str) and v.startswith("data:image/png"))
        unfinished = _finds(values, lambda v: isinstance(v, dict) and v.get("final") is False)
        if init is None and not drawing:
            init = raw
        elif init is not None and drawing and not unfinished:
            return init, raw
    raise RuntimeError(f"no page-run and stroke messages among {len(frames)} recorded websocket frames")


def _rotated_png_url(url: str, angle: float) -> str:
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA")
    bg = Image.new("RGBA", img.size, (0, 0, 0, 255))
    rot = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0, 255))
    buf = io.BytesIO()
    Image.alpha_composite(bg, rot).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _perturbed(stroke: bytes, angle: float) -> bytes:
    """The recorded stroke message with every drawing in it rotated by `angle` degrees."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    def swap(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("data:image/png;base64,"):
            return _rotated_png_url(v, angle)
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    m = BackMsg()
    m.ParseFromString(stroke)
    for w in m.rerun_script.widget_states.widgets:
        if w.WhichOneof("value") == "json_value" and "data:image/png" in w.json_value:
            w.json_value = json.dumps(swap(json.loads(w.json_value)))
    return m.SerializeToString()


async def _ws_client(url: str, init: bytes, stroke: bytes, n: int, rng: random.Random, lat: list[float],
                     errors: list[str], delay: float = 0.0, think: tuple[float, float] = (2.0, 4.0),
                     done: list[float] | None = None) -> None:
    """One raw websocket session: the recorded page run, then n replayed strokes, `think` seconds apart;
    appends to `lat` the ms from sending a stroke to the ForwardMsg with its prediction, and to `done`
    the ms to the end of the script runs it caused."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    host = url.split("//", 1)[1]
    await asyncio.sleep(delay)
    try:
        async with connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"], origin=url,
                           max_size=None, open_timeout=60, ping_interval=None) as ws:

            async def until(pred: Any, timeout: float) -> None:
                deadline = time.perf_counter() + timeout
                while True:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.perf_counter()))
                    fm = ForwardMsg()
                    fm.ParseFromString(raw)
                    if fm.WhichOneof("type") == "delta" and fm.delta.new_element.WhichOneof("type") == "exception":
                        raise RuntimeError("exception: " + fm.delta.new_element.exception.message[:200])
                    if pred(fm):
                        return

            def prediction(fm: Any) -> bool:
                body = fm.delta.new_element.markdown.body if fm.WhichOneof("type") == "delta" else ""
                return "data-digit" in body and 'data-final="0"' not in body

            def finished(fm: Any) -> bool:  # a run that ended, not one cut short to start another
                return (fm.WhichOneof("type") == "script_finished"
                        and fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN)

            await ws.send(init)
            await until(finished, 180)
            for _ in range(n):
                await asyncio.sleep(rng.uniform(*think))
                msg = _perturbed(stroke, rng.uniform(-10, 10))
                t0 = time.perf_counter()
                await ws.send(msg)
                try:
                    await until(prediction, 30)
                    lat.append((time.perf_counter() - t0) * 1000)
                    await until(finished, 30)
                    if done is not None:
                        done.append((time.perf_counter() - t0) * 1000)
                except TimeoutError:
                    errors.append("no prediction (or no end of run) within 30 s")
    except Exception as e:  # a refused or dropped connection is what is being counted
        errors.append(f"{type(e).__name__}: {e}"[:200])


async def _ws_phase(url: str, init: bytes, stroke: bytes, clients: int, n: int) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    await asyncio.gather(*[_ws_client(url, init, stroke, n, random.Random(100 + i), lat, errors, delay=0.1 * i)
                           for i in range(clients)])
    return {"lat": lat, "errors": errors}


async def _server_only(url: str, init: bytes, stroke: bytes, n: int) -> dict[str, Any]:
    """The server's share of a stroke: one websocket, strokes one at a time, no browser."""
    lat: list[float] = []
    done: list[float] = []
    errors: list[str] = []
    await _ws_client(url, init, stroke, n, random.Random(7), lat, errors, think=(0.2, 0.4), done=done)
    return {"lat": lat, "done": done, "errors": errors}


# --- the phases ------------------------------------------------------------------------------------
def _summary(prefix: str, samples: list[dict[str, float]]) -> dict[str, Any]:
    pred = [s["pred"] for s in samples]
    settled = [s["settled"] for s in samples]
    return {f"{prefix}_to_prediction_p50_ms": round(common.pct(pred, 50), 1),
            f"{prefix}_to_prediction_p95_ms": round(common.pct(pred, 95), 1),
            f"{prefix}_to_settled_p50_ms": round(common.pct(settled, 50), 1),
            f"{prefix}_to_settled_p95_ms": round(common.pct(settled, 95), 1),
            f"{prefix}_browser_longtask_p50_ms": round(common.pct([s["longtask"] for s in samples], 50), 1),
            f"{prefix}_strokes": len(samples)}


PHASES = ("one", "ten", "server", "ws")


async def _run(quick: bool, log: Any, phases: tuple[str, ...] = PHASES) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    p = QUICK if quick else FULL
    data = common.data_dir()
    tmp = Path(tempfile.mkdtemp(prefix="bench_draw_"))
    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    pre = common.ROOT / "models" / "pretrained"
    if not (pre / "model.keras").is_file():
        raise SystemExit("models/pretrained/model.keras is missing: the Draw page has nothing to draw for")
    shutil.copytree(pre, runs_dir / "pretrained", ignore=shutil.ignore_patterns("evaluation"))
    server = common.Server(runs_dir, data, tmp / "server.log")
    out: dict[str, Any] = {"draw_machine": common.machine()}
    try:
        server.wait_healthy()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=common.CHROMIUM, args=common.CHROMIUM_ARGS,
                                               headless=True)
            try:
                # 1. one session; its websocket is recorded for phase 3
                ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                frames: list[bytes] = []
                page = await _open_draw(ctx, server.url, frames)
                await _draw_digits(page, 2)  # warm-up: first traces, first figures (not counted)
                await _clear(page)
                t = time.perf_counter()
                one = await _draw_digits(page, p["strokes"])
                out.update(_summary("draw_stroke", one))
                out["draw_stroke_live_updates_per_stroke"] = round(sum(s["live"] for s in one) / len(one), 2)
                out["draw_stroke_live_updates_per_s"] = round(
                    sum(s["live"] for s in one) / max(1e-9, sum(s["stroke"] for s in one) / 1000), 2)
                out["draw_stroke_mean_stroke_ms"] = round(sum(s["stroke"] for s in one) / len(one), 1)
                whole = [s for s in one if s["complete"]]
                out["draw_digits_read_right"] = f"{sum(1 for s in whole if s['shown'] == str(s['digit']))}/{len(whole)}"
                out["draw_1_session_errors"] = len(page.errors)
                out["draw_1_session_load1"] = round(os.getloadavg()[0], 2)
                log(f"  one session: {len(one)} strokes in {time.perf_counter() - t:.0f} s")
                await ctx.close()

                # 2. ten sessions drawing at once
                ctxs = [] if "ten" not in phases else [await browser.new_context(viewport={"width": 1400, "height": 1000})
                        for _ in range(p["sessions"])]
                pages = await asyncio.gather(*[_open_draw(c, server.url) for c in ctxs])
                t = time.perf_counter()
                results = [] if not ctxs else await asyncio.gather(*[
                    _draw_digits(pg, p["session_strokes"], start=i, think=(0.3, 1.5), rng=random.Random(i))
                    for i, pg in enumerate(pages)], return_exceptions=True)
                many = [s for r in results if isinstance(r, list) for s in r]
                errs = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
                errs += [e for pg in pages for e in pg.errors]
                if many:
                    out.update(_summary("draw_10_sessions_stroke", many))
                if ctxs:
                    out["draw_10_sessions_errors"] = len(errs)
                if errs:
                    out["draw_10_sessions_first_error"] = errs[0]
                if ctxs:
                    out["draw_10_sessions_load1"] = round(os.getloadavg()[0], 2)
                    log(f"  ten sessions: {len(many)} strokes in {time.perf_counter() - t:.0f} s")
                for c in ctxs:
                    await c.close()
            finally:
                await browser.close()

        # 3. the server alone (one websocket, one stroke at a time), then thirty websockets at once
        init, stroke = _pick_frames(frames)
        if "server" in phases:
            srv = await _server_only(server.url, init, stroke, p["strokes"])
            if srv["lat"]:
                out["draw_server_stroke_to_prediction_p50_ms"] = round(common.pct(srv["lat"], 50), 1)
                out["draw_server_stroke_to_runs_done_p50_ms"] = round(common.pct(srv["done"], 50), 1)
            out["draw_server_errors"] = len(srv["errors"])
            out["draw_server_load1"] = round(os.getloadavg()[0], 2)
        if "ws" not in phases:
            return out
        t = time.perf_counter()
        ws = await _ws_phase(server.url, init, stroke, p["ws_clients"], p["ws_strokes"])
        out["draw_30_ws_strokes"] = len(ws["lat"])
        out["draw_30_ws_stroke_to_prediction_p50_ms"] = round(common.pct(ws["lat"], 50), 1) if ws["lat"] else None
        out["draw_30_ws_stroke_to_prediction_p95_ms"] = round(common.pct(ws["lat"], 95), 1) if ws["lat"] else None
        out["draw_30_ws_errors"] = len(ws["errors"])
        if ws["errors"]:
            out["draw_30_ws_first_error"] = ws["errors"][0]
        out["draw_30_ws_load1"] = round(os.getloadavg()[0], 2)
        log(f"  thirty websockets: {len(ws['lat'])} strokes in {time.perf_counter() - t:.0f} s")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run(quick: bool = False, log: Any = print, phases: tuple[str, ...] = PHASES) -> dict[str, Any]:
    """The figures of the phases asked for (the one-session phase always runs: it records the stroke
    that the websocket phases replay)."""
    return asyncio.run(_run(quick, log, phases))


def print_with_load(res: dict[str, Any]) -> None:
    """The figures, each with the load average of the phase that produced it, and its target."""
    loads = {"draw_stroke": "draw_1_session_load1", "draw_digits": "draw_1_session_load1",
             "draw_1_session": "draw_1_session_load1", "draw_10_sessions": "draw_10_sessions_load1",
             "draw_30_ws": "draw_30_ws_load1", "draw_server": "draw_server_load1"}
    print("\n== Draw page latency (load = 1-minute load average at the end of the phase) ==")
    w = max(len(k) for k in res)
    for k, v in res.items():
        if k.endswith("_load1") or k == "draw_machine":
            continue
        load = next((res.get(lk) for pre, lk in loads.items() if k.startswith(pre)), None)
        tgt = f"   (target {TARGETS[k]})" if k in TARGETS else ""
        print(f"{k:<{w}}  {common.fmt(v):>14}   load {common.fmt(load)}{tgt}")
    print(f"machine: {res.get('draw_machine')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK['strokes']} strokes instead of {FULL['strokes']}")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of: " + ",".join(PHASES))
    a = ap.parse_args()
    res = run(a.quick, log=lambda m: print(m, file=sys.stderr, flush=True),  # stdout: the figures only
              phases=tuple(a.phases.split(",")))
    if a.json:
        print(common.dumps(res))
    else:
        print_with_load(res)
    return 0 if not res.get("draw_10_sessions_errors") and not res.get("draw_30_ws_errors") else 1


if __name__ == "__main__":
    sys.exit(main())
