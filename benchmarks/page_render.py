"""Page render times in real Chromium: each page's cold render (its first visit on a server just
started with `streamlit run app.py`) and warm render (a later visit), to the title and to settled.

A visit starts with a click on the page's link in the sidebar (a fresh server is always entered through
Home first, as a user does: a deep link as the very first request gets Streamlit's pages/-folder
navigation). Two moments are taken in the page's own clock (`performance.now()`):
- **title**: the page's `h1` with its title is in the DOM (the user sees which page this is);
- **settled**: the script has finished, nothing shows a spinner or a progress bar, and the page has not
  changed for 1 s (a MutationObserver records every change); the figure is the time of the last change.
Home's cold figures run from the navigation start (the server's first script run included).

Each cold visit gets a fresh server and a fresh runs folder holding the bundled pretrained model without
its cached predictions, as a first launch after installing: Evaluate's cold visit therefore computes
10,000 predictions (TensorFlow starts). `evaluate_cold_cached` is a second fresh server on the runs
folder that visit left behind (predictions cached there, as after a restart). Warm visits go Home ->
page again on the same server: the median of 2 (quick) or 3 visits. Data: the shared MNIST directory.

    python benchmarks/page_render.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402

PAGES = {"home": "mnist-studio", "train": "Train", "dataset": "Dataset", "evaluate": "Evaluate", "draw": "Draw"}
NAV = {"home": "Home", "train": "Train", "dataset": "Dataset", "evaluate": "Evaluate", "draw": "Draw"}  # sidebar links
QUIET_MS = 1000  # settled: no change in the page for this long
LIMIT_S = 240

# Runs in every document: records when the wanted title appeared and when the page last changed.
_MARKS = """
window.__mark = {t0: 0, want: null, title: null, last: 0};
new MutationObserver(() => {
  const m = window.__mark, now = performance.now();
  m.last = now;
  if (m.want !== null && m.title === null) {
    for (const h of document.querySelectorAll("[data-testid='stMain'] h1")) {
      if (h.textContent.trim().startsWith(m.want)) { m.title = now; break; }
    }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""
_BUSY = """() => document.querySelector("[data-testid='stApp'][data-test-script-state='running']") !== null
  || document.querySelector("[data-testid='stMain'] [data-testid='stSpinner'], "
                            + "[data-testid='stMain'] [data-testid='stProgress']") !== null"""


def _arm(page: Any, title: str, from_navigation: bool = False) -> None:
    page.evaluate(f"""() => {{ const m = window.__mark; m.want = {title!r}; m.title = null;
                      m.t0 = {0 if from_navigation else 'performance.now()'}; m.last = performance.now(); }}""")


def _measure(page: Any) -> tuple[float, float]:
    """(seconds to the title, seconds to settled) of the visit armed last."""
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        m = page.evaluate("() => window.__mark")
        now = page.evaluate("() => performance.now()")
        if m["title"] is not None and not page.evaluate(_BUSY) and now - m["last"] >= QUIET_MS:
            return (m["title"] - m["t0"]) / 1000, (m["last"] - m["t0"]) / 1000
        page.wait_for_timeout(100)
    raise RuntimeError(f"the page did not settle within {LIMIT_S} s")


def _visit(page: Any, name: str) -> tuple[float, float]:
    """Click the page's sidebar link (from wherever the browser is) and measure the visit."""
    _arm(page, PAGES[name])
    page.locator("[data-testid='stSidebarNav'] a", has_text=NAV[name]).first.click()
    return _measure(page)


def _open_home(page: Any, url: str) -> tuple[float, float]:
    page.goto("about:blank")
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => window.__mark !== undefined")
    _arm(page, PAGES["home"], from_navigation=True)
    return _measure(page)


def _fresh_runs(tmp: Path, tag: str) -> Path:
    """A runs folder with the bundled pretrained model, without its cached predictions."""
    root = tmp / f"runs-{tag}"
    root.mkdir()
    pre = common.ROOT / "models" / "pretrained"
    if pre.is_dir():
        shutil.copytree(pre, root / "pretrained", ignore=shutil.ignore_patterns("evaluation"))
    return root


def _cold(browser: Any, data: Path, runs_dir: Path, tmp: Path, name: str, warm_visits: int) -> dict[str, Any]:
    """A fresh server: Home (cold), then the page (cold), then `warm_visits` times Home -> page."""
    server = common.Server(runs_dir, data, tmp / f"server-{name}-{time.time_ns()}.log")
    try:
        server.wait_healthy()
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        ctx.add_init_script(_MARKS)
        page = ctx.new_page()
        page.set_default_timeout(LIMIT_S * 1000)
        out: dict[str, Any] = {"home_cold": _open_home(page, server.url)}
        if name != "home":
            out["cold"] = _visit(page, name)
        warm = []
        for _ in range(warm_visits):
            _visit(page, "train" if name == "home" else "home")  # away, then back
            warm.append(_visit(page, name))
        out["warm"] = warm
        ctx.close()
        return out
    finally:
        server.stop()


def run(quick: bool = False, log: Any = print) -> dict[str, Any]:
    data = common.data_dir()
    warm_visits = 2 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="bench_pages_"))
    res: dict[str, Any] = {}
    home_cold = []
    try:
        with common.browser() as b:
            for name in PAGES:
                runs_dir = _fresh_runs(tmp, name)
                r = _cold(b, data, runs_dir, tmp, name, warm_visits)
                home_cold.append(r["home_cold"])
                cold = r["home_cold"] if name == "home" else r["cold"]
                warm_t = float(np.median([w[0] for w in r["warm"]]))
                warm_s = float(np.median([w[1] for w in r["warm"]]))
                res.update({f"page_{name}_cold_title_s": round(cold[0], 2), f"page_{name}_cold_settled_s": round(cold[1], 2),
                            f"page_{name}_warm_title_s": round(warm_t, 2), f"page_{name}_warm_settled_s": round(warm_s, 2)})
                log(f"  {name:9s} cold: title {cold[0]:5.2f} s, settled {cold[1]:5.2f} s   warm: title {warm_t:5.2f} s, "
                    f"settled {warm_s:5.2f} s")
                if name == "evaluate":  # a restart: a fresh server on the runs folder that now holds the cache
                    r2 = _cold(b, data, runs_dir, tmp, name, 0)
                    res.update({"page_evaluate_cold_cached_title_s": round(r2["cold"][0], 2),
                                "page_evaluate_cold_cached_settled_s": round(r2["cold"][1], 2)})
                    log(f"  evaluate cold, predictions cached: title {r2['cold'][0]:5.2f} s, "
                        f"settled {r2['cold'][1]:5.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["page_home_cold_settled_median_s"] = round(float(np.median([h[1] for h in home_cold])), 2)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = run(a.quick)
    common.print_table(res, "page render (s)")
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
