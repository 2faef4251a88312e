"""Sweep engines: a 4-trial sweep's wall time on the embedded engine against Ray Tune on the same
machine, and the overhead of a training run as a Ray task against the same training run locally.

Both sides run the same work through the app's own paths. Sweep: `sweeps.start_sweep` with four
learning rates (grid, ASHA off so both engines train exactly the same epochs; a second pair with ASHA
on shows what early stopping saves), two trials at a time on each side (the embedded engine's training
slots, MNIST_MAX_TRAININGS=2; Ray's max_concurrent=2 on a head with 2 CPUs), timed from the start call
until every trial folder has ended. Training: `scheduler.submit` of one config with
MNIST_TRAIN_ENGINE=local and =ray in turn (AB in quick mode, ABBA in full), timed from submit until the
run has ended; the overhead is that wall time minus the trainer's own training and evaluation seconds.
The Ray head is a real local one (`ray_engine.LocalHead`, started once; its start-up is reported on its
own and counted in neither side). Absolute times drift on shared machines: the ratios are measured side
by side in one run.

    python benchmarks/sweep_engines.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402

QUICK = dict(limit=2000, epochs=2, order="AB")
FULL = dict(limit=10000, epochs=3, order="ABBA")
CONCURRENT = 2
RATES = [3e-3, 1e-3, 1e-6, 3e-6]  # two good, two hopeless: ASHA has something to stop


@contextmanager
def environment(**env: str | None):
    """Set (or, with None, remove) environment variables for the processes started inside."""
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait(pred: Any, timeout: float = 3600.0, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(poll)


def sweep_config(limit: int, epochs: int, asha: bool) -> Any:
    from mnist_core.sweep import SweepConfig

    return SweepConfig.from_dict({
        "base": {"epochs": epochs, "limit": limit}, "space": {"learning_rate": {"choices": RATES}},
        "method": "grid", "early_stopping": "asha" if asha else "none", "max_concurrent": CONCURRENT,
        "asha": {"grace_period": 1, "reduction_factor": 2}})


def time_sweep(engine: str, address: str | None, sweep: Any, root: Path, data: Path, name: str) -> dict[str, Any]:
    from mnist_core import sweeps

    with environment(MNIST_RUNS_DIR=str(root), MNIST_RAY_ADDRESS=address, MNIST_MAX_TRAININGS=str(CONCURRENT),
                     MNIST_TRAIN_ENGINE=None):
        t = time.perf_counter()
        folder = sweeps.start_sweep(sweep, name, root=root, data_dir=str(data), engine=engine)
        _wait(lambda: not sweeps.read_sweep(folder).active)
        wall = time.perf_counter() - t
    info = sweeps.read_sweep(folder)
    if info.state != "finished" or any(tr.state not in ("finished", "stopped") for tr in info.trials):
        raise RuntimeError(f"{engine} sweep {info.state}: {info.error}; "
                           + "; ".join(f"{tr.name} {tr.state} {tr.error}" for tr in info.trials))
    return {"wall_s": wall, "epochs": sum(tr.epochs_done for tr in info.trials),
            "stopped": sum(tr.state == "stopped" for tr in info.trials),
            "best": max(info.score(tr) or 0.0 for tr in info.trials)}


def time_training(engine: str, address: str | None, cfg: Any, root: Path, data: Path, name: str) -> dict[str, Any]:
    from mnist_core import runs, scheduler

    with environment(MNIST_RUNS_DIR=str(root), MNIST_RAY_ADDRESS=address, MNIST_TRAIN_ENGINE=engine,
                     MNIST_MAX_TRAININGS="1"):
        t = time.perf_counter()
        run = scheduler.submit(cfg, name, root=root, data_dir=str(data))
        _wait(lambda: runs.read_status(run)["state"] not in runs.ACTIVE)
        wall = time.perf_counter() - t
    st, m = runs.read_status(run), runs.read_metrics(run)
    if st["state"] != "finished":
        raise RuntimeError(f"{engine} training {st['state']}: {st.get('error')}: {runs.log_tail(run)[-1500:]}")
    return {"wall_s": wall, "train_s": m["train_seconds"], "eval_s": m["eval_seconds"],
            "overhead_s": wall - m["train_seconds"] - m["eval_seconds"]}


def run(quick: bool = False, log: Any = print) -> dict[str, Any]:
    from mnist_core.config import preset_config
    from mnist_core.ray_engine import LocalHead

    p = QUICK if quick else FULL
    data = common.data_dir()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    out: dict[str, Any] = {}
    t = time.perf_counter()
    head = LocalHead(num_cpus=CONCURRENT)
    address = head.start()
    out["ray_head_start_s"] = round(time.perf_counter() - t, 2)
    try:
        sides: dict[str, list[dict[str, Any]]] = {}
        for asha in (False, True):
            sweep = sweep_config(p["limit"], p["epochs"], asha)
            for engine, addr in (("embedded", None), ("ray", address)):
                tag = f"{engine}{'_asha' if asha else ''}"
                r = time_sweep(engine, addr, sweep, tmp / f"sweep_{tag}", data, tag.replace("_", "-"))
                sides[tag] = [r]
                log(f"  sweep {tag:<13} {r['wall_s']:7.1f} s  ({r['epochs']} epochs, {r['stopped']} stopped early)")
        cfg = preset_config("classic", epochs=p["epochs"], limit=p["limit"])
        trainings: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for i, which in enumerate(p["order"]):
            engine = "local" if which == "A" else "ray"
            r = time_training(engine, address if engine == "ray" else None, cfg, tmp / "train", data, f"{engine}{i}")
            trainings[engine].append(r)
            log(f"  training {engine:<5} {r['wall_s']:6.1f} s wall, {r['train_s']:.1f} s training, "
                f"{r['overhead_s']:.1f} s around it")
    finally:
        head.stop()
    med = lambda rs, k: float(np.median([r[k] for r in rs]))  # noqa: E731
    emb, ray_ = sides["embedded"][0], sides["ray"][0]
    out.update({
        "sweep_embedded_wall_s": round(emb["wall_s"], 1),
        "sweep_ray_wall_s": round(ray_["wall_s"], 1),
        "sweep_ray_over_embedded": round(ray_["wall_s"] / emb["wall_s"], 3),
        "sweep_embedded_asha_wall_s": round(sides["embedded_asha"][0]["wall_s"], 1),
        "sweep_ray_asha_wall_s": round(sides["ray_asha"][0]["wall_s"], 1),
        "sweep_embedded_asha_epochs": sides["embedded_asha"][0]["epochs"],
        "sweep_ray_asha_epochs": sides["ray_asha"][0]["epochs"],
        "sweep_epochs_without_asha": emb["epochs"],
        "train_local_wall_s": round(med(trainings["local"], "wall_s"), 2),
        "train_ray_wall_s": round(med(trainings["ray"], "wall_s"), 2),
        "train_local_overhead_s": round(med(trainings["local"], "overhead_s"), 2),
        "train_ray_overhead_s": round(med(trainings["ray"], "overhead_s"), 2),
        "train_ray_extra_s": round(med(trainings["ray"], "wall_s") - med(trainings["local"], "wall_s"), 2),
        "train_ray_over_local": round(med(trainings["ray"], "wall_s") / med(trainings["local"], "wall_s"), 3),
        "sweep_engines_model": f"classic, {len(RATES)} learning rates, {p['limit']} images, {p['epochs']} epochs, "
                               f"{CONCURRENT} at a time; trainings order {p['order']}",
    })
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and epochs, one training per side")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    print(f"machine: {common.machine()}", flush=True)
    res = run(a.quick)
    common.print_table(res, "sweep engines")
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
