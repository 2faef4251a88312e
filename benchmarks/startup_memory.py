"""Start-up time, "no TensorFlow on Home/Dataset", serving memory and training peak memory.

1. `streamlit run app.py` (own runs folder, the shared data) to the Home page rendered in headless
   Chromium: the app's script state is `notRunning` and the Home title is visible -> `startup_s`,
   measured from the moment the server process is launched (the browser is started beforehand).
2. After Home, and after Dataset, whether the server process has TensorFlow's library mapped
   (/proc/<pid>/maps): both must be false.
3. The Draw page loads the current model (the pretrained one, copied into the runs folder; without it,
   a tiny run trained here) -> server RSS `rss_serving_mb`, and whether a model really got loaded.
4. One training (the trainer process the Train page starts) with the Train page open: summed RSS of the
   server and the trainer, sampled every 0.2 s -> `rss_training_peak_mb`; and their summed PSS ->
   `pss_training_peak_mb`, the physical memory the pair really holds (summed RSS counts the ~390 MB of
   TensorFlow library pages both processes map twice).

    python benchmarks/startup_memory.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

QUICK = dict(train_limit=3000, train_epochs=1, startups=1)
FULL = dict(train_limit=None, train_epochs=2, startups=3)


def _prepare_runs(runs_dir: Path, data: Path) -> str:
    """A model for the Draw page: the bundled pretrained one, else a tiny run trained now."""
    pre = common.ROOT / "models" / "pretrained"
    if (pre / "model.keras").is_file():
        shutil.copytree(pre, runs_dir / "pretrained", ignore=shutil.ignore_patterns("evaluation"))
        return "pretrained"
    subprocess.run([sys.executable, "-m", "mnist_core", "train", "--preset", "classic", "--epochs", "1",
                    "--limit", "600", "--data-dir", str(data), "--name", "tiny"],
                   cwd=common.ROOT, env=common.env_for(runs_dir, data), check=True, capture_output=True)
    return "tiny (no models/pretrained yet)"


def _startup(b: Any, runs_dir: Path, data: Path, log_path: Path) -> tuple[float, float, common.Server, Any]:
    """(seconds to Home rendered, seconds to /_stcore/health answering, server, page)."""
    page = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(90_000)
    server = common.Server(runs_dir, data, log_path)
    health = server.wait_healthy()
    page.goto(server.url)
    common.wait_idle(page)
    page.get_by_role("heading", name="mnist-studio").wait_for()
    return time.perf_counter() - server.t_launch, health, server, page


def _goto(page: Any, url: str) -> None:
    page.goto(url)
    common.wait_idle(page)


def run(quick: bool = False, log: Any = print) -> dict[str, Any]:
    p = QUICK if quick else FULL
    data = common.data_dir()
    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    model_used = _prepare_runs(runs_dir, data)
    out: dict[str, Any] = {}
    with common.browser() as b:
        times, healths = [], []
        for i in range(p["startups"] - 1):  # extra cold starts for a median; the last one is kept running
            t, h, server, _ = _startup(b, runs_dir, data, tmp / f"server{i}.log")
            server.stop()
            times.append(t)
            healths.append(h)
        t, h, server, page = _startup(b, runs_dir, data, tmp / "server.log")
        times.append(t)
        healths.append(h)
        try:
            pid = server.proc.pid
            out["startup_s"] = round(sorted(times)[len(times) // 2], 3)
            out["startup_runs_s"] = [round(x, 3) for x in times]
            # where start-up goes: the server process up and answering, then the first page run
            out["startup_server_ready_s"] = round(sorted(healths)[len(healths) // 2], 3)
            out["home_imports_tensorflow"] = common.has_tensorflow(pid)
            _goto(page, f"{server.url}/dataset")
            page.wait_for_timeout(500)
            out["dataset_imports_tensorflow"] = common.has_tensorflow(pid)
            out["rss_idle_mb"] = round(common.rss_mb(pid), 1)

            _goto(page, f"{server.url}/draw")
            loaded = common.has_tensorflow(pid)
            if not loaded:  # a Draw page that loads lazily or not at all: try Evaluate, which needs the model
                _goto(page, f"{server.url}/evaluate")
                loaded = common.has_tensorflow(pid)
            out["rss_serving_mb"] = round(common.rss_mb(pid), 1)
            out["rss_serving_model_loaded"] = loaded
            out["rss_serving_model"] = model_used
            if not loaded:
                log("  WARNING: neither Draw nor Evaluate loaded a model: rss_serving_mb has no model in it")

            _goto(page, f"{server.url}/train")
            cfg_args = ["--preset", "classic", "--epochs", str(p["train_epochs"])]
            if p["train_limit"]:
                cfg_args += ["--limit", str(p["train_limit"])]
            trainer = subprocess.Popen([sys.executable, "-m", "mnist_core", "train", *cfg_args, "--run-dir",
                                        str(runs_dir / "memtrain"), "--data-dir", str(data)],
                                       cwd=common.ROOT, env=common.env_for(runs_dir, data),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pids = lambda: [pid, trainer.pid, *common.children(pid), *common.children(trainer.pid)]  # noqa: E731
            with common.RssSampler(pids, 0.2) as s:
                page.wait_for_timeout(1500)
                _goto(page, f"{server.url}/train")  # the page attaches to the running run and polls it
                while trainer.poll() is None:
                    page.wait_for_timeout(200)
            out["rss_training_peak_mb"] = round(s.peak_mb, 1)
            out["pss_training_peak_mb"] = round(s.peak_pss_mb, 1)  # shared library pages counted once
            out["rss_training_samples"] = s.samples
            out["rss_training_ok"] = trainer.returncode == 0
        finally:
            server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


TARGETS = {"startup_s": "<= 4", "home_imports_tensorflow": "False", "dataset_imports_tensorflow": "False",
           "rss_serving_mb": "<= 800", "rss_training_peak_mb": "<= 1600"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = run(a.quick)
    common.print_table(res, "start-up and memory", TARGETS)
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
