"""Helpers shared by the benchmark scripts: where the data is, what machine this is, percentiles,
a table printer, a Streamlit server and a headless Chromium, and RSS sampling from /proc.

Every comparison in these scripts is measured side by side in one run (absolute times drift on shared
machines); the scripts print ratios next to the raw figures for that reason."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python benchmarks/x.py` can import mnist_core
    sys.path.insert(0, str(ROOT))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def data_dir() -> Path:
    """MNIST_DATA_DIR, else ../shared/data/mnist next to the repository."""
    d = Path(os.environ.get("MNIST_DATA_DIR") or ROOT.parent / "shared" / "data" / "mnist").resolve()
    if not d.is_dir():
        raise SystemExit(f"no MNIST data directory at {d}: set MNIST_DATA_DIR")
    return d


def machine() -> str:
    """CPU model, logical cores, memory and the 1-minute load average when the run started (the load
    says how contended the figures are)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{mem}{load}, {platform.system()} {platform.release()}"


def today() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def print_table(results: dict[str, Any], title: str = "", targets: dict[str, str] | None = None) -> None:
    """Key | value | target, one row per figure."""
    targets = targets or {}
    if title:
        print(f"\n== {title} ==")
    w = max((len(k) for k in results), default=10)
    for k, v in results.items():
        t = f"   (target {targets[k]})" if k in targets else ""
        print(f"{k:<{w}}  {fmt(v):>14}{t}")
    sys.stdout.flush()


def write_json(path: Path, obj: dict[str, Any]) -> None:
    from mnist_core.runs import atomic_write_json

    atomic_write_json(path, obj)


def env_for(runs_dir: Path, data: Path) -> dict[str, str]:
    return {**os.environ, "MNIST_RUNS_DIR": str(runs_dir), "MNIST_DATA_DIR": str(data), "MNIST_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free port with its own runs folder; `t_launch` is when it was started."""

    def __init__(self, runs_dir: Path, data: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")
        self.log_path = log
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env_for(runs_dir, data), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_healthy(self, timeout: float = 90) -> float:
        """Seconds from launch until /_stcore/health answers."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("streamlit exited at start-up: " + self.log_path.read_text()[-2000:])
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return time.perf_counter() - self.t_launch
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout} s")

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Debian Chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM} (set CHROMIUM_PATH)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def wait_idle(page: Any, timeout_ms: int = 90_000) -> None:
    """The app has rendered and no script run is in progress."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)


# --- memory ---------------------------------------------------------------------------------------
def _proc_kb_field_mb(path: str, field: str) -> float:
    """A "Field:   123 kB" line of a /proc file, in MB (0 if the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (0 if it is gone)."""
    return _proc_kb_field_mb(f"/proc/{pid}/status", "VmRSS:")


def pss_mb(pid: int) -> float:
    """Proportional set size of one process in MB (0 if it is gone): shared pages (TensorFlow's
    libraries, mapped by both the server and the trainer) split between the processes that map them,
    so summing PSS over processes counts each physical page once, unlike summing RSS."""
    return _proc_kb_field_mb(f"/proc/{pid}/smaps_rollup", "Pss:")


def children(pid: int) -> list[int]:
    """All descendants of pid (from /proc/*/stat parent links)."""
    parent: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parent.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in parent.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def has_tensorflow(pid: int) -> bool:
    """Whether the process has TensorFlow's shared library mapped (i.e. `import tensorflow` happened)."""
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


class RssSampler:
    """Samples the summed RSS (`peak_mb`) and summed PSS (`peak_pss_mb`) of some processes every
    `every_s` seconds in a thread."""

    def __init__(self, pids: Any, every_s: float = 0.2):
        self._pids = pids  # a callable returning the pids to sum, so new processes are picked up
        self.every_s = every_s
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = set(self._pids())
            self.peak_mb = max(self.peak_mb, sum(rss_mb(p) for p in pids))
            self.peak_pss_mb = max(self.peak_pss_mb, sum(pss_mb(p) for p in pids))
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()


def read_history(run_dir: Path) -> list[dict[str, float]]:
    from mnist_core.runs import read_history as rh

    return rh(run_dir)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)
