"""The command line: `python -m mnist_core {train,evaluate,predict,runs,info} --help`.

`train` creates the run folder, waits for a training slot in the same queue as the app's trainings
(scheduler.py), trains, and writes everything there. Ctrl-C or SIGTERM stops it cleanly after the
current batch and the run is saved as `stopped` with the model so far. `supervise` and `_train` are
what the scheduler starts for a training queued from the app.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from . import runs, scheduler
from .config import OPTIMIZERS, PRESET_NAMES, SCHEDULES, ConfigError, TrainConfig, preset_config
from .data import DataError, describe_source, load_mnist


def _config_from_args(a: argparse.Namespace) -> TrainConfig:
    if a.config:
        # JSON text is not a path (and is often longer than a file name may be: is_file would raise).
        is_json = a.config.lstrip().startswith("{")
        text = a.config if is_json or not Path(a.config).is_file() else Path(a.config).read_text()
        cfg = TrainConfig.from_json(text)
        base = cfg.to_dict()
    else:
        base = preset_config(a.preset).to_dict()
    over = {"epochs": a.epochs, "batch_size": a.batch_size, "learning_rate": a.lr, "optimizer": a.optimizer,
            "lr_schedule": a.schedule, "validation_split": a.val_split, "limit": a.limit, "seed": a.seed}
    base.update({k: v for k, v in over.items() if v is not None})
    if a.augment is not None:
        base["augment"] = a.augment
    if a.early_stopping:
        base["early_stopping"] = True
    return TrainConfig.from_dict(base)


def _progress_printer(tty: bool):
    def on_batch(p: dict) -> None:
        if not tty:
            return
        done = p["batch"] / p["batches_per_epoch"]
        bar = "=" * int(done * 30)
        sys.stderr.write(f"\repoch {p['epoch']}/{p['epochs']} [{bar:<30}] {p['batch']}/{p['batches_per_epoch']} "
                         f"loss {p['loss']:.4f} acc {p['accuracy']:.4f}")
        sys.stderr.flush()

    def on_epoch(row: dict) -> None:
        if tty:
            sys.stderr.write("\n")
        val = f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}" if "val_loss" in row else ""
        print(f"epoch {row['epoch']}: loss {row['loss']:.4f} acc {row['accuracy']:.4f}{val} "
              f"({row['seconds']:.1f}s)", flush=True)

    return on_batch, on_epoch


def _train_here(run: runs.RunFolder, cfg: TrainConfig, data_dir: str | None, resume: bool = False) -> int:
    """Train an existing run folder in this process (a slot is already held); the exit code."""
    from .classset import training_data

    try:
        dataset = training_data(load_mnist(data_dir), cfg.data, run.path.parent)
    except DataError as e:
        runs.set_status(run, "failed", error=str(e), pid=None)
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"data: {dataset.source.describe()}", flush=True)
    from .training import train

    on_batch, on_epoch = _progress_printer(sys.stderr.isatty())
    from .sweeps import epoch_hook

    on_epoch = epoch_hook(run, on_epoch)  # a trial of a sweep asks ASHA at each epoch end whether to go on
    try:
        metrics = train(cfg, run.path, dataset, on_batch=on_batch, on_epoch=on_epoch, resume=resume)
    except (ConfigError, runs.RunError) as e:
        print(f"error: invalid setting {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a vanished runs folder: train() has recorded it in the status
        print(f"error: training failed: {e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"error: training failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    state = runs.read_status(run)["state"]
    print(f"{state}: test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}, "
          f"{metrics['train_seconds']:.1f}s, {metrics['images_per_s']:.0f} images/s", flush=True)
    return 0


def _stop_on_signals(run: runs.RunFolder) -> None:
    def on_signal(signum, frame):  # stop after the current batch, or leave the queue
        runs.request_stop(run)
        from . import training
        training.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _wait_and_train(run: runs.RunFolder, cfg: TrainConfig, data_dir: str | None, resume: bool = False) -> int:
    """Wait in the queue for a slot (in the foreground, saying so), then train here."""
    _stop_on_signals(run)
    shown: list[int] = []

    def on_wait(pos: int) -> None:  # say so once per place in line, not once per poll
        if not shown or shown[-1] != pos:
            shown.append(pos)
            print(f"queued: waiting for a training slot (number {pos + 1} in line)", flush=True)

    try:
        with scheduler.training_slot(run, on_wait=on_wait):
            return _train_here(run, cfg, data_dir, resume=resume)
    except KeyboardInterrupt:
        if runs.read_status(run).get("state") == "queued":
            runs.set_status(run, "stopped", error="cancelled before training started", pid=None)
        print("stopped", file=sys.stderr)
        return 130
    finally:
        try:
            scheduler.dispatch(run.path.parent)  # the next queued run may start now
        except OSError:
            pass


def cmd_resume(a: argparse.Namespace) -> int:
    run = runs.folder(a.resume)
    try:
        cfg = runs.load_config(run)
        scheduler.requeue_for_resume(run, pid=os.getpid())
    except runs.RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data_dir = a.data_dir or runs.read_status(run).get("data_dir")
    print(f"resuming {run.path} from its last checkpoint", flush=True)
    return _wait_and_train(run, cfg, data_dir, resume=True)


def cmd_train(a: argparse.Namespace) -> int:
    if a.resume:
        return cmd_resume(a)
    try:
        cfg = _config_from_args(a)
    except ConfigError as e:
        print(f"error: invalid setting {e}", file=sys.stderr)
        return 2
    try:  # refused before a run folder exists: data that is not there, a batch larger than the data
        cfg.check_against_data(describe_source(a.data_dir).n_train)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"error: invalid setting {e}", file=sys.stderr)
        return 2
    if a.run_dir:
        run_dir = Path(a.run_dir)
        root, name = run_dir.parent, run_dir.name
    else:
        root, name = runs.runs_root(), a.name or runs.default_run_name(cfg.arch.preset)
    try:
        scheduler.check_limits(None, root)
        # This process waits for its slot itself (pid): dispatchers leave the record to it.
        run = runs.folder(runs.create_run(cfg, name, root=root, data_dir=a.data_dir, pid=os.getpid()))
    except runs.RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot create the run folder: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"run folder: {run.path}", flush=True)
    return _wait_and_train(run, cfg, a.data_dir)


def cmd_train_queued(a: argparse.Namespace) -> int:
    """`_train RUN`: what a supervisor starts once it holds a slot for a queued run (see scheduler.py)."""
    # If memory runs out, the kernel should stop this trainer, not the app server beside it (measured at a
    # 1 GB limit: the trainer at 507 MB outweighed the server at ~490 MB by 17 MB only). Raising one's own
    # score needs no privilege.
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    run = runs.folder(a.run_dir)
    _stop_on_signals(run)
    try:
        cfg = runs.load_config(run)
        status = runs.read_status(run)
    except runs.RunError as e:
        runs.set_status(run, "failed", error=str(e), pid=None)
        print(f"error: {e}", file=sys.stderr)
        return 2
    if runs.stop_requested(run):
        runs.set_status(run, "stopped", error="cancelled before training started", pid=None)
        return 130
    return _train_here(run, cfg, status.get("data_dir"), resume=bool(status.get("resume")))


def cmd_supervise(a: argparse.Namespace) -> int:
    return 0 if scheduler.supervise(Path(a.run_dir)) in (0, 130) else 1


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluation import evaluate_run
    from .inference import ModelError

    try:
        dataset = load_mnist(a.data_dir)
        res = evaluate_run(Path(a.run_dir), dataset)
    except (DataError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps({"accuracy": res.accuracy, "loss": res.loss, "mistakes": res.n_mistakes,
                          "n_test": len(res.y_true), "confusion_matrix": res.confusion.tolist(),
                          "per_class": res.per_class(), "data": dataset.source.describe()}))
        return 0
    print(f"data: {dataset.source.describe()}")
    print(f"accuracy {res.accuracy:.4f}  loss {res.loss:.4f}  mistakes {res.n_mistakes}/{len(res.y_true)}\n")
    print("digit  precision  recall     f1  support")
    for r in res.per_class():
        print(f"{r['digit']:>5}  {r['precision']:>9.4f}  {r['recall']:>6.4f}  {r['f1']:.4f}  {r['support']:>7}")
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print("      " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(res.confusion):
        print(f"{d:>6}" + "".join(f"{v:>6}" for v in row))
    return 0


def _read_upload(path: Path) -> bytes:
    """At most one byte more than an upload may have (load_image then refuses it by size): a huge file
    is not read whole, and a FIFO or device is refused instead of read forever."""
    from .preprocess import MAX_UPLOAD_BYTES, ImageError

    if not path.is_file():
        raise ImageError(f"{path.name} is not a regular file" if path.exists() else f"{path.name}: No such file")
    with open(path, "rb") as f:
        return f.read(MAX_UPLOAD_BYTES + 1)


def cmd_predict(a: argparse.Namespace) -> int:
    from .inference import ModelError, load_model, predict_one
    from .preprocess import ImageError, load_image, preprocess

    try:
        model = load_model(runs.folder(a.run_dir).model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    failures = 0
    for f in a.images:
        rec: dict = {"file": f, "label": None, "probabilities": None}
        try:
            pre = preprocess(load_image(_read_upload(Path(f)), Path(f).name))
            if pre.blank:
                rec["note"] = "blank image: no digit found"
            else:
                probs = predict_one(model, pre.image)
                rec.update(label=int(probs.argmax()), probabilities=[round(float(p), 6) for p in probs])
        except (ImageError, OSError) as e:
            rec["error"] = str(e)
            failures += 1
        if a.json:
            print(json.dumps(rec))
        elif "error" in rec:
            print(f"{f}: error: {rec['error']}")
        elif rec["label"] is None:
            print(f"{f}: {rec['note']}")
        else:
            top = sorted(enumerate(rec["probabilities"]), key=lambda t: -t[1])[:3]
            print(f"{f}: {rec['label']}  (" + ", ".join(f"{d}: {p:.3f}" for d, p in top) + ")")
    return 1 if failures else 0


def cmd_runs(a: argparse.Namespace) -> int:
    root = Path(a.root) if a.root else None
    listed = runs.list_runs(root)
    if a.csv:
        sys.stdout.write(runs.summary_csv(listed))
        return 0
    infos = [r for r in listed if r.damaged is None]
    damaged = [r for r in listed if r.damaged is not None]
    if a.json:
        print(json.dumps({"runs": [{"name": r.name, "status": r.state, "preset": r.preset, "params": r.params,
                                    "epochs": r.epochs, "epochs_done": r.epochs_done,
                                    "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy,
                                    "train_seconds": r.train_seconds, "error": r.error} for r in infos],
                          "broken": [{"name": r.name, "error": r.damaged} for r in damaged]}))
        return 0
    print(f"{'name':<32} {'status':<9} {'preset':<10} {'params':>8} {'test acc':>9}")
    for r in infos:
        acc = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-"
        print(f"{r.name:<32} {r.state:<9} {r.preset:<10} {r.params or 0:>8,} {acc:>9}")
    for r in damaged:
        print(f"{r.name:<32} damaged: {r.damaged}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export import ExportError, export_formats, export_run, format_table, resolve_formats
    from .inference import ModelError

    try:
        fmts = resolve_formats(a.format)
        dataset = load_mnist(a.data_dir)
        out = Path(a.out) if a.out else None
        if len(fmts) == 1 and out is not None and not out.is_dir():  # one file named by the user
            reports = [export_run(Path(a.run_dir), fmts[0], out, dataset)]
        else:  # a folder (default <run>/export/) with every format's default name and export.json
            reports = export_formats(Path(a.run_dir), fmts, out, dataset)
    except (DataError, ModelError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"data: {dataset.source.describe()}")
    print(format_table(reports))
    return 0 if all(r.ok for r in reports) else 1  # a missed agreement target is a failure


def cmd_classset(a: argparse.Namespace) -> int:
    from . import classset

    root = Path(a.root) if a.root else None
    if a.export:
        try:
            out = classset.export(Path(a.export), a.format, root)
        except (classset.ClassSetError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        ds = classset.as_dataset(root)
        print(f"wrote {out}: {len(ds.y_train):,} training and {len(ds.y_test):,} held-out drawings "
              f"(use it as a data directory: MNIST_DATA_DIR={Path(a.export)})")
        return 0
    cs = classset.load(root)
    counts = np.bincount(cs.labels, minlength=10) if len(cs) else np.zeros(10, int)
    print(f"{len(cs):,} drawings from {len(set(cs.contributors))} people, {int(cs.holdout.sum()):,} held out")
    print("per digit: " + "  ".join(f"{d}: {n}" for d, n in enumerate(counts)))
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    try:
        src = describe_source(a.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(src.describe())
    print(f"runs folder: {runs.runs_root()}   training slots: {scheduler.max_trainings()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_core", description="Train and use MNIST CNNs.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model into a run folder")
    t.add_argument("--preset", default="classic", choices=PRESET_NAMES)
    t.add_argument("--config", help="a config.json path or JSON text (overrides --preset)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--val-split", type=float)
    t.add_argument("--limit", type=int, help="train on this many images only")
    t.add_argument("--seed", type=int)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--early-stopping", action="store_true")
    t.add_argument("--data-dir", help="folder with MNIST IDX files or mnist.npz (default: MNIST_DATA_DIR)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--run-dir", help="the run folder to create (default: the runs folder / NAME)")
    g.add_argument("--name", help="run name inside the runs folder")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or failed run from its last checkpoint")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a run's model on the test set")
    e.add_argument("run_dir")
    e.add_argument("--data-dir")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)

    pr = sub.add_parser("predict", help="classify image files of digits")
    pr.add_argument("run_dir")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_predict)

    r = sub.add_parser("runs", help="list the run folders")
    r.add_argument("--root", help="runs folder (default: MNIST_RUNS_DIR or models/)")
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true", help="every run's settings and final figures, one row each")
    r.set_defaults(fn=cmd_runs)

    from .export import ALL, FORMATS

    x = sub.add_parser("export", help="export a run's model (LiteRT, ONNX, SavedModel), each checked on the test set")
    x.add_argument("run_dir")
    x.add_argument("--data-dir")
    x.add_argument("--format", default=ALL, help=f"{', '.join(FORMATS)}, a comma-separated list, or {ALL} (default)")
    x.add_argument("--out", help="a file for one format, else a folder (default: the run's export/ folder)")
    x.set_defaults(fn=cmd_export)

    c = sub.add_parser("classset", help="the class's own drawings: counts, or --export them")
    c.add_argument("--export", metavar="DIR", help="write them as a data directory (IDX files or mnist.npz)")
    c.add_argument("--format", choices=["idx", "npz"], default="idx")
    c.add_argument("--root", help="runs folder (default: MNIST_RUNS_DIR or models/)")
    c.set_defaults(fn=cmd_classset)

    # Internal: started by the scheduler (see scheduler.py), not meant to be typed.
    q = sub.add_parser("_train", help=argparse.SUPPRESS)
    q.add_argument("run_dir")
    q.set_defaults(fn=cmd_train_queued)
    sv = sub.add_parser("supervise", help=argparse.SUPPRESS)
    sv.add_argument("run_dir")
    sv.set_defaults(fn=cmd_supervise)

    i = sub.add_parser("info", help="which data source would be used")
    i.add_argument("--data-dir")
    i.set_defaults(fn=cmd_info)

    from .sweep_cli import add_commands  # sweep, sweep --list, and the internal sweep-driver

    add_commands(sub)

    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
