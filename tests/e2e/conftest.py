"""Real-browser fixtures: a `streamlit run app.py` server on a free port (own runs folder holding a copy
of the pretrained model, the shared MNIST data) and Playwright pages in Debian's Chromium.

The browser tests must not silently disappear: if Chromium or Playwright is missing they fail when
MNIST_REQUIRE_E2E=1 (CI sets it) and are skipped otherwise."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

pytestmark = pytest.mark.e2e


def _need(reason: str):
    if os.environ.get("MNIST_REQUIRE_E2E") == "1":
        pytest.fail(f"browser tests cannot run: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def e2e_runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e_runs")
    pre = ROOT / "models" / "pretrained"
    if pre.is_dir():
        shutil.copytree(pre, root / "pretrained", ignore=shutil.ignore_patterns("evaluation"))
    return root


@contextmanager
def streamlit_server(script: str, env_extra: dict[str, str], log_path: Path):
    """Run `streamlit run <script>` (cwd: the repo, so its .streamlit/config.toml applies) on a free port;
    yield the base URL once /_stcore/health answers; stop it and its children (trainers) afterwards."""
    port = _free_port()
    env = {**os.environ, "MNIST_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
            if proc.poll() is not None:
                pytest.fail("streamlit exited at start-up: " + log_path.read_text()[-2000:])
        else:
            pytest.fail("streamlit did not answer /_stcore/health within 60 s: " + log_path.read_text()[-2000:])
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def app_server(e2e_runs_root, data_dir):
    """The real app with its own runs folder and the shared MNIST; yields its base URL."""
    env = {"MNIST_RUNS_DIR": str(e2e_runs_root), "MNIST_DATA_DIR": str(data_dir)}
    with streamlit_server("app.py", env, e2e_runs_root / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        _need(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh browser context (its own session) at 1400x1000, with console errors collected."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.console_errors = []
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    yield pg
    ctx.close()


def open_page(page, app_server: str, path: str = "") -> None:
    """Go to a page of the app and wait until Streamlit has finished running the script."""
    page.goto(f"{app_server}/{path}")
    wait_idle(page)


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait for the app to be rendered and no script run to be in progress."""
    # stApp carries the script state, but it also reads notRunning just after a (re)load, before the
    # first run has started: so wait for something the script drew as well.
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_timeout(300)


def no_exception(page) -> None:
    """Assert that no Streamlit exception box is on the page."""
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
