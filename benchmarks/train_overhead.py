"""Training overhead: images/s of the app's training path vs a plain `model.fit`, side by side.

App path: a real `streamlit run app.py` server (own runs folder) with the Train page open in headless
Chromium, where the benchmark does what a user does: sets the form (the `classic` preset's defaults,
the subset and the epochs), presses Start, and keeps the page open while the run trains (the page
reruns after Start, then polls the run). The trainer is the one the page starts (`python -m mnist_core
train --config JSON --run-dir DIR`); its config is checked to be exactly the one the plain side trains. Plain path: a separate process that builds the
same model (`architectures.build_model`), same optimiser, batch size, training/validation split and
epochs, and calls `model.fit` on in-memory float arrays. Runs alternate (ABBA in full mode). images/s
per epoch = training images / epoch seconds (validation included in both); the first epoch (graph
tracing) is reported separately and excluded from the ratio.

Steady throughput is taken from the median epoch of each side, so the ratio compares the two training
loops rather than the luck of the draw: Keras's own `model.fit` on arrays builds a `tf.data` pipeline
with autotuning, whose model thread now and then holds up the end of an epoch for 5-20 s with the CPU
idle (the app's pipeline has autotuning off for that reason; benchmarks/README.md). Such stalled epochs
(over 1.5x their side's median) are counted per side, and the mean-based ratio, which includes them, is
reported next to the median-based one.

What the open page itself costs is measured directly too: the CPU time of the Streamlit server and of
the browser (every process under Playwright's driver) while the app-side trainings run, as a share of
one core (`train_page_cpu_share`, with the server's and the browser's parts). Unlike the ratio, that
figure hardly depends on how busy the rest of the machine is.

Quick mode trains 4 epochs of 9,000 images per run (3 steady epochs of ~2.5 s each, 6 per side): with
epochs under a second (3,600 images) the ratio moved by +-0.3 between runs on a quiet machine.

    python benchmarks/train_overhead.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402

QUICK = dict(limit=10000, epochs=4, order="ABBA")
FULL = dict(limit=None, epochs=4, order="ABBA")
STALL = 1.5  # an epoch over 1.5x its side's median epoch counts as stalled


def bench_config(limit: int | None, epochs: int) -> Any:
    """The Train page's default config (the `classic` preset) on `limit` images."""
    from mnist_core.config import preset_config

    return preset_config("classic", epochs=epochs, limit=limit)


# --- plain model.fit (runs in its own process) -------------------------------------------------------
def plain_fit(config_json: str, data: str) -> dict[str, Any]:
    import keras

    from mnist_core.architectures import build_model
    from mnist_core.config import TrainConfig
    from mnist_core.data import load_mnist
    from mnist_core.training import make_optimizer, split_data

    cfg = TrainConfig.from_json(config_json)
    ds = load_mnist(data, "data_dir")
    x_fit, y_fit, x_val, y_val = split_data(ds, cfg)
    xf = x_fit.astype("float32")[..., None] / 255.0
    xv = x_val.astype("float32")[..., None] / 255.0
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.arch)
    model.compile(optimizer=make_optimizer(cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class EpochClock(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.t)

    clock = EpochClock()
    model.fit(xf, y_fit, batch_size=cfg.batch_size, epochs=cfg.epochs, validation_data=(xv, y_val),
              shuffle=True, verbose=0, callbacks=[clock])
    return {"seconds": clock.seconds, "n_fit": len(x_fit)}


def _run_plain(cfg: Any, data: Path, runs_dir: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--plain-fit", cfg.to_json()], env=common.env_for(runs_dir, data),
                         cwd=common.ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"plain fit failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds of each live process (from /proc/PID/stat)."""
    out = {}
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return out


def _page_pids(server: common.Server) -> tuple[list[int], list[int]]:
    """(the server and its children, the browser: Playwright's driver and everything under it)."""
    drivers = []
    for pid in common.children(os.getpid()):
        try:
            if b"playwright" in Path(f"/proc/{pid}/cmdline").read_bytes():
                drivers.append(pid)
        except OSError:
            pass
    browser = [q for d in drivers for q in [d, *common.children(d)]]
    # The server's own processes, not the trainings it starts (`python -m mnist_core ...`, and theirs).
    trainers = set()
    for pid in common.children(server.proc.pid):
        try:
            if b"mnist_core" in Path(f"/proc/{pid}/cmdline").read_bytes():
                trainers.update([pid, *common.children(pid)])
        except OSError:
            pass
    return [q for q in [server.proc.pid, *common.children(server.proc.pid)] if q not in trainers], browser


def _set(page: Any, label: str, value: Any) -> None:
    box = page.locator("[data-testid='stMain']").get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    common.wait_idle(page)


def _fill_form(page: Any, server: common.Server, cfg: Any, name: str) -> None:
    """What a user does before Start: open the Train page, set the subset, the epochs and the name."""
    page.goto(f"{server.url}/train")
    common.wait_idle(page)
    main = page.locator("[data-testid='stMain']")
    if cfg.limit is not None:
        main.get_by_text("Use a subset", exact=True).click()
        common.wait_idle(page)
        _set(page, "Subset size (images)", cfg.limit)
    _set(page, "Epochs", cfg.epochs)
    _set(page, "Run name", name)


def _run_app(cfg: Any, data: Path, runs_dir: Path, server: common.Server, page: Any, name: str) -> dict[str, Any]:
    from mnist_core import runs

    # As a user does: the Train page is open, its form set, Start pressed; the page then shows the run in
    # its live panel and polls it (st.fragment(run_every=...)) while the tab stays open. The page's CPU is
    # counted from the click: its rerun after Start, and the polling.
    run_dir = runs_dir / name
    _fill_form(page, server, cfg, name)
    srv0, web0 = (_cpu_seconds(p) for p in _page_pids(server))
    t0 = time.perf_counter()
    page.locator("[data-testid='stMain']").get_by_role("button", name=re.compile("Start training")).click()
    deadline = time.monotonic() + 60
    while not runs.folder(run_dir).status.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Start on the Train page made no run {name}")
        page.wait_for_timeout(100)
    if runs.load_config(run_dir) != cfg:  # the plain fit must train exactly what the page started
        raise RuntimeError(f"the form started {runs.load_config(run_dir).to_json()}, not {cfg.to_json()}")
    while runs.read_status(run_dir)["state"] in runs.ACTIVE:
        page.wait_for_timeout(500)
    srv1, web1 = (_cpu_seconds(p) for p in _page_pids(server))
    wall = time.perf_counter() - t0
    # Processes started in the window (a new renderer) count from 0; those gone by its end are lost.
    page_cpu = {k: sum(v - before.get(pid, 0.0) for pid, v in after.items()) / wall
                for k, before, after in (("server", srv0, srv1), ("browser", web0, web1))}
    status = runs.read_status(run_dir)
    if status["state"] != "finished":
        raise RuntimeError(f"trainer {status['state']}: {status.get('error')}: {runs.log_tail(run_dir)[-2000:]}")
    hist = runs.read_history(run_dir)
    metrics = runs.read_metrics(run_dir)
    return {"seconds": [float(r["seconds"]) for r in hist], "n_fit": int(metrics["n_train"]),
            "train_seconds": metrics["train_seconds"], "page_cpu": page_cpu}


def _steady(runs: list[dict[str, Any]]) -> list[float]:
    """Seconds of every epoch after the first (tracing) one, over all runs of one side."""
    return [t for r in runs for t in (r["seconds"][1:] or r["seconds"])]


def _ips(r: dict[str, Any]) -> tuple[float, float]:
    """(images/s over epochs 2.. by their median, images/s of epoch 1)."""
    s = r["seconds"]
    return r["n_fit"] / float(np.median(s[1:] or s)), r["n_fit"] / s[0]


def run(quick: bool = False, log: Any = print) -> dict[str, Any]:
    p = QUICK if quick else FULL
    data = common.data_dir()
    cfg = bench_config(p["limit"], p["epochs"])
    tmp = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    app, plain = [], []
    server = common.Server(runs_dir, data, tmp / "server.log")
    try:
        server.wait_healthy()
        with common.browser() as b:
            page = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{server.url}/train")
            common.wait_idle(page)
            for i, which in enumerate(p["order"]):
                if which == "A":
                    r = _run_app(cfg, data, runs_dir, server, page, f"bench{i}")
                    app.append(r)
                    page.goto("about:blank")  # the plain fit gets no page polling next to it
                else:
                    r = _run_plain(cfg, data, runs_dir)
                    plain.append(r)
                cpu = r.get("page_cpu")
                log(f"  {'app  ' if which == 'A' else 'plain'} epochs: " + ", ".join(f"{s:.2f}s" for s in r["seconds"])
                    + f"  ({_ips(r)[0]:.0f} img/s after epoch 1)"
                    + (f"  page CPU: server {cpu['server']:.1%}, browser {cpu['browser']:.1%} of a core" if cpu else ""))
    finally:
        server.stop()
    n_fit = app[0]["n_fit"]
    app_s, plain_s = _steady(app), _steady(plain)
    app_ips, plain_ips = n_fit / float(np.median(app_s)), n_fit / float(np.median(plain_s))
    return {
        "train_images_per_s_app": round(app_ips, 1),
        "train_images_per_s_plain_fit": round(plain_ips, 1),
        "train_overhead_ratio": round(app_ips / plain_ips, 3),
        # Over all steady epochs, stalls included: what a user waits for on average.
        "train_overhead_ratio_mean": round(float(np.mean(plain_s)) / float(np.mean(app_s)), 3),
        "train_stalled_epochs_app": int(sum(t > STALL * np.median(app_s) for t in app_s)),
        "train_stalled_epochs_plain_fit": int(sum(t > STALL * np.median(plain_s) for t in plain_s)),
        "train_steady_epochs_per_side": len(app_s),
        "train_images_per_s_app_epoch1": round(float(np.median([_ips(r)[1] for r in app])), 1),
        "train_images_per_s_plain_fit_epoch1": round(float(np.median([_ips(r)[1] for r in plain])), 1),
        "train_page_cpu_share": round(float(np.mean([sum(r["page_cpu"].values()) for r in app])), 3),
        "train_page_cpu_share_server": round(float(np.mean([r["page_cpu"]["server"] for r in app])), 3),
        "train_page_cpu_share_browser": round(float(np.mean([r["page_cpu"]["browser"] for r in app])), 3),
        "train_overhead_model": f"{cfg.arch.preset}, batch {cfg.batch_size}, {n_fit} images, "
                                f"{cfg.epochs} epochs, order {p['order']}",
    }


TARGETS = {"train_overhead_ratio": ">= 0.95"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plain-fit", metavar="CONFIG_JSON", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain_fit:
        print(json.dumps(plain_fit(a.plain_fit, str(common.data_dir()))))
        return 0
    res = run(a.quick)
    common.print_table(res, "training overhead", TARGETS)
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
